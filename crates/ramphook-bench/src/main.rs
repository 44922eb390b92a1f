//! `ramphook-bench`: the command line of the load generator. Parses the
//! flags, picks the scenario, prints the table and writes the results.
//!
//! ```sh
//! cargo build --release            # the server binary the bench spawns
//! cargo run --release -p ramphook-bench -- --scenario single --duration 20s --out results.json
//! ```

mod api;
mod ceiling;
mod compare;
mod database_cpu;
mod database_settings;
mod driver;
mod event_client;
mod fresh_database;
mod metrics;
mod partner_time;
mod plot;
mod receiver;
mod report;
mod scenarios;
mod server;
mod validation;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The bench shares the machine with the server it measures, so every CPU
/// cycle it spends is one the server cannot use: glibc's malloc and free were
/// 17 % of its samples (perf), mimalloc's thread-local free lists cost less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// One partner, one endpoint.
    Single,
    /// One partner, ten endpoints (`--endpoints` to change).
    Fanout,
    /// Healthy endpoints beside another partner's endpoints: one that never
    /// answers within the delivery timeout, one that answers after 2 s.
    SlowNeighbour,
    /// N pending deliveries built up while the partner hung, then drained.
    Backlog,
    /// Validation callbacks: what ramphook adds to the partner's own answer time.
    Validation,
    /// The bench's own receiver against a sender that does nothing else.
    ReceiverCeiling,
}

impl Scenario {
    /// The name as typed on the command line (`slow-neighbour`).
    pub fn name(&self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Db {
    Sqlite,
    /// Needs `--database-url postgres://…` (for when the server speaks it).
    Postgres,
}

/// Measures ramphook end to end: API ingest, deliveries per second, latency
/// from the API's 201 to arrival, server CPU per delivery and peak memory.
#[derive(Debug, Clone, Parser)]
#[command(name = "ramphook-bench", version)]
pub struct Args {
    #[arg(long, value_enum, default_value = "single")]
    pub scenario: Scenario,
    /// A few seconds with small numbers, no thresholds: for CI, so the bench cannot rot.
    #[arg(long)]
    pub smoke: bool,

    /// Use a running server instead of spawning one (needs --admin-token).
    #[arg(long, requires = "admin_token")]
    pub url: Option<String>,
    #[arg(long)]
    pub admin_token: Option<String>,
    /// With --url: the server's pid, to read its CPU time and peak RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The `ramphook` binary to spawn; default: beside this executable
    /// (target/release/ramphook).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// The database the spawned server uses: a temporary SQLite file by default.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub db: Db,
    /// Overrides the database URL given to the spawned server.
    #[arg(long)]
    pub database_url: Option<String>,
    /// With --db postgres: drop the database --database-url names and
    /// create it empty before the run (every run from the same start).
    #[arg(long, requires = "database_url", conflicts_with = "url")]
    pub fresh_database: bool,

    /// Concurrent API clients.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Worker threads of the bench's own runtime (its API clients and its
    /// receiver). One leaves the most of the shared cores to the server:
    /// with two, the bench spent a fifth more CPU, most of it waking its
    /// threads, and the server ran slower beside it; one thread's receiver
    /// still takes ~95,000 webhooks/s (`--scenario receiver-ceiling`),
    /// four times what the fastest scenario sends it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub bench_threads: u16,
    /// Fixed event rate, e.g. `200` or `200/s`; default: as fast as it goes.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// How long the measured phase posts events (also bounds --events).
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub duration: Duration,
    /// Stop after this many events.
    #[arg(long)]
    pub events: Option<u64>,
    /// Orders to create in the warm-up (default: enough for the run).
    #[arg(long)]
    pub orders: Option<u64>,
    /// Events per order, in the allowed sequence payment_received →
    /// crypto_tx_sent → crypto_delivered (1 to 3).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub steps: u8,
    /// Send an `Idempotency-Key` with every event (`<order id>:<event
    /// name>`), as a platform that retries its calls safely would.
    #[arg(long)]
    pub idempotency_keys: bool,
    /// Healthy endpoints (default: single 1, fanout 10, slow-neighbour 1, backlog 10).
    #[arg(long)]
    pub endpoints: Option<u32>,
    /// Pending deliveries to build up in the backlog scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: u64,
    /// RAMPHOOK_DELIVERY_TIMEOUT of the spawned server.
    #[arg(long, default_value = "15s")]
    pub delivery_timeout: String,
    /// RAMPHOOK_MAX_IN_FLIGHT of the spawned server (server default if unset).
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// How long to wait for the last webhooks after posting stops.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub drain_timeout: Duration,

    /// Compare with this other `ramphook` binary: the run is repeated
    /// --pairs times on each build, alternately, and the figures shown side
    /// by side with their medians (with --db postgres, needs --fresh-database).
    #[arg(long, conflicts_with_all = ["url", "svg"])]
    pub against: Option<PathBuf>,
    /// With --against: runs of each build.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub pairs: u32,

    /// Write the results as JSON here (and the latency histogram beside it as .svg).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the latency histogram (SVG) here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

impl Args {
    /// `--smoke` shrinks every number so a run takes a few seconds.
    fn apply_smoke(&mut self) {
        if self.smoke {
            self.duration = self.duration.min(Duration::from_secs(3));
            self.events = Some(self.events.unwrap_or(300).min(300));
            self.concurrency = self.concurrency.min(4);
            self.backlog = self.backlog.min(2_000);
            self.drain_timeout = self.drain_timeout.min(Duration::from_secs(30));
        }
    }
}

/// `250`, `250/s` or `250.5/s` → events per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s");
    match number.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!("{text:?} is not a rate like 200 or 200/s")),
    }
}

