//! GitHub webhook deliveries: the shared secret, its signature, and push and pull_request bodies.

use hmac::{KeyInit, Mac};

pub const SECRET: &str = "It's a Secret to Everybody";

pub fn sign(body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn push_body(branch: &str, sha: &str) -> String {
    serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "0000000000000000000000000000000000000001",
        "after": sha,
        "created": false, "deleted": false, "forced": false,
        "repository": {"full_name": "acme-platform/stores", "name": "stores"},
        "commits": [], "head_commit": {"id": sha},
    })
    .to_string()
}

pub fn pr_body(number: u64, sha: &str, base: &str, base_sha: &str) -> String {
    serde_json::json!({
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"sha": sha, "ref": "add-store", "repo": {"full_name": "acme-platform/stores"}},
            "base": {"ref": base, "sha": base_sha, "repo": {"full_name": "acme-platform/stores"}},
        },
        "repository": {"full_name": "acme-platform/stores"},
    })
    .to_string()
}
