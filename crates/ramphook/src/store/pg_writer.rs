//! PostgreSQL's writes on the hot path, grouped: one task per instance
//! takes every planned event append and new order waiting, and the
//! dispatcher's latest batch of attempt results, and writes them with one
//! statement and one commit. Much of PostgreSQL's time per delivery went
//! to statements and commits (executor start, a WAL flush with its
//! `fdatasync`, a round trip), not to the rows: in groups of about a
//! dozen, an append took 0.11 ms of execution instead of 0.20 ms, and
//! twelve shared one commit; outcomes, recorded on a connection of their
//! own, paid a statement and a commit of their own as well, and so did
//! each new order (docs/PERFORMANCE.md).
//!
//! The appends, new orders and results travel as JSON arrays
//! (`json_to_recordset`): a PostgreSQL array per column, which the writer's
//! native connection could bind, cost as much at the bench's group sizes
//! and more in smaller groups (docs/PERFORMANCE.md). A group holds at most one append per order, so each order's guarded
//! status change is decided alone; another append to the same order waits
//! for the next group. If the statement fails (another instance stored the
//! same `Idempotency-Key` first, say), the results are written again alone,
//! and every append and new order of it alone, so that each gets its own
//! answer and one bad write never refuses others.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::deliveries::TargetRow;
use super::deliveries_postgres::RecordPlan;
use super::handoff::{Appended, Handoff, Offer};
use super::orders::OrderRow;
use super::sticky_connection::StickyConnection;

/// Appends (and, apart, new orders) written by one statement at most (each
/// is a few hundred bytes of JSON; PostgreSQL takes far more).
const MAX_GROUP: usize = 128;

/// One event append: what the statement writes if the order's status is
/// one of `from_statuses` (and its direction `only_direction`, if set).
/// Planned from the order as read or kept, that is its one status; planned
/// without it, every status the event may leave (`domain::order::guard`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct PlannedAppend {
    pub order_id: String,
    /// Comma-separated.
    pub from_statuses: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_direction: Option<String>,
    /// Planned without the order: the statement answers the order as it
    /// left it, for the API's answer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub answer_order: bool,
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

/// A new order, and the answer to remember under its `Idempotency-Key`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct PlannedOrder {
    #[serde(flatten)]
    pub order: OrderRow,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub remember: Option<RememberedAnswer>,
}

/// What a write with an `Idempotency-Key` stores for replays: its answer,
/// or, for an append planned without its order (`answer_status` =
/// `RENDERED_AT_REPLAY`, `answer_body` the event as JSON), the event and
/// the order as the statement left it, `{"event":…,"order":…}`, from which
/// a replay renders the answer (`orders_postgres.rs`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct RememberedAnswer {
    pub idem_scope: String,
    pub idem_key: String,
    pub idem_request_hash: String,
    pub answer_status: i64,
    pub answer_body: String,
}

/// The stored status of an answer to be rendered at replay: no HTTP status.
pub(super) const RENDERED_AT_REPLAY: i64 = 0;

