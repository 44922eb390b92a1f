//! Background upkeep: once a second, disable endpoints that have failed
//! without a break for `RAMPHOOK_DISABLE_AFTER`; purge attempts, finished
//! deliveries and idempotency records older than `RAMPHOOK_RETENTION` in
//! small batches, so deliveries are never held up behind a big delete —
//! batch after batch while there is a backlog, then only now and then (see
//! `purge_pause`); and, on PostgreSQL, refresh the planner's statistics of
//! tables that grew fast (`store/planner_statistics.rs`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::delivery::alerts::Alerts;
use crate::domain::time::now_ms;
use crate::store::Store;

const TICK: Duration = Duration::from_secs(1);
const PURGE_BATCH: u32 = 1000;

pub async fn run(
    store: Store,
    alerts: Alerts,
    disable_after: Duration,
    retention: Duration,
    shutdown: CancellationToken,
) {
    let mut next_purge = now_ms();
    while !shutdown.is_cancelled() {
        let now = now_ms();
        let reason = format!("failing without a break for {}", humanize(disable_after));
        match store
            .disable_failing_since(now - disable_after.as_millis() as i64, &reason)
            .await
        {
            Ok(disabled) => disabled.iter().for_each(|endpoint| alerts.disabled(endpoint)),
            Err(err) => tracing::warn!(error = %err, "checking failing endpoints failed; retrying"),
        }
        match store.refresh_planner_statistics().await {
            Ok(analysed) if !analysed.is_empty() => tracing::debug!(?analysed, "planner statistics refreshed"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "refreshing planner statistics failed; retrying"),
        }
        if now >= next_purge {
            let purged = store
                .purge_before(now - retention.as_millis() as i64, PURGE_BATCH)
                .await
                .unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "retention purge failed; retrying");
                    0
                });
            if purged > 0 {
                metrics::counter!("ramphook_retention_purged_rows_total").increment(purged);
                tracing::debug!(purged, "retention purge");
            }
            next_purge = now + purge_pause(retention, purged).as_millis() as i64;
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// How long to wait before the next purge: none after a full batch (more
/// may be waiting); else a tenth of the retention, between a second and a
/// minute. Purging when there is nothing to purge was a query every second
/// per table, tens of milliseconds each on a busy PostgreSQL; a record
/// outlives its retention by at most that pause.
fn purge_pause(retention: Duration, purged: u64) -> Duration {
    if purged >= u64::from(PURGE_BATCH) {
        Duration::ZERO
    } else {
        (retention / 10).clamp(TICK, Duration::from_secs(60))
    }
}

/// `5d`, `36h`, `90s`, `250ms`: the largest unit that divides evenly.
fn humanize(duration: Duration) -> String {
    let ms = duration.as_millis();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back_as_configured() {
        assert_eq!(humanize(Duration::from_secs(5 * 86_400)), "5d");
        assert_eq!(humanize(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn purges_follow_a_backlog_and_pause_when_it_is_gone() {
        let month = Duration::from_secs(30 * 86_400);
        assert_eq!(purge_pause(month, u64::from(PURGE_BATCH)), Duration::ZERO);
        assert_eq!(purge_pause(month, 3), Duration::from_secs(60));
        assert_eq!(purge_pause(month, 0), Duration::from_secs(60));
        assert_eq!(purge_pause(Duration::from_secs(1), 0), TICK);
        assert_eq!(purge_pause(Duration::from_secs(300), 0), Duration::from_secs(30));
    }
}
