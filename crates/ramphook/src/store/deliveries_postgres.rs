//! The dispatcher's record of attempt results on PostgreSQL: a whole batch
//! in one statement. As a transaction of a multi-row INSERT, an UPDATE
//! joined to a VALUES list and an UPDATE per endpoint, it took five round
//! trips, and its text changed with the batch's size, so the prepared
//! statements of every size crowded each other out of the connection's cache
//! and were parsed and planned again. The batch travels as JSON
//! (`json_to_recordset`), as the appends do (`pg_appender.rs`): sqlx's `Any`
//! driver cannot bind arrays.

use serde::Serialize;

use super::deliveries::{last_outcome_per_endpoint, AttemptResult};
use super::sticky_connection::StickyConnection;
use super::StoreResult;

/// The attempts, then each delivery's outcome (only a still-pending delivery
/// changes: one failed meanwhile, its endpoint deleted, stays failed), then
/// endpoint health (the last outcome per endpoint ends or starts its run of
/// failures). The deliveries are found by `= ANY(ARRAY(…))` so that the
/// planner, which guesses 100 input rows, looks them up by id.
const RECORD_BATCH: &str = "WITH input AS (
         SELECT * FROM json_to_recordset(CAST($1 AS json)) AS r(
             n bigint, delivery_id text, at bigint, status_code bigint, duration_ms bigint, error text,
             response_body text, new_status text, next_attempt_at bigint)
     ), logged AS (
         INSERT INTO attempts (delivery_id, at, status_code, duration_ms, error, response_body)
         SELECT delivery_id, at, status_code, duration_ms, error, response_body FROM input ORDER BY n
     ), outcome AS (
         UPDATE deliveries d SET status = i.new_status, attempts = d.attempts + 1,
                next_attempt_at = i.next_attempt_at, locked_until = NULL, last_status_code = i.status_code
         FROM input i
         WHERE d.id = ANY(ARRAY(SELECT delivery_id FROM input)) AND d.id = i.delivery_id AND d.status = 'pending'
     ), health AS (
         SELECT * FROM json_to_recordset(CAST($2 AS json)) AS h(endpoint_id text, healthy boolean)
     ), healed AS (
         UPDATE endpoints e SET failing_since = NULL
         FROM health h WHERE e.id = h.endpoint_id AND h.healthy AND e.failing_since IS NOT NULL
     )
     UPDATE endpoints e SET failing_since = $3
     FROM health h WHERE e.id = h.endpoint_id AND NOT h.healthy AND e.failing_since IS NULL";

#[derive(Serialize)]
struct RecordRow<'a> {
    n: usize,
    delivery_id: &'a str,
    at: i64,
    status_code: Option<u16>,
    duration_ms: i64,
    error: Option<&'a str>,
    response_body: Option<&'a str>,
    new_status: &'a str,
    next_attempt_at: i64,
}

#[derive(Serialize)]
struct HealthRow<'a> {
    endpoint_id: &'a str,
    healthy: bool,
}

/// Records `results` (attempts, outcomes, endpoint health) atomically, as
/// one statement on the recorder's own connection; `now` starts an
/// endpoint's run of failures.
pub(super) async fn record(connection: &StickyConnection, results: &[AttemptResult], now: i64) -> StoreResult<()> {
    let rows: Vec<RecordRow<'_>> = results
        .iter()
        .enumerate()
        .map(|(n, r)| RecordRow {
            n,
            delivery_id: &r.delivery_id,
            at: r.at,
            status_code: r.status_code,
            duration_ms: r.duration_ms,
            error: r.error.as_deref(),
            response_body: r.response_body.as_deref(),
            new_status: r.new_status,
            next_attempt_at: r.next_attempt_at,
        })
        .collect();
    let health: Vec<HealthRow<'_>> = last_outcome_per_endpoint(results)
        .into_iter()
        .map(|(endpoint_id, healthy)| HealthRow { endpoint_id, healthy })
        .collect();
    let encode = |err: serde_json::Error| sqlx::Error::Encode(Box::new(err));
    let (rows, health) = (
        serde_json::to_string(&rows).map_err(encode)?,
        serde_json::to_string(&health).map_err(encode)?,
    );
    let mut kept = connection.get().await?;
    let recorded = sqlx::query(RECORD_BATCH)
        .bind(rows)
        .bind(health)
        .bind(now)
        .execute(&mut *kept)
        .await;
    drop(kept);
    connection.checked(recorded).await?;
    Ok(())
}
