//! A small in-memory copy of rows read on every request (a partner, its
//! validation configuration), so that the hot paths do not go to the
//! database for what rarely or never changes. Each entry is good for a
//! fixed time (the bound on how stale another instance's change may be
//! seen); a change made through this store drops the entry at once. Time
//! is passed in: the decisions are pure.
//!
//! By hand rather than a caching crate: it is forty lines, and the one
//! subtle part — a read that started before a change must not put the old
//! row back after the change dropped it — is the generation check here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many entries, stale ones are swept and, if that frees nothing,
/// new rows are not kept (reads go to the database, as without a cache).
const MAX_ENTRIES: usize = 100_000;

pub(super) struct ReadCache<V> {
    fresh_for: Duration,
    entries: Mutex<HashMap<String, (V, Instant)>>,
    /// Moves at every invalidation; a read that began under another
    /// generation does not store what it read.
    generation: AtomicU64,
}

impl<V: Clone> ReadCache<V> {
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            entries: Mutex::default(),
            generation: AtomicU64::new(0),
        }
    }

    /// The cached value of `key`, if it is fresh at `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<V> {
        let entries = self.entries.lock().expect("read cache lock");
        match entries.get(key) {
            Some((value, read_at)) if now.duration_since(*read_at) < self.fresh_for => Some(value.clone()),
            _ => None,
        }
    }

    /// Call before reading the database; pass the answer to `put`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keeps `value`, read at `now` under `generation`, unless something
    /// was invalidated since the read began.
    pub fn put(&self, key: &str, value: V, generation: u64, now: Instant) {
        let mut entries = self.entries.lock().expect("read cache lock");
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            entries.retain(|_, (_, read_at)| now.duration_since(*read_at) < self.fresh_for);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(key.to_owned(), (value, now));
    }

    /// Drops `key` (it changed) and turns away reads already under way.
    pub fn invalidate(&self, key: &str) {
        let mut entries = self.entries.lock().expect("read cache lock");
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn an_entry_is_good_for_its_time_only() {
        let cache = ReadCache::new(SECOND);
        let t0 = Instant::now();
        assert_eq!(cache.get("p", t0), None);
        cache.put("p", Some(7), cache.generation(), t0);
        assert_eq!(cache.get("p", t0 + SECOND / 2), Some(Some(7)));
        assert_eq!(cache.get("p", t0 + SECOND), None);
    }

    #[test]
    fn a_change_drops_the_entry_and_a_read_begun_before_it_is_not_kept() {
        let cache = ReadCache::new(SECOND);
        let t0 = Instant::now();
        cache.put("p", "old", cache.generation(), t0);
        let read_began = cache.generation();
        cache.invalidate("p");
        assert_eq!(cache.get("p", t0), None);
        cache.put("p", "old", read_began, t0);
        assert_eq!(cache.get("p", t0), None, "the stale read was put back");
        cache.put("p", "new", cache.generation(), t0);
        assert_eq!(cache.get("p", t0), Some("new"));
    }

    #[test]
    fn a_full_cache_sweeps_stale_entries_and_otherwise_keeps_nothing_new() {
        let cache = ReadCache::new(SECOND);
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES {
            cache.put(&i.to_string(), i, 0, t0);
        }
        cache.put("late", 1, 0, t0);
        assert_eq!(cache.get("late", t0), None);
        cache.put("later", 2, 0, t0 + SECOND);
        assert_eq!(cache.get("later", t0 + SECOND), Some(2));
        assert_eq!(cache.get("0", t0 + SECOND), None);
    }
}
