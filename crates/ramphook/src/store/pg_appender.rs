//! Event appends on PostgreSQL, grouped: one task per instance takes every
//! planned append waiting and writes them with one statement and one
//! commit. Much of PostgreSQL's time per append went to the statement and
//! the commit (executor start, a WAL flush, a round trip), not to the rows:
//! in groups of about a dozen, an append took 0.11 ms of execution instead
//! of 0.20 ms, and twelve shared one commit (pg_stat_statements, `single`).
//!
//! The appends travel as one JSON array (`json_to_recordset`): sqlx's `Any`
//! driver, which the store speaks, cannot bind arrays. A group holds at
//! most one append per order, so each order's guarded status change is
//! decided alone; another append to the same order waits for the next
//! group. If the group's statement fails (another instance stored the same
//! `Idempotency-Key` first, say), every append of it is run again alone, so
//! that each gets its own answer and one bad append never refuses others.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::deliveries::TargetRow;
use super::handoff::{Appended, Handoff, Offer};
use super::sticky_connection::StickyConnection;

/// Appends written by one statement at most (each is a few hundred bytes of
/// JSON; PostgreSQL takes far more).
const MAX_GROUP: usize = 128;

/// One event append, planned from the order's status `from_status`: what
/// the statement writes if the order is still there.
#[derive(Debug, Clone, Serialize)]
pub(super) struct PlannedAppend {
    pub order_id: String,
    pub from_status: String,
    pub new_status: String,
    /// The order's `updated_at`, the event's `time_stamp` and the deliveries' creation time.
    pub at: i64,
    pub event_id: String,
    pub event_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Delivery ids are this plus the endpoint's seq.
    pub delivery_prefix: String,
    /// The quoted event name, as found in an endpoint's `event_types`.
    pub pattern: String,
    /// The `Idempotency-Key` and the answer to remember under it, if any.
    /// Without a key there is nothing to remember, and the answer (the
    /// order and the event, a few hundred bytes of escaped JSON that the
    /// database parsed and threw away) is not sent: absent fields are
    /// `NULL` to `json_to_recordset`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub remember: Option<RememberedAnswer>,
}

/// What an append with an `Idempotency-Key` stores for replays.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RememberedAnswer {
    pub idem_scope: String,
    pub idem_key: String,
    pub idem_request_hash: String,
    pub answer_status: i64,
    pub answer_body: String,
}

