//! The `validation` scenario: what ramphook adds on top of the partner's own
//! answer time. The bench's receiver plays the partner's callback
//! (`/validate`, `{"allowed": true}` at once, its own time noted per email);
//! C clients, or a fixed `--rate`, call `POST /v1/partners/{pid}/validate`
//! with a new email every call (no cache) for `--duration`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

use crate::driver::slot_offset;
use crate::metrics::{new_histogram, LatencySummary};
use crate::partner_time::PartnerTimes;
use crate::receiver::{Behaviour, Receiver};
use crate::report::{self, Rate, Results, ValidationFigures};
use crate::scenarios::{add_database_use, bar, base_results, bench_cpu, database_cpu, server_use, start_server};
use crate::server::ProcSample;
use crate::Args;

/// Stop calling after this many failed calls (something is plainly wrong).
const MAX_ERRORS: u64 = 1_000;
/// Unmeasured calls first, so every client has its connection open.
const WARMUP_CALLS_PER_CLIENT: u64 = 4;

/// What the clients saw.
struct CallStats {
    allowed: u64,
    errors: u64,
    unpaired: u64,
    first_error: Option<String>,
    elapsed: Duration,
    client: Histogram<u64>,
    adds: Histogram<u64>,
}

pub async fn run(args: &Args) -> Result<Results, String> {
    let mut results = base_results(args);
    let times = Arc::new(PartnerTimes::default());
    let any: SocketAddr = "127.0.0.1:0".parse().expect("static address");
    let receiver = Receiver::start_with(any, None, Some(times.clone()), Behaviour::default()).await?;
    let mut target = start_server(args, &[]).await?;
    let api = target.api.clone();

    let partner = api.partner("bench validation partner").await?;
    let config = json!({
        "url": receiver.url("/validate"),
        "auth": { "type": "none" },
        "timeoutMs": 3000,
    });
    let path = format!("/v1/partners/{partner}/validation");
    let (status, answer) = api.call(reqwest::Method::PUT, &path, Some(&config)).await?;
    if status != 200 {
        return Err(format!("PUT {path} answered {status}: {answer}"));
    }
    let calls_path = format!("/v1/partners/{partner}/validate");

    let warmup = args.concurrency.max(1) as u64 * WARMUP_CALLS_PER_CLIENT;
    let warm = call_loop(
        &api,
        &calls_path,
        &times,
        args.concurrency,
        None,
        Some(warmup),
        args.duration,
        "warm",
    )
    .await;
    if warm.allowed == 0 {
        return Err(format!(
            "no warm-up validation call was allowed: {}",
            warm.first_error.unwrap_or_default()
        ));
    }

    let before = target.server.sample();
    let database_before = database_cpu(args);
    let bench_before = ProcSample::read_self();
    let partner_before = times.histogram();
    let stats = call_loop(
        &api,
        &calls_path,
        &times,
        args.concurrency,
        args.rate,
        args.events,
        args.duration,
        "user",
    )
    .await;
    let after = target.server.sample();
    results.bench_cpu_seconds = bench_cpu(bench_before);
    let mut partner = times.histogram();
    partner.subtract(&partner_before).ok();

    results.first_error = stats.first_error;
    results.validation = Some(ValidationFigures {
        calls: Rate::new(stats.allowed, stats.elapsed.as_secs_f64()),
        errors: stats.errors,
        client_latency: LatencySummary::from_histogram(&stats.client),
        partner_time: LatencySummary::from_histogram(&partner),
        ramphook_adds: LatencySummary::from_histogram(&stats.adds),
        unpaired: stats.unpaired,
    });
    results.server = server_use(before, after, stats.allowed + stats.errors);
    add_database_use(&mut results.server, args, database_before, stats.allowed + stats.errors);
    results.config.insert("warmup_calls".into(), json!(warmup));
    results.notes.push(
        "client latency: from sending POST /validate to its full answer; partner's own time: the receiver's, \
         from the callback's arrival to its answer; ramphook adds: per call, the first minus the second"
            .into(),
    );
    results
        .notes
        .push("a new email every call: cacheTtlSeconds is 0, the partner is asked every time".into());
    results
        .notes
        .push("server CPU covers the measured phase and is divided by the validation calls".into());
    crate::scenarios::write_histogram(
        args,
        &mut results,
        (
            "ramphook validation: what ramphook adds",
            "ms a call took beyond the partner's own answer time",
        ),
        &stats.adds,
    );
    target.server.stop(Duration::from_secs(20)).await;
    receiver.stop();
    results.machine.load_at_end = report::load_average();
    Ok(results)
}

