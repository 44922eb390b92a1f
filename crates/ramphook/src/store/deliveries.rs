//! The delivery outbox seen from the dispatcher: claim due work under a
//! lease, take what appends leased, record attempt results and endpoint
//! health in batches, give leases back. The API's view is in
//! `deliveries_api.rs`, retention's in `retention.rs`.

use std::sync::Arc;

use super::handoff::Appended;
use super::{placeholders, Backend, Store, StoreResult};
use crate::domain::time::now_ms;

/// A delivery the dispatcher holds a lease on, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub event_id: String,
    pub order_id: String,
    pub event_name: String,
    pub time_stamp: i64,
    pub attempts: i64,
    pub endpoint_id: String,
    /// `None` when the endpoint is gone or disabled.
    pub target: Option<Arc<Target>>,
}

#[derive(sqlx::FromRow)]
pub(super) struct TargetRow {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
}

/// Where a claimed delivery goes and the secrets that sign it.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// Newest first; the previous secret is here only while it is still valid.
    pub secrets: Vec<Arc<str>>,
}

/// What one attempt came to, and what the delivery becomes.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub delivery_id: String,
    pub endpoint_id: String,
    pub at: i64,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response_body: Option<String>,
    /// `delivered`, `failed`, or `pending` with the next try's time.
    pub new_status: &'static str,
    pub next_attempt_at: i64,
}

/// A claimed delivery as the claim statement answers it: id, event_id,
/// order_id, event_name, time_stamp, attempts, endpoint_id.
pub(super) type ClaimedRow = (String, String, String, String, i64, i64, String);

/// The claim: `$1` now, `$2` the lease, `$3` the limit, `$4` the limit per
/// endpoint; `skip` endpoints are bound after those.
///
/// Claims start from the endpoints with room: per endpoint, up to `$4`
/// claimable rows are read in due order through `deliveries_endpoint_due`,
/// and the oldest `$3` of those are claimed. Rows of skipped endpoints — a
/// timing-out partner's pile — are never read. SQLite says "per endpoint"
/// with a correlated `LIMIT` on the rowid (it has no LATERAL), PostgreSQL
/// with LATERAL, and finds the claimed rows again by `id`, its primary key
/// (SQLite's is `seq`, the rowid). There, each endpoint's scan starts at
/// its floor (`$5`, JSON `{id, floor}`; `claim_floors.rs`), past the
/// entries delivered rows leave in the due index until vacuum; skipped
/// endpoints are bound after it. The floor is a row comparison on the
/// index's `(next_attempt_at, seq)`: as `next_attempt_at >= floor` beside
/// `<= $1` the planner took the two for a range it guesses passes half a
/// percent of rows, fewer than the limit, and read and sorted every due
/// row (a 100,000 drain at 4,000/s instead of 9,800). There, several
/// instances claim at once:
/// rows another instance is claiming are skipped, not waited for; and an
/// order's first pending delivery is found as the lane's `MIN(seq)` in the
/// lane index (as `NOT EXISTS` the planner, on the statistics of a table
/// that was empty a moment ago, checked it through the due index; migration
/// 0007 took that index out of the lane checks' choices).
fn claim_sql(backend: Backend, skipped: usize) -> String {
    let first_in_lane = first_in_lane(backend);
    let returning = "RETURNING id, event_id, order_id, event_name, time_stamp, attempts, endpoint_id";
    let due = "x.endpoint_id = p.id AND x.status = 'pending' AND x.next_attempt_at <= $1
               AND (x.locked_until IS NULL OR x.locked_until <= $1)";
    match backend {
        Backend::Sqlite => format!(
            "UPDATE deliveries SET locked_until = $1 + $2
             WHERE seq IN (
                 SELECT d.seq FROM endpoints p CROSS JOIN deliveries d ON d.seq IN (
                     SELECT x.seq FROM deliveries x
                     WHERE {due} AND {first_in_lane}
                     ORDER BY x.next_attempt_at, x.seq LIMIT $4)
                 WHERE p.enabled = 1 {skip}
                 ORDER BY d.next_attempt_at, d.seq
                 LIMIT $3)
             {returning}",
            skip = skip_clause("p.id", 5, skipped),
        ),
        Backend::Postgres => format!(
            "UPDATE deliveries SET locked_until = $1 + $2
             WHERE id IN (
                 SELECT d.id FROM endpoints p
                 LEFT JOIN json_to_recordset(CAST($5 AS json)) AS f(id text, floor bigint) ON f.id = p.id
                 CROSS JOIN LATERAL (
                     SELECT x.id, x.seq, x.next_attempt_at FROM deliveries x
                     WHERE {due} AND (x.next_attempt_at, x.seq) >= (COALESCE(f.floor, 0), 0) AND {first_in_lane}
                     ORDER BY x.next_attempt_at, x.seq LIMIT $4
                     FOR UPDATE SKIP LOCKED) d
                 WHERE p.enabled = 1 {skip}
                 ORDER BY d.next_attempt_at, d.seq
                 LIMIT $3)
             {returning}",
            skip = skip_clause("p.id", 6, skipped),
        ),
    }
}

