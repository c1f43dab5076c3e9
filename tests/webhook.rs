//! The sample deliveries in `webhooks/payloads/` through signature verification and parsing,
//! as the daemon's handler uses them; and what the daemon's server state shows of secrets.
#[path = "common/fake_cluster.rs"]
mod fake_cluster;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fake_cluster::FakeCluster;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use storesync::apply::{Applier, Helm};
use storesync::daemon::{Context, DaemonState, PlanQueue, Settings, SyncQueue};
use storesync::metrics::Metrics;
use storesync::report::StatusReporter;
use storesync::report::github::GitHubNotifier;
use storesync::secret::Secret;
use storesync::server::ServerState;
use storesync::server::webhook::{Deliveries, WebhookAction, parse, verify_signature};
use storesync::source::tracked::TrackedRepo;
use storesync::source::{Credentials, RepoLocation, SourceOptions};

const SECRET: &[u8] = b"5f1c0e8a2b7d4c9e6f3a1b8d0c7e2f4a9b6d3c1e8f0a7b5d2c9e4f6a1b3d8c0e";
const REPO: &str = "acme-platform/stores";

fn payload(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("webhooks/payloads")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What GitHub puts in `X-Hub-Signature-256`.
fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies like the handler, then parses for the tracked branch `main`.
fn deliver(event: &str, name: &str) -> WebhookAction {
    let body = payload(name);
    let signature = sign(SECRET, &body);
    assert!(
        verify_signature(SECRET, &body, Some(&signature)),
        "{name}: signature"
    );
    parse(event, &body, "main", Some(REPO)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn samples_parse_to_their_actions() {
    let cases = [
        ("ping", "ping.json", WebhookAction::Ping),
        (
            "push",
            "push.json",
            WebhookAction::Sync {
                sha: "c2f8e5a91d3b4c7e6f0a1b2c3d4e5f6a7b8c9d0e".into(),
            },
        ),
        ("push", "push-tag.json", WebhookAction::Ignore("tag push")),
        (
            "push",
            "push-other-branch.json",
            WebhookAction::Ignore("push to another branch"),
        ),
        (
            "push",
            "push-branch-deleted.json",
            WebhookAction::Ignore("branch deleted"),
        ),
        (
            "pull_request",
            "pull_request-opened.json",
            WebhookAction::Plan {
                number: 42,
                sha: "7f3e2d1c0b9a8f7e6d5c4b3a291807f6e5d4c3b2".into(),
                head_ref: "store/lumen-coffee".into(),
                from_fork: false,
            },
        ),
        (
            "pull_request",
            "pull_request-synchronize.json",
            WebhookAction::Plan {
                number: 42,
                sha: "a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0".into(),
                head_ref: "store/lumen-coffee".into(),
                from_fork: false,
            },
        ),
        (
            "pull_request",
            "pull_request-fork.json",
            WebhookAction::Plan {
                number: 43,
                sha: "3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d".into(),
                head_ref: "main".into(),
                from_fork: true,
            },
        ),
        (
            "pull_request",
            "pull_request-closed.json",
            WebhookAction::Ignore("pull_request closed"),
        ),
    ];
    for (event, name, expected) in cases {
        assert_eq!(deliver(event, name), expected, "{name}");
    }
}

#[test]
fn fork_is_detected_without_a_configured_repository() {
    let body = payload("pull_request-fork.json");
    let Ok(WebhookAction::Plan { from_fork, .. }) = parse("pull_request", &body, "main", None) else {
        panic!("expected a plan");
    };
    assert!(from_fork);
    let body = payload("pull_request-opened.json");
    let Ok(WebhookAction::Plan { from_fork, .. }) = parse("pull_request", &body, "main", None) else {
        panic!("expected a plan");
    };
    assert!(!from_fork);
}

#[test]
fn samples_for_another_repository_or_branch_are_ignored() {
    let body = payload("push.json");
    assert_eq!(
        parse("push", &body, "main", Some("acme-platform/other")).unwrap(),
        WebhookAction::Ignore("event for another repository")
    );
    assert_eq!(
        parse("push", &body, "production", Some(REPO)).unwrap(),
        WebhookAction::Ignore("push to another branch")
    );
    // The same body under an event storesync does not handle.
    assert_eq!(
        parse("issues", &body, "main", Some(REPO)).unwrap(),
        WebhookAction::Ignore("event not handled")
    );
}

#[test]
fn a_tampered_or_unsigned_sample_is_refused() {
    let body = payload("push.json");
    let signature = sign(SECRET, &body);

    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'c').unwrap();
    tampered[at] = b'd';
    assert!(!verify_signature(SECRET, &tampered, Some(&signature)));
    assert!(!verify_signature(b"another secret", &body, Some(&signature)));
    assert!(!verify_signature(SECRET, &body, None));
    // The legacy SHA-1 header is not accepted in place of SHA-256.
    let sha1_style = signature.replacen("sha256=", "sha1=", 1);
    assert!(!verify_signature(SECRET, &body, Some(&sha1_style)));
}

#[test]
fn a_replayed_delivery_is_seen_once() {
    let deliveries = Deliveries::default();
    let id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    assert!(deliveries.first_time(id));
    assert!(!deliveries.first_time(id));
    assert!(deliveries.first_time("72d3162e-cc78-11e3-81ab-4c9367dc0959"));
}

const GITHUB_TOKEN: &str = "ghp_canary0123456789";
const GIT_TOKEN: &str = "git-canary-0123456789";
const GIT_PASSWORD: &str = "p%40ss-canary";

/// The daemon's server state as `serve` builds it, with every kind of secret in it; nothing runs
/// in the background. Needs a tokio runtime (the GitHub client starts on it).
fn server_state() -> Arc<ServerState> {
    let cluster = FakeCluster::new(std::env::temp_dir().join("storesync-no-releases"));
    let notifier = GitHubNotifier::new(
        "acme-platform",
        "stores",
        GITHUB_TOKEN.into(),
        Some("http://127.0.0.1:9"),
    )
    .expect("notifier");
    let ctx = Arc::new(Context {
        applier: Applier {
            client: cluster.client(),
            helm: Helm {
                binary: "helm".into(),
                charts_dir: "charts".into(),
                timeout: Duration::from_secs(60),
            },
            concurrency: 1,
            dry_run: true,
            on_helm: None,
        },
        metrics: Arc::new(Metrics::default()),
        statuses: Some(StatusReporter::spawn(Arc::new(notifier), Arc::new(|_| {}))),
        state: DaemonState::default(),
        settings: Settings {
            tracked: TrackedRepo {
                location: RepoLocation::Url(format!(
                    "https://deploy:{GIT_PASSWORD}@github.com/acme/stores.git"
                )),
                branch: "main".into(),
                options: SourceOptions {
                    credentials: Credentials {
                        https_token: Some(GIT_TOKEN.into()),
                        ..Credentials::default()
                    },
                    ..SourceOptions::default()
                },
            },
            interval: Duration::from_secs(3600),
            external_url: None,
            plan_workers: 1,
        },
        syncs: SyncQueue::default(),
        plans: PlanQueue::new(4),
    });
    Arc::new(ServerState {
        ctx,
        webhook_secret: Some(Secret::new(String::from_utf8(SECRET.to_vec()).unwrap())),
        github_repo: Some(REPO.into()),
        deliveries: Deliveries::new(16),
    })
}

#[tokio::test]
async fn server_state_debug_shows_no_secret() {
    let state = server_state();
    let debug = format!("{state:?} {state:#?}");
    for secret in [
        GITHUB_TOKEN,
        GIT_TOKEN,
        GIT_PASSWORD,
        std::str::from_utf8(SECRET).unwrap(),
    ] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("webhook_secret: Some(***)"), "{debug}");
    assert!(debug.contains("https_token: Some(***)"), "{debug}");
    assert!(debug.contains("https://github.com/acme/stores.git"), "{debug}");
}