/// The whole group in one statement. First the results: each delivery's
/// outcome (only a still-pending delivery changes: one failed meanwhile, its
/// endpoint deleted, stays failed), the attempts log, endpoint health (the
/// last outcome per endpoint ends or starts its run of failures). An
/// outcome that is its delivery's first attempt keeps that attempt on the
/// delivery row (migration 0008); every other attempt, a late one on a
/// delivery no longer pending included, is a row of `attempts`. A delivery
/// appears once in `$4` (see `deliveries_postgres::rounds`): a second
/// input row for it would update it once and hide the other attempt.
///
/// Then the new orders (`$7`: each awaiting payment until it expires, its
/// key's answer remembered with the appends' below; an append of the group
/// is never to one of them, whose id is given out only once written), and
/// the appends: the orders' guarded status changes, their events, one
/// delivery per subscribed endpoint (in the group's order, then the
/// endpoints'), and the idempotency records (an answer to render at replay
/// as the event and the order as moved: `RememberedAnswer`, whose status
/// `RENDERED_AT_REPLAY`, 0, the statement tests). Answers the ids of the
/// orders that moved (the others were moved by someone else meanwhile),
/// each with its deliveries and, for those leased for this instance's
/// dispatcher, their endpoints' targets (`handoff.rs`). With `$2` (the lease) set, a
/// delivery is leased if its endpoint is not in `$3` and no earlier
/// delivery of its order to that endpoint is pending, a delivery this very
/// statement finishes not counted — asked as `ORDER BY seq LIMIT 1` of the
/// lane index (as `NOT EXISTS` the planner walked every pending delivery
/// of the endpoint through `deliveries_endpoint_due`, and so it did too,
/// whatever the question's shape, on statistics taken with few deliveries
/// pending, until migration 0007 took the due index out of the lane checks'
/// choices). The statement sees the tables as they were before it began,
/// which is enough: a group holds one append per order, an order's appends
/// are serialised by its guarded status change, and the results are of
/// deliveries committed before.
///
/// Orders and deliveries are found by `= ANY(ARRAY(…))`: joined to the
/// input alone, they were read whole (the planner guesses 100 input rows,
/// and a hash join beats that many index lookups on a small table).
///
/// The statement comes in parts, from `INPUT` to `ANSWER`, which `Shape`
/// puts together with only what a group has input for.
const INPUT: &str = "WITH input AS (
         SELECT * FROM json_to_recordset(CAST($1 AS json)) AS i(
             n bigint, order_id text, from_statuses text, only_direction text, answer_order boolean,
             new_status text, at bigint, event_id text,
             event_name text, tx_hash text, reason text, delivery_prefix text, pattern text, idem_scope text,
             idem_key text, idem_request_hash text, answer_status bigint, answer_body text)
     )";
/// The results, the attempts log and endpoint health.
const RESULTS: &str = ", results AS (
         SELECT * FROM json_to_recordset(CAST($4 AS json)) AS r(
             n bigint, delivery_id text, at bigint, status_code bigint, duration_ms bigint, error text,
             response_body text, new_status text, next_attempt_at bigint)
     ), outcome AS (
         UPDATE deliveries d SET status = r.new_status, attempts = d.attempts + 1,
                next_attempt_at = r.next_attempt_at, locked_until = NULL, last_status_code = r.status_code,
                first_attempt_at = CASE WHEN d.attempts = 0 THEN r.at ELSE d.first_attempt_at END,
                first_status_code = CASE WHEN d.attempts = 0 THEN r.status_code ELSE d.first_status_code END,
                first_duration_ms = CASE WHEN d.attempts = 0 THEN r.duration_ms ELSE d.first_duration_ms END,
                first_error = CASE WHEN d.attempts = 0 THEN r.error ELSE d.first_error END,
                first_response_body = CASE WHEN d.attempts = 0 THEN r.response_body ELSE d.first_response_body END
         FROM results r
         WHERE d.id = ANY(ARRAY(SELECT delivery_id FROM results)) AND d.id = r.delivery_id AND d.status = 'pending'
         RETURNING d.id, d.attempts
     ), logged AS (
         INSERT INTO attempts (delivery_id, at, status_code, duration_ms, error, response_body)
         SELECT delivery_id, at, status_code, duration_ms, error, response_body FROM results r
         WHERE NOT EXISTS (SELECT 1 FROM outcome o WHERE o.id = r.delivery_id AND o.attempts = 1)
         ORDER BY n
     ), health AS (
         SELECT * FROM json_to_recordset(CAST($5 AS json)) AS h(endpoint_id text, healthy boolean)
     ), healed AS (
         UPDATE endpoints e SET failing_since = NULL
         FROM health h WHERE e.id = h.endpoint_id AND h.healthy AND e.failing_since IS NOT NULL
     ), failing AS (
         UPDATE endpoints e SET failing_since = CAST($6 AS bigint)
         FROM health h WHERE e.id = h.endpoint_id AND NOT h.healthy AND e.failing_since IS NULL
     )";
