//! Commit statuses through octocrab to a local fake GitHub: what is sent, retries and their
//! limits, truncation, and that the token shows nowhere but in the Authorization header.
use crate::common::fake_github;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_github::FakeGitHub;
use storesync::report::{
    CommitStatus, GitHubNotifier, Notifier, PLAN_CONTEXT, ReporterOptions, SYNC_CONTEXT, StatusReporter,
    StatusState,
};
use storesync::secret::RotatingSecret;

const OWNER: &str = "acme-platform";
const REPO: &str = "stores";
const TOKEN: &str = "github_pat_11AAAAAAA0test0token0never0logged";
const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
const PR_SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
const WAIT: Duration = Duration::from_secs(10);

fn notifier(github: &FakeGitHub) -> Arc<GitHubNotifier> {
    Arc::new(GitHubNotifier::new(OWNER, REPO, TOKEN.into(), Some(&github.url())).expect("notifier"))
}

/// A reporter with short backoffs, and the outcome labels it reported.
fn reporter(notifier: Arc<dyn Notifier>) -> (StatusReporter, Arc<Mutex<Vec<&'static str>>>) {
    let labels = Arc::new(Mutex::new(Vec::new()));
    let sink = labels.clone();
    let options = ReporterOptions {
        first_backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let reporter =
        StatusReporter::spawn_with(notifier, Arc::new(move |l| sink.lock().unwrap().push(l)), options);
    (reporter, labels)
}

fn status(sha: &str, context: &'static str, state: StatusState, description: &str) -> CommitStatus {
    CommitStatus::new(sha, context, state, description, None)
}

#[tokio::test]
async fn statuses_arrive_in_order_with_their_fields() {
    let github = FakeGitHub::start().await;
    let (reporter, labels) = reporter(notifier(&github));

    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));
    reporter.send(status(
        SHA,
        SYNC_CONTEXT,
        StatusState::Success,
        "applied 2, pruned 1, unchanged 40",
    ));
    reporter.send(CommitStatus::new(
        PR_SHA,
        PLAN_CONTEXT,
        StatusState::Failure,
        "stores/acme.yaml:3:7: unknown engine \"drupal\"",
        Some(format!("https://storesync.example.com/commits/{PR_SHA}")),
    ));
    assert!(reporter.flush(WAIT).await);

    let got = github.statuses();
    let summary: Vec<_> = got
        .iter()
        .map(|s| {
            (
                s.sha.as_str(),
                s.context.as_deref(),
                s.state.as_str(),
                s.description.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (SHA, Some("storesync/sync"), "pending", Some("syncing")),
            (
                SHA,
                Some("storesync/sync"),
                "success",
                Some("applied 2, pruned 1, unchanged 40")
            ),
            (
                PR_SHA,
                Some("storesync/plan"),
                "failure",
                Some("stores/acme.yaml:3:7: unknown engine \"drupal\"")
            ),
        ]
    );
    assert!(got.iter().all(|s| s.owner == OWNER && s.repo == REPO));
    assert_eq!(got[0].target_url, None);
    assert_eq!(
        got[2].target_url.as_deref(),
        Some(format!("https://storesync.example.com/commits/{PR_SHA}").as_str())
    );
    assert_eq!(*labels.lock().unwrap(), ["success", "success", "success"]);
    assert_eq!(github.requests(), 3);
    assert!(github.unexpected().is_empty(), "{:?}", github.unexpected());
}

#[tokio::test]
async fn a_server_error_is_retried_then_succeeds() {
    let github = FakeGitHub::start().await;
    github.fail_next(2, 502);
    let (reporter, labels) = reporter(notifier(&github));

    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));
    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Success, "applied 1"));
    assert!(reporter.flush(WAIT).await);

    assert_eq!(github.requests(), 4, "two failures, then one request per status");
    let states: Vec<_> = github.statuses().into_iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        ["pending", "success"],
        "the retried pending still lands first"
    );
    assert_eq!(*labels.lock().unwrap(), ["retried_success", "success"]);
}

