//! The dispatcher's writes on SQLite (claim, record), each one job on the
//! writer thread (sqlite_writer.rs) instead of a hand-off per statement.

use rusqlite::Connection;

use super::deliveries::{
    claimed_endpoints, last_outcome_per_endpoint, next_due_sql, targets_sql, AttemptResult, ClaimedRow, TargetRow,
    MARK_FAILING, MARK_HEALTHY,
};
use super::sqlite_sql::{execute, query_all, query_first};
use super::StoreResult;

const INSERT_ATTEMPT: &str = "INSERT INTO attempts (delivery_id, at, status_code, duration_ms, error, response_body)
     VALUES ($1, $2, $3, $4, $5, $6)";
/// Only a still-pending delivery changes: one failed meanwhile (its endpoint
/// deleted) stays failed. Its first attempt is kept on its row (migration
/// 0008); answers the new attempt count, 1 when this was that first one.
const RECORD_OUTCOME: &str = "UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3,
         locked_until = NULL, last_status_code = $4,
         first_attempt_at = CASE WHEN attempts = 0 THEN $5 ELSE first_attempt_at END,
         first_status_code = CASE WHEN attempts = 0 THEN $4 ELSE first_status_code END,
         first_duration_ms = CASE WHEN attempts = 0 THEN $6 ELSE first_duration_ms END,
         first_error = CASE WHEN attempts = 0 THEN $7 ELSE first_error END,
         first_response_body = CASE WHEN attempts = 0 THEN $8 ELSE first_response_body END
     WHERE id = $1 AND status = 'pending'
     RETURNING attempts";

/// Runs the claim statement `sql` and reads the claimed deliveries' targets;
/// having claimed nothing, answers the next due time instead.
pub(super) fn claim(
    conn: &Connection,
    sql: &str,
    now: i64,
    lease_ms: i64,
    limit: u32,
    per_endpoint: u32,
    skip: &[String],
) -> StoreResult<(Vec<ClaimedRow>, Vec<TargetRow>, Option<i64>)> {
    let (limit, per_endpoint) = (i64::from(limit), i64::from(per_endpoint));
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&now, &lease_ms, &limit, &per_endpoint];
    values.extend(skip.iter().map(|s| s as &dyn rusqlite::ToSql));
    let claimed = query_all(conn, sql, &values, |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })?;
    if claimed.is_empty() {
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&now];
        values.extend(skip.iter().map(|s| s as &dyn rusqlite::ToSql));
        let next_due_at = query_first(conn, &next_due_sql(skip.len()), &values, |r| r.get(0))?.flatten();
        return Ok((claimed, Vec::new(), next_due_at));
    }
    let targets = read_targets(conn, &claimed)?;
    Ok((claimed, targets, None))
}

/// The targets of the endpoints of `deliveries` (claimed or leased at append).
pub(super) fn read_targets(conn: &Connection, deliveries: &[ClaimedRow]) -> StoreResult<Vec<TargetRow>> {
    let values: Vec<&dyn rusqlite::ToSql> = claimed_endpoints(deliveries)
        .into_iter()
        .map(|id| id as &dyn rusqlite::ToSql)
        .collect();
    query_all(conn, &targets_sql(values.len()), &values, |r| {
        Ok(TargetRow {
            id: r.get(0)?,
            url: r.get(1)?,
            secret: r.get(2)?,
            previous_secret: r.get(3)?,
            previous_secret_expires_at: r.get(4)?,
        })
    })
}

/// Writes each delivery's new state and its attempt (on the delivery row if
/// it was the first, else in `attempts`), then endpoint health.
pub(super) fn record(conn: &Connection, results: &[AttemptResult], now: i64) -> StoreResult<()> {
    for r in results {
        let status_code = r.status_code.map(i64::from);
        let attempts: Option<i64> = query_first(
            conn,
            RECORD_OUTCOME,
            &[
                &r.delivery_id,
                &r.new_status,
                &r.next_attempt_at,
                &status_code,
                &r.at,
                &r.duration_ms,
                &r.error,
                &r.response_body,
            ],
            |row| row.get(0),
        )?;
        if attempts != Some(1) {
            execute(
                conn,
                INSERT_ATTEMPT,
                &[
                    &r.delivery_id,
                    &r.at,
                    &status_code,
                    &r.duration_ms,
                    &r.error,
                    &r.response_body,
                ],
            )?;
        }
    }
    for (endpoint_id, healthy) in last_outcome_per_endpoint(results) {
        if healthy {
            execute(conn, MARK_HEALTHY, &[&endpoint_id])?;
        } else {
            execute(conn, MARK_FAILING, &[&endpoint_id, &now])?;
        }
    }
    Ok(())
}