/// The new orders.
const NEW_ORDERS: &str = ", new_orders AS (
         SELECT * FROM json_to_recordset(CAST($7 AS json)) AS c(
             n bigint, id text, partner_id text, email text, direction text, status text, fiat_currency text,
             fiat_amount text, crypto_currency text, crypto_amount text, wallet_address text, created_at bigint,
             updated_at bigint, expires_at bigint, idem_scope text, idem_key text, idem_request_hash text,
             answer_status bigint, answer_body text)
     ), created AS (
         INSERT INTO orders (id, partner_id, email, direction, status, fiat_currency, fiat_amount, crypto_currency,
                             crypto_amount, wallet_address, created_at, updated_at, expires_at, awaiting_until)
         SELECT id, partner_id, email, direction, status, fiat_currency, fiat_amount, crypto_currency, crypto_amount,
                wallet_address, created_at, updated_at, expires_at, expires_at
         FROM new_orders ORDER BY n
     )";
/// The appends, up to the fan-out's lane check.
const APPENDS: &str = ", moved AS (
         UPDATE orders o SET status = i.new_status, updated_at = i.at, awaiting_until = NULL
         FROM input i
         WHERE o.id = ANY(ARRAY(SELECT order_id FROM input)) AND o.id = i.order_id
           AND o.status = ANY(string_to_array(i.from_statuses, ','))
           AND (i.only_direction IS NULL OR o.direction = i.only_direction)
         RETURNING o.id, o.partner_id, CASE WHEN i.answer_order THEN CAST(row_to_json(o) AS text) END AS row
     ), appended AS (
         SELECT i.*, m.partner_id, m.row FROM input i JOIN moved m ON m.id = i.order_id
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
                           AND x.order_id = a.order_id AND x.status = 'pending'";
/// The lane check does not count a delivery this statement finishes.
const LANE_NOT_FINISHED_HERE: &str = "
                           AND NOT EXISTS (SELECT 1 FROM results r
                                           WHERE r.delivery_id = x.id AND r.new_status <> 'pending')";
const FANOUT_END: &str = "
                           ORDER BY x.seq LIMIT 1) IS NULL
                     THEN a.at + CAST($2 AS bigint) END
         FROM appended a JOIN endpoints e ON e.partner_id = a.partner_id
         WHERE e.enabled = 1 AND (e.event_types IS NULL OR replace(e.event_types, a.pattern, '') <> e.event_types)
         ORDER BY a.n, e.seq
         RETURNING id, event_id, order_id, event_name, time_stamp, endpoint_id, locked_until
     )";
/// The idempotency records: the appends', then the new orders'.
const REMEMBERED: &str = ", remembered AS (
         INSERT INTO idempotency (scope, key, request_hash, status, body, created_at)
         SELECT idem_scope, idem_key, idem_request_hash, answer_status,
                CASE WHEN answer_status = 0 THEN '{\"event\":' || answer_body || ',\"order\":' || row || '}'
                     ELSE answer_body END,
                at
         FROM appended WHERE idem_scope IS NOT NULL";
const REMEMBERED_NEW_ORDERS: &str = "
         UNION ALL
         SELECT idem_scope, idem_key, idem_request_hash, answer_status, answer_body, created_at
         FROM new_orders WHERE idem_scope IS NOT NULL";
const REMEMBERED_END: &str = "
     )";
const ANSWER: &str = "
     SELECT m.id, f.id, f.event_id, f.event_name, f.time_stamp, f.endpoint_id,
            t.url, t.secret, t.previous_secret, t.previous_secret_expires_at, m.row
     FROM moved m
     LEFT JOIN fanout f ON f.order_id = m.id
     LEFT JOIN endpoints t ON t.id = f.endpoint_id AND f.locked_until IS NOT NULL";

