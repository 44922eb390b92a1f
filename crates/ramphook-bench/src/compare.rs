//! `--against OTHER_BIN`: the same scenario run alternately on two server
//! builds, `--pairs` times each, and their figures side by side with the
//! medians. Runs on one machine move by ±10–20 % from one minute to the
//! next, so one run of each build decides nothing; the order is A B B A
//! A B …, so that a machine drifting one way during the runs favours
//! neither build.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::report::Results;
use crate::Args;

/// Which of the two builds a run used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Build {
    /// `--against`: the build compared with.
    Against,
    /// `--server-bin` (or the one beside the bench): the build under test.
    This,
}

/// The figures a comparison puts side by side (each `None` where the
/// scenario has no such figure).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Figures {
    pub deliveries_per_sec: Option<f64>,
    pub server_cpu_ms_per_1000: Option<f64>,
    pub database_cpu_ms_per_1000: Option<f64>,
    /// post→arrival p99 (201→arrival where a result has no post time),
    /// or for `validation` what ramphook adds, p99.
    pub p99_ms: Option<f64>,
}

impl Figures {
    pub fn of(results: &Results) -> Self {
        let p99 = match &results.validation {
            Some(v) => v.ramphook_adds.as_ref().map(|l| l.p99_ms),
            None => results
                .latency_from_post
                .as_ref()
                .or(results.latency.as_ref())
                .map(|l| l.p99_ms),
        };
        Self {
            deliveries_per_sec: results.deliveries.as_ref().map(|d| d.per_sec),
            server_cpu_ms_per_1000: results.server.as_ref().and_then(|s| s.cpu_ms_per_1000_deliveries),
            database_cpu_ms_per_1000: results
                .server
                .as_ref()
                .and_then(|s| s.database_cpu_ms_per_1000_deliveries),
            p99_ms: p99,
        }
    }

    /// Each figure's median over `runs`.
    fn median_of(runs: &[&Figures]) -> Self {
        let of = |pick: fn(&Figures) -> Option<f64>| median(&runs.iter().filter_map(|f| pick(f)).collect::<Vec<_>>());
        Self {
            deliveries_per_sec: of(|f| f.deliveries_per_sec),
            server_cpu_ms_per_1000: of(|f| f.server_cpu_ms_per_1000),
            database_cpu_ms_per_1000: of(|f| f.database_cpu_ms_per_1000),
            p99_ms: of(|f| f.p99_ms),
        }
    }
}

/// One run of a comparison.
#[derive(Debug, Serialize)]
pub struct Run {
    pub build: Build,
    pub server_bin: PathBuf,
    pub figures: Figures,
    pub results: Results,
}

/// What `--against` writes to `--out`.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub runs: Vec<Run>,
    pub median_against: Figures,
    pub median_this: Figures,
}

/// The builds in the order they run: A B, then B A, and so on.
pub fn order(pairs: u32) -> Vec<Build> {
    (0..pairs)
        .flat_map(|pair| {
            if pair % 2 == 0 {
                [Build::Against, Build::This]
            } else {
                [Build::This, Build::Against]
            }
        })
        .collect()
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Runs the scenario on both builds, alternately.
pub async fn run(args: &Args, against: &Path, pairs: u32) -> Result<Comparison, String> {
    let mut runs = Vec::new();
    for build in order(pairs) {
        let mut one = args.clone();
        // One JSON for the whole comparison; no histogram per run.
        one.out = None;
        if build == Build::Against {
            one.server_bin = Some(against.to_path_buf());
        }
        let server_bin = crate::server::find_server_bin(one.server_bin.as_deref())?;
        eprintln!("--- {} ({})", label(build), server_bin.display());
        let results = crate::scenarios::run(&one).await?;
        if let Some(problem) = results.broken() {
            return Err(format!("{} run broken: {problem}", label(build)));
        }
        runs.push(Run {
            build,
            server_bin,
            figures: Figures::of(&results),
            results,
        });
    }
    let of = |build: Build| {
        Figures::median_of(
            &runs
                .iter()
                .filter(|r| r.build == build)
                .map(|r| &r.figures)
                .collect::<Vec<_>>(),
        )
    };
    Ok(Comparison {
        median_against: of(Build::Against),
        median_this: of(Build::This),
        runs,
    })
}

fn label(build: Build) -> &'static str {
    match build {
        Build::Against => "against",
        Build::This => "this",
    }
}

