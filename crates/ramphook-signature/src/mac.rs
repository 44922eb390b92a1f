//! The one primitive both schemes share: HMAC-SHA256 over a few byte slices.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256(key, parts concatenated), without building the concatenation.
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}
