//! The dispatcher's record of attempt results on PostgreSQL: a whole batch
//! in one statement (two or more only when a delivery is in it twice). As
//! a transaction of a multi-row INSERT, an UPDATE joined to a VALUES list
//! and an UPDATE per endpoint, it took five round trips, and its text
//! changed with the batch's size, so the prepared statements of every size
//! crowded each other out of the connection's cache and were parsed and
//! planned again. The batch travels as JSON (`json_to_recordset`), as the
//! appends do (`pg_appender.rs`): sqlx's `Any` driver cannot bind arrays.

use serde::Serialize;

use super::deliveries::{last_outcome_per_endpoint, AttemptResult};
use super::sticky_connection::StickyConnection;
use super::StoreResult;

/// Each delivery's outcome (only a still-pending delivery changes: one
/// failed meanwhile, its endpoint deleted, stays failed), then the attempts
/// log, then endpoint health (the last outcome per endpoint ends or starts
/// its run of failures). An outcome that is its delivery's first attempt
/// keeps that attempt on the delivery row (migration 0008); every other
/// attempt, a late one on a delivery no longer pending included, is a row
/// of `attempts`. The deliveries are found by `= ANY(ARRAY(…))` so that the
/// planner, which guesses 100 input rows, looks them up by id. A delivery
/// appears once in `$1` (see `rounds`): a second input row for it would
/// update it once and hide the other attempt from the log.
const RECORD_BATCH: &str = "WITH input AS (
         SELECT * FROM json_to_recordset(CAST($1 AS json)) AS r(
             n bigint, delivery_id text, at bigint, status_code bigint, duration_ms bigint, error text,
             response_body text, new_status text, next_attempt_at bigint)
     ), outcome AS (
         UPDATE deliveries d SET status = i.new_status, attempts = d.attempts + 1,
                next_attempt_at = i.next_attempt_at, locked_until = NULL, last_status_code = i.status_code,
                first_attempt_at = CASE WHEN d.attempts = 0 THEN i.at ELSE d.first_attempt_at END,
                first_status_code = CASE WHEN d.attempts = 0 THEN i.status_code ELSE d.first_status_code END,
                first_duration_ms = CASE WHEN d.attempts = 0 THEN i.duration_ms ELSE d.first_duration_ms END,
                first_error = CASE WHEN d.attempts = 0 THEN i.error ELSE d.first_error END,
                first_response_body = CASE WHEN d.attempts = 0 THEN i.response_body ELSE d.first_response_body END
         FROM input i
         WHERE d.id = ANY(ARRAY(SELECT delivery_id FROM input)) AND d.id = i.delivery_id AND d.status = 'pending'
         RETURNING d.id, d.attempts
     ), logged AS (
         INSERT INTO attempts (delivery_id, at, status_code, duration_ms, error, response_body)
         SELECT delivery_id, at, status_code, duration_ms, error, response_body FROM input i
         WHERE NOT EXISTS (SELECT 1 FROM outcome o WHERE o.id = i.delivery_id AND o.attempts = 1)
         ORDER BY n
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

/// Records `results` (outcomes, attempts, endpoint health) on the
/// recorder's own connection, as one statement per round (nearly always
/// one); `now` starts an endpoint's run of failures. Health, decided by the
/// whole batch, is written with the last round.
pub(super) async fn record(connection: &StickyConnection, results: &[AttemptResult], now: i64) -> StoreResult<()> {
    let encode = |err: serde_json::Error| sqlx::Error::Encode(Box::new(err));
    let health: Vec<HealthRow<'_>> = last_outcome_per_endpoint(results)
        .into_iter()
        .map(|(endpoint_id, healthy)| HealthRow { endpoint_id, healthy })
        .collect();
    let health = serde_json::to_string(&health).map_err(encode)?;
    let rounds = rounds(results);
    let last = rounds.len().saturating_sub(1);
    for (round, results) in rounds.into_iter().enumerate() {
        let rows: Vec<RecordRow<'_>> = results
            .into_iter()
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
        let rows = serde_json::to_string(&rows).map_err(encode)?;
        let mut kept = connection.get().await?;
        let recorded = sqlx::query(RECORD_BATCH)
            .bind(rows)
            .bind(if round == last { health.as_str() } else { "[]" })
            .bind(now)
            .execute(&mut *kept)
            .await;
        drop(kept);
        connection.checked(recorded).await?;
    }
    Ok(())
}

/// Splits a batch so that no round holds a delivery twice, keeping each
/// delivery's results in their order: round k holds the k-th result of
/// every delivery that has one. A delivery has two results in one batch
/// only when its lease ran out while an attempt was in flight.
fn rounds(results: &[AttemptResult]) -> Vec<Vec<&AttemptResult>> {
    let mut rounds: Vec<Vec<&AttemptResult>> = Vec::new();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(results.len());
    for result in results {
        let round = seen.entry(&result.delivery_id).or_insert(0);
        if *round == rounds.len() {
            rounds.push(Vec::new());
        }
        rounds[*round].push(result);
        *round += 1;
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(delivery_id: &str, status_code: u16) -> AttemptResult {
        AttemptResult {
            delivery_id: delivery_id.into(),
            endpoint_id: "ep".into(),
            at: 0,
            status_code: Some(status_code),
            duration_ms: 1,
            error: None,
            response_body: None,
            new_status: "delivered",
            next_attempt_at: 0,
        }
    }

    fn ids_and_codes(rounds: &[Vec<&AttemptResult>]) -> Vec<Vec<(String, Option<u16>)>> {
        rounds
            .iter()
            .map(|round| round.iter().map(|r| (r.delivery_id.clone(), r.status_code)).collect())
            .collect()
    }

    #[test]
    fn a_batch_of_distinct_deliveries_is_one_round_in_its_order() {
        let batch = [result("b", 200), result("a", 500), result("c", 204)];
        assert_eq!(
            ids_and_codes(&rounds(&batch)),
            [[
                ("b".into(), Some(200)),
                ("a".into(), Some(500)),
                ("c".into(), Some(204))
            ]]
        );
        assert!(rounds(&[]).is_empty());
    }

    #[test]
    fn a_delivery_twice_in_a_batch_has_its_second_result_in_the_next_round() {
        let batch = [result("a", 500), result("b", 200), result("a", 503), result("a", 200)];
        assert_eq!(
            ids_and_codes(&rounds(&batch)),
            vec![
                vec![("a".into(), Some(500)), ("b".into(), Some(200))],
                vec![("a".into(), Some(503))],
                vec![("a".into(), Some(200))],
            ]
        );
    }
}
