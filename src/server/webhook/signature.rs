//! The `X-Hub-Signature-256` check: HMAC-SHA256 of the raw body with the webhook secret.
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Whether `value` has the shape of a signature header, `sha256=` and 64 hex digits: checked
/// before the body is read, so an unsigned request costs nothing.
pub fn is_signature_header(value: &str) -> bool {
    value
        .strip_prefix("sha256=")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// HMAC-SHA256 of `body` with `secret`, compared in constant time with the `X-Hub-Signature-256`
/// header value (`sha256=<hex>`). A missing or malformed header is false, and so is an empty
/// secret: anyone could sign with it.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(signature) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(signature) = hex::decode(signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // verify_slice compares in constant time and refuses a signature of the wrong length.
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn github_documented_test_vector() {
        // From GitHub's "Validating webhook deliveries".
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_signature(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            Some(header)
        ));
    }

    #[test]
    fn signature_good_bad_missing_malformed() {
        let secret = b"s3cret";
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let good = sign(secret, body);
        assert!(verify_signature(secret, body, Some(&good)));
        assert!(verify_signature(
            secret,
            body,
            Some(&good.to_uppercase().replace("SHA256=", "sha256="))
        ));

        // Wrong secret, tampered body.
        assert!(!verify_signature(b"other", body, Some(&good)));
        assert!(!verify_signature(secret, b"{\"zen\":\"tampered\"}", Some(&good)));
        // Missing.
        assert!(!verify_signature(secret, body, None));
        // Malformed: no prefix, the SHA-1 header's prefix, not hex, empty.
        let hex_part = good.strip_prefix("sha256=").unwrap();
        assert!(!verify_signature(secret, body, Some(hex_part)));
        assert!(!verify_signature(secret, body, Some(&format!("sha1={hex_part}"))));
        assert!(!verify_signature(secret, body, Some("sha256=zz")));
        assert!(!verify_signature(secret, body, Some("sha256=")));
        assert!(!verify_signature(secret, body, Some("")));
        // Wrong length: a prefix of the right signature, or one byte too many.
        assert!(!verify_signature(secret, body, Some(&good[..good.len() - 2])));
        assert!(!verify_signature(secret, body, Some(&format!("{good}00"))));
    }

    #[test]
    fn empty_secret_never_verifies() {
        let body = b"{}";
        assert!(!verify_signature(b"", body, Some(&sign(b"", body))));
    }
}
