//! The endpoint secret in its two spellings: the raw string ramphook stores,
//! and `whsec_` + base64 as Standard Webhooks libraries take it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// The secret as Standard Webhooks libraries take it: `whsec_` + base64(secret).
///
/// ```
/// assert_eq!(ramphook_signature::whsec(b"secret"), "whsec_c2VjcmV0");
/// ```
pub fn whsec(secret: &[u8]) -> String {
    format!("whsec_{}", BASE64.encode(secret))
}

/// The HMAC key for a secret given in either spelling: `whsec_<base64>` is
/// decoded, anything else is taken as its UTF-8 bytes (as ramphook does).
///
/// A raw secret that itself starts with `whsec_` followed by valid base64 is
/// read as the encoded form; ramphook-generated secrets never do.
///
/// ```
/// use ramphook_signature::{decode_secret, whsec};
/// assert_eq!(decode_secret("a-partner-defined-secret-0001"), b"a-partner-defined-secret-0001");
/// assert_eq!(decode_secret(&whsec(b"a-partner-defined-secret-0001")), b"a-partner-defined-secret-0001");
/// ```
pub fn decode_secret(text: &str) -> Vec<u8> {
    text.strip_prefix("whsec_")
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_give_the_same_key_and_bad_base64_is_taken_literally() {
        let raw = "spaces and ünïcödé in the secret ✓";
        assert_eq!(decode_secret(raw), raw.as_bytes());
        assert_eq!(decode_secret(&whsec(raw.as_bytes())), raw.as_bytes());
        assert_eq!(decode_secret("whsec_not base64!"), b"whsec_not base64!");
    }
}
