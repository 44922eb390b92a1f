//! Property tests of every parser of outside input: whatever bytes arrive —
//! partners' answers, request bodies, headers, URLs, settings — the parser
//! answers (never panics) and classifies as the contract says.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use ramphook::api::extract::{parse_idempotency_key, parse_json};
use ramphook::api::rate_limit::parse_rate;
use ramphook::config::parse_duration;
use ramphook::net_guard::NetGuard;
use ramphook::validation::answer::{read, Outcome};
use serde::Deserialize;

/// Mixes the case of `word`, one bit of `mask` per character.
fn mixed_case(word: &str, mask: u64) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

const WHITE: &str = "[ \t\r\n]{0,4}";

/// A body shape like the API's (unknown fields refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Body {
    name: String,
    count: Option<u32>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validation_answers_never_panic(status in 0u16..1000, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = read(status, &body);
    }

    #[test]
    fn validation_answers_ignore_case_and_white_space(
        word in prop::sample::select(vec!["true", "yes", "1", "false", "no", "0"]),
        quoted in prop::sample::select(vec!["true", "yes", "allowed", "ok", "false", "no", "denied"]),
        mask in any::<u64>(), before in WHITE, after in WHITE, status in 200u16..300,
    ) {
        let allowed = |w: &str| matches!(w, "true" | "yes" | "1" | "allowed" | "ok");
        let expect = |w: &str| if allowed(w) { Outcome::Allowed } else { Outcome::Denied };
        let plain = format!("{before}{}{after}", mixed_case(word, mask));
        prop_assert_eq!(read(status, plain.as_bytes()), expect(word), "{:?}", plain);
        let json = format!("{before}\"{}\"{after}", mixed_case(quoted, mask));
        prop_assert_eq!(read(status, json.as_bytes()), expect(quoted), "{:?}", json);
        let object = format!("{before}{{\"allowed\": \"{}\"}}{after}", mixed_case(quoted, mask));
        prop_assert_eq!(read(status, object.as_bytes()), expect(quoted), "{:?}", object);
    }

    #[test]
    fn forbidden_and_not_found_deny_and_other_statuses_are_errors(status in 0u16..1000, body in ".{0,32}") {
        let outcome = read(status, body.as_bytes());
        match status {
            403 | 404 => prop_assert_eq!(outcome, Outcome::Denied),
            200..=299 => {}
            _ => prop_assert!(matches!(outcome, Outcome::Error(_))),
        }
    }

    #[test]
    fn durations_never_panic_and_read_back(text in ".{0,24}", n in 0u64..1_000_000, unit in prop::sample::select(vec![("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)])) {
        let _ = parse_duration(&text);
        let parsed = parse_duration(&format!(" {n}{} ", unit.0)).unwrap();
        prop_assert_eq!(parsed.as_millis(), (n * unit.1) as u128);
    }

    #[test]
    fn rates_never_panic(text in ".{0,24}") {
        let _ = parse_rate(&text);
    }

    #[test]
    fn json_bodies_never_panic_and_malformed_is_400(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        match parse_json::<Body>(&bytes) {
            Ok(_) => {}
            Err(e) => {
                let well_formed = serde_json::from_slice::<serde_json::Value>(&bytes).is_ok();
                let expected = if well_formed { 422 } else { 400 };
                prop_assert_eq!(e.status.as_u16(), expected, "{:?}: {}", String::from_utf8_lossy(&bytes), e.detail);
            }
        }
    }

    #[test]
    fn well_formed_json_of_the_wrong_shape_is_422(value in any_json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        if let Err(e) = parse_json::<Body>(&bytes) {
            prop_assert_eq!(e.status.as_u16(), 422, "{}: {}", value, e.detail);
        }
    }

    #[test]
    fn idempotency_keys_are_printable_ascii_of_1_to_255(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let ok = !bytes.is_empty() && bytes.len() <= 255 && bytes.iter().all(|b| (0x21..0x7f).contains(b));
        let parsed = parse_idempotency_key(&bytes);
        prop_assert_eq!(parsed.is_ok(), ok);
        if let Err(e) = parsed {
            prop_assert_eq!(e.status.as_u16(), 422);
        }
    }

    /// However an IPv4 address is written in a URL (dotted, one decimal,
    /// hex, octal, IPv4-mapped IPv6), the guard decides the same.
    #[test]
    fn every_spelling_of_an_address_gets_the_same_decision(bits in any::<u32>()) {
        let guard = NetGuard::default();
        let ip = Ipv4Addr::from(bits);
        let expected = guard.permits(IpAddr::V4(ip));
        let [a, b, c, d] = ip.octets();
        let v6 = ip.to_ipv6_mapped();
        for text in [
            format!("http://{ip}/"),
            format!("http://{bits}/"),
            format!("http://0x{bits:x}/"),
            format!("http://0{bits:o}/"),
            format!("http://0x{a:x}.{b}.0{c:o}.{d}/"),
            format!("HTTP://{ip}./"),
            format!("http://user:pw@{ip}:8080/"),
            format!("http://[{v6}]/"),
            format!("http://[::ffff:{ip}]/"),
        ] {
            // As stored (normalised at configuration), then as the client sends it.
            let stored = url::Url::parse(&text).unwrap().to_string();
            let uri = ramphook::outbound::target_uri(&stored).unwrap();
            let host = uri.host().unwrap();
            prop_assert_eq!(guard.refused_literal_host(host).is_none(), expected, "{}", text);
        }
    }

    #[test]
    fn urls_never_panic_the_client_or_the_guard(text in "[a-zA-Z0-9:/@.\\[\\]%#?=_-]{0,48}") {
        if let Some(host) = ramphook::outbound::target_uri(&text).ok().as_ref().and_then(|uri| uri.host()) {
            let _ = NetGuard::default().refused_literal_host(host);
        }
    }
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop::sample::select(vec!["name", "count", "other"]).prop_map(String::from),
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