/// The whole group in one statement: the orders' guarded status changes,
/// their events, one delivery per subscribed endpoint (in the group's order,
/// then the endpoints'), and the idempotency records. Answers the ids of
/// the orders that moved (the others were moved by someone else meanwhile),
/// each with its deliveries and, for those leased for this instance's
/// dispatcher, their endpoints' targets (`handoff.rs`). With `$2` (the
/// lease) set, a delivery is leased if its endpoint is not in `$3` and no
/// earlier delivery of its order to that endpoint is pending — asked as
/// `ORDER BY seq LIMIT 1` of the lane index (as `NOT EXISTS` the planner
/// walked every pending delivery of the endpoint through
/// `deliveries_endpoint_due`, and so it did too, whatever the question's
/// shape, on statistics taken with few deliveries pending, until migration
/// 0007 took the due index out of the lane checks' choices). The statement
/// sees the table as it was before it began, which is enough: a group holds
/// one append per order, and an order's appends are serialised by its
/// guarded status change.
/// The orders are found by `= ANY(ARRAY(…))`: joined to the input alone,
/// they were read whole (the planner guesses 100 input rows, and a hash
/// join beats that many index lookups on a small table).
const APPEND_GROUP: &str = "WITH input AS (
         SELECT * FROM json_to_recordset(CAST($1 AS json)) AS i(
             n bigint, order_id text, from_status text, new_status text, at bigint, event_id text,
             event_name text, tx_hash text, reason text, delivery_prefix text, pattern text, idem_scope text,
             idem_key text, idem_request_hash text, answer_status bigint, answer_body text)
     ), moved AS (
         UPDATE orders o SET status = i.new_status, updated_at = i.at, awaiting_until = NULL
         FROM input i
         WHERE o.id = ANY(ARRAY(SELECT order_id FROM input)) AND o.id = i.order_id AND o.status = i.from_status
         RETURNING o.id, o.partner_id
     ), appended AS (
         SELECT i.*, m.partner_id FROM input i JOIN moved m ON m.id = i.order_id
     ), event AS (
         INSERT INTO events (id, order_id, event_name, tx_hash, reason, time_stamp)
         SELECT event_id, order_id, event_name, tx_hash, reason, at FROM appended ORDER BY n
     ), fanout AS (
         INSERT INTO deliveries (id, event_id, endpoint_id, partner_id, order_id, event_name, time_stamp, status,
                                 next_attempt_at, created_at, locked_until)
         SELECT a.delivery_prefix || CAST(e.seq AS TEXT), a.event_id, e.id, e.partner_id, a.order_id, a.event_name,
                a.at, 'pending', a.at, a.at,
                CASE WHEN CAST($2 AS bigint) IS NOT NULL
                      AND e.id NOT IN (SELECT json_array_elements_text(CAST($3 AS json)))
                      AND (SELECT x.seq FROM deliveries x WHERE x.endpoint_id = e.id
                           AND x.order_id = a.order_id AND x.status = 'pending' ORDER BY x.seq LIMIT 1) IS NULL
                     THEN a.at + CAST($2 AS bigint) END
         FROM appended a JOIN endpoints e ON e.partner_id = a.partner_id
         WHERE e.enabled = 1 AND (e.event_types IS NULL OR replace(e.event_types, a.pattern, '') <> e.event_types)
         ORDER BY a.n, e.seq
         RETURNING id, event_id, order_id, event_name, time_stamp, endpoint_id, locked_until
     ), remembered AS (
         INSERT INTO idempotency (scope, key, request_hash, status, body, created_at)
         SELECT idem_scope, idem_key, idem_request_hash, answer_status, answer_body, at
         FROM appended WHERE idem_scope IS NOT NULL
     )
     SELECT m.id, f.id, f.event_id, f.event_name, f.time_stamp, f.endpoint_id,
            t.url, t.secret, t.previous_secret, t.previous_secret_expires_at
     FROM moved m
     LEFT JOIN fanout f ON f.order_id = m.id
     LEFT JOIN endpoints t ON t.id = f.endpoint_id AND f.locked_until IS NOT NULL";

/// A row of the group statement's answer: an order that moved and, if any,
/// one of its deliveries, with its endpoint's target if it was leased.
type AnswerRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// `None`: another write moved the order first. `Some`: it moved.
pub(super) type AppendAnswer = Result<Option<Appended>, sqlx::Error>;

struct Job {
    planned: PlannedAppend,
    answer: oneshot::Sender<AppendAnswer>,
}

/// The handle appends are queued on; the task ends with the last handle.
#[derive(Clone)]
pub(super) struct PgAppender {
    jobs: mpsc::UnboundedSender<Job>,
}

impl PgAppender {
    pub fn start(connection: Arc<StickyConnection>, handoff: Arc<Handoff>) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(connection, queue, handoff));
        Self { jobs }
    }

    /// Writes `planned` with whatever else is waiting.
    pub async fn append(&self, planned: PlannedAppend) -> AppendAnswer {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Job { planned, answer })
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answered.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn run(connection: Arc<StickyConnection>, mut queue: mpsc::UnboundedReceiver<Job>, handoff: Arc<Handoff>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while let Ok(job) = queue.try_recv() {
            waiting.push_back(job);
        }
        let group = take_group(&mut waiting);
        write_group(&connection, group, handoff.offer()).await;
    }
}

/// The oldest waiting appends, at most `MAX_GROUP` and one per order; the
/// rest keep their places.
fn take_group(waiting: &mut VecDeque<Job>) -> Vec<Job> {
    let mut orders = HashSet::new();
    let mut group = Vec::new();
    let mut rest = VecDeque::new();
    for job in waiting.drain(..) {
        if group.len() < MAX_GROUP && orders.insert(job.planned.order_id.clone()) {
            group.push(job);
        } else {
            rest.push_back(job);
        }
    }
    *waiting = rest;
    group
}

