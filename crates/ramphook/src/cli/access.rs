//! How `ramphook listen` answers validation callbacks: it reads
//! `{"email","action"}` and decides from the `--allow` / `--deny` lists.

use serde::Deserialize;

/// The actions ramphook asks about (contract §4): the service's own type.
pub use crate::validation::Action;

/// The body of a validation callback.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidationRequest {
    pub email: String,
    pub action: Action,
}

/// Parses a validation callback body, with a reason when it is not one.
pub fn parse_request(body: &[u8]) -> Result<ValidationRequest, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!("not a validation callback ({e}); expected {{\"email\": \"…\", \"action\": \"buy\"|\"sell\"|\"private_info\"}}")
    })
}

/// Who is allowed. An entry is an email (any case) or `@domain` for a whole
/// domain. Deny wins; with an allow list only its entries pass; with neither
/// list everyone passes.
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    allow: Vec<String>,
    deny: Vec<String>,
}

impl AccessList {
    pub fn new(allow: &[String], deny: &[String]) -> Self {
        let clean = |list: &[String]| {
            list.iter()
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty())
                .collect()
        };
        Self {
            allow: clean(allow),
            deny: clean(deny),
        }
    }

    pub fn allows(&self, email: &str) -> bool {
        let email = email.trim().to_lowercase();
        let matches = |entry: &String| {
            if entry.starts_with('@') {
                email.ends_with(entry.as_str())
            } else {
                *entry == email
            }
        };
        if self.deny.iter().any(matches) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(matches)
    }

    /// One line for the start-up banner.
    pub fn describe(&self) -> String {
        match (self.allow.is_empty(), self.deny.is_empty()) {
            (true, true) => "everyone allowed".into(),
            (true, false) => format!("everyone allowed except {}", self.deny.join(", ")),
            (false, true) => format!("only {} allowed", self.allow.join(", ")),
            (false, false) => format!("only {} allowed, never {}", self.allow.join(", "), self.deny.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(allow: &[&str], deny: &[&str]) -> AccessList {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        AccessList::new(&owned(allow), &owned(deny))
    }

    #[test]
    fn with_no_lists_everyone_is_allowed() {
        assert!(list(&[], &[]).allows("anyone@example.com"));
        assert!(list(&["", " "], &[]).allows("anyone@example.com"));
    }

    #[test]
    fn an_allow_list_admits_only_its_entries_in_any_case() {
        let access = list(&["Alice@Example.com"], &[]);
        assert!(access.allows("alice@example.com"));
        assert!(access.allows(" ALICE@example.com "));
        assert!(!access.allows("bob@example.com"));
    }

    #[test]
    fn deny_wins_and_domains_match_whole_domains() {
        let access = list(&["@example.com"], &["mallory@example.com"]);
        assert!(access.allows("alice@example.com"));
        assert!(!access.allows("mallory@example.com"));
        assert!(!access.allows("alice@example.com.evil.test"));
        assert!(!access.allows("alice@notexample.com"));
        assert!(!list(&[], &["@evil.test"]).allows("eve@evil.test"));
    }

    #[test]
    fn requests_parse_or_say_why_not() {
        assert_eq!(
            parse_request(br#"{"email":"a@b.c","action":"private_info"}"#),
            Ok(ValidationRequest {
                email: "a@b.c".into(),
                action: Action::PrivateInfo
            })
        );
        assert!(parse_request(br#"{"email":"a@b.c","action":"steal"}"#)
            .unwrap_err()
            .contains("steal"));
        assert!(parse_request(br#"{"email":"a@b.c"}"#).unwrap_err().contains("action"));
        assert!(parse_request(b"true").is_err());
    }
}