/// The next due time (see `Store::next_due_at`): `$1` now, then `skipped`
/// endpoints.
/// Per endpoint, one seek into `deliveries_endpoint_due` (`ORDER BY … LIMIT
/// 1`): as `MIN` over a join, both databases read every future pending
/// delivery of every endpoint, and with a slow partner's thousands of
/// retries that was most of the server's CPU in `slow-neighbour`.
pub(super) fn next_due_sql(skipped: usize) -> String {
    format!(
        "SELECT MIN((SELECT d.next_attempt_at FROM deliveries d
                     WHERE d.endpoint_id = p.id AND d.status = 'pending' AND d.next_attempt_at > $1
                     ORDER BY d.next_attempt_at LIMIT 1))
         FROM endpoints p WHERE p.enabled = 1 {skip}",
        skip = skip_clause("p.id", 2, skipped),
    )
}

/// Per enabled endpoint, the lowest `next_attempt_at` of its pending rows at
/// or above its floor (`$1`, as the claim takes it): one seek into
/// `deliveries_endpoint_due` each.
const LOWEST_PENDING_SQL: &str = "SELECT p.id, (SELECT d.next_attempt_at FROM deliveries d
                   WHERE d.endpoint_id = p.id AND d.status = 'pending'
                     AND d.next_attempt_at >= COALESCE(f.floor, 0)
                   ORDER BY d.next_attempt_at LIMIT 1)
     FROM endpoints p
     LEFT JOIN json_to_recordset(CAST($1 AS json)) AS f(id text, floor bigint) ON f.id = p.id
     WHERE p.enabled = 1";

/// What a claim came to: the leased deliveries, or, when there were none,
/// when to look again (`None`: nothing pending is due later).
#[derive(Debug)]
pub struct Claim {
    pub deliveries: Vec<ClaimedDelivery>,
    pub next_due_at: Option<i64>,
}

/// "Pending delivery `x` is the first of its order's lane to its endpoint"
/// (see `claim_sql` for why the two backends say it differently).
///
/// On PostgreSQL it says `<=` where `=` means the same (`x` is in the lane,
/// so the lane's `MIN(seq)` is never above `x.seq`). The planner guesses
/// that half a percent of rows pass an `=` against a subquery, a third for
/// `<=`. With statistics of a full queue (a backlog: 10,000 due rows per
/// endpoint), half a percent is fewer rows than the claim's `LIMIT`, so it
/// read and sorted every due row of every endpoint (445,000 buffers and
/// 450 ms a claim, the drain at 4,200/s instead of 9,600/s); a third keeps
/// the index scan in due order that stops at the limit.
fn first_in_lane(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "NOT EXISTS (SELECT 1 FROM deliveries e
                         WHERE e.endpoint_id = x.endpoint_id AND e.order_id = x.order_id
                           AND e.status = 'pending' AND e.seq < x.seq)"
        }
        Backend::Postgres => {
            "x.seq <= (SELECT MIN(e.seq) FROM deliveries e
                      WHERE e.endpoint_id = x.endpoint_id AND e.order_id = x.order_id AND e.status = 'pending')"
        }
    }
}

/// `AND {column} NOT IN ($first, …)` for `skipped` endpoints, or nothing.
fn skip_clause(column: &str, first: usize, skipped: usize) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!("AND {column} NOT IN ({})", placeholders(first, skipped))
    }
}

/// The targets (URL and sealed secrets) of `count` claimed deliveries' endpoints.
pub(super) fn targets_sql(count: usize) -> String {
    format!(
        "SELECT id, url, secret, previous_secret, previous_secret_expires_at FROM endpoints
         WHERE enabled = 1 AND id IN ({})",
        placeholders(1, count)
    )
}

/// The distinct endpoints of a claim (a batch often holds many deliveries
/// to one endpoint; its target is read once).
pub(super) fn claimed_endpoints(claimed: &[ClaimedRow]) -> Vec<&String> {
    let mut ids: Vec<&String> = claimed.iter().map(|row| &row.6).collect();
    ids.sort();
    ids.dedup();
    ids
}

pub(super) const MARK_HEALTHY: &str =
    "UPDATE endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL";
pub(super) const MARK_FAILING: &str = "UPDATE endpoints SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL";

