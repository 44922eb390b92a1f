//! The scenarios: each sets up a server, a receiver and the partners and
//! endpoints it needs, runs the load, and turns what it saw into `Results`.
//! `single`, `fanout` and `slow-neighbour` share one measured flow; `backlog`
//! builds a queue and times its drain; `receiver-ceiling` measures the bench;
//! `validation` (in `validation.rs`) times the validation callbacks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tempfile::TempDir;

use crate::api::Api;
use crate::driver::{self, DriveOptions};
use crate::metrics::{LatencySummary, Tracker};
use crate::receiver::{Behaviour, Mode, Receiver};
use crate::report::{self, Machine, Rate, Results, ServerUse, WarmupCpu};
use crate::server::{find_server_bin, ProcSample, Server, SpawnOptions};
use crate::{Args, Db, Scenario};

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
/// The event rate assumed when sizing the warm-up for an unpaced run.
const FULL_SPEED_GUESS: f64 = 1_500.0;
/// No setup phase (the backlog's included) runs longer than this.
const SETUP_LIMIT: Duration = Duration::from_secs(3 * 3600);

pub async fn run(args: &Args) -> Result<Results, String> {
    let mut results = match args.scenario {
        Scenario::Validation => crate::validation::run(args).await,
        Scenario::ReceiverCeiling => receiver_ceiling(args).await,
        Scenario::Backlog => backlog(args).await,
        Scenario::Single | Scenario::Fanout | Scenario::SlowNeighbour => load(args).await,
    }?;
    if let (Db::Postgres, Some(url)) = (args.db, &args.database_url) {
        match crate::database_settings::read(url).await {
            Ok(settings) => results.database_settings = Some(settings),
            Err(err) => eprintln!("note: the database's settings could not be read: {err}"),
        }
    }
    Ok(results)
}

/// The server under test and, if we started it, what it needs to start again.
pub(crate) struct Target {
    pub(crate) server: Server,
    pub(crate) api: Api,
    spawn: Option<SpawnOptions>,
    _dir: Option<TempDir>,
}

