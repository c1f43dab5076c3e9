//! The sample deliveries in `webhooks/payloads/` through signature verification and parsing,
//! as the daemon's handler uses them; and the HTTP surface through the router with `oneshot`:
//! hostile headers, odd annotations and commit ids, and what the server state shows of secrets.
use crate::common;
use crate::common::fake_cluster;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::capture_logs;
use fake_cluster::FakeCluster;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::BodyExt;
use sha2::Sha256;
use storesync::apply::{Applier, Helm};
use storesync::daemon::{
    CommitKind, CommitRecord, Context, Reason, ResultState, Settings, StoreState, StoreView, SyncRecord,
};
use storesync::metrics::Metrics;
use storesync::report::StatusReporter;
use storesync::report::github::GitHubNotifier;
use storesync::secret::Secret;
use storesync::server::webhook::{Deliveries, WebhookAction, parse, verify_signature};
use storesync::server::{self, HttpLimits, ServerState};
use storesync::source::tracked::TrackedRepo;
use storesync::source::{Credentials, RepoLocation, SourceOptions};
use tower::ServiceExt;

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
                reopened: false,
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
                reopened: false,
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
                reopened: false,
            },
        ),
        (
            "pull_request",
            "pull_request-closed.json",
            WebhookAction::Closed {
                number: 42,
                merged: true,
            },
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
const SHA: &str = "c2f8e5a91d3b4c7e6f0a1b2c3d4e5f6a7b8c9d0e";

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
    let helm = Helm {
        binary: "helm".into(),
        charts_dir: "charts".into(),
        timeout: Duration::from_secs(60),
        allowed_chart_prefixes: Vec::new(),
    };
    let applier = Applier {
        concurrency: 1,
        dry_run: true,
        ..Applier::new(cluster.client(), helm)
    };
    let settings = Settings {
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
    };
    let statuses = Some(StatusReporter::spawn(Arc::new(notifier), Arc::new(|_| {})));
    let ctx = Arc::new(Context::new(
        applier,
        Arc::new(Metrics::default()),
        statuses,
        settings,
    ));
    Arc::new(ServerState::new(
        ctx,
        Some(Secret::new(String::from_utf8(SECRET.to_vec()).unwrap())),
        Some(REPO.into()),
        HttpLimits::default(),
    ))
}