/// `clients` concurrent callers, each call with the email `{prefix}-{k}@example.com`,
/// paced to `rate` if given, until `max_calls` or `deadline`.
#[allow(clippy::too_many_arguments)]
async fn call_loop(
    api: &crate::api::Api,
    path: &str,
    times: &Arc<PartnerTimes>,
    clients: usize,
    rate: Option<f64>,
    max_calls: Option<u64>,
    deadline: Duration,
    prefix: &'static str,
) -> CallStats {
    let max_calls = max_calls.unwrap_or(u64::MAX);
    let progress = bar(if max_calls == u64::MAX { 0 } else { max_calls }, prefix);
    let start = Instant::now();
    let slots = Arc::new(AtomicU64::new(0));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let merged = Arc::new(Mutex::new((new_histogram(), new_histogram())));
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (api, path, times, progress) = (api.clone(), path.to_owned(), times.clone(), progress.clone());
        let (slots, counts, first_error, merged) = (slots.clone(), counts.clone(), first_error.clone(), merged.clone());
        tasks.push(tokio::spawn(async move {
            let (mut client, mut adds) = (new_histogram(), new_histogram());
            loop {
                let k = slots.fetch_add(1, Ordering::Relaxed);
                if k >= max_calls || start.elapsed() >= deadline || counts[1].load(Ordering::Relaxed) >= MAX_ERRORS {
                    break;
                }
                if let Some(rate) = rate {
                    let due = slot_offset(k, rate);
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until((start + due).into()).await;
                }
                let email = format!("{prefix}-{k}@example.com");
                let body = json!({ "email": email, "action": "buy" });
                let sent = Instant::now();
                let outcome = api.call(reqwest::Method::POST, &path, Some(&body)).await;
                let micros = sent.elapsed().as_micros() as u64;
                let partner = times.take(&email);
                let failure = match outcome {
                    Ok((200, answer)) if answer["allowed"] == json!(true) => None,
                    Ok((status, answer)) => Some(format!("POST {path} answered {status}: {answer}")),
                    Err(err) => Some(err),
                };
                if let Some(err) = failure {
                    counts[1].fetch_add(1, Ordering::Relaxed);
                    first_error.lock().expect("never poisoned").get_or_insert(err);
                    continue;
                }
                client.saturating_record(micros.max(1));
                match partner {
                    Some(own) => adds.saturating_record(micros.saturating_sub(own).max(1)),
                    None => {
                        counts[2].fetch_add(1, Ordering::Relaxed);
                    }
                }
                counts[0].fetch_add(1, Ordering::Relaxed);
                progress.inc(1);
            }
            let mut guard = merged.lock().expect("never poisoned");
            guard.0.add(&client).ok();
            guard.1.add(&adds).ok();
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    progress.finish();
    let (client, adds) = merged.lock().expect("never poisoned").clone();
    let first_error = first_error.lock().expect("never poisoned").clone();
    CallStats {
        allowed: counts[0].load(Ordering::Relaxed),
        errors: counts[1].load(Ordering::Relaxed),
        unpaired: counts[2].load(Ordering::Relaxed),
        first_error,
        elapsed: start.elapsed(),
        client,
        adds,
    }
}