#[tokio::test]
async fn a_validation_error_is_not_retried() {
    let github = FakeGitHub::start().await;
    github.fail_next(1, 422);
    let (reporter, labels) = reporter(notifier(&github));

    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));
    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Success, "applied 1"));
    assert!(reporter.flush(WAIT).await);

    assert_eq!(github.requests(), 2);
    assert_eq!(*labels.lock().unwrap(), ["failed", "success"]);
    let states: Vec<_> = github.statuses().into_iter().map(|s| s.state).collect();
    assert_eq!(states, ["success"]);
}

#[tokio::test]
async fn a_missing_permission_is_not_retried_but_a_rate_limit_is() {
    let github = FakeGitHub::start().await;
    let (reporter, labels) = reporter(notifier(&github));

    // A plain 403: the token lacks "Commit statuses: write".
    github.fail_next(1, 403);
    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));
    assert!(reporter.flush(WAIT).await);
    assert_eq!(github.requests(), 1);

    // A 403 with the primary rate limit exhausted waits for the reset, then retries.
    github.exhaust_rate_limit_next(1, 1);
    let started = Instant::now();
    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Success, "applied 1"));
    assert!(reporter.flush(WAIT).await);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(github.requests(), 3);
    assert_eq!(*labels.lock().unwrap(), ["failed", "retried_success"]);
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let github = FakeGitHub::start().await;
    let (reporter, labels) = reporter(notifier(&github));

    github.rate_limit_next(1, 1);
    let started = Instant::now();
    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));
    assert!(reporter.flush(WAIT).await);
    let took = started.elapsed();
    // Retry-After: 1 overrides the 10 ms backoff.
    assert!(took >= Duration::from_secs(1), "{took:?}");

    github.rate_limit_next(1, 0);
    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Success, "applied 1"));
    assert!(reporter.flush(WAIT).await);
    assert_eq!(github.requests(), 4);
    assert_eq!(*labels.lock().unwrap(), ["retried_success", "retried_success"]);
}

#[tokio::test]
async fn gives_up_after_the_last_attempt() {
    let github = FakeGitHub::start().await;
    github.fail_next(100, 500);
    let (reporter, labels) = reporter(notifier(&github));

    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));
    assert!(reporter.flush(WAIT).await);
    assert_eq!(github.requests(), ReporterOptions::default().attempts as usize);
    assert_eq!(*labels.lock().unwrap(), ["failed"]);
    assert!(github.statuses().is_empty());
}

#[tokio::test]
async fn flush_gives_up_at_its_timeout() {
    let github = FakeGitHub::start().await;
    github.rate_limit_next(1, 5);
    let (reporter, _labels) = reporter(notifier(&github));

    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));
    let started = Instant::now();
    assert!(!reporter.flush(Duration::from_millis(200)).await);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn long_descriptions_are_truncated_to_what_github_accepts() {
    let github = FakeGitHub::start().await;
    let (reporter, labels) = reporter(notifier(&github));

    let long = format!(
        "3 failed; applied 2, pruned 0, unchanged 40; acme: {}",
        "helm timed out ".repeat(20)
    );
    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Failure, &long));
    assert!(reporter.flush(WAIT).await);

    assert_eq!(
        *labels.lock().unwrap(),
        ["success"],
        "the fake refuses > 140 characters"
    );
    let description = github.statuses()[0].description.clone().unwrap();
    assert_eq!(description.chars().count(), 140);
    assert!(description.starts_with("3 failed; applied 2"), "{description}");
    assert!(description.ends_with('…'), "{description}");
}

#[tokio::test]
async fn the_token_is_a_bearer_header_and_nowhere_else() {
    let github = FakeGitHub::start().await;
    let notifier = notifier(&github);

    notifier
        .post(&status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"))
        .await
        .expect("posted");
    let got = github.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    let debug = format!("{notifier:?}");
    assert!(
        !debug.contains(TOKEN) && !debug.contains("github_pat_"),
        "{debug}"
    );
    assert!(debug.contains(OWNER) && debug.contains(&github.url()), "{debug}");

    // Errors carry GitHub's answer, not the request.
    github.fail_next(1, 403);
    let err = notifier
        .post(&status(SHA, SYNC_CONTEXT, StatusState::Success, "applied 1"))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "rejected");
    assert!(!err.is_retryable());
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(TOKEN) && !text.contains("github_pat_"), "{text}");
    }
}

