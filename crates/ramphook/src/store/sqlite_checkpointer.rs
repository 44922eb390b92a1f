//! Copies SQLite's write-ahead log back into the database file from a
//! thread and a connection of its own, while the writer goes on writing.
//!
//! Why: SQLite checkpoints inside the commit that finds the log past
//! `wal_autocheckpoint`, on the writer thread, and every write queued
//! behind that commit waits for the copy and its `fsync`: at a steady
//! 1,000 events/s one request in a hundred waited 25-30 ms for it
//! (docs/PERFORMANCE.md). A `PASSIVE` checkpoint from another connection
//! copies what is committed without taking the write lock, so it holds
//! up no write; the writer's own checkpoint still runs when the log
//! reaches its limit (it is what starts the log again from the top, which
//! only the writer can do), but finds most of it copied already.
//! SQLite has no thread for this, and no crate runs one for rusqlite, so
//! it is written here.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use super::sqlite_writer::to_store_error;
use super::StoreResult;

/// At most one checkpoint this often, and only after a commit: an idle
/// server checkpoints nothing.
const PERIOD: Duration = Duration::from_millis(100);

/// Told of commits; the thread ends when this is dropped.
pub(super) struct Checkpointer {
    committed: mpsc::SyncSender<()>,
}

impl Checkpointer {
    /// Opens its own connection to `path` (in WAL mode) and starts the thread.
    pub fn start(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open(path).map_err(to_store_error)?;
        let (committed, commits) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || run(&conn, &commits))
            .map_err(|e| super::StoreError::Other(format!("cannot start the SQLite checkpointer: {e}")))?;
        Ok(Self { committed })
    }

    /// Something was committed: the log has frames to copy. Never waits.
    pub fn committed(&self) {
        let _ = self.committed.try_send(());
    }
}

fn run(conn: &Connection, commits: &mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        // Let a period's commits gather, then copy them at once.
        std::thread::sleep(PERIOD);
        while commits.try_recv().is_ok() {}
        // Busy (the writer's own checkpoint runs) or failed: the next
        // commit asks again, and the writer's checkpoint bounds the log.
        let checkpointed = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(0));
        if let Err(err) = checkpointed {
            tracing::debug!(error = %err, "a background checkpoint failed");
        }
    }
}
