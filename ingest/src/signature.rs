//! Webhook signatures: HMAC-SHA256 of the raw body, compared in constant time, against
//! every configured secret (so a secret can be rotated without dropping deliveries).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Why a delivery's signature was not accepted (each answers 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing signature header")]
    Missing,
    #[error("signature header is not `sha256=<hex>`")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies a `sha256=<hex>` header value over `body` with any of `secrets`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_digest = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let matches = secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// `sha256=<hex>` for `body`: what a sender puts in the header (tests and the benchmark).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GITHUB_VECTOR: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    #[test]
    fn githubs_documented_test_vector() {
        let secret = "It's a Secret to Everybody";
        assert_eq!(sign(secret, b"Hello, World!"), GITHUB_VECTOR);
        assert_eq!(
            verify(Some(GITHUB_VECTOR), b"Hello, World!", &secrets(&[secret])),
            Ok(())
        );
    }

    #[test]
    fn any_configured_secret_verifies() {
        let body = b"{}";
        let header = sign("new", body);
        assert_eq!(
            verify(Some(&header), body, &secrets(&["old", "new"])),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let all = secrets(&["It's a Secret to Everybody"]);
        assert_eq!(
            verify(Some(GITHUB_VECTOR), b"Hello, World?", &all),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(GITHUB_VECTOR), b"Hello, World!", &secrets(&["wrong"])),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(None, b"x", &all), Err(SignatureError::Missing));
        assert_eq!(
            verify(Some("sha1=abc"), b"x", &all),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some("sha256=zz"), b"x", &all),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some("sha256=abcd"), b"x", &all),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(GITHUB_VECTOR), b"Hello, World!", &[]),
            Err(SignatureError::Mismatch)
        );
    }
}
