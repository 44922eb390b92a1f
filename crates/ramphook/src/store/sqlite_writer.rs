//! One thread that owns SQLite's write connection and runs whole
//! transactions sent to it as jobs, committing everything queued at once.
//!
//! Why: through sqlx every statement is a hand-off between a tokio worker and
//! sqlx's SQLite thread, and on this kind of machine those wake-ups cost more
//! than SQLite's own work (docs/PERFORMANCE.md). Here a job (an event append,
//! a claim, a batch of attempt results) is one message, and the thread runs
//! every job waiting in its queue inside one transaction, each under its own
//! savepoint: a failing job rolls back only its own writes, and a commit (the
//! WAL append) is paid once per batch — group commit. No crate offers this
//! on top of rusqlite, so it is written here; it is a few dozen lines.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// Jobs run in one transaction at most (bounds a commit's size and the wait
/// of the first job in it).
const MAX_BATCH: usize = 256;

/// What a job left behind once run: did it succeed (else its savepoint is
/// rolled back), and how to hand its answer over once the commit is known.
struct Ran {
    ok: bool,
    answer: Box<dyn FnOnce(Option<StoreError>) + Send>,
}

/// A job gets the connection inside its savepoint, or the error that kept
/// its transaction from beginning (then it only answers that error).
type Job = Box<dyn FnOnce(Result<&Connection, StoreError>) -> Ran + Send>;

/// A handle to the writer thread; cheap to clone. The thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl SqliteWriter {
    /// Opens `path` (already created and migrated) and starts the thread.
    pub fn start(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open(path).map_err(to_store_error)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(to_store_error)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(to_store_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue))
            .map_err(|e| StoreError::Other(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` in a write transaction on the writer thread and answers
    /// its result once that transaction has committed. An `Err` from `work`
    /// undoes its writes (and only its own).
    pub async fn write<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = conn.and_then(|conn| {
                catch_unwind(AssertUnwindSafe(|| work(conn)))
                    .unwrap_or_else(|_| Err(StoreError::Other("a database write panicked".into())))
            });
            Ran {
                ok: result.is_ok(),
                answer: Box::new(move |commit_error| {
                    let _ = reply.send(match commit_error {
                        Some(err) => Err(err),
                        None => result,
                    });
                }),
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

/// The thread: take what is queued, run it in one transaction, commit, answer.
fn run(conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Not started: run nothing, answer every job with the error.
            let err = to_store_error(err);
            tracing::warn!(error = %err, "SQLite write transaction could not begin");
            for job in batch {
                (job(Err(clone_error(&err))).answer)(None);
            }
            continue;
        }
        let mut answers = Vec::with_capacity(batch.len());
        for job in batch {
            let savepoint = conn.execute_batch("SAVEPOINT job");
            let ran = job(Ok(&conn));
            let closed = if ran.ok {
                conn.execute_batch("RELEASE job")
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            };
            if let Err(err) = savepoint.and(closed) {
                tracing::error!(error = %err, "SQLite savepoint failed");
            }
            answers.push(ran.answer);
        }
        let commit_error = conn.execute_batch("COMMIT").err().map(|err| {
            let _ = conn.execute_batch("ROLLBACK");
            to_store_error(err)
        });
        for answer in answers {
            answer(commit_error.as_ref().map(clone_error));
        }
    }
}

fn clone_error(err: &StoreError) -> StoreError {
    match err {
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        StoreError::Other(why) => StoreError::Other(why.clone()),
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
}
