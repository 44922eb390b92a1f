//! One thread that owns SQLite's write connection and runs whole
//! transactions sent to it as jobs, committing everything queued at once.
//!
//! Why: through sqlx every statement is a hand-off between a tokio worker and
//! sqlx's SQLite thread, and on this kind of machine those wake-ups cost more
//! than SQLite's own work (docs/PERFORMANCE.md). Here a job (an event append,
//! a claim, a batch of attempt results) is one message, and the thread runs
//! every job waiting in its queue inside one transaction and commits once —
//! group commit. If one job fails, that transaction is rolled back and each
//! job of the batch runs again in a transaction of its own, so a failing job
//! never takes others' writes with it (jobs are `Fn` for that; savepoints
//! per job would do the same but cost a sub-journal copy of every page).
//! No crate offers this on top of rusqlite, so it is written here.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::sqlite_checkpointer::Checkpointer;
use super::{StoreError, StoreResult};

/// Jobs run in one transaction at most (bounds a commit's size and the wait
/// of the first job in it).
const MAX_BATCH: usize = 256;

/// A unit of work and the caller waiting for its answer.
trait Job: Send {
    /// Runs the work (again, if it ran in a batch that was rolled back);
    /// `true` if it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Hands the last run's result over, or `error` (the commit failed).
    fn answer(self: Box<Self>, error: Option<StoreError>);
}

struct Task<F, R> {
    work: F,
    result: Option<StoreResult<R>>,
    reply: oneshot::Sender<StoreResult<R>>,
}

impl<F, R> Job for Task<F, R>
where
    F: Fn(&Connection) -> StoreResult<R> + Send,
    R: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = catch_unwind(AssertUnwindSafe(|| (self.work)(conn)))
            .unwrap_or_else(|_| Err(StoreError::Other("a database write panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, error: Option<StoreError>) {
        let result = match (error, self.result) {
            (Some(err), _) => Err(err),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Other("a database write was never run".into())),
        };
        let _ = self.reply.send(result);
    }
}

/// A handle to the writer thread; cheap to clone. The thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl SqliteWriter {
    /// Opens `path` (already created and migrated) and starts the thread.
    pub fn start(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open(path).map_err(to_store_error)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(to_store_error)?;
        // This thread checkpoints when the log reaches 10,000 pages (~40 MB)
        // instead of 1,000, inside a commit, so the log never outgrows that;
        // meanwhile the checkpointer copies what was committed from a thread
        // of its own, and this thread's checkpoint finds little left to copy
        // (`sqlite_checkpointer.rs`).
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 10000;")
            .map_err(to_store_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        let checkpointer = Checkpointer::start(path)?;
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue, checkpointer))
            .map_err(|e| StoreError::Other(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` in a write transaction on the writer thread and answers
    /// its result once that transaction has committed. An `Err` from `work`
    /// undoes its writes (and only its own). `work` may run more than once
    /// (see the module's note); only the last run's writes are committed.
    pub async fn write<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: Fn(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task = Task {
            work,
            result: None,
            reply,
        };
        self.jobs
            .send(Box::new(task))
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

/// The thread: take what is queued, run it in one transaction, commit, answer.
fn run(conn: Connection, queue: mpsc::Receiver<Box<dyn Job>>, checkpointer: Checkpointer) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() > 1 {
            match run_together(&conn, &mut batch) {
                Ok(()) => {
                    checkpointer.committed();
                    batch.into_iter().for_each(|job| job.answer(None));
                    continue;
                }
                // Rolled back: fall through and give each job its own go.
                Err(err) => tracing::debug!(error = %err, "a batched write failed; running its jobs one by one"),
            }
        }
        for mut job in batch {
            let error = run_alone(&conn, job.as_mut()).err();
            checkpointer.committed();
            job.answer(error);
        }
    }
}

/// Runs `jobs` in one transaction and commits it; rolls back (and answers
/// `Err`) if any job fails or the transaction cannot begin or commit.
fn run_together(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> StoreResult<()> {
    statement(conn, "BEGIN IMMEDIATE")?;
    for job in jobs.iter_mut() {
        if !job.run(conn) {
            rollback(conn);
            return Err(StoreError::Other("a job failed".into()));
        }
    }
    statement(conn, "COMMIT").inspect_err(|_| rollback(conn))
}

/// Runs one job in its own transaction. A failing job is rolled back and
/// keeps its own error (answers `Ok`); `Err` is a failed begin or commit.
fn run_alone(conn: &Connection, job: &mut dyn Job) -> StoreResult<()> {
    statement(conn, "BEGIN IMMEDIATE")?;
    if job.run(conn) {
        statement(conn, "COMMIT").inspect_err(|_| rollback(conn))
    } else {
        rollback(conn);
        Ok(())
    }
}

fn statement(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(err) = statement(conn, "ROLLBACK") {
            tracing::error!(error = %err, "SQLite rollback failed");
        }
    }
}

/// Maps rusqlite's errors as `From<sqlx::Error>` maps sqlx's: busy and
/// locked mean "unavailable" (503), the rest is an internal error.
pub fn to_store_error(err: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match err.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Other(err.to_string()),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        to_store_error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, SqliteWriter) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER NOT NULL UNIQUE);")
            .unwrap();
        drop(conn);
        let writer = SqliteWriter::start(&path).unwrap();
        (dir, writer)
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap()
    }

    #[tokio::test]
    async fn a_failing_job_undoes_only_its_own_writes() {
        let (dir, writer) = writer();
        let jobs = (0..50).map(|v| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |conn| {
                        conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                        if v % 10 == 0 {
                            // Written, then failed: must not survive.
                            conn.execute("INSERT INTO t (v) VALUES (?1)", [v + 1000])?;
                            return Err(StoreError::Other("refused".into()));
                        }
                        Ok(v)
                    })
                    .await
            })
        });
        let results = futures_util::future::join_all(jobs).await;
        let failed = results.iter().filter(|r| r.as_ref().unwrap().is_err()).count();
        assert_eq!(failed, 5);
        assert_eq!(count(&dir), 45);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_lives_on() {
        let (dir, writer) = writer();
        let panicked = writer
            .write(|conn| -> StoreResult<()> {
                conn.execute("INSERT INTO t (v) VALUES (1)", [])?;
                panic!("boom")
            })
            .await;
        assert!(panicked.is_err());
        writer
            .write(|conn| Ok(conn.execute("INSERT INTO t (v) VALUES (2)", [])?))
            .await
            .unwrap();
        assert_eq!(count(&dir), 1);
    }

    /// Rows in the database file alone, as a copy of it without its log
    /// shows them (`None` while a copy caught a page being written).
    fn count_in_file(dir: &tempfile::TempDir) -> Option<i64> {
        let copy = dir.path().join("copy.db");
        std::fs::copy(dir.path().join("w.db"), &copy).ok()?;
        let conn = Connection::open(&copy).ok()?;
        conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).ok()
    }

    /// A few commits are far from the writer's own checkpoint (10,000
    /// pages): the checkpointer copies them into the database file.
    #[tokio::test]
    async fn commits_reach_the_database_file_without_the_writers_checkpoint() {
        let (dir, writer) = writer();
        for v in 0..100 {
            writer
                .write(move |conn| Ok(conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?))
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count_in_file(&dir) != Some(100) {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was not copied within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
