//! Keeps PostgreSQL's planner statistics of the tables the hot statements
//! read in step while those tables grow fast. Each connection caches a
//! generic plan of every hot statement after a few runs, made on the
//! statistics of that moment, and keeps it until the statistics change.
//! Autovacuum refreshes them once a minute at best, so on a new database,
//! or a queue that went from empty to thousands of pending deliveries,
//! plans made for a near-empty table went on running: the attempt record
//! of a partner whose deliveries piled up read the whole pending index for
//! each result (1.6 ms and 480 buffers a record, `slow-neighbour`). An
//! `ANALYZE` makes every connection plan again.
//!
//! A table is analysed each time it has doubled since its last analysis
//! (from `MIN_ROWS` on): a few times while it is young, then never, as
//! autovacuum's own rule (a tenth of the table changed) comes first. The
//! sample is a tenth of autovacuum's (statistics target 10: 3,000 rows),
//! enough to tell how many rows there are and how they spread, at a tenth
//! of the cost (15 against 114 ms for 30,000 deliveries); autovacuum's own
//! analysis, with the full sample, comes within a minute. Analysing only
//! the columns the plans seemed to need was as cheap but changed the
//! claim's plan for the worse.

use super::{Backend, Store, StoreResult};

/// Rows below which a table is left alone: a few dozen pages, which any
/// plan reads quickly.
const MIN_ROWS: i64 = 1000;

/// The tables the hot statements read (the claim, lane and record lookups,
/// the appends' status changes).
const HOT_TABLES: [&str; 2] = ["deliveries", "orders"];

/// The statistics target of these analyses: rows sampled are 300 times it.
const SAMPLE_TARGET: u32 = 10;

/// Whether `$1` has doubled since it was last analysed. `reltuples` is -1
/// for a table never analysed; `n_live_tup` is counted as rows come and go.
const HAS_DOUBLED: &str = "SELECT COUNT(*) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
     WHERE s.schemaname = current_schema() AND s.relname = $1
       AND s.n_live_tup >= GREATEST(CAST($2 AS bigint), 2 * CAST(c.reltuples AS bigint))";

impl Store {
    /// Whether PostgreSQL's autovacuum is off (never on SQLite): then the
    /// dead rows every update leaves are never reclaimed, nor the planner's
    /// statistics refreshed after this task's first analyses.
    pub async fn autovacuum_is_off(&self) -> StoreResult<bool> {
        if self.backend != Backend::Postgres {
            return Ok(false);
        }
        let (setting,): (String,) = sqlx::query_as("SELECT setting FROM pg_settings WHERE name = 'autovacuum'")
            .fetch_one(&self.reader)
            .await?;
        Ok(setting == "off")
    }

    /// Analyses the hot tables that have doubled since their last analysis
    /// (PostgreSQL; nothing to do on SQLite, whose planner keeps no such
    /// cache) and answers their names. A table another session is
    /// analysing or vacuuming is skipped, not waited for.
    pub async fn refresh_planner_statistics(&self) -> StoreResult<Vec<&'static str>> {
        if self.backend != Backend::Postgres {
            return Ok(Vec::new());
        }
        let mut analysed = Vec::new();
        for table in HOT_TABLES {
            let (due,): (i64,) = sqlx::query_as(HAS_DOUBLED)
                .bind(table)
                .bind(MIN_ROWS)
                .fetch_one(&self.writer)
                .await?;
            if due > 0 {
                let analyse = format!(
                    "BEGIN; SET LOCAL default_statistics_target = {SAMPLE_TARGET}; ANALYZE (SKIP_LOCKED) {table}; COMMIT"
                );
                sqlx::raw_sql(&analyse).execute(&self.writer).await?;
                analysed.push(table);
            }
        }
        Ok(analysed)
    }
}