/// The optional parts of a group's statement. PostgreSQL sets up every
/// part of a statement each time it runs it, empty or not: at 1,000
/// events/s, when most groups hold one append, executor start-up was 28 %
/// of the writer backend's CPU (docs/PERFORMANCE.md). So a group's
/// statement carries only the parts it has input for; each shape is its
/// own prepared statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// Attempt results or endpoint health (`$4`, `$5`, `$6`).
    results: bool,
    /// New orders (`$7`).
    new_orders: bool,
    /// An idempotency record, of an append or a new order.
    remembered: bool,
}

impl Shape {
    const ALL: [Shape; 8] = {
        let mut all = [Shape {
            results: false,
            new_orders: false,
            remembered: false,
        }; 8];
        let mut i = 0;
        while i < 8 {
            all[i] = Shape {
                results: i & 1 != 0,
                new_orders: i & 2 != 0,
                remembered: i & 4 != 0,
            };
            i += 1;
        }
        all
    };

    fn index(self) -> usize {
        usize::from(self.results) | usize::from(self.new_orders) << 1 | usize::from(self.remembered) << 2
    }

    /// The statement of this shape.
    fn statement(self) -> &'static str {
        static STATEMENTS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| Shape::ALL.iter().map(|shape| shape.assemble()).collect());
        &STATEMENTS[self.index()]
    }

    fn assemble(self) -> String {
        let mut sql = String::from(INPUT);
        if self.results {
            sql.push_str(RESULTS);
        }
        if self.new_orders {
            sql.push_str(NEW_ORDERS);
        }
        sql.push_str(APPENDS);
        if self.results {
            sql.push_str(LANE_NOT_FINISHED_HERE);
        }
        sql.push_str(FANOUT_END);
        if self.remembered {
            sql.push_str(REMEMBERED);
            if self.new_orders {
                sql.push_str(REMEMBERED_NEW_ORDERS);
            }
            sql.push_str(REMEMBERED_END);
        }
        sql.push_str(ANSWER);
        sql
    }
}

/// A row of the group statement's answer: an order that moved and, if any,
/// one of its deliveries, with its endpoint's target if it was leased, and
/// the order as JSON if asked for.
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
    Option<String>,
);

/// An append the statement made: its deliveries and, if asked for
/// (`answer_order`), the order as the statement left it, as JSON (read by
/// the append it is for: a bad row fails that append alone, not its group).
#[derive(Default)]
pub(super) struct Moved {
    pub deliveries: Appended,
    pub order_json: Option<String>,
}

/// `None`: the order was not where the plan needed it (another write moved
/// it first, or it is not there). `Some`: it moved.
pub(super) type AppendAnswer = Result<Option<Moved>, sqlx::Error>;

/// Nearly every job is an append: boxing it to match a record's size would
/// be an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Job {
    Append(AppendJob),
    Create(CreateJob),
    Record(RecordJob),
}

struct AppendJob {
    planned: PlannedAppend,
    answer: oneshot::Sender<AppendAnswer>,
}

struct CreateJob {
    planned: PlannedOrder,
    answer: oneshot::Sender<Result<(), sqlx::Error>>,
}

struct RecordJob {
    plan: RecordPlan,
    answer: oneshot::Sender<Result<(), sqlx::Error>>,
}

/// The handle writes are queued on; the task ends with the last handle.
#[derive(Clone)]
pub(super) struct PgWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

impl PgWriter {
    pub fn start(connection: Arc<StickyConnection>, handoff: Arc<Handoff>) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(connection, queue, handoff));
        Self { jobs }
    }

    /// Writes `planned` with whatever else is waiting.
    pub async fn append(&self, planned: PlannedAppend) -> AppendAnswer {
        self.ask(|answer| Job::Append(AppendJob { planned, answer })).await
    }

    /// Writes a new order with whatever else is waiting.
    pub async fn create(&self, planned: PlannedOrder) -> Result<(), sqlx::Error> {
        self.ask(|answer| Job::Create(CreateJob { planned, answer })).await
    }

    /// Records a batch of attempt results with whatever else is waiting.
    pub async fn record(&self, plan: RecordPlan) -> Result<(), sqlx::Error> {
        self.ask(|answer| Job::Record(RecordJob { plan, answer })).await
    }

    /// Queues the job `make` builds around its answer's sender; its answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, sqlx::Error>>) -> Job,
    ) -> Result<T, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        self.jobs.send(make(answer)).map_err(|_| sqlx::Error::PoolClosed)?;
        answered.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// The jobs waiting for the writer, by kind.
