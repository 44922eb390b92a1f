//! Endpoint secrets as opened, for signing deliveries. Every delivery is
//! signed with its endpoint's secrets, and each claim or append answers
//! them sealed; opening one (base64, AES-GCM, its context formatted) for
//! every append was 2 % of the server's CPU at full speed on PostgreSQL.
//! An entry is found by the sealed value itself, which is new at every
//! seal: a rotated or re-keyed secret is a new entry, and a value is given
//! only for the column and row it was opened for (the seal binds it to
//! them). Written by hand: a map and a bound are all it needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Entries kept at most; the map is emptied when it is full (endpoints'
/// secrets seldom change, so it refills with what is in use).
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub(super) struct OpenedSecrets {
    by_sealed: Mutex<HashMap<String, Opened>>,
}

struct Opened {
    column: &'static str,
    row: String,
    plain: Arc<str>,
}

impl OpenedSecrets {
    /// The plaintext of `sealed`, stored in `column` of endpoint `row`, if
    /// it was opened for that column and row.
    pub fn get(&self, column: &str, row: &str, sealed: &str) -> Option<Arc<str>> {
        let by_sealed = self.by_sealed.lock().unwrap();
        let opened = by_sealed.get(sealed)?;
        (opened.column == column && opened.row == row).then(|| opened.plain.clone())
    }

    pub fn keep(&self, column: &'static str, row: &str, sealed: &str, plain: Arc<str>) {
        let mut by_sealed = self.by_sealed.lock().unwrap();
        if by_sealed.len() >= MAX_ENTRIES {
            by_sealed.clear();
        }
        let opened = Opened {
            column,
            row: row.to_owned(),
            plain,
        };
        by_sealed.insert(sealed.to_owned(), opened);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_given_only_for_the_column_and_row_it_was_opened_for() {
        let opened = OpenedSecrets::default();
        opened.keep("secret", "ep_1", "sealed-a", "whsec_a".into());
        assert_eq!(opened.get("secret", "ep_1", "sealed-a").as_deref(), Some("whsec_a"));
        assert_eq!(opened.get("secret", "ep_2", "sealed-a"), None);
        assert_eq!(opened.get("previous_secret", "ep_1", "sealed-a"), None);
        assert_eq!(opened.get("secret", "ep_1", "sealed-b"), None);
    }

    #[test]
    fn a_full_map_starts_again() {
        let opened = OpenedSecrets::default();
        for n in 0..MAX_ENTRIES {
            opened.keep("secret", "ep", &format!("sealed-{n}"), "plain".into());
        }
        opened.keep("secret", "ep", "sealed-last", "plain".into());
        assert!(opened.get("secret", "ep", "sealed-0").is_none());
        assert!(opened.get("secret", "ep", "sealed-last").is_some());
    }
}
