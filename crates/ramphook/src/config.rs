//! Every setting of `ramphook serve`, as a flag and an env var, parsed once
//! into typed values so the rest of the code never sees a raw string.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::api::rate_limit::{parse_rate, Rate};
use crate::delivery::retry::RetrySchedule;
use crate::secrets::MasterKey;

#[derive(Debug, Parser)]
#[command(
    name = "ramphook",
    version,
    about = "Webhooks and validation callbacks for a crypto on/off-ramp platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API, the delivery workers and the expiry scheduler.
    Serve(Box<ServeConfig>),
    /// Check one received webhook: body signature and Standard Webhooks headers.
    Verify(crate::cli::verify::VerifyArgs),
    /// Receive webhooks and answer validation callbacks locally, checking signatures.
    Listen(crate::cli::listen::ListenArgs),
    /// Re-seal every stored secret under a new master key, in one transaction.
    Rekey(RekeyArgs),
}

/// `ramphook rekey`: the old key (as the server was started with) and the new one.
#[derive(Debug, Clone, Args)]
pub struct RekeyArgs {
    /// Database URL, as given to `serve`.
    #[arg(long, env = "RAMPHOOK_DATABASE_URL", default_value = "sqlite://ramphook.db")]
    pub database_url: String,
    /// The current master key (base64 of 32 bytes).
    #[arg(long, value_parser = MasterKey::from_base64, conflicts_with = "old_key_file", required_unless_present = "old_key_file")]
    pub old_key: Option<MasterKey>,
    /// A file holding the current master key.
    #[arg(long)]
    pub old_key_file: Option<PathBuf>,
    /// The new master key (base64 of 32 bytes).
    #[arg(long, value_parser = MasterKey::from_base64, conflicts_with = "new_key_file", required_unless_present = "new_key_file")]
    pub new_key: Option<MasterKey>,
    /// A file holding the new master key.
    #[arg(long)]
    pub new_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the HTTP API listens on (port 0 picks a free port).
    #[arg(long, env = "RAMPHOOK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database URL: sqlite://PATH (created if missing).
    #[arg(long, env = "RAMPHOOK_DATABASE_URL", default_value = "sqlite://ramphook.db")]
    pub database_url: String,

    /// Connections each instance opens to PostgreSQL (two are kept by the
    /// writer and the append reader).
    #[arg(long, env = "RAMPHOOK_DATABASE_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(5..=1000))]
    pub database_max_connections: u32,

    /// Threads that run the API and the deliveries (the async runtime's
    /// workers); unset: half the cores, at least one.
    #[arg(long, env = "RAMPHOOK_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,

    /// Admin token; if unset a random one is generated and printed once.
    #[arg(long, env = "RAMPHOOK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Comma-separated CIDRs that webhook targets may resolve to even though
    /// they are private or loopback, e.g. 127.0.0.0/8,::1/128.
    #[arg(long, env = "RAMPHOOK_ALLOW_CIDRS", value_delimiter = ',')]
    pub allow_cidrs: Vec<IpNet>,

    /// Delays before each delivery attempt, comma-separated.
    #[arg(long, env = "RAMPHOOK_RETRY_SCHEDULE", default_value = "0s,5s,5m,30m,2h,5h,10h,10h", value_parser = RetrySchedule::parse)]
    pub retry_schedule: RetrySchedule,

    /// Total time one delivery attempt may take.
    #[arg(long, env = "RAMPHOOK_DELIVERY_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub delivery_timeout: Duration,

    /// Log format: text (human-readable) or json (JSON lines).
    #[arg(long, env = "RAMPHOOK_LOG_FORMAT", default_value = "text", value_enum)]
    pub log_format: LogFormat,

    /// Largest request body the API accepts, in bytes.
    #[arg(long, env = "RAMPHOOK_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Deliveries in flight at once across all endpoints. Under load an
    /// attempt's round trip waits its turn on the cores too, so this bounds
    /// throughput (in flight ÷ round trip): at 512, ten endpoints at their
    /// per-endpoint bound of 64 did not fit (docs/PERFORMANCE.md).
    #[arg(long, env = "RAMPHOOK_MAX_IN_FLIGHT", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_in_flight: u32,

    /// Deliveries in flight at once to one endpoint (one that keeps failing
    /// is probed one at a time).
    #[arg(long, env = "RAMPHOOK_MAX_IN_FLIGHT_PER_ENDPOINT", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_in_flight_per_endpoint: u32,

    /// The least wait before retrying after a timeout or a 429.
    #[arg(long, env = "RAMPHOOK_THROTTLE_BACKOFF", default_value = "1m", value_parser = parse_duration)]
    pub throttle_backoff: Duration,

    /// An endpoint failing without a break this long is disabled.
    #[arg(long, env = "RAMPHOOK_DISABLE_AFTER", default_value = "5d", value_parser = parse_duration)]
    pub disable_after: Duration,