#[tokio::test]
async fn errors_are_classified_from_github_answers() {
    let github = FakeGitHub::start().await;
    let notifier = notifier(&github);
    let post = || notifier.post(&status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));

    github.fail_next(1, 503);
    let err = post().await.unwrap_err();
    assert_eq!((err.metric_label(), err.is_retryable()), ("server", true));
    assert!(err.to_string().contains("503"), "{err}");

    github.rate_limit_next(1, 7);
    let err = post().await.unwrap_err();
    assert_eq!((err.metric_label(), err.is_retryable()), ("rate_limited", true));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

    github.fail_next_with(
        1,
        403,
        &[("x-ratelimit-remaining", "12")],
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    );
    let err = post().await.unwrap_err();
    assert_eq!((err.metric_label(), err.is_retryable()), ("rate_limited", true));

    github.fail_next(1, 404);
    let err = post().await.unwrap_err();
    assert_eq!((err.metric_label(), err.is_retryable()), ("rejected", false));

    // GitHub's validation details reach the message.
    let long = "x".repeat(141);
    let mut invalid = status(SHA, SYNC_CONTEXT, StatusState::Pending, "");
    invalid.description = long; // bypasses the constructor's truncation
    let err = notifier.post(&invalid).await.unwrap_err();
    assert_eq!(err.metric_label(), "rejected");
    assert!(err.to_string().contains("description is too long"), "{err}");
}

#[tokio::test]
async fn github_enterprise_api_path_is_kept() {
    let github = FakeGitHub::start().await;
    let api_url = format!("{}/api/v3/", github.url());
    let notifier = GitHubNotifier::new(OWNER, REPO, TOKEN.into(), Some(&api_url)).expect("notifier");

    notifier
        .post(&status(SHA, PLAN_CONTEXT, StatusState::Success, "1 to create"))
        .await
        .expect("posted");
    let got = github.wait_for(1, WAIT).await;
    assert_eq!((got[0].owner.as_str(), got[0].repo.as_str()), (OWNER, REPO));
    assert!(github.unexpected().is_empty(), "{:?}", github.unexpected());
}

#[tokio::test]
async fn an_unreachable_github_is_retried_then_given_up() {
    // A port that was free a moment ago: connections are refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let notifier = Arc::new(GitHubNotifier::new(OWNER, REPO, TOKEN.into(), Some(&url)).expect("notifier"));

    let err = notifier
        .post(&status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"))
        .await
        .unwrap_err();
    assert_eq!((err.metric_label(), err.is_retryable()), ("transport", true));
    assert!(!format!("{err} {err:?}").contains(TOKEN));

    let (reporter, labels) = reporter(notifier);
    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));
    assert!(reporter.flush(WAIT).await);
    assert_eq!(*labels.lock().unwrap(), ["failed"]);
}

#[tokio::test]
async fn a_rotated_token_file_is_sent_with_the_next_status() {
    let github = FakeGitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("github-token");
    std::fs::write(&file, "ghs_installation0token0first\n").unwrap();
    let token = RotatingSecret::from_env_or_file("GITHUB_TOKEN", None, "--github-token-file", Some(&file))
        .unwrap()
        .unwrap();
    let notifier = Arc::new(
        GitHubNotifier::with_rotating_token(OWNER, REPO, token, Some(&github.url())).expect("notifier"),
    );
    let (reporter, labels) = reporter(notifier.clone());

    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Pending, "syncing"));
    assert!(reporter.flush(WAIT).await);
    // An installation token refreshed as it expires, the way a token file is rotated.
    std::fs::write(&file, "ghs_installation0token0second\n").unwrap();
    reporter.send(status(SHA, SYNC_CONTEXT, StatusState::Success, "applied 1"));
    assert!(reporter.flush(WAIT).await);

    let sent: Vec<Option<String>> = github.statuses().into_iter().map(|s| s.authorization).collect();
    assert_eq!(
        sent,
        [
            Some("Bearer ghs_installation0token0first".to_string()),
            Some("Bearer ghs_installation0token0second".to_string()),
        ]
    );
    assert_eq!(*labels.lock().unwrap(), ["success", "success"]);
    assert!(!format!("{notifier:?}").contains("ghs_"), "{notifier:?}");
}