/// The runs in order, then both medians and the change from `against` to
/// `this`.
pub fn render(comparison: &Comparison) -> String {
    let cell = |v: Option<f64>, decimals: usize| v.map_or("-".to_owned(), |v| format!("{v:.decimals$}"));
    let row = |name: &str, f: &Figures| {
        format!(
            "{name:<16} {:>12} {:>12} {:>12} {:>10}\n",
            cell(f.deliveries_per_sec, 0),
            cell(f.server_cpu_ms_per_1000, 0),
            cell(f.database_cpu_ms_per_1000, 0),
            cell(f.p99_ms, 2),
        )
    };
    let mut out = format!(
        "{:<16} {:>12} {:>12} {:>12} {:>10}\n",
        "run", "deliveries/s", "server ms/k", "db ms/k", "p99 ms"
    );
    for (n, run) in comparison.runs.iter().enumerate() {
        out += &row(&format!("{} {}", n + 1, label(run.build)), &run.figures);
    }
    out += &row("median against", &comparison.median_against);
    out += &row("median this", &comparison.median_this);
    let change = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => format!("{:+.1} %", (b - a) / a * 100.0),
        _ => "-".to_owned(),
    };
    let (a, b) = (&comparison.median_against, &comparison.median_this);
    out += &format!(
        "{:<16} {:>12} {:>12} {:>12} {:>10}\n",
        "change",
        change(a.deliveries_per_sec, b.deliveries_per_sec),
        change(a.server_cpu_ms_per_1000, b.server_cpu_ms_per_1000),
        change(a.database_cpu_ms_per_1000, b.database_cpu_ms_per_1000),
        change(a.p99_ms, b.p99_ms),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::LatencySummary;

    #[test]
    fn pairs_alternate_so_that_drift_favours_neither_build() {
        use Build::{Against as A, This as T};
        assert_eq!(order(3), [A, T, T, A, A, T]);
        assert!(order(0).is_empty());
    }

    #[test]
    fn medians_take_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn the_p99_compared_is_from_the_post_where_a_result_has_it() {
        let summary = |p99_ms: f64| LatencySummary {
            count: 1,
            p50_ms: p99_ms,
            p95_ms: p99_ms,
            p99_ms,
            max_ms: p99_ms,
            mean_ms: p99_ms,
        };
        let mut results = Results {
            latency: Some(summary(0.2)),
            ..Results::default()
        };
        assert_eq!(Figures::of(&results).p99_ms, Some(0.2));
        results.latency_from_post = Some(summary(1.5));
        assert_eq!(Figures::of(&results).p99_ms, Some(1.5));
    }

    #[test]
    fn the_table_shows_each_run_the_medians_and_the_change() {
        let figures = |rate: f64, cpu: f64| Figures {
            deliveries_per_sec: Some(rate),
            server_cpu_ms_per_1000: Some(cpu),
            database_cpu_ms_per_1000: None,
            p99_ms: Some(0.5),
        };
        let run = |build, rate, cpu| Run {
            build,
            server_bin: PathBuf::from("ramphook"),
            figures: figures(rate, cpu),
            results: Results::default(),
        };
        let runs = vec![run(Build::Against, 1000.0, 100.0), run(Build::This, 1200.0, 80.0)];
        let comparison = Comparison {
            median_against: Figures::median_of(&[&runs[0].figures]),
            median_this: Figures::median_of(&[&runs[1].figures]),
            runs,
        };
        let table = render(&comparison);
        assert!(table.contains("1 against"), "{table}");
        assert!(table.contains("2 this"), "{table}");
        let change = table.lines().last().unwrap();
        assert!(change.contains("+20.0 %") && change.contains("-20.0 %"), "{change}");
        assert!(change.contains(" - "), "no database figure, no change: {change}");
    }
}
