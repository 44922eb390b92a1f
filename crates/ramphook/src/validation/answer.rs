//! How a partner's answer to a validation callback is read (CONTRACT.md §4):
//! one pure function from status and body to allowed / denied / error, so
//! the whole table is unit-tested without a network.

use serde_json::Value;

/// The answer body is read up to this many bytes; a longer one is an error
/// (a truncated answer could read differently from the whole one).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The keys of a JSON object answer, in the order they are looked for.
pub const OBJECT_KEYS: [&str; 8] = [
    "allowed",
    "valid",
    "isValid",
    "authorized",
    "result",
    "success",
    "data",
    "ok",
];

/// Nested objects deeper than this are an unknown shape.
const MAX_DEPTH: usize = 8;

/// What the partner said, before the `onError` policy is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
    /// Why the answer could not be read (`kind: detail`).
    Error(String),
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Error(_) => "error",
        }
    }
}

/// Reads one answer. The content type is deliberately not consulted:
/// partners label `yes` as JSON and `true` as text, and the body alone is
/// unambiguous under these rules.
pub fn read(status: u16, body: &[u8]) -> Outcome {
    match status {
        403 | 404 => return Outcome::Denied,
        200..=299 => {}
        other => return Outcome::Error(format!("http_status: the callback answered {other}")),
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Outcome::Error(format!(
            "unreadable_answer: the body is larger than {MAX_ANSWER_BYTES} bytes"
        ));
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Outcome::Error("unreadable_answer: the body is not UTF-8".into());
    };
    let text = text.trim();
    if text.is_empty() {
        return Outcome::Error("unreadable_answer: the body is empty".into());
    }
    let verdict = match serde_json::from_str::<Value>(text) {
        Ok(value) => read_json(&value, 0),
        // Not JSON: plain text, which knows fewer words than a JSON string.
        Err(_) => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
    };
    match verdict {
        Some(true) => Outcome::Allowed,
        Some(false) => Outcome::Denied,
        None => Outcome::Error(format!("unreadable_answer: unknown answer {}", preview(text))),
    }
}

fn read_json(value: &Value, depth: usize) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "allowed" | "ok" | "1" => Some(true),
            "false" | "no" | "denied" | "0" => Some(false),
            _ => None,
        },
        // The first key present decides, even when its value is unreadable
        // (`null` included): a later key never overrides an earlier one.
        Value::Object(map) if depth < MAX_DEPTH => OBJECT_KEYS
            .iter()
            .find_map(|key| map.get(*key))
            .and_then(|inner| read_json(inner, depth + 1)),
        _ => None,
    }
}

/// The start of an unreadable answer, for the detail (never the whole body).
fn preview(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        format!("{:?}…", cut)
    } else {
        format!("{cut:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "allowed";
    const D: &str = "denied";
    const E: &str = "error";

    #[test]
    fn the_contract_table() {
        let rows: &[(u16, &[u8], &str)] = &[
            // JSON scalars
            (200, b"true", A),
            (200, b"1", A),
            (200, b"\"true\"", A),
            (200, b"\"yes\"", A),
            (200, b"\"allowed\"", A),
            (200, b"\"ok\"", A),
            (200, b"\"1\"", A),
            (200, b"false", D),
            (200, b"0", D),
            (200, b"\"false\"", D),
            (200, b"\"no\"", D),
            (200, b"\"denied\"", D),
            (200, b"\"0\"", D),
            // case and white space
            (200, b"TRUE", A),
            (200, b"True", A),
            (200, b"Yes", A),
            (200, b"  yes \r\n", A),
            (200, b"\n\t1\n", A),
            (200, b"\"YES\"", A),
            (200, b"\" Allowed \"", A),
            (200, b"\"OK\"", A),
            (200, b"FALSE", D),
            (200, b" No\n", D),
            (200, b"\"DENIED\"", D),
            // plain text knows only true/yes/1 and false/no/0
            (200, b"yes", A),
            (200, b"no", D),
            (200, b"ok", E),
            (200, b"allowed", E),
            (200, b"denied", E),
            (200, b"maybe", E),
            (200, b"<html>OK</html>", E),
            // every 2xx counts
            (201, b"true", A),
            (204, b"false", D),
            (299, b"yes", A),
            // objects: the first key present, read by the same rules
            (200, br#"{"allowed": true}"#, A),
            (200, br#"{"allowed": false}"#, D),
            (200, br#"{"valid": "yes"}"#, A),
            (200, br#"{"isValid": 0}"#, D),
            (200, br#"{"authorized": "ALLOWED"}"#, A),
            (200, br#"{"result": "denied"}"#, D),
            (200, br#"{"success": 1}"#, A),
            (200, br#"{"data": {"allowed": true}}"#, A),
            (200, br#"{"data": {"result": {"ok": "no"}}}"#, D),
            (200, br#"{"ok": true}"#, A),
            (200, br#"{"ok": false, "allowed": true}"#, A),
            (200, br#"{"data": true, "success": false}"#, D),
            (200, br#"{"user": "x", "valid": true}"#, A),
            (200, br#"{"allowed": null, "valid": true}"#, E),
            (200, br#"{"allowed": "perhaps"}"#, E),
            (200, br#"{"Allowed": true}"#, E),
            (200, br#"{"status": "ok"}"#, E),
            (200, br#"{}"#, E),
            // other unknown shapes
            (200, b"[true]", E),
            (200, b"null", E),
            (200, b"2", E),
            (200, b"1.5", E),
            (200, b"-1", E),
            (200, b"\"\"", E),
            (200, br#"{"allowed": tru"#, E),
            // empty and unreadable bodies
            (200, b"", E),
            (200, b"   \n ", E),
            (200, b"\xff\xfe", E),
            (200, b"tr\xc3ue", E),
            // statuses
            (403, b"", D),
            (403, b"true", D),
            (404, b"whatever", D),
            (400, b"false", E),
            (401, b"true", E),
            (302, b"true", E),
            (500, b"true", E),
            (503, b"", E),
            (100, b"true", E),
        ];
        for (status, body, expected) in rows {
            let got = read(*status, body);
            assert_eq!(
                got.as_str(),
                *expected,
                "{status} {:?} read as {got:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_unknown_shape() {
        let mut deep = "true".to_owned();
        for _ in 0..MAX_DEPTH {
            deep = format!("{{\"data\": {deep}}}");
        }
        assert_eq!(read(200, deep.as_bytes()), Outcome::Allowed);
        let deeper = format!("{{\"data\": {deep}}}");
        assert_eq!(read(200, deeper.as_bytes()).as_str(), "error");
    }

    #[test]
    fn a_body_over_the_bound_is_an_error_even_if_it_starts_well() {
        let mut body = b"true".to_vec();
        body.resize(MAX_ANSWER_BYTES, b' ');
        assert_eq!(read(200, &body), Outcome::Allowed, "exactly the bound is read");
        body.push(b' ');
        assert_eq!(read(200, &body).as_str(), "error");
    }

    #[test]
    fn errors_say_why_without_echoing_a_long_body() {
        let Outcome::Error(why) = read(500, b"") else { panic!() };
        assert!(why.contains("500"), "{why}");
        let long = "x".repeat(1000);
        let Outcome::Error(why) = read(200, long.as_bytes()) else {
            panic!()
        };
        assert!(why.len() < 120, "{why}");
    }
}
