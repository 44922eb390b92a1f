//! Remembers a partner's allowed / denied answers for `cacheTtlSeconds`, so
//! a busy user is not asked about on every order. Errors are never cached.
//! Entries are keyed by the configuration's id, which changes at every PUT,
//! so a new configuration never sees an old answer; PUT and DELETE also drop
//! the partner's entries at once. Time is passed in: the decisions are pure.

use std::collections::HashMap;
use std::sync::Mutex;

use super::answer::Outcome;
use super::Action;

/// At most this many answers are kept; past it, expired ones are swept and,
/// if that frees nothing, new answers are not cached (the service works the
/// same, only slower) until some expire.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub partner_id: String,
    pub config_id: String,
    pub email: String,
    pub action: Action,
}

/// Until when (epoch ms) an outcome may be reused; `None`: not cached.
pub fn expires_at(outcome: &Outcome, ttl_seconds: u32, now_ms: i64) -> Option<i64> {
    match outcome {
        Outcome::Error(_) => None,
        _ if ttl_seconds == 0 => None,
        Outcome::Allowed | Outcome::Denied => Some(now_ms + i64::from(ttl_seconds) * 1000),
    }
}

/// Is an entry expiring at `expires_at` still good at `now_ms`?
pub fn is_fresh(expires_at: i64, now_ms: i64) -> bool {
    now_ms < expires_at
}

#[derive(Default)]
pub struct AnswerCache {
    entries: Mutex<HashMap<Key, (Outcome, i64)>>,
}

impl AnswerCache {
    pub fn get(&self, key: &Key, now_ms: i64) -> Option<Outcome> {
        let mut entries = self.entries.lock().expect("cache lock");
        match entries.get(key) {
            Some((outcome, until)) if is_fresh(*until, now_ms) => Some(outcome.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: Key, outcome: &Outcome, ttl_seconds: u32, now_ms: i64) {
        let Some(until) = expires_at(outcome, ttl_seconds, now_ms) else {
            return;
        };
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| is_fresh(*until, now_ms));
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(key, (outcome.clone(), until));
    }

    /// Drops every answer of `partner_id` (its configuration changed).
    pub fn forget_partner(&self, partner_id: &str) {
        self.entries
            .lock()
            .expect("cache lock")
            .retain(|key, _| key.partner_id != partner_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partner: &str, config: &str, email: &str, action: Action) -> Key {
        Key {
            partner_id: partner.into(),
            config_id: config.into(),
            email: email.into(),
            action,
        }
    }

    #[test]
    fn only_answers_are_cached_and_only_with_a_ttl() {
        assert_eq!(expires_at(&Outcome::Allowed, 60, 1_000), Some(61_000));
        assert_eq!(expires_at(&Outcome::Denied, 1, 1_000), Some(2_000));
        assert_eq!(expires_at(&Outcome::Allowed, 0, 1_000), None);
        assert_eq!(expires_at(&Outcome::Error("timeout".into()), 60, 1_000), None);
    }

    #[test]
    fn freshness_ends_exactly_at_expiry() {
        assert!(is_fresh(2_000, 1_999));
        assert!(!is_fresh(2_000, 2_000));
    }

    #[test]
    fn entries_expire_and_are_scoped_by_every_part_of_the_key() {
        let cache = AnswerCache::default();
        let k = key("p1", "c1", "a@x.io", Action::Buy);
        cache.put(k.clone(), &Outcome::Denied, 10, 0);
        assert_eq!(cache.get(&k, 9_999), Some(Outcome::Denied));
        for other in [
            key("p2", "c1", "a@x.io", Action::Buy),
            key("p1", "c2", "a@x.io", Action::Buy),
            key("p1", "c1", "b@x.io", Action::Buy),
            key("p1", "c1", "a@x.io", Action::Sell),
        ] {
            assert_eq!(cache.get(&other, 1), None, "{other:?}");
        }
        assert_eq!(cache.get(&k, 10_000), None);
        // an expired entry is gone, not revived by an earlier clock
        assert_eq!(cache.get(&k, 1), None);
    }

    #[test]
    fn errors_are_never_stored_and_partners_can_be_forgotten() {
        let cache = AnswerCache::default();
        let k = key("p1", "c1", "a@x.io", Action::PrivateInfo);
        cache.put(k.clone(), &Outcome::Error("timeout".into()), 60, 0);
        assert_eq!(cache.get(&k, 1), None);
        cache.put(k.clone(), &Outcome::Allowed, 60, 0);
        let other = key("p2", "c9", "a@x.io", Action::PrivateInfo);
        cache.put(other.clone(), &Outcome::Allowed, 60, 0);
        cache.forget_partner("p1");
        assert_eq!(cache.get(&k, 1), None);
        assert_eq!(cache.get(&other, 1), Some(Outcome::Allowed));
    }
}