/// Endpoint health: the last outcome per endpoint in a batch starts or ends
/// its run of failures. Answers (endpoint, delivered?) once per endpoint.
pub(super) fn last_outcome_per_endpoint(results: &[AttemptResult]) -> Vec<(&str, bool)> {
    let mut last: Vec<(&str, bool)> = Vec::new();
    for r in results.iter().rev() {
        if !last.iter().any(|(id, _)| *id == r.endpoint_id) {
            last.push((&r.endpoint_id, r.new_status == "delivered"));
        }
    }
    last
}

impl Store {
    /// Leases up to `limit` due deliveries. A delivery waits while an earlier
    /// one of the same order to the same endpoint is still pending, so an
    /// order's events reach each endpoint in order, also across retries.
    /// Endpoints in `skip` (their lanes are full) are left for later; at
    /// most `per_endpoint` (a lane's room) are taken from any one endpoint
    /// (see `claim_sql`).
    pub async fn claim_due(
        &self,
        limit: u32,
        per_endpoint: u32,
        lease_ms: i64,
        skip: &[String],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        Ok(self.claim(limit, per_endpoint, lease_ms, skip).await?.deliveries)
    }

    /// `claim_due`, and when nothing was claimed, `next_due_at` — on SQLite
    /// in the same writer job, so that a dispatcher with nothing to do pays
    /// one hand-off, not two.
    pub async fn claim(&self, limit: u32, per_endpoint: u32, lease_ms: i64, skip: &[String]) -> StoreResult<Claim> {
        let now = now_ms();
        // More than `limit` from one endpoint is never needed.
        let per_endpoint = per_endpoint.min(limit);
        let sql = claim_sql(self.backend, skip.len());
        let (claimed, endpoints) = if let Some(writer) = &self.sqlite {
            let skip = skip.to_vec();
            let (claimed, endpoints, next_due_at) = writer
                .write(move |conn| {
                    super::deliveries_sqlite::claim(conn, &sql, now, lease_ms, limit, per_endpoint, &skip)
                })
                .await?;
            if claimed.is_empty() {
                return Ok(Claim {
                    deliveries: Vec::new(),
                    next_due_at,
                });
            }
            (claimed, endpoints)
        } else {
            self.refresh_claim_floors(now).await?;
            let floors = self.claim_floors.lock().unwrap().for_claim(now);
            let mut query = sqlx::query_as(&sql)
                .bind(now)
                .bind(lease_ms)
                .bind(i64::from(limit))
                .bind(i64::from(per_endpoint))
                .bind(floors);
            for endpoint in skip {
                query = query.bind(endpoint);
            }
            let claimed: Vec<ClaimedRow> = query.fetch_all(&self.writer).await?;
            if claimed.is_empty() {
                return Ok(Claim {
                    deliveries: Vec::new(),
                    next_due_at: self.next_due_at(skip).await?,
                });
            }
            let endpoint_ids = claimed_endpoints(&claimed);
            let sql = targets_sql(endpoint_ids.len());
            let mut query = sqlx::query_as(&sql);
            for id in endpoint_ids {
                query = query.bind(id);
            }
            let endpoints: Vec<TargetRow> = query.fetch_all(&self.reader).await?;
            (claimed, endpoints)
        };
        Ok(Claim {
            deliveries: self.with_targets(claimed, endpoints, now)?,
            next_due_at: None,
        })
    }

    /// Raises the claim floors (PostgreSQL) to where each enabled
    /// endpoint's pending rows now start, at most every `REFRESH_MS`: one
    /// seek per endpoint from its floor, so each walks only what was
    /// delivered since the last refresh.
    async fn refresh_claim_floors(&self, now: i64) -> StoreResult<()> {
        let current = {
            let floors = self.claim_floors.lock().unwrap();
            if !floors.refresh_due(now) {
                return Ok(());
            }
            floors.current()
        };
        let lowest: Vec<(String, Option<i64>)> = sqlx::query_as(LOWEST_PENDING_SQL)
            .bind(current)
            .fetch_all(&self.reader)
            .await?;
        self.claim_floors.lock().unwrap().refreshed(now, lowest);
        Ok(())
    }