    /// Where to announce disabled endpoints (a JSON POST); unset = log and metrics only.
    #[arg(long, env = "RAMPHOOK_OPS_WEBHOOK_URL")]
    pub ops_webhook_url: Option<url::Url>,

    /// Finished deliveries older than this are purged, with their attempts,
    /// and idempotency keys as old.
    #[arg(long, env = "RAMPHOOK_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub retention: Duration,

    /// How long shutdown waits for in-flight attempts before leaving them to
    /// the next start.
    #[arg(long, env = "RAMPHOOK_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Master key sealing secrets at rest (base64 of 32 bytes). Without it
    /// (or --master-key-file), SQLite uses a key file beside the database,
    /// generated if missing; PostgreSQL refuses to start.
    #[arg(long, env = "RAMPHOOK_MASTER_KEY", hide_env_values = true, value_parser = MasterKey::from_base64, conflicts_with = "master_key_file")]
    pub master_key: Option<MasterKey>,

    /// A file holding the master key (base64 of 32 bytes).
    #[arg(long, env = "RAMPHOOK_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Requests each partner API key may make: N/s, N/m or N/h, or off.
    /// The admin token is not limited.
    #[arg(long, env = "RAMPHOOK_RATE_LIMIT", default_value = "50/s", value_parser = parse_rate)]
    pub rate_limit: Rate,

    /// Requests a partner API key may make at once before the rate applies.
    #[arg(long, env = "RAMPHOOK_RATE_LIMIT_BURST", default_value = "100")]
    pub rate_limit_burst: NonZeroU32,

    /// Webhook endpoints one partner may have.
    #[arg(long, env = "RAMPHOOK_MAX_ENDPOINTS_PER_PARTNER", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_endpoints_per_partner: u32,
}

/// Parses `150ms`, `5s`, `5m`, `2h`, `1d`: a whole number and one suffix.
///
/// Written by hand on purpose: humantime also takes years, months and
/// `1h 30m`, which the contract does not promise and operators would then
/// rely on.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let hint = "use a whole number with ms, s, m, h or d, e.g. 500ms, 5s, 5m, 2h, 1d";
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; {hint}"))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?} has no known unit; {hint}")),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// The async runtime's workers when `--worker-threads` is unset: half of
/// `cores`, at least one. The other half is for what ramphook waits on: its
/// SQLite writer thread or a PostgreSQL on the same machine, and the
/// kernel's work on its sockets. Every wake-up of a parked worker is a
/// futex call and a context switch: with two workers on two cores, at
/// 1,000 events/s those were about a third of the server's samples, and
/// one worker spends about a tenth less CPU (docs/PERFORMANCE.md).
pub fn default_worker_threads(cores: usize) -> usize {
    (cores / 2).max(1)
}

/// Parses the command line (and env), turning a bad value into one line that
/// names the setting by flag and env var.
pub fn parse_cli() -> Cli {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::CommandFactory;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if matches!(err.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) => {
            let arg = match err.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::from("a setting"),
            };
            let value = match err.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let long = arg
                .split_whitespace()
                .next()
                .unwrap_or(&arg)
                .trim_start_matches("--")
                .to_string();
            // The env var of this flag in the subcommand being run.
            let subcommand = std::env::args().nth(1).unwrap_or_default();
            let env = Cli::command()
                .find_subcommand(&subcommand)
                .and_then(|c| {
                    c.get_arguments()
                        .find(|a| a.get_long() == Some(long.as_str()))
                        .and_then(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
                })
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            let reason = err
                .source()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "not a valid value".into());
            // A key or token, even a malformed one, is never echoed.
            let value = if long.contains("key") || long.contains("token") {
                String::from("(hidden)")
            } else {
                format!("{value:?}")
            };
            eprintln!("error: invalid value {value} for --{long}{env}: {reason}");
            std::process::exit(2);
        }
        Err(err) => err.exit(),
    }
}

use std::error::Error as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_every_suffix() {
        assert_eq!(parse_duration("150ms").unwrap(), Duration::from_millis(150));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("1h 30m").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn serve_defaults_match_the_contract() {
        let cli = Cli::try_parse_from(["ramphook", "serve"]).unwrap();
        let Command::Serve(cfg) = cli.command else {
            panic!("serve parses as serve")
        };
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.database_url, "sqlite://ramphook.db");
        assert_eq!(cfg.delivery_timeout, Duration::from_secs(15));
        assert_eq!(cfg.retry_schedule.delays().len(), 8);
        assert_eq!(cfg.max_endpoints_per_partner, 20);
        assert_eq!(cfg.rate_limit, parse_rate("50/s").unwrap());
        assert!(cfg.master_key.is_none());
    }

    #[test]
    fn the_runtime_takes_half_the_cores_and_at_least_one() {
        assert_eq!(default_worker_threads(1), 1);
        assert_eq!(default_worker_threads(2), 1);
        assert_eq!(default_worker_threads(3), 1);
        assert_eq!(default_worker_threads(16), 8);
    }
}