/// `500ms`, `20s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 20s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn main() {
    let mut args = Args::parse();
    args.apply_smoke();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.bench_threads))
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    if let Some(against) = &args.against {
        compare_builds(&runtime, &args, against);
        runtime.shutdown_timeout(Duration::from_secs(1));
        return;
    }
    let outcome = runtime.block_on(scenarios::run(&args));
    match outcome {
        Ok(results) => {
            print!("{}", report::render_table(&results));
            write_out(args.out.as_deref(), &results);
            // Smoke runs have no performance thresholds, only this sanity check.
            if let Some(problem) = results.broken().filter(|_| args.smoke) {
                eprintln!("error: smoke run failed: {problem}");
                std::process::exit(1);
            }
        }
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// Writes `value` as JSON to `--out`, if given; exits if it cannot.
fn write_out(path: Option<&std::path::Path>, value: &impl serde::Serialize) {
    let Some(path) = path else { return };
    let json = serde_json::to_string_pretty(value).expect("results serialise");
    if let Err(e) = std::fs::write(path, json + "\n") {
        eprintln!("error: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    println!("results written to {}", path.display());
}

/// `--against`: both builds, alternately; the side-by-side table on
/// stdout and every run's results in `--out`.
fn compare_builds(runtime: &tokio::runtime::Runtime, args: &Args, against: &std::path::Path) {
    if args.db == Db::Postgres && !args.fresh_database {
        eprintln!("error: --against with --db postgres needs --fresh-database (each run from an empty database)");
        std::process::exit(2);
    }
    match runtime.block_on(compare::run(args, against, args.pairs)) {
        Ok(comparison) => {
            print!("{}", compare::render(&comparison));
            write_out(args.out.as_deref(), &comparison);
        }
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("200").unwrap(), 200.0);
        assert_eq!(parse_rate("200/s").unwrap(), 200.0);
        assert_eq!(parse_rate("12.5/s").unwrap(), 12.5);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn smoke_shrinks_the_run() {
        let mut args = Args::parse_from(["ramphook-bench", "--smoke", "--duration", "60s"]);
        args.apply_smoke();
        assert_eq!(args.duration, Duration::from_secs(3));
        assert_eq!(args.events, Some(300));
        assert_eq!(args.backlog, 2_000);
    }

    #[test]
    fn the_bench_runs_on_one_thread_unless_told() {
        assert_eq!(Args::parse_from(["ramphook-bench"]).bench_threads, 1);
        let two = Args::try_parse_from(["ramphook-bench", "--bench-threads", "2"]).expect("two threads parse");
        assert_eq!(two.bench_threads, 2);
        assert!(Args::try_parse_from(["ramphook-bench", "--bench-threads", "0"]).is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
