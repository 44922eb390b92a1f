//! Secrets at rest: endpoint secrets and validation credentials are sealed
//! with AES-256-GCM under the operator's master key before they reach the
//! database, so a copy of the database (a backup, a replica, a stolen disk)
//! reveals none of them. Pure: no I/O; `master_key` finds the key.
//!
//! A sealed value is `v1:` + base64(96-bit random nonce ‖ ciphertext ‖ tag).
//! The row it belongs to (e.g. `endpoints.secret:ep_…`) is bound in as
//! associated data, so a sealed value copied into another row does not open.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// The prefix of every sealed value; a new scheme would take `v2:`.
pub const PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 12;

/// The 32-byte master key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// Parses the base64 (standard alphabet, padding optional) of 32 bytes;
    /// surrounding white space, such as a key file's newline, is ignored.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = BASE64
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| "not base64; generate a key with `openssl rand -base64 32`".to_owned())?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "decodes to {} bytes, 32 are needed; generate a key with `openssl rand -base64 32`",
                b.len()
            )
        })?;
        Ok(Self(key))
    }

    /// A new random key.
    pub fn generate() -> Self {
        Self(Aes256Gcm::generate_key(OsRng).into())
    }

    /// The key as base64, as written to a key file.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the stored secret is not sealed (no {PREFIX} prefix)")]
    NotSealed,
    #[error("the stored secret is malformed")]
    Malformed,
    #[error("the stored secret does not open with this master key (wrong key, or the value was altered or moved)")]
    WrongKey,
}

/// Seals and opens values under one master key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(…)")
    }
}

impl Sealer {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)),
        }
    }

    /// Is `stored` a sealed value (rather than a plaintext left by an older version)?
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// Seals `plaintext` for the row named by `context`, under a fresh nonce.
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encrypts any message shorter than 64 GiB");
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", BASE64.encode(out))
    }

    /// Opens a value sealed by `seal` for the same `context`.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, OpenError> {
        let encoded = stored.strip_prefix(PREFIX).ok_or(OpenError::NotSealed)?;
        let bytes = BASE64.decode(encoded).map_err(|_| OpenError::Malformed)?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(OpenError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| OpenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&MasterKey::generate())
    }

    #[test]
    fn sealed_values_open_and_hide_the_plaintext() {
        let s = sealer();
        let sealed = s.seal("endpoints.secret:ep_1", "a-partner-defined-secret-0001");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("a-partner-defined-secret-0001"));
        assert_eq!(
            s.open("endpoints.secret:ep_1", &sealed).unwrap(),
            "a-partner-defined-secret-0001"
        );
        assert_eq!(s.open("ctx", &s.seal("ctx", "")).unwrap(), "");
    }

    #[test]
    fn every_seal_uses_a_new_nonce() {
        let s = sealer();
        assert_ne!(s.seal("c", "same"), s.seal("c", "same"));
    }

    #[test]
    fn another_key_another_row_or_an_altered_value_does_not_open() {
        let s = sealer();
        let sealed = s.seal("endpoints.secret:ep_1", "secret-value-0001");
        assert_eq!(
            sealer().open("endpoints.secret:ep_1", &sealed),
            Err(OpenError::WrongKey)
        );
        assert_eq!(s.open("endpoints.secret:ep_2", &sealed), Err(OpenError::WrongKey));
        let mut bytes = BASE64.decode(&sealed[3..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("v1:{}", BASE64.encode(bytes));
        assert_eq!(s.open("endpoints.secret:ep_1", &altered), Err(OpenError::WrongKey));
        assert_eq!(s.open("c", "plaintext"), Err(OpenError::NotSealed));
        assert_eq!(s.open("c", "v1:%%%"), Err(OpenError::Malformed));
        assert_eq!(s.open("c", "v1:AAAA"), Err(OpenError::Malformed));
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_only() {
        let key = MasterKey::generate();
        let text = key.to_base64();
        let again = MasterKey::from_base64(&format!("  {text}\n")).unwrap();
        let sealed = Sealer::new(&key).seal("c", "x");
        assert_eq!(Sealer::new(&again).open("c", &sealed).unwrap(), "x");
        assert!(MasterKey::from_base64(text.trim_end_matches('=')).is_ok());
        assert!(MasterKey::from_base64("").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&BASE64.encode([7u8; 16]))
            .unwrap_err()
            .contains("16 bytes"));
        assert!(!format!("{key:?}").contains(&text));
    }
}
