//! The database's CPU over a run, when it is a PostgreSQL on this machine:
//! issue 6 counts the database in the server's cost per delivery, and on
//! PostgreSQL that work is done in other processes than ramphook's.
//!
//! Every process named `postgres` is counted (backends, background
//! workers) with its children's times, which is where the postmaster keeps
//! the time of backends that have exited. Other databases' work on the same
//! cluster would be counted too: run the bench on a quiet cluster.

/// CPU seconds used so far by every `postgres` process on this machine, or
/// `None` if there is none (the database is elsewhere).
pub fn local_postgres_cpu_seconds() -> Option<f64> {
    let mut ticks = 0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(used) = postgres_ticks(&stat) {
            ticks += used;
            found = true;
        }
    }
    found.then(|| ticks as f64 / crate::server::clock_ticks())
}

/// Pure: a `/proc/PID/stat` text → utime + stime + cutime + cstime, in
/// clock ticks, if the process is named `postgres`.
fn postgres_ticks(stat: &str) -> Option<u64> {
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    if name != "postgres" {
        return None;
    }
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // After ')' the first field is the state (field 3): utime is field 14.
    fields.get(11..15)?.iter().map(|field| field.parse::<u64>().ok()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_postgres_process_with_its_children() {
        let stat = "4242 (postgres) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 7 3 20 0 1 0 1000 1 2 3";
        assert_eq!(postgres_ticks(stat), Some(310));
    }

    #[test]
    fn ignores_other_processes_and_garbage() {
        let stat = "4242 (ramphook) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 7 3 20 0 1 0 1000 1 2 3";
        assert_eq!(postgres_ticks(stat), None);
        assert_eq!(postgres_ticks("nonsense"), None);
        assert_eq!(postgres_ticks("1 (postgres) S 1"), None);
    }
}
