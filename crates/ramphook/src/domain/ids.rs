//! Opaque, time-ordered resource ids (`ptn_…`, `ep_…`, `evt_…`, `dlv_…`) and
//! the random secrets and API keys handed out once.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new id: a prefix and a UUIDv7 (so ids sort by creation time).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The prefix of every delivery id: retention cuts deliveries by age on
/// ids that begin with it (`id_floor`), so those ids are made with it alone.
pub const DELIVERY_PREFIX: &str = "dlv";

/// The least id `new_id(prefix)` can make at `at_ms` (Unix milliseconds):
/// every id it made earlier sorts below it, every later one above. A UUIDv7's
/// 32 hex digits begin with its 48-bit millisecond timestamp (12 digits), so
/// ids in the same format (`dlv_…`, with or without a `_n` suffix) can be
/// cut by age on their own index.
pub fn id_floor(prefix: &str, at_ms: i64) -> String {
    format!("{prefix}_{:012x}", at_ms.clamp(0, (1 << 48) - 1))
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A partner API key as handed out: `rh_` + 48 hex characters.
pub fn new_api_key() -> String {
    format!("rh_{}", random_hex(24))
}

/// What is stored of an API key. The keys are 192 random bits, so a plain
/// SHA-256 is enough (no password stretching needed) and lets us look a key
/// up by its hash.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::now_ms;

    #[test]
    fn ids_are_prefixed_unique_and_time_ordered() {
        let a = new_id("evt");
        let b = new_id("evt");
        assert!(a.starts_with("evt_"));
        assert_ne!(a, b);
        assert!(a < b);
    }

    #[test]
    fn an_id_floor_parts_the_ids_made_before_its_millisecond_from_those_after() {
        let before = now_ms();
        let made = new_id("dlv");
        let after = now_ms();
        assert!(id_floor("dlv", before) <= made, "{made} was made at or after {before}");
        assert!(
            made < id_floor("dlv", after + 1),
            "{made} was made before {}",
            after + 1
        );
        assert!(
            format!("{made}_3") < id_floor("dlv", after + 1),
            "a suffix does not lift an id"
        );
        assert_eq!(id_floor("dlv", 0x0123_4567_89ab), "dlv_0123456789ab");
        assert_eq!(id_floor("dlv", -5), "dlv_000000000000");
    }

    #[test]
    fn generated_secrets_are_64_hex_characters() {
        let secret = random_hex(32);
        assert_eq!(secret.len(), 64);
        assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn api_key_hash_is_stable_and_not_the_key() {
        let key = new_api_key();
        assert_eq!(hash_api_key(&key), hash_api_key(&key));
        assert!(!hash_api_key(&key).contains(&key));
    }
}