#[derive(Default)]
struct Waiting {
    appends: VecDeque<AppendJob>,
    creates: VecDeque<CreateJob>,
    records: VecDeque<RecordJob>,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.creates.is_empty() && self.records.is_empty()
    }

    fn file(&mut self, job: Job) {
        match job {
            Job::Append(job) => self.appends.push_back(job),
            Job::Create(job) => self.creates.push_back(job),
            Job::Record(job) => self.records.push_back(job),
        }
    }
}

async fn run(connection: Arc<StickyConnection>, mut queue: mpsc::UnboundedReceiver<Job>, handoff: Arc<Handoff>) {
    let mut waiting = Waiting::default();
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(job) => waiting.file(job),
                None => return,
            }
        }
        while let Ok(job) = queue.try_recv() {
            waiting.file(job);
        }
        let group = Group {
            appends: take_group(&mut waiting.appends),
            creates: take_creates(&mut waiting.creates),
        };
        let record = waiting.records.pop_front();
        write(&connection, group, record, handoff.offer()).await;
    }
}

/// The writes of one statement besides attempt results.
struct Group {
    appends: Vec<AppendJob>,
    creates: Vec<CreateJob>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.creates.is_empty()
    }

    fn len(&self) -> usize {
        self.appends.len() + self.creates.len()
    }

    fn planned(&self) -> (Vec<&PlannedAppend>, Vec<&PlannedOrder>) {
        (
            self.appends.iter().map(|job| &job.planned).collect(),
            self.creates.iter().map(|job| &job.planned).collect(),
        )
    }

    /// Answers every write of the group: it was made.
    fn written(self, mut moved: HashMap<String, Moved>) {
        for job in self.appends {
            let _ = job.answer.send(Ok(moved.remove(&job.planned.order_id)));
        }
        for job in self.creates {
            let _ = job.answer.send(Ok(()));
        }
    }
}

/// The oldest waiting new orders, at most `MAX_GROUP`.
fn take_creates(waiting: &mut VecDeque<CreateJob>) -> Vec<CreateJob> {
    let count = waiting.len().min(MAX_GROUP);
    waiting.drain(..count).collect()
}

/// The oldest waiting appends, at most `MAX_GROUP` and one per order; the
/// rest keep their places.
fn take_group(waiting: &mut VecDeque<AppendJob>) -> Vec<AppendJob> {
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

/// One round of attempt results as the statement takes them.
#[derive(Clone, Copy)]
struct Outcomes<'a> {
    rows: &'a str,
    health: &'a str,
    now: i64,
}

impl Outcomes<'_> {
    const NONE: Outcomes<'static> = Outcomes {
        rows: "[]",
        health: "[]",
        now: 0,
    };
}

impl RecordPlan {
    /// Round `k`; the endpoints' health goes with the last.
    fn round(&self, k: usize) -> Outcomes<'_> {
        Outcomes {
            rows: self.rounds.get(k).map_or("[]", String::as_str),
            health: if k + 1 >= self.rounds.len() { &self.health } else { "[]" },
            now: self.now,
        }
    }
}

/// Writes a group of appends and new orders and a batch of results: the
/// batch's first round rides in the group's statement (the rest, rare,
/// follow alone).
async fn write(connection: &StickyConnection, group: Group, record: Option<RecordJob>, offer: Option<Offer>) {
    let Some(record) = record else {
        return write_group(connection, group, offer.as_ref()).await;
    };
    if group.is_empty() {
        let _ = record.answer.send(write_rounds(connection, &record.plan, 0).await);
        return;
    }
    let (appends, creates) = group.planned();
    let written = run_statement(connection, &appends, &creates, record.plan.round(0), offer.as_ref()).await;
    match written {
        Ok(moved) => {
            group.written(moved);
            let _ = record.answer.send(write_rounds(connection, &record.plan, 1).await);
        }
        Err(_) => {
            let _ = record.answer.send(write_rounds(connection, &record.plan, 0).await);
            write_group(connection, group, offer.as_ref()).await;
        }
    }
}