    /// PostgreSQL's plan for a claim of `limit` (`per_endpoint` from each
    /// endpoint) if it ran now (`EXPLAIN`, nothing is leased): for telling
    /// why claims are slow, and for the test that keeps a full queue's claim
    /// an index scan that stops at its limit. `None` on SQLite.
    pub async fn claim_plan(&self, limit: u32, per_endpoint: u32) -> StoreResult<Option<String>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        // The values in place of the parameters: the plan PostgreSQL makes
        // for a claim's first runs on a connection (it plans each run for its
        // values until a generic plan proves as cheap).
        let values = [now_ms(), 60_000, i64::from(limit), i64::from(per_endpoint.min(limit))];
        // No floors: the claim as it runs after a reset (`claim_floors.rs`).
        let mut sql = claim_sql(Backend::Postgres, 0).replace("$5", "'[]'");
        for (n, value) in values.iter().enumerate().rev() {
            sql = sql.replace(&format!("${}", n + 1), &value.to_string());
        }
        let lines: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {sql}"))
            .fetch_all(&self.reader)
            .await?;
        Ok(Some(
            lines.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("\n"),
        ))
    }

    /// Claimed rows with their endpoints' targets, secrets opened.
    fn with_targets(
        &self,
        claimed: Vec<ClaimedRow>,
        endpoints: Vec<TargetRow>,
        now: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let mut targets = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            if targets.iter().any(|(id, _)| *id == e.id) {
                continue;
            }
            let mut secrets = vec![self.open_endpoint_secret("secret", &e.id, &e.secret)?];
            if let (Some(previous), Some(until)) = (&e.previous_secret, e.previous_secret_expires_at) {
                if until > now {
                    secrets.push(self.open_endpoint_secret("previous_secret", &e.id, previous)?);
                }
            }
            targets.push((e.id, Arc::new(Target { url: e.url, secrets })));
        }
        let target_of = |endpoint_id: &str| targets.iter().find(|(id, _)| id == endpoint_id).map(|(_, t)| t.clone());
        Ok(claimed
            .into_iter()
            .map(
                |(id, event_id, order_id, event_name, time_stamp, attempts, endpoint_id)| ClaimedDelivery {
                    target: target_of(&endpoint_id),
                    id,
                    event_id,
                    order_id,
                    event_name,
                    time_stamp,
                    attempts,
                    endpoint_id,
                },
            )
            .collect())
    }

    /// Hands deliveries an append leased (and committed) to this instance's
    /// dispatcher, and notes what it left for a claim: wanted at once if it
    /// left any with no offer (answers whether it did: other instances may
    /// have the room this one lacks), or once the lanes it left some behind
    /// move. Leased deliveries not handed over (an error) are sent once
    /// their lease expires.
    pub(super) fn hand_off(&self, appended: Appended) -> bool {
        let left = appended.left_for_claim;
        if left {
            self.handoff.want_claim();
        }
        self.handoff.left_in_lanes(&appended.left_in_lanes, now_ms());
        if appended.leased.is_empty() {
            return left;
        }
        match self.with_targets(appended.leased, appended.targets, now_ms()) {
            Ok(deliveries) => self.handoff.hand(deliveries),
            Err(err) => {
                tracing::warn!(error = %err, "leased deliveries not handed over; they go out when their lease expires")
            }
        }
        left
    }

    /// Records a batch of attempt results (one transaction on SQLite; on
    /// PostgreSQL in the statement of the next group of appends, unless a
    /// delivery is in it twice). A delivery's first attempt is kept on its
    /// row, later ones in `attempts`.
    pub async fn record_attempts(&self, results: &[AttemptResult]) -> StoreResult<()> {
        if let Some(writer) = &self.sqlite {
            let results = results.to_vec();
            return writer
                .write(move |conn| super::deliveries_sqlite::record(conn, &results, now_ms()))
                .await;
        }
        let writer = self.pg_writer.as_ref().expect("PostgreSQL stores have a writer");
        let plan = super::deliveries_postgres::plan(results, now_ms())?;
        Ok(writer.record(plan).await?)
    }

    /// Gives leased deliveries back (shutdown) so the next start sends them at once.
    pub async fn release(&self, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE deliveries SET locked_until = NULL WHERE status = 'pending' AND id IN ({})",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id);
        }
        query.execute(&self.writer).await?;
        Ok(())
    }

    /// SQLite is one process's database: at start-up no lease can be alive.
    pub async fn release_all_leases(&self) -> StoreResult<()> {
        sqlx::query("UPDATE deliveries SET locked_until = NULL WHERE status = 'pending' AND locked_until IS NOT NULL")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The earliest time after now at which a pending delivery of an
    /// endpoint not in `skip` falls due: when the dispatcher, having claimed
    /// nothing, should look again. What is due already but was not claimed
    /// waits behind an earlier delivery of its order (or a full lane), and
    /// becomes claimable when that attempt is recorded, which wakes the
    /// dispatcher; a lease left by a stopped instance is found by the
    /// dispatcher's one-second poll.
    ///
    /// An exact answer (first of its lane, counting leases) read every
    /// pending row: on PostgreSQL, with a plan made on statistics of a table
    /// that was empty a moment ago, 2 to 44 s per lookup with tens of
    /// thousands pending, during which nothing was claimed. This one reads,
    /// per endpoint, the future end of `deliveries_endpoint_due`.
    pub async fn next_due_at(&self, skip: &[String]) -> StoreResult<Option<i64>> {
        let sql = next_due_sql(skip.len());
        let mut query = sqlx::query_scalar(&sql).bind(now_ms());
        for endpoint in skip {
            query = query.bind(endpoint);
        }
        Ok(query.fetch_one(&self.reader).await?)
    }
}
