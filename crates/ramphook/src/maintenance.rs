//! Background upkeep, once a second: disable endpoints that have failed
//! without a break for `RAMPHOOK_DISABLE_AFTER`, and purge attempts, finished
//! deliveries and idempotency records older than `RAMPHOOK_RETENTION` in
//! small batches, so deliveries are never held up behind a big delete.

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
        match store
            .purge_before(now - retention.as_millis() as i64, PURGE_BATCH)
            .await
        {
            Ok(0) => {}
            Ok(purged) => {
                metrics::counter!("ramphook_retention_purged_rows_total").increment(purged);
                tracing::debug!(purged, "retention purge");
            }
            Err(err) => tracing::warn!(error = %err, "retention purge failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.cancelled() => {}
        }
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
}