/// Writes rounds `from..` of a batch of results alone.
async fn write_rounds(connection: &StickyConnection, plan: &RecordPlan, from: usize) -> Result<(), sqlx::Error> {
    for k in from..plan.rounds.len() {
        run_statement(connection, &[], &[], plan.round(k), None).await?;
    }
    Ok(())
}

/// Writes a group of appends and new orders; if its statement fails, each
/// again alone.
async fn write_group(connection: &StickyConnection, group: Group, offer: Option<&Offer>) {
    if group.is_empty() {
        return;
    }
    let (appends, creates) = group.planned();
    let written = run_statement(connection, &appends, &creates, Outcomes::NONE, offer).await;
    match written {
        Ok(moved) => group.written(moved),
        Err(err) if group.len() == 1 => {
            if let Some(job) = group.appends.into_iter().next() {
                let _ = job.answer.send(Err(err));
            } else if let Some(job) = group.creates.into_iter().next() {
                let _ = job.answer.send(Err(err));
            }
        }
        Err(_) => {
            for job in group.appends {
                let alone = run_statement(connection, &[&job.planned], &[], Outcomes::NONE, offer)
                    .await
                    .map(|mut moved| moved.remove(&job.planned.order_id));
                let _ = job.answer.send(alone);
            }
            for job in group.creates {
                let alone = run_statement(connection, &[], &[&job.planned], Outcomes::NONE, None).await;
                let _ = job.answer.send(alone.map(|_| ()));
            }
        }
    }
}

/// A row of the statement's input: a write and its place in the group.
#[derive(Serialize)]
struct InputRow<'a, T> {
    n: usize,
    #[serde(flatten)]
    planned: &'a T,
}

/// A group's writes of one kind as the statement's JSON input.
fn input<T: Serialize>(planned: &[&T]) -> Result<String, sqlx::Error> {
    let rows: Vec<InputRow<T>> = planned
        .iter()
        .enumerate()
        .map(|(n, &planned)| InputRow { n, planned })
        .collect();
    serde_json::to_string(&rows).map_err(|err| sqlx::Error::Encode(Box::new(err)))
}