pub(crate) async fn start_server(args: &Args, extra_env: &[(&str, String)]) -> Result<Target, String> {
    if let Some(url) = &args.url {
        let token = args.admin_token.as_deref().unwrap_or_default();
        let server = Server::attach(url, args.server_pid);
        let api = Api::new(&server.base, token, args.concurrency);
        return Ok(Target {
            server,
            api,
            spawn: None,
            _dir: None,
        });
    }
    let bin = find_server_bin(args.server_bin.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("ramphook-bench-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let database_url = match (&args.database_url, args.db) {
        (Some(url), _) => url.clone(),
        (None, Db::Sqlite) => format!("sqlite://{}", dir.path().join("bench.db").display()),
        (None, Db::Postgres) => return Err("--db postgres needs --database-url postgres://USER@HOST/DB".into()),
    };
    if args.fresh_database {
        if args.db != Db::Postgres {
            return Err("--fresh-database is for --db postgres".into());
        }
        crate::fresh_database::recreate(&database_url).await?;
    }
    let mut env = vec![("RAMPHOOK_DELIVERY_TIMEOUT".to_owned(), args.delivery_timeout.clone())];
    if let Some(n) = args.max_in_flight {
        env.push(("RAMPHOOK_MAX_IN_FLIGHT".into(), n.to_string()));
    }
    for (key, value) in extra_env {
        env.retain(|(k, _)| k != key);
        env.push(((*key).to_owned(), value.clone()));
    }
    let spawn = SpawnOptions {
        bin,
        database_url,
        admin_token: ADMIN_TOKEN.into(),
        env,
        log_path: dir.path().join("server.log"),
    };
    let server = Server::spawn(&spawn).await?;
    let api = Api::new(&server.base, ADMIN_TOKEN, args.concurrency);
    Ok(Target {
        server,
        api,
        spawn: Some(spawn),
        _dir: Some(dir),
    })
}

pub(crate) fn bar(len: u64, prefix: &str) -> ProgressBar {
    let progress = ProgressBar::new(len);
    progress.set_style(
        ProgressStyle::with_template("{prefix:>11} [{bar:30}] {pos}/{len} {per_sec:>12} {elapsed_precise} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    progress.set_prefix(prefix.to_owned());
    progress
}

pub(crate) fn base_results(args: &Args) -> Results {
    let mut config = BTreeMap::new();
    config.insert("concurrency".into(), json!(args.concurrency));
    config.insert("bench_threads".into(), json!(args.bench_threads));
    config.insert("rate_per_sec".into(), json!(args.rate));
    config.insert("duration_s".into(), json!(args.duration.as_secs_f64()));
    config.insert("events_limit".into(), json!(args.events));
    config.insert("steps_per_order".into(), json!(args.steps));
    config.insert(
        "server".into(),
        json!(if args.url.is_some() {
            "attached (--url)"
        } else {
            "spawned"
        }),
    );
    config.insert("delivery_timeout".into(), json!(args.delivery_timeout));
    config.insert("max_in_flight".into(), json!(args.max_in_flight));
    config.insert("db".into(), json!(format!("{:?}", args.db).to_lowercase()));
    Results {
        scenario: args.scenario.name(),
        smoke: args.smoke,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_at_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        machine: Machine::now(),
        config,
        ..Results::default()
    }
}

/// Orders the warm-up creates when `--orders` is not given.
pub fn default_orders(events: Option<u64>, rate: Option<f64>, duration: Duration, steps: usize) -> u64 {
    let events = events.unwrap_or_else(|| {
        let rate = rate.unwrap_or(FULL_SPEED_GUESS);
        (rate * duration.as_secs_f64()).ceil() as u64
    });
    driver::orders_needed(events, steps).max(1)
}

pub(crate) fn server_use(before: Option<ProcSample>, after: Option<ProcSample>, requests: u64) -> Option<ServerUse> {
    let (before, after) = (before?, after?);
    let cpu = after.cpu_seconds - before.cpu_seconds;
    Some(ServerUse {
        cpu_seconds: report::round3(cpu),
        cpu_ms_per_1000_deliveries: (requests > 0).then(|| report::round3(cpu * 1000.0 / (requests as f64 / 1000.0))),
        peak_rss_mib: report::round3(after.peak_rss_kib as f64 / 1024.0),
        rss_end_mib: report::round3(after.rss_kib as f64 / 1024.0),
        ..ServerUse::default()
    })
}

/// The database's CPU so far, if it is a PostgreSQL on this machine.
pub(crate) fn database_cpu(args: &Args) -> Option<f64> {
    (args.db == Db::Postgres)
        .then(crate::database_cpu::local_postgres_cpu_seconds)
        .flatten()
}

/// Adds the database's CPU since `before` (`database_cpu`) to `server`, per
/// 1,000 of `requests`.
pub(crate) fn add_database_use(server: &mut Option<ServerUse>, args: &Args, before: Option<f64>, requests: u64) {
    let (Some(server), Some(before), Some(after)) = (server.as_mut(), before, database_cpu(args)) else {
        return;
    };
    let cpu = after - before;
    server.database_cpu_seconds = Some(report::round3(cpu));
    server.database_cpu_ms_per_1000_deliveries =
        (requests > 0).then(|| report::round3(cpu * 1000.0 / (requests as f64 / 1000.0)));
}

/// Draws `histogram` (ms, `x_desc` saying of what) where `--svg`/`--out`
/// say and notes the file (or why it was not written) in the results.
pub(crate) fn write_histogram(
    args: &Args,
    results: &mut Results,
    (title, x_desc): (&str, &str),
    histogram: &hdrhistogram::Histogram<u64>,
) {
    let Some(path) = svg_path(args) else { return };
    let written = match crate::plot::write_svg(&path, title, x_desc, histogram) {
        Ok(()) => json!(path.display().to_string()),
        Err(e) => json!(format!("not written: {e}")),
    };
    results.extra.insert("histogram_svg".into(), written);
}

pub(crate) fn svg_path(args: &Args) -> Option<PathBuf> {
    args.svg
        .clone()
        .or_else(|| args.out.as_ref().map(|out| out.with_extension("svg")))
}

pub(crate) fn bench_cpu(before: Option<ProcSample>) -> f64 {
    match (before, ProcSample::read_self()) {
        (Some(b), Some(a)) => report::round3(a.cpu_seconds - b.cpu_seconds),
        _ => 0.0,
    }
}

/// `single`, `fanout`, `slow-neighbour`.
async fn load(args: &Args) -> Result<Results, String> {
    let mut results = base_results(args);
    let healthy = args
        .endpoints
        .unwrap_or(if args.scenario == Scenario::Fanout { 10 } else { 1 })
        .max(1);
    let tracker = Arc::new(Tracker::default());
    let any: SocketAddr = "127.0.0.1:0".parse().expect("static address");
    let receiver = Receiver::start(any, Some(tracker.clone()), Behaviour::default()).await?;
    let mut target = start_server(args, &[]).await?;
    let api = target.api.clone();

    let partner = api.partner("bench healthy partner").await?;
    for i in 0..healthy {
        api.endpoint(&partner, &receiver.url(&format!("/ok/{i}"))).await?;
    }
    let mut partners = vec![(partner, healthy)];
    if args.scenario == Scenario::SlowNeighbour {
        let neighbour = api.partner("bench slow neighbour").await?;
        api.endpoint(&neighbour, &receiver.url("/hang")).await?;
        api.endpoint(&neighbour, &receiver.url("/slow")).await?;
        partners.push((neighbour, 0));
        results.notes.push(
            "half the orders belong to the slow neighbour (one endpoint that never answers, one that answers \
             after 2 s); latency and deliveries are the healthy partner's only"
                .into(),
        );
    }
    results.config.insert("healthy_endpoints".into(), json!(healthy));

    let steps = args.steps as usize;
    let order_count = args
        .orders
        .unwrap_or_else(|| default_orders(args.events, args.rate, args.duration, steps));
    let warmup = bar(order_count, "orders");
    let warmup_start = Instant::now();
    let (server_before, database_before) = (target.server.sample(), database_cpu(args));
    let orders = driver::create_orders(&api, &partners, order_count, args.concurrency, &warmup).await?;
    warmup.finish();
    results.warmup_orders = Some(Rate::new(orders.len() as u64, warmup_start.elapsed().as_secs_f64()));
    if let (Some(before), Some(after)) = (server_before, target.server.sample()) {
        let database = database_before.zip(database_cpu(args)).map(|(b, a)| a - b);
        results.warmup_cpu = WarmupCpu::new(orders.len() as u64, after.cpu_seconds - before.cpu_seconds, database);
    }

    let before = target.server.sample();
    let database_before = database_cpu(args);
    let bench_before = ProcSample::read_self();
    let max_events = args.events.unwrap_or(u64::MAX).min(orders.len() as u64 * steps as u64);
    let progress = bar(max_events, "events");
    let ticking = Arc::new(AtomicBool::new(true));
    let ticker = {
        let (progress, tracker, ticking) = (progress.clone(), tracker.clone(), ticking.clone());
        tokio::spawn(async move {
            while ticking.load(Ordering::Relaxed) {
                let (p50, p99) = tracker.quick();
                progress.set_message(format!(
                    "delivered {}, post → arrival p50 {p50:.1} ms p99 {p99:.1} ms",
                    tracker.arrivals()
                ));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let drive_start = Instant::now();
    let stats = driver::drive(
        &api,
        Arc::new(orders),
        DriveOptions {
            concurrency: args.concurrency,
            rate: args.rate,
            steps,
            max_events: args.events,
            deadline: args.duration,
            idempotency_keys: args.idempotency_keys,
        },
        tracker.clone(),
        &progress,
    )
    .await;
    progress.finish();

    let drain = bar(tracker.expected(), "deliveries");
    let drain_start = Instant::now();
    while tracker.arrivals() < tracker.expected() && drain_start.elapsed() < args.drain_timeout {
        drain.set_position(tracker.arrivals());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drain.set_position(tracker.arrivals());
    drain.finish();
    ticking.store(false, Ordering::Relaxed);
    let _ = ticker.await;

    let after = target.server.sample();
    let counts = receiver.counts();
    results.bench_cpu_seconds = bench_cpu(bench_before);
    results.ingest = Some(Rate::new(stats.accepted, stats.elapsed.as_secs_f64()));
    results.ingest_errors = stats.errors;
    results.first_error = stats.first_error;
    results.api_latency = LatencySummary::from_histogram(&stats.api_micros);
    let arrivals = tracker.arrivals();
    let window = receiver
        .arrival_window()
        .map(|(_, last)| last.saturating_duration_since(drive_start).as_secs_f64())
        .unwrap_or(0.0);
    results.deliveries = Some(Rate::new(arrivals, window));
    results.deliveries_expected = tracker.expected();
    let from_post = tracker.histogram_from_post();
    results.latency = LatencySummary::from_histogram(&tracker.histogram());
    results.latency_from_post = LatencySummary::from_histogram(&from_post);
    results.early_arrivals = tracker.early();
    let requests = counts.healthy + counts.slow + counts.hung;
    results.server = server_use(before, after, requests);
    add_database_use(&mut results.server, args, database_before, requests);
    if args.scenario == Scenario::SlowNeighbour {
        results
            .extra
            .insert("slow_endpoint_requests".into(), json!(counts.slow));
        results
            .extra
            .insert("hung_endpoint_requests".into(), json!(counts.hung));
    }
    if results.server.is_some() && requests != arrivals {
        results.notes.push(format!(
            "server CPU is divided by all {requests} webhook requests received (healthy and not)"
        ));
    }
    if arrivals < tracker.expected() {
        results.notes.push(format!(
            "{} webhooks had not arrived {:.0} s after posting stopped",
            tracker.expected() - arrivals,
            args.drain_timeout.as_secs_f64()
        ));
    }
    results
        .notes
        .push("server CPU covers the measured phase: the API calls and the deliveries they cause".into());
    // The histogram shows what issue 6's target is stated in.
    let title = format!("ramphook {}: post → arrival", args.scenario.name());
    let x_desc = "ms from posting the event to its arrival at the receiver";
    write_histogram(args, &mut results, (&title, x_desc), &from_post);
    target.server.stop(Duration::from_secs(20)).await;
    receiver.stop();
    results.machine.load_at_end = report::load_average();
    Ok(results)
}

/// `backlog`: N deliveries pile up while the partner hangs, then drain.
///
/// How the pile is built, honestly and fast: a first server runs with
/// `RAMPHOOK_MAX_IN_FLIGHT=1` and a 1 h delivery timeout against a receiver
/// that holds every request open, so exactly one delivery is ever attempted
/// and every other stays `pending`, untouched, due now. Events go in through
/// the public API (one `payment_received` per order, fanned out to the
/// endpoints). Then that server stops (SIGTERM), the receiver starts
/// answering 204, and a second server with the normal settings opens the same
/// database: what is timed is a fresh process draining a full queue.
async fn backlog(args: &Args) -> Result<Results, String> {
    if args.url.is_some() {
        return Err("the backlog scenario restarts the server, so it needs one of its own: drop --url".into());
    }
    let mut results = base_results(args);
    let endpoints = args.endpoints.unwrap_or(10).max(1);
    let any: SocketAddr = "127.0.0.1:0".parse().expect("static address");
    let receiver = Receiver::start(any, None, Behaviour::default()).await?;
    receiver.set_mode(Mode::HangAll);
    let mut target = start_server(
        args,
        &[
            ("RAMPHOOK_MAX_IN_FLIGHT", "1".into()),
            ("RAMPHOOK_DELIVERY_TIMEOUT", "1h".into()),
            ("RAMPHOOK_SHUTDOWN_GRACE", "1s".into()),
        ],
    )
    .await?;
    let api = target.api.clone();
    let partner = api.partner("bench backlog partner").await?;
    for i in 0..endpoints {
        api.endpoint(&partner, &receiver.url(&format!("/ok/{i}"))).await?;
    }
    let events = args.backlog.div_ceil(u64::from(endpoints));
    let expected = events * u64::from(endpoints);
    results.config.insert("backlog_requested".into(), json!(args.backlog));
    results.config.insert("endpoints".into(), json!(endpoints));

    let setup_start = Instant::now();
    let warmup = bar(events, "orders");
    let orders = driver::create_orders(&api, &[(partner.clone(), 0)], events, args.concurrency, &warmup).await?;
    warmup.finish();
    results.warmup_orders = Some(Rate::new(orders.len() as u64, setup_start.elapsed().as_secs_f64()));
    let progress = bar(events, "events");
    let stats = driver::drive(
        &api,
        Arc::new(orders),
        DriveOptions {
            concurrency: args.concurrency,
            rate: None,
            steps: 1,
            max_events: Some(events),
            deadline: SETUP_LIMIT,
            idempotency_keys: args.idempotency_keys,
        },
        Arc::new(Tracker::default()),
        &progress,
    )
    .await;
    progress.finish();
    results.ingest = Some(Rate::new(stats.accepted, stats.elapsed.as_secs_f64()));
    results.ingest_errors = stats.errors;
    results.first_error = stats.first_error;
    results.api_latency = LatencySummary::from_histogram(&stats.api_micros);
    let expected = expected.min(stats.accepted * u64::from(endpoints));
    results.extra.insert("pending_deliveries_built".into(), json!(expected));
    results.extra.insert(
        "setup_seconds".into(),
        json!(report::round3(setup_start.elapsed().as_secs_f64())),
    );

    // Everything it accepted is committed; the one attempt held open keeps
    // the process from exiting (its results channel stays open until the
    // attempt's own timeout), so it is killed after a short wait.
    target.server.stop(Duration::from_secs(5)).await;
    let db_path = target
        .spawn
        .as_ref()
        .and_then(|s| s.database_url.strip_prefix("sqlite://").map(PathBuf::from));
    if let Some(size) = db_path
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
    {
        results
            .extra
            .insert("db_file_mib".into(), json!(report::round3(size as f64 / 1048576.0)));
    }
    receiver.set_mode(Mode::Normal);
    let mut spawn = target.spawn.clone().ok_or("the backlog needs a spawned server")?;
    spawn.env.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "RAMPHOOK_MAX_IN_FLIGHT" | "RAMPHOOK_DELIVERY_TIMEOUT" | "RAMPHOOK_SHUTDOWN_GRACE"
        )
    });
    spawn
        .env
        .push(("RAMPHOOK_DELIVERY_TIMEOUT".into(), args.delivery_timeout.clone()));
    if let Some(n) = args.max_in_flight {
        spawn.env.push(("RAMPHOOK_MAX_IN_FLIGHT".into(), n.to_string()));
    }

    let bench_before = ProcSample::read_self();
    let database_before = database_cpu(args);
    let restart = Instant::now();
    let mut server = Server::spawn(&spawn).await?;
    let listening = restart.elapsed();
    let drain = bar(expected, "drain");
    while receiver.counts().healthy < expected && restart.elapsed() < args.drain_timeout {
        drain.set_position(receiver.counts().healthy);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drain.set_position(receiver.counts().healthy);
    drain.finish();
    let after = server.sample();
    let delivered = receiver.counts().healthy;
    let (first, last) = receiver.arrival_window().unwrap_or((restart, restart));
    results.deliveries = Some(Rate::new(
        delivered,
        last.saturating_duration_since(restart).as_secs_f64(),
    ));
    results.deliveries_expected = expected;
    results.extra.insert(
        "restart_to_listening_ms".into(),
        json!(report::round3(listening.as_secs_f64() * 1000.0)),
    );
    results.extra.insert(
        "restart_to_first_delivery_ms".into(),
        json!(report::round3(
            first.saturating_duration_since(restart).as_secs_f64() * 1000.0
        )),
    );
    let zero = ProcSample {
        cpu_seconds: 0.0,
        peak_rss_kib: 0,
        rss_kib: 0,
    };
    // The second server is a fresh process: all its CPU is the drain's.
    results.server = server_use(Some(zero), after, delivered);
    add_database_use(&mut results.server, args, database_before, delivered);
    results.bench_cpu_seconds = bench_cpu(bench_before);
    results.notes.push(
        "deliveries/s is the drain: from the restart of the server to the last arrival; \
         server CPU and peak RSS are the draining process's"
            .into(),
    );
    if delivered < expected {
        results.notes.push(format!(
            "only {delivered} of {expected} delivered within --drain-timeout {:.0} s",
            args.drain_timeout.as_secs_f64()
        ));
    }
    server.stop(Duration::from_secs(20)).await;
    receiver.stop();
    results.machine.load_at_end = report::load_average();
    Ok(results)
}

/// `receiver-ceiling`: the receiver alone against a sender that does nothing else.
async fn receiver_ceiling(args: &Args) -> Result<Results, String> {
    let mut results = base_results(args);
    let tracker = Arc::new(Tracker::default());
    let any: SocketAddr = "127.0.0.1:0".parse().expect("static address");
    let receiver = Receiver::start(any, Some(tracker.clone()), Behaviour::default()).await?;
    let bench_before = ProcSample::read_self();
    let (requests, elapsed) = crate::ceiling::run(
        receiver.addr,
        args.concurrency,
        args.duration.min(Duration::from_secs(60)),
        tracker.clone(),
    )
    .await?;
    results.bench_cpu_seconds = bench_cpu(bench_before);
    results.deliveries = Some(Rate::new(requests, elapsed.as_secs_f64()));
    results.deliveries_expected = requests;
    results.latency = LatencySummary::from_histogram(&tracker.histogram());
    results.extra.insert(
        "receiver_ceiling_per_sec".into(),
        json!(report::round3(requests as f64 / elapsed.as_secs_f64())),
    );
    results.notes.push(
        "sender and receiver share this process and the machine's cores; latency here is the HTTP round trip".into(),
    );
    receiver.stop();
    results.machine.load_at_end = report::load_average();
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_sizes_follow_the_run() {
        assert_eq!(default_orders(Some(300), None, Duration::from_secs(3), 3), 100);
        assert_eq!(default_orders(None, Some(100.0), Duration::from_secs(30), 3), 1000);
        assert_eq!(default_orders(None, None, Duration::from_secs(2), 1), 3000);
        assert_eq!(default_orders(Some(0), None, Duration::from_secs(2), 1), 1);
    }

    #[test]
    fn cpu_per_thousand() {
        let s = |cpu: f64| ProcSample {
            cpu_seconds: cpu,
            peak_rss_kib: 2048,
            rss_kib: 1024,
        };
        let used = server_use(Some(s(1.0)), Some(s(3.0)), 4000).unwrap();
        assert_eq!(used.cpu_seconds, 2.0);
        assert_eq!(used.cpu_ms_per_1000_deliveries, Some(500.0));
        assert_eq!(used.peak_rss_mib, 2.0);
        assert!(server_use(None, Some(s(1.0)), 10).is_none());
    }
}