async fn write_group(connection: &StickyConnection, group: Vec<Job>, offer: Option<Offer>) {
    let planned: Vec<&PlannedAppend> = group.iter().map(|job| &job.planned).collect();
    match append_all(connection, &planned, offer.as_ref()).await {
        Ok(mut moved) => {
            for job in group {
                let _ = job.answer.send(Ok(moved.remove(&job.planned.order_id)));
            }
        }
        Err(err) if group.len() == 1 => {
            let job = group.into_iter().next().expect("a group of one");
            let _ = job.answer.send(Err(err));
        }
        Err(_) => {
            for job in group {
                let alone = append_all(connection, &[&job.planned], offer.as_ref())
                    .await
                    .map(|mut moved| moved.remove(&job.planned.order_id));
                let _ = job.answer.send(alone);
            }
        }
    }
}

/// A row of the statement's input: an append and its place in the group.
#[derive(Serialize)]
struct InputRow<'a> {
    n: usize,
    #[serde(flatten)]
    planned: &'a PlannedAppend,
}

/// Runs the group statement; answers, per order that moved, its deliveries.
async fn append_all(
    connection: &StickyConnection,
    planned: &[&PlannedAppend],
    offer: Option<&Offer>,
) -> Result<HashMap<String, Appended>, sqlx::Error> {
    let rows: Vec<InputRow> = planned
        .iter()
        .enumerate()
        .map(|(n, planned)| InputRow { n, planned })
        .collect();
    let input = serde_json::to_string(&rows).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    let mut kept = connection.get().await?;
    let answer: Result<Vec<AnswerRow>, _> = sqlx::query_as(APPEND_GROUP)
        .bind(input)
        .bind(offer.map(|offer| offer.lease_ms))
        .bind(offer.map_or("[]", |offer| &*offer.skip))
        .fetch_all(&mut *kept)
        .await;
    drop(kept);
    let answer = connection.checked(answer).await?;
    let mut moved: HashMap<String, Appended> = HashMap::new();
    for (order_id, id, event_id, event_name, time_stamp, endpoint_id, url, secret, previous_secret, previous_until) in
        answer
    {
        let appended = moved.entry(order_id.clone()).or_default();
        let Some(id) = id else { continue };
        match (event_id, event_name, time_stamp, endpoint_id, url, secret) {
            (Some(event_id), Some(event_name), Some(time_stamp), Some(endpoint_id), Some(url), Some(secret)) => {
                let target = TargetRow {
                    id: endpoint_id.clone(),
                    url,
                    secret,
                    previous_secret,
                    previous_secret_expires_at: previous_until,
                };
                appended
                    .leased
                    .push((id, event_id, order_id, event_name, time_stamp, 0, endpoint_id));
                appended.targets.push(target);
            }
            (_, _, _, Some(endpoint_id), _, _) if offer.is_some_and(|offer| offer.skips(&endpoint_id)) => {
                appended.left_in_lanes.push(endpoint_id)
            }
            _ => appended.left_for_claim = true,
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(order_id: &str) -> Job {
        let (answer, _) = oneshot::channel();
        Job {
            planned: PlannedAppend {
                order_id: order_id.into(),
                from_status: "awaiting_payment".into(),
                new_status: "payment_received".into(),
                at: 1,
                event_id: format!("evt_{order_id}"),
                event_name: "payment_received".into(),
                tx_hash: None,
                reason: None,
                delivery_prefix: format!("dlv_{order_id}_"),
                pattern: "\"payment_received\"".into(),
                remember: None,
            },
            answer,
        }
    }

    fn orders(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|job| job.planned.order_id.as_str()).collect()
    }

    #[test]
    fn a_group_holds_one_append_per_order_and_the_rest_keep_their_places() {
        let mut waiting: VecDeque<Job> = ["a", "b", "a", "c", "b", "a"].into_iter().map(job).collect();
        let group = take_group(&mut waiting);
        assert_eq!(orders(&group), ["a", "b", "c"]);
        let rest: Vec<Job> = waiting.drain(..).collect();
        assert_eq!(orders(&rest), ["a", "b", "a"]);
    }

    #[test]
    fn a_group_is_bounded() {
        let names: Vec<String> = (0..MAX_GROUP + 5).map(|i| i.to_string()).collect();
        let mut waiting: VecDeque<Job> = names.iter().map(|name| job(name)).collect();
        let group = take_group(&mut waiting);
        assert_eq!(group.len(), MAX_GROUP);
        assert_eq!(waiting.len(), 5);
        assert_eq!(waiting.front().map(|job| job.planned.order_id.as_str()), Some("128"));
    }
}
