//! Opaque, time-ordered resource ids (`ptn_…`, `ep_…`, `evt_…`, `dlv_…`) and
//! the random secrets and API keys handed out once.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new id: a prefix and a UUIDv7 (so ids sort by creation time).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
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

    #[test]
    fn ids_are_prefixed_unique_and_time_ordered() {
        let a = new_id("evt");
        let b = new_id("evt");
        assert!(a.starts_with("evt_"));
        assert_ne!(a, b);
        assert!(a < b);
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
