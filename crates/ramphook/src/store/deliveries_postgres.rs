//! The dispatcher's record of attempt results on PostgreSQL, made ready
//! for the writer (`pg_writer.rs`), which runs it in the statement of the
//! next group of event appends, or alone when none waits: one statement
//! start and one commit (a WAL flush) serve both. The batch travels as
//! JSON (`json_to_recordset`), as the appends do (`pg_writer.rs` says why
//! not arrays); a text that changed with the batch's size made every size
//! a prepared statement of its own.

use serde::Serialize;

use super::deliveries::{last_outcome_per_endpoint, AttemptResult};

/// A batch of results as the writer's statement takes them: one round per
/// statement (nearly always one), each a JSON array of outcomes; the
/// endpoints' health, decided by the whole batch, goes with the last round.
pub(super) struct RecordPlan {
    pub rounds: Vec<String>,
    pub health: String,
    /// When an endpoint's run of failures starts, if one does.
    pub now: i64,
}

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

/// Encodes `results` for the writer; `now` starts an endpoint's run of
/// failures.
pub(super) fn plan(results: &[AttemptResult], now: i64) -> Result<RecordPlan, sqlx::Error> {
    let encode = |err: serde_json::Error| sqlx::Error::Encode(Box::new(err));
    let health: Vec<HealthRow<'_>> = last_outcome_per_endpoint(results)
        .into_iter()
        .map(|(endpoint_id, healthy)| HealthRow { endpoint_id, healthy })
        .collect();
    let health = serde_json::to_string(&health).map_err(encode)?;
    let mut encoded = Vec::new();
    for results in rounds(results) {
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
        encoded.push(serde_json::to_string(&rows).map_err(encode)?);
    }
    Ok(RecordPlan {
        rounds: encoded,
        health,
        now,
    })
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
