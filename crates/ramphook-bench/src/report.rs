//! What a run found, in three forms: a plain table on stdout, a JSON file
//! (`--out`), and the machine it ran on (cores, memory, load average) so a
//! figure is never read without the conditions it was measured under.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::metrics::LatencySummary;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Machine {
    pub nproc: usize,
    pub mem_total_mib: u64,
    /// 1/5/15-minute load averages when the run started and ended.
    pub load_at_start: [f64; 3],
    pub load_at_end: [f64; 3],
}

impl Machine {
    pub fn now() -> Self {
        let load = load_average();
        Self {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            mem_total_mib: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| {
                    m.lines()
                        .find_map(|l| l.strip_prefix("MemTotal:"))
                        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
                })
                .map(|kib| kib / 1024)
                .unwrap_or(0),
            load_at_start: load,
            load_at_end: load,
        }
    }
}

pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
    ]
}

/// A count over a time, and its rate.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Rate {
    pub count: u64,
    pub seconds: f64,
    pub per_sec: f64,
}

impl Rate {
    pub fn new(count: u64, seconds: f64) -> Self {
        let per_sec = if seconds > 0.0 { count as f64 / seconds } else { 0.0 };
        Self {
            count,
            seconds: round3(seconds),
            per_sec: round3(per_sec),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct WarmupCpu {
    pub server_ms_per_1000_orders: f64,
    pub database_ms_per_1000_orders: Option<f64>,
}

impl WarmupCpu {
    /// From the CPU seconds `orders` took.
    pub fn new(orders: u64, server_seconds: f64, database_seconds: Option<f64>) -> Option<Self> {
        let per_1000 = |seconds: f64| round3(seconds * 1000.0 / (orders as f64 / 1000.0));
        (orders > 0).then(|| Self {
            server_ms_per_1000_orders: per_1000(server_seconds),
            database_ms_per_1000_orders: database_seconds.map(per_1000),
        })
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerUse {
    pub cpu_seconds: f64,
    pub cpu_ms_per_1000_deliveries: Option<f64>,
    pub peak_rss_mib: f64,
    pub rss_end_mib: f64,
    /// Every local `postgres` process's CPU over the same phase (`--db
    /// postgres` with the database on this machine; `database_cpu.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_cpu_ms_per_1000_deliveries: Option<f64>,
}

/// The validation scenario's figures: `POST /v1/partners/{pid}/validate`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ValidationFigures {
    /// Calls answered `200` with `allowed: true`.
    pub calls: Rate,
    pub errors: u64,
    /// What the client observed, send to full answer.
    pub client_latency: Option<LatencySummary>,
    /// The bench receiver's own time per callback, arrival to answer.
    pub partner_time: Option<LatencySummary>,
    /// Per call: client latency minus that call's partner time.
    pub ramphook_adds: Option<LatencySummary>,
    /// Calls whose partner time was never noted (not subtracted).
    pub unpaired: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Results {
    pub scenario: String,
    pub smoke: bool,
    pub command: String,
    pub started_at_unix: u64,
    pub machine: Machine,
    /// PostgreSQL's settings that bear on its CPU figure
    /// (`database_settings.rs`), when the run was on PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_settings: Option<BTreeMap<String, String>>,
    /// The settings the run used (concurrency, rate, endpoints, …).
    pub config: BTreeMap<String, Value>,
    /// Orders created before the measured phase.
    pub warmup_orders: Option<Rate>,
    /// What creating them cost: CPU per 1,000 orders, the server's and
    /// (PostgreSQL on this machine) the database's.
    pub warmup_cpu: Option<WarmupCpu>,
    /// Events the API accepted (`201`) during the measured phase.
    pub ingest: Option<Rate>,
    pub ingest_errors: u64,
    pub first_error: Option<String>,
    /// API answer time of the accepted events.
    pub api_latency: Option<LatencySummary>,
    /// Webhooks that reached the measured (healthy) endpoints, from the first
    /// event posted to the last arrival.
    pub deliveries: Option<Rate>,
    pub deliveries_expected: u64,
    /// From the API's `201` to the webhook's arrival at the receiver.
    pub latency: Option<LatencySummary>,
    /// From the moment the event was posted to the webhook's arrival: the
    /// API's answer time and the delivery together, as issue 6 asks and
    /// ANCHORS measures.
    pub latency_from_post: Option<LatencySummary>,
    /// Arrivals that beat the `201` back to the client (counted as 0 ms).
    pub early_arrivals: u64,
    pub server: Option<ServerUse>,
    /// Only the validation scenario has these.
    pub validation: Option<ValidationFigures>,
    pub bench_cpu_seconds: f64,
    /// Figures only one scenario has.
    pub extra: BTreeMap<String, Value>,
    pub notes: Vec<String>,
}

impl Results {
    /// A sign the bench or the server is broken (not a performance threshold):
    /// nothing was accepted, or accepted events' webhooks never arrived.
    pub fn broken(&self) -> Option<String> {
        if let Some(v) = &self.validation {
            if v.calls.count == 0 || v.errors > 0 {
                return Some(format!(
                    "{} validation calls allowed, {} failed ({})",
                    v.calls.count,
                    v.errors,
                    self.first_error.as_deref().unwrap_or("no error recorded")
                ));
            }
        }
        if self.ingest.as_ref().is_some_and(|i| i.count == 0) {
            return Some(format!(
                "the API accepted no event ({})",
                self.first_error.as_deref().unwrap_or("no error recorded")
            ));
        }
        match &self.deliveries {
            Some(d) if d.count < self.deliveries_expected => Some(format!(
                "{} of {} webhooks never arrived",
                self.deliveries_expected - d.count,
                self.deliveries_expected
            )),
            _ => None,
        }
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Three decimals: validation times are fractions of a millisecond.
fn fmt_latency_fine(l: &LatencySummary) -> String {
    format!(
        "p50 {:.3} / p95 {:.3} / p99 {:.3} / max {:.3} ms (n={})",
        l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.count
    )
}

fn fmt_latency(l: &LatencySummary) -> String {
    format!(
        "p50 {:.2} / p95 {:.2} / p99 {:.2} / max {:.2} ms (n={})",
        l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.count
    )
}

/// The human-readable table printed on stdout.
pub fn render_table(r: &Results) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
    row(
        "scenario",
        format!("{}{}", r.scenario, if r.smoke { " (smoke)" } else { "" }),
    );
    row(
        "machine",
        format!(
            "{} cores, {} MiB; load {:.2} {:.2} {:.2} → {:.2} {:.2} {:.2}",
            r.machine.nproc,
            r.machine.mem_total_mib,
            r.machine.load_at_start[0],
            r.machine.load_at_start[1],
            r.machine.load_at_start[2],
            r.machine.load_at_end[0],
            r.machine.load_at_end[1],
            r.machine.load_at_end[2]
        ),
    );
    if let Some(w) = &r.warmup_orders {
        row(
            "warm-up orders",
            format!("{} in {:.2} s = {:.1}/s", w.count, w.seconds, w.per_sec),
        );
    }
    if let Some(c) = &r.warmup_cpu {
        let database = c
            .database_ms_per_1000_orders
            .map(|ms| format!(", database {ms:.0} ms"))
            .unwrap_or_default();
        row(
            "warm-up CPU",
            format!(
                "server {:.0} ms{database} per 1,000 orders",
                c.server_ms_per_1000_orders
            ),
        );
    }
    if let Some(i) = &r.ingest {
        row(
            "API ingest (events accepted)",
            format!(
                "{} in {:.2} s = {:.1}/s, {} errors",
                i.count, i.seconds, i.per_sec, r.ingest_errors
            ),
        );
    }
    if let Some(a) = &r.api_latency {
        row("API answer time", fmt_latency(a));
    }
    if let Some(d) = &r.deliveries {
        row(
            "deliveries (end to end)",
            format!(
                "{} of {} in {:.2} s = {:.1}/s",
                d.count, r.deliveries_expected, d.seconds, d.per_sec
            ),
        );
    }
    if let Some(l) = &r.latency_from_post {
        row("post → arrival", fmt_latency(l));
    }
    if let Some(l) = &r.latency {
        row("201 → arrival", fmt_latency(l));
    }
    if r.early_arrivals > 0 {
        row("arrived before the 201", r.early_arrivals.to_string());
    }
    if let Some(v) = &r.validation {
        row(
            "validation calls",
            format!(
                "{} in {:.2} s = {:.1}/s, {} errors",
                v.calls.count, v.calls.seconds, v.calls.per_sec, v.errors
            ),
        );
        let rows = [
            ("client latency", &v.client_latency),
            ("partner's own time", &v.partner_time),
            ("ramphook adds", &v.ramphook_adds),
        ];
        for (name, summary) in rows {
            if let Some(l) = summary {
                row(name, fmt_latency_fine(l));
            }
        }
        if v.unpaired > 0 {
            row("calls without a partner time", v.unpaired.to_string());
        }
    }
    let unit = if r.validation.is_some() { "calls" } else { "deliveries" };
    if let Some(s) = &r.server {
        row(
            "server CPU",
            match s.cpu_ms_per_1000_deliveries {
                Some(per) => format!("{:.2} s total, {:.0} ms per 1,000 {unit}", s.cpu_seconds, per),
                None => format!("{:.2} s total", s.cpu_seconds),
            },
        );
        if let Some(cpu) = s.database_cpu_seconds {
            row(
                "database CPU",
                match s.database_cpu_ms_per_1000_deliveries {
                    Some(per) => format!("{cpu:.2} s total, {per:.0} ms per 1,000 {unit} (local postgres processes)"),
                    None => format!("{cpu:.2} s total (local postgres processes)"),
                },
            );
        }
        row(
            "server memory",
            format!("peak RSS {:.1} MiB, at end {:.1} MiB", s.peak_rss_mib, s.rss_end_mib),
        );
    }
    if let Some(settings) = &r.database_settings {
        row("database settings", crate::database_settings::render(settings));
    }
    row("bench CPU", format!("{:.2} s", r.bench_cpu_seconds));
    for (k, v) in &r.extra {
        row(k, v.to_string());
    }
    if let Some(e) = &r.first_error {
        row("first error", e.clone());
    }
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    for note in &r.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_divides_and_guards_zero() {
        assert_eq!(Rate::new(500, 2.0).per_sec, 250.0);
        assert_eq!(Rate::new(5, 0.0).per_sec, 0.0);
        assert_eq!(Rate::new(1, 3.0).per_sec, 0.333);
    }

    #[test]
    fn warmup_cpu_is_per_thousand_orders() {
        let cpu = WarmupCpu::new(2000, 0.1, Some(0.25)).unwrap();
        assert_eq!(
            (cpu.server_ms_per_1000_orders, cpu.database_ms_per_1000_orders),
            (50.0, Some(125.0))
        );
        assert!(WarmupCpu::new(0, 0.1, None).is_none());
        let table = render_table(&Results {
            warmup_cpu: Some(cpu),
            ..Results::default()
        });
        assert!(
            table.contains("server 50 ms, database 125 ms per 1,000 orders"),
            "{table}"
        );
    }

    #[test]
    fn broken_runs_are_named() {
        let mut results = Results {
            ingest: Some(Rate::new(10, 1.0)),
            deliveries: Some(Rate::new(10, 1.0)),
            deliveries_expected: 10,
            ..Results::default()
        };
        assert_eq!(results.broken(), None);
        results.deliveries = Some(Rate::new(7, 1.0));
        assert_eq!(results.broken().as_deref(), Some("3 of 10 webhooks never arrived"));
        results.ingest = Some(Rate::new(0, 1.0));
        assert!(results.broken().unwrap().starts_with("the API accepted no event"));
    }

    #[test]
    fn table_lists_the_figures() {
        let results = Results {
            scenario: "single".into(),
            smoke: true,
            ingest: Some(Rate::new(1000, 2.0)),
            deliveries: Some(Rate::new(1000, 2.5)),
            deliveries_expected: 1000,
            latency: Some(LatencySummary {
                count: 1000,
                p50_ms: 1.5,
                p95_ms: 3.0,
                p99_ms: 4.25,
                max_ms: 9.0,
                mean_ms: 1.7,
            }),
            latency_from_post: Some(LatencySummary {
                count: 1000,
                p50_ms: 2.5,
                p95_ms: 4.0,
                p99_ms: 6.5,
                max_ms: 11.0,
                mean_ms: 2.7,
            }),
            server: Some(ServerUse {
                cpu_seconds: 1.2,
                cpu_ms_per_1000_deliveries: Some(1200.0),
                peak_rss_mib: 30.0,
                rss_end_mib: 28.0,
                database_cpu_seconds: Some(2.4),
                database_cpu_ms_per_1000_deliveries: Some(2400.0),
            }),
            ..Results::default()
        };
        let table = render_table(&results);
        assert!(table.contains("single (smoke)"), "{table}");
        assert!(table.contains("1000 in 2.00 s = 500.0/s, 0 errors"), "{table}");
        assert!(table.contains("1000 of 1000 in 2.50 s = 400.0/s"), "{table}");
        assert!(
            table.contains("201 → arrival                 p50 1.50 / p95 3.00 / p99 4.25 / max 9.00 ms (n=1000)"),
            "{table}"
        );
        assert!(
            table.contains("post → arrival                p50 2.50 / p95 4.00 / p99 6.50 / max 11.00 ms (n=1000)"),
            "{table}"
        );
        assert!(table.contains("1200 ms per 1,000 deliveries"), "{table}");
        assert!(
            table.contains("2400 ms per 1,000 deliveries (local postgres"),
            "{table}"
        );
        // Values line up in one column.
        let columns: Vec<usize> = table
            .lines()
            .filter(|l| !l.starts_with("note"))
            .map(|l| l.find("  ").unwrap())
            .collect();
        assert!(columns.iter().all(|c| *c <= columns[0] + 40));
    }
}