/// Runs the group statement; answers, per order that moved, its deliveries.
async fn run_statement(
    connection: &StickyConnection,
    appends: &[&PlannedAppend],
    creates: &[&PlannedOrder],
    outcomes: Outcomes<'_>,
    offer: Option<&Offer>,
) -> Result<HashMap<String, Moved>, sqlx::Error> {
    let shape = Shape {
        results: outcomes.rows != "[]" || outcomes.health != "[]",
        new_orders: !creates.is_empty(),
        remembered: appends.iter().any(|a| a.remember.is_some()) || creates.iter().any(|c| c.remember.is_some()),
    };
    let appends = input(appends)?;
    let creates = input(creates)?;
    let mut kept = connection.get().await?;
    let answer: Result<Vec<AnswerRow>, _> = sqlx::query_as(shape.statement())
        .bind(appends)
        .bind(offer.map(|offer| offer.lease_ms))
        .bind(offer.map_or("[]", |offer| &*offer.skip))
        .bind(outcomes.rows)
        .bind(outcomes.health)
        .bind(outcomes.now)
        .bind(creates)
        .fetch_all(&mut *kept)
        .await;
    drop(kept);
    let answer = connection.checked(answer).await?;
    let mut moved: HashMap<String, Moved> = HashMap::new();
    for (
        order_id,
        id,
        event_id,
        event_name,
        time_stamp,
        endpoint_id,
        url,
        secret,
        previous_secret,
        previous_until,
        order_json,
    ) in answer
    {
        let entry = moved.entry(order_id.clone()).or_default();
        if entry.order_json.is_none() {
            entry.order_json = order_json;
        }
        let appended = &mut entry.deliveries;
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

    #[test]
    fn the_shape_with_every_part_has_every_part_in_order() {
        let every_part = Shape {
            results: true,
            new_orders: true,
            remembered: true,
        }
        .statement();
        let ctes = [
            "input",
            "results",
            "outcome",
            "logged",
            "health",
            "healed",
            "failing",
            "new_orders",
            "created",
            "moved",
            "appended",
            "event",
            "fanout",
            "remembered",
        ];
        let at: Vec<usize> = ctes
            .iter()
            .map(|name| {
                every_part
                    .find(&format!("{name} AS ("))
                    .unwrap_or_else(|| panic!("{name}"))
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert!(every_part.contains("UNION ALL") && every_part.contains("r.delivery_id = x.id"));
    }

    #[test]
    fn a_shape_names_only_the_parts_it_carries() {
        for shape in Shape::ALL {
            let sql = shape.statement();
            assert_eq!(Shape::ALL[shape.index()], shape);
            for (name, carried) in [
                ("results", shape.results),
                ("outcome", shape.results),
                ("health", shape.results),
                ("$4", shape.results),
                ("$6", shape.results),
                ("new_orders", shape.new_orders),
                ("$7", shape.new_orders),
                ("remembered", shape.remembered),
                ("idempotency", shape.remembered),
            ] {
                assert_eq!(sql.contains(name), carried, "{shape:?}: {name}");
            }
            for always in ["$1", "$2", "$3", "moved", "fanout", "event AS"] {
                assert!(sql.contains(always), "{shape:?}: {always}");
            }
            assert_eq!(sql.matches('(').count(), sql.matches(')').count(), "{shape:?}");
        }
    }

    fn job(order_id: &str) -> AppendJob {
        let (answer, _) = oneshot::channel();
        AppendJob {
            planned: PlannedAppend {
                order_id: order_id.into(),
                from_statuses: "awaiting_payment".into(),
                only_direction: None,
                answer_order: false,
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

    fn orders(jobs: &[AppendJob]) -> Vec<&str> {
        jobs.iter().map(|job| job.planned.order_id.as_str()).collect()
    }

    #[test]
    fn a_group_holds_one_append_per_order_and_the_rest_keep_their_places() {
        let mut waiting: VecDeque<AppendJob> = ["a", "b", "a", "c", "b", "a"].into_iter().map(job).collect();
        let group = take_group(&mut waiting);
        assert_eq!(orders(&group), ["a", "b", "c"]);
        let rest: Vec<AppendJob> = waiting.drain(..).collect();
        assert_eq!(orders(&rest), ["a", "b", "a"]);
    }

    #[test]
    fn a_batch_of_results_rides_round_by_round_with_its_health_in_the_last() {
        let plan = RecordPlan {
            rounds: vec!["[first]".into(), "[second]".into()],
            health: "[health]".into(),
            now: 7,
        };
        let rounds: Vec<(&str, &str, i64)> = (0..3)
            .map(|k| plan.round(k))
            .map(|round| (round.rows, round.health, round.now))
            .collect();
        assert_eq!(
            rounds,
            [("[first]", "[]", 7), ("[second]", "[health]", 7), ("[]", "[health]", 7)]
        );
        let one = RecordPlan {
            rounds: vec!["[only]".into()],
            ..plan
        };
        assert_eq!(one.round(0).health, "[health]");
    }

    #[test]
    fn a_group_is_bounded() {
        let names: Vec<String> = (0..MAX_GROUP + 5).map(|i| i.to_string()).collect();
        let mut waiting: VecDeque<AppendJob> = names.iter().map(|name| job(name)).collect();
        let group = take_group(&mut waiting);
        assert_eq!(group.len(), MAX_GROUP);
        assert_eq!(waiting.len(), 5);
        assert_eq!(waiting.front().map(|job| job.planned.order_id.as_str()), Some("128"));
    }
}
