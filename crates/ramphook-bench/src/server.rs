//! The ramphook under test: either spawned here (the release binary on a
//! temporary SQLite database) or a running one reached by URL, plus the
//! `/proc` readings (CPU seconds, peak RSS) that price each delivery.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How to start a server of our own.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    pub bin: PathBuf,
    pub database_url: String,
    pub admin_token: String,
    /// Extra `RAMPHOOK_*` settings (delivery timeout, in-flight bound, …).
    pub env: Vec<(String, String)>,
    pub log_path: PathBuf,
}

/// A ramphook the bench talks to.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub pid: Option<u32>,
}

impl Server {
    /// A server someone else runs; `pid` (if given) enables CPU/RSS readings.
    pub fn attach(base: &str, pid: Option<u32>) -> Self {
        Self {
            child: None,
            base: base.trim_end_matches('/').to_owned(),
            pid,
        }
    }

    /// Starts the binary on `127.0.0.1:0` and waits (≤ 60 s) for the line
    /// `ramphook listening on http://ADDR`.
    pub async fn spawn(options: &SpawnOptions) -> Result<Self, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.log_path)
            .map_err(|e| format!("cannot open {}: {e}", options.log_path.display()))?;
        let mut command = Command::new(&options.bin);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--database-url")
            .arg(&options.database_url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        for (key, _) in std::env::vars() {
            if key.starts_with("RAMPHOOK_") {
                command.env_remove(key);
            }
        }
        command
            .env("RAMPHOOK_ADMIN_TOKEN", &options.admin_token)
            .env("RAMPHOOK_ALLOW_CIDRS", "127.0.0.0/8")
            // A throwaway database: a fixed master key (PostgreSQL needs one).
            .env("RAMPHOOK_MASTER_KEY", "YmVuY2gtb25seS1rZXktbm90LWZvci1wcm9kdWN0aW8=");
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", options.bin.display()))?;
        let pid = child.id();
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let address = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = line.strip_prefix("ramphook listening on ") {
                    return Some(address.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            format!(
                "the server did not start within 60 s; its log ({}):\n{}",
                options.log_path.display(),
                std::fs::read_to_string(&options.log_path).unwrap_or_default()
            )
        })?;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child: Some(child),
            base: address,
            pid,
        })
    }

    /// SIGTERM, then waits at most `grace`; SIGKILL after that.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = child.id() {
            // SAFETY: plain kill(2) on the pid of a child we own and have not reaped.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }

    pub fn sample(&self) -> Option<ProcSample> {
        self.pid.and_then(ProcSample::read)
    }
}

/// Where the release binary is: `--server-bin`, else beside our own executable.
pub fn find_server_bin(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let candidate = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot locate the bench executable: {e}"))?
            .with_file_name("ramphook"),
    };
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "the ramphook server binary was not found at {}.\n\
             Build it first with `cargo build --release` (the bench spawns target/release/ramphook), \
             or pass --server-bin PATH, or point at a running server with --url and --admin-token.",
            candidate.display()
        ))
    }
}

/// CPU time and memory of a process, read from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
    /// VmHWM: the peak resident set, KiB.
    pub peak_rss_kib: u64,
    /// VmRSS now, KiB.
    pub rss_kib: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Self::parse(&stat, &status, clock_ticks())
    }

    pub fn read_self() -> Option<Self> {
        Self::read(std::process::id())
    }

    /// Pure: `/proc/PID/stat` and `/proc/PID/status` texts → a sample.
    pub fn parse(stat: &str, status: &str, ticks_per_second: f64) -> Option<Self> {
        // The command name (field 2) may hold spaces: count fields after its ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After ')' the first field is the state (field 3): utime is 14, stime 15.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(Self {
            cpu_seconds: (utime + stime) as f64 / ticks_per_second,
            peak_rss_kib: status_kib(status, "VmHWM:")?,
            rss_kib: status_kib(status, "VmRSS:").unwrap_or(0),
        })
    }
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_peak_rss() {
        let stat = "4242 (ramp hook) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 12 0 1000 1 2 3";
        let status = "Name:\tramphook\nVmHWM:\t  51200 kB\nVmRSS:\t  40960 kB\n";
        let sample = ProcSample::parse(stat, status, 100.0).unwrap();
        assert_eq!(sample.cpu_seconds, 3.0);
        assert_eq!(sample.peak_rss_kib, 51200);
        assert_eq!(sample.rss_kib, 40960);
    }

    #[test]
    fn refuses_garbage() {
        assert!(ProcSample::parse("nonsense", "", 100.0).is_none());
    }

    #[test]
    fn reads_itself() {
        let me = ProcSample::read_self().unwrap();
        assert!(me.peak_rss_kib > 0);
    }
}