async fn send(state: &Arc<ServerState>, request: Request<Body>) -> (StatusCode, String) {
    let response = server::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(state: &Arc<ServerState>, path: &str) -> (StatusCode, String) {
    send(state, Request::get(path).body(Body::empty()).unwrap()).await
}

/// A delivery of `body` signed with the right secret (or not), with the given headers.
fn delivery(event: &[u8], delivery: Option<&[u8]>, body: &[u8], signed: bool) -> Request<Body> {
    let mut request = Request::post("/webhooks/github")
        .header("content-type", "application/json")
        .header("x-github-event", event);
    if let Some(id) = delivery {
        request = request.header("x-github-delivery", id);
    }
    if signed {
        request = request.header("x-hub-signature-256", sign(SECRET, body));
    }
    request.body(Body::from(body.to_vec())).unwrap()
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

#[tokio::test]
async fn delivery_ids_are_bounded() {
    let state = server_state();
    let body = payload("push.json");
    let long = "a".repeat(65);
    for id in [
        long.as_bytes(),
        b"../../etc",
        b"id_with_underscore",
        b"a b",
        b"",
        "é".as_bytes(),
    ] {
        for signed in [true, false] {
            let (code, text) = send(&state, delivery(b"push", Some(id), &body, signed)).await;
            assert_eq!(
                code,
                StatusCode::BAD_REQUEST,
                "{}: {text}",
                String::from_utf8_lossy(id)
            );
            assert!(text.contains("X-GitHub-Delivery"), "{text}");
        }
    }
    assert!(
        format!("{:?}", state.deliveries).contains("remembered: 0"),
        "nothing was remembered"
    );
    // A GUID, and the longest id accepted; a replay of it does nothing.
    let longest = "A-".repeat(32);
    for id in ["72d3162e-cc78-11e3-81ab-4c9367dc0958", longest.as_str()] {
        let (code, _) = send(&state, delivery(b"push", Some(id.as_bytes()), &body, true)).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{id}");
        let (code, _) = send(&state, delivery(b"push", Some(id.as_bytes()), &body, true)).await;
        assert_eq!(code, StatusCode::OK, "a replay of {id}");
    }
}

#[tokio::test]
async fn logs_carry_bounded_labels_not_header_values() {
    let state = server_state();
    let body = payload("push.json");
    let huge_event = "x".repeat(300 * 1024);
    let ((code, _), logs) = capture_logs(send(
        &state,
        delivery(huge_event.as_bytes(), Some(b"d1"), &body, false),
    ))
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let start: String = logs.chars().take(300).collect();
    assert!(logs.len() < 1024, "{} bytes of logs: {start}…", logs.len());
    assert!(
        logs.contains("missing or wrong signature") && logs.contains("event=\"other\""),
        "{logs}"
    );

    let ((code, _), logs) = capture_logs(send(
        &state,
        delivery(b"push=forged log line", Some(b"d2"), &body, false),
    ))
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(
        !logs.contains("forged") && logs.contains("event=\"other\""),
        "{logs}"
    );

    let ((code, _), logs) = capture_logs(send(&state, delivery(b"issues", Some(b"d3"), b"{}", true))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert!(
        logs.contains("webhook ignored") && logs.contains("event=\"other\""),
        "{logs}"
    );
    assert!(!logs.contains("issues"), "{logs}");
    let metrics = get(&state, "/metrics").await.1;
    assert!(
        metrics.contains("storesync_webhook_deliveries_total{event=\"other\",result=\"unauthorized\"} 2"),
        "{metrics}"
    );
}

fn store_with_commit(name: &str, commit: &str) -> StoreView {
    StoreView {
        name: name.into(),
        owner: Some("team-a".into()),
        engine: Some("medusa".into()),
        plan: Some("small".into()),
        domain: None,
        state: StoreState::InSync,
        commit: Some(commit.into()),
        release: None,
        ready: None,
        last_error: None,
        health: None,
        health_reason: None,
        retired_at: None,
        purge_at: None,
        rollout: None,
    }
}

#[tokio::test]
async fn odd_commit_annotations_never_break_the_status_page() {
    let state = server_state();
    let odd = [
        "0123456789aé", // the 12th byte is inside a character
        "ééééééééééééééééééééé",
        "abc",
        "",
        "<script>alert(1)</script>0123456789",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", // 40 characters, not hex
    ];
    let long = "f".repeat(100_000);
    let stores: Vec<StoreView> = odd
        .iter()
        .chain([&long.as_str()])
        .enumerate()
        .map(|(i, c)| store_with_commit(&format!("store-{i}"), c))
        .chain([store_with_commit("upper", &SHA.to_uppercase())])
        .collect();
    state.ctx.state.set_stores(stores);
    for sha in [Some("0123456789aé".to_string()), Some(String::new()), None] {
        state.ctx.state.record_sync(SyncRecord {
            sha,
            reason: Reason::Poll,
            started: 0,
            seconds: 0.0,
            state: ResultState::Success,
            description: "ok".into(),
            non_fast_forward: false,
        });
    }
    let (code, page) = get(&state, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(page.contains("<code>0123456789aé</code>"), "shown, not linked");
    assert!(!page.contains("<script>"), "escaped");
    assert!(!page.contains("/commits/zzz"), "only commit ids are linked");
    assert!(!page.contains(&long[..41]), "a long annotation is cut");
    assert!(
        page.contains(&format!(
            "<a href=\"/commits/{SHA}\"><code>C2F8E5A91D3B</code></a>"
        )),
        "an uppercase id links to its lowercase page"
    );
}

fn commit_record(sha: &str) -> CommitRecord {
    CommitRecord {
        sha: sha.into(),
        kind: CommitKind::Sync,
        pull_request: None,
        finished: 0,
        state: ResultState::Success,
        description: "applied 1, pruned 0, unchanged 0".into(),
        plan: String::new(),
        report: None,
        errors: Vec::new(),
    }
}

#[tokio::test]
async fn commit_pages_take_ids_in_either_case_and_refuse_anything_else() {
    let state = server_state();
    state.ctx.state.record_commit(commit_record(SHA));
    for path in [SHA.to_string(), SHA.to_uppercase(), SHA[..7].to_uppercase()] {
        let (code, page) = get(&state, &format!("/commits/{path}")).await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert!(page.contains("applied 1, pruned 0"), "{page}");
    }
    let unknown = "A".repeat(40);
    assert_eq!(
        get(&state, &format!("/commits/{unknown}")).await.0,
        StatusCode::NOT_FOUND
    );
    let too_long = "a".repeat(65);
    for bad in [
        "%C3%A9%C3%A9%C3%A9%C3%A9",
        "abc",
        "0123456789aé",
        "g123456",
        too_long.as_str(),
        "%00%00%00%00%00%00%00",
    ] {
        assert_eq!(
            get(&state, &format!("/commits/{bad}")).await.0,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn samples_through_the_router_answer_as_the_readme_says() {
    let state = server_state();
    let cases = [
        ("ping", "ping.json", StatusCode::OK),
        ("push", "push.json", StatusCode::ACCEPTED),
        ("push", "push-tag.json", StatusCode::NO_CONTENT),
        ("push", "push-other-branch.json", StatusCode::NO_CONTENT),
        ("push", "push-branch-deleted.json", StatusCode::NO_CONTENT),
        ("pull_request", "pull_request-opened.json", StatusCode::ACCEPTED),
        ("pull_request", "pull_request-closed.json", StatusCode::ACCEPTED),
        ("issues", "ping.json", StatusCode::NO_CONTENT),
    ];
    for (i, (event, name, expected)) in cases.into_iter().enumerate() {
        let id = format!("sample-{i}");
        let request = delivery(event.as_bytes(), Some(id.as_bytes()), &payload(name), true);
        assert_eq!(send(&state, request).await.0, expected, "{event} {name}");
    }
    // The README's table of answers: every ignored delivery is a 204.
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("webhooks/README.md"))
            .unwrap();
    let ignored: Vec<&str> = readme.lines().filter(|l| l.ends_with(", ignored |")).collect();
    assert_eq!(ignored.len(), 3, "{readme}");
    assert!(
        ignored.iter().all(|l| l.ends_with("| 204, ignored |")),
        "{ignored:#?}"
    );
}

#[tokio::test]
async fn a_signed_delivery_without_an_id_is_refused_every_time() {
    let state = server_state();
    let body = payload("pull_request-closed.json");
    // The same signed `closed`, replayed without `X-GitHub-Delivery`: refused before any work.
    for _ in 0..3 {
        let (code, text) = send(&state, delivery(b"pull_request", None, &body, true)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("missing X-GitHub-Delivery"), "{text}");
    }
    let (code, _) = send(&state, delivery(b"push", None, &payload("push.json"), false)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "unsigned: refused all the same");
    assert!(
        state
            .ctx
            .plans
            .start(&storesync::daemon::PlanTrigger {
                number: 42,
                sha: "7f3e2d1c0b9a8f7e6d5c4b3a291807f6e5d4c3b2".into(),
                from_fork: false,
                reopened: false,
            })
            .is_some(),
        "the refused close was not taken"
    );
    let metrics = get(&state, "/metrics").await.1;
    assert!(
        metrics
            .contains("storesync_webhook_deliveries_total{event=\"pull_request\",result=\"bad_request\"} 3"),
        "{metrics}"
    );
    // With an id it is taken once; its replay does nothing.
    let (code, _) = send(&state, delivery(b"pull_request", Some(b"c-1"), &body, true)).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (code, _) = send(&state, delivery(b"pull_request", Some(b"c-1"), &body, true)).await;
    assert_eq!(code, StatusCode::OK);
}
