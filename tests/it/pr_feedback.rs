//! The plan comment and check run of a pull request against the fake GitHub: found again after
//! a restart however many comments come before it, at most 50 annotations at the right file and
//! line, GitHub's size limits kept, installation tokens refreshed and rotated. GitHub's limits on
//! check runs, its rate limits and final errors: `limits.rs`.
mod limits;

use std::sync::Arc;
use std::time::Duration;

use storesync::desired::{self, Diagnostic};
use storesync::plan::{Action, Change, ObjectKind, Plan, StorePlan, Summary};
use storesync::report::app_auth::AppCredentials;
use storesync::report::comment::{CLOSED_MARKER, MARKER, MAX_COMMENT_CHARS};
use storesync::report::connection::Connection;
use storesync::report::github::GitHubNotifier;
use storesync::report::{
    FeedbackKind, GitHubAuth, GitHubPrWriter, PlanReport, PlanResult, PrFeedback, ReporterOptions,
    StatusReporter,
};
use storesync::source::{RepoLocation, Revision, SourceOptions};

use crate::common::Catalog;
use crate::common::fake_github::FakeGitHub;
use crate::common::fake_github_pr::{AppConfig, Author, Comment, TOKEN_USER, TestApp};

const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

pub(crate) fn token_writer(api_url: &str) -> GitHubPrWriter {
    let notifier =
        GitHubNotifier::new("acme-platform", "stores", "test-token".into(), Some(api_url)).unwrap();
    GitHubPrWriter::for_notifier(&notifier)
}

/// The fake knows the App; storesync gets its id and key.
pub(crate) fn app_writer(github: &FakeGitHub, api_url: &str, token_ttl: Duration) -> GitHubPrWriter {
    let app = TestApp::generate(4242);
    github.pr.set_app(AppConfig {
        app_id: app.app_id,
        public_key_der: app.public_key_der.clone(),
        installation_id: 77,
        token_ttl,
    });
    let credentials = AppCredentials::new(app.app_id, app.pem.into()).unwrap();
    let notifier = GitHubNotifier::with_app("acme-platform", "stores", credentials, Some(api_url)).unwrap();
    GitHubPrWriter::for_notifier(&notifier)
}

pub(crate) fn empty_plan(sha: &str) -> Plan {
    Plan {
        revision: Revision {
            commit: Some(sha.into()),
            label: sha[..12].into(),
        },
        offline: false,
        summary: Summary {
            unchanged: 3,
            ..Summary::default()
        },
        stores: Vec::new(),
        blocked: Vec::new(),
    }
}

pub(crate) fn planned(number: u64, sha: &str, result: PlanResult) -> PrFeedback {
    PrFeedback {
        number,
        kind: FeedbackKind::Planned(Box::new(PlanReport::new(
            sha.into(),
            String::new(),
            false,
            result,
        ))),
    }
}

fn storesync_comments(github: &FakeGitHub, issue: u64) -> Vec<Comment> {
    github
        .pr
        .lock()
        .comments
        .iter()
        .filter(|c| c.issue == issue && c.body().starts_with(MARKER))
        .cloned()
        .collect()
}

/// Comments by people around storesync's (by `storesync`), which sits at position `ours`
/// (1-based).
fn crowd(github: &FakeGitHub, issue: u64, total: usize, ours: usize, storesync: &Author) -> u64 {
    let mut id = 0;
    for i in 1..=total {
        if i == ours {
            id = github
                .pr
                .add_comment_by(issue, storesync.clone(), &format!("{MARKER}\nold plan"));
        } else {
            github.pr.add_comment(
                issue,
                "ada",
                &format!("comment {i}, quoting <!-- storesync:plan --> inside"),
            );
        }
    }
    id
}

#[tokio::test]
async fn the_comment_is_found_again_after_a_restart_on_any_page() {
    // (comments, storesync's position, pages read to find it). storesync asks for 100 comments
    // per page: comment 32 of 35, which GitHub's default of 30 per page would put on page 2, is
    // on page 1; comment 210 of 250 is on page 3 of 100, after two `Link: rel="next"` hops.
    for (total, ours, pages) in [(35, 32, 1), (250, 210, 3)] {
        let github = FakeGitHub::start().await;
        let id = crowd(&github, 5, total, ours, &Author::person(TOKEN_USER));
        // A fresh writer knows no comment id: what a restart or another replica looks like.
        let writer = token_writer(&github.url());
        writer
            .write_all(&planned(5, SHA1, PlanResult::Planned(empty_plan(SHA1))))
            .await
            .unwrap();
        let ours = storesync_comments(&github, 5);
        assert_eq!(ours.len(), 1, "not duplicated: {ours:#?}");
        assert_eq!(ours[0].id, id);
        assert_eq!(ours[0].bodies.len(), 2, "edited once");
        assert!(ours[0].bodies[1].contains(SHA1));
        let read = github
            .pr
            .lock()
            .requests
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains("/comments"))
            .count();
        assert_eq!(read, pages, "{total} comments");
        assert_eq!(github.pr.lock().unauthorized, Vec::<String>::new());
    }
}

#[tokio::test]
async fn an_app_on_github_enterprise_pages_through_absolute_links_with_its_token() {
    let github = FakeGitHub::start().await;
    let id = crowd(&github, 9, 150, 140, &Author::app(4242));
    let api = format!("{}/api/v3", github.url());
    let writer = app_writer(&github, &api, Duration::from_secs(3600));
    writer
        .write_all(&planned(9, SHA2, PlanResult::Planned(empty_plan(SHA2))))
        .await
        .unwrap();
    let ours = storesync_comments(&github, 9);
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert_eq!(ours[0].id, id);
    {
        let inner = github.pr.lock();
        assert!(
            inner.requests.iter().any(|r| r.contains("page=2")),
            "{:#?}",
            inner.requests
        );
        assert_eq!(
            inner.unauthorized,
            Vec::<String>::new(),
            "every page carried the token"
        );
        assert_eq!(inner.token_exchanges, 1);
        assert_eq!(inner.installation_lookups, 1);
    }
    // Every request shares the installation token until it nears its expiry.
    writer
        .write_all(&planned(9, SHA1, PlanResult::Planned(empty_plan(SHA1))))
        .await
        .unwrap();
    assert_eq!(github.pr.lock().token_exchanges, 1);
    assert_eq!(storesync_comments(&github, 9)[0].edits(), 2);
}

#[tokio::test]
async fn an_invalid_catalog_annotates_each_finding_on_its_file_and_line() {
    let catalog = Catalog::new();
    catalog.store(
        "acme",
        "name: acme\nengine: woocommerce\nplan: small\nowner: team-a\ncolour: red\n",
    );
    catalog.store(
        "bobs",
        "name: bobs\nengine: medusa\nplan: enormous\nowner: team-b\n",
    );
    let raw = storesync::source::read(
        &RepoLocation::Local(catalog.path().into()),
        None,
        &SourceOptions::default(),
    )
    .unwrap()
    .raw;
    let findings = desired::load(&raw).expect_err("an invalid catalog");
    let github = FakeGitHub::start().await;
    let writer = app_writer(&github, &github.url(), Duration::from_secs(3600));
    let mut feedback = planned(3, SHA1, PlanResult::Invalid(findings.clone()));
    if let FeedbackKind::Planned(report) = &mut feedback.kind {
        report.catalog_dir = "catalog".into();
    }
    writer.write_all(&feedback).await.unwrap();

    let inner = github.pr.lock();
    assert_eq!(inner.check_runs.len(), 1);
    let run = &inner.check_runs[0];
    assert_eq!(
        (run.name.as_str(), run.head_sha.as_str()),
        ("storesync/plan", SHA1)
    );
    assert_eq!(
        (run.status.as_str(), run.conclusion.as_deref()),
        ("completed", Some("failure"))
    );
    assert_eq!(run.annotations.len(), findings.len());
    for (a, d) in run.annotations.iter().zip(&findings) {
        assert_eq!(a["path"], format!("catalog/{}", d.file));
        assert_eq!(a["start_line"], d.line);
        assert_eq!(a["end_line"], d.line);
        assert_eq!(a["annotation_level"], "failure");
    }
    // colour: red is line 5 of stores/acme.yaml; plan: enormous line 3 of stores/bobs.yaml.
    let at: Vec<(String, u64)> = run
        .annotations
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_owned(),
                a["start_line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(at.contains(&("catalog/stores/acme.yaml".into(), 5)), "{at:?}");
    assert!(at.contains(&("catalog/stores/bobs.yaml".into(), 3)), "{at:?}");
    let comment = &inner.comments[0];
    assert_eq!(
        run.summary.as_deref(),
        Some(comment.body()),
        "the summary is the comment"
    );
    assert!(
        comment.body().contains(&format!(
            "(http://{}/acme-platform/stores/blob/{SHA1}/catalog/stores/acme.yaml#L5)",
            github.url().trim_start_matches("http://")
        )),
        "{}",
        comment.body()
    );
}

#[tokio::test]
async fn a_hundred_and_twenty_findings_make_one_request_of_fifty_annotations() {
    let findings: Vec<Diagnostic> = (1..=120)
        .map(|i| Diagnostic::error(format!("stores/s{i:03}.yaml"), (i, 1), format!("finding {i}")))
        .collect();
    let github = FakeGitHub::start().await;
    let writer = app_writer(&github, &github.url(), Duration::from_secs(3600));
    writer
        .write_all(&PrFeedback {
            number: 4,
            kind: FeedbackKind::Planning { sha: SHA2.into() },
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", github.pr.lock().unauthorized));
    assert_eq!(github.pr.lock().check_runs[0].status, "in_progress");
    writer
        .write_all(&planned(4, SHA2, PlanResult::Invalid(findings)))
        .await
        .unwrap();
    let inner = github.pr.lock();
    assert_eq!(inner.check_runs.len(), 1, "the run started is the run completed");
    let run = &inner.check_runs[0];
    assert_eq!(run.batches, [50], "one request, at most 50 annotations in all");
    assert_eq!(run.writes, 2, "its start and its completion");
    assert_eq!(run.annotations[49]["message"], "finding 50");
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    let summary = run.summary.as_deref().unwrap();
    assert!(summary.contains("120 findings: the first 50"), "{summary}");
    assert!(
        summary.contains("finding 120"),
        "the comment in the summary lists the rest"
    );
}

#[tokio::test]
async fn a_three_megabyte_diff_stays_under_the_comment_limit() {
    let diff = format!("+    {}\n", "y".repeat(95)).repeat(30_000);
    assert!(diff.len() >= 3_000_000);
    let store = StorePlan {
        store: "bobs".into(),
        action: Action::Update,
        owner: Some("team-b".into()),
        engine: Some("medusa".into()),
        plan: Some("small".into()),
        domain: None,
        spec_hash: None,
        reason: None,
        retired_at: None,
        retired_by: None,
        purge_at: None,
        wave: None,
        changes: vec![Change {
            kind: ObjectKind::HelmRelease,
            namespace: Some("store-bobs".into()),
            name: "bobs".into(),
            action: Action::Update,
            diff: Some(diff),
            reason: None,
            drift: None,
        }],
    };
    let mut plan = empty_plan(SHA1);
    plan.summary.update = 1;
    plan.stores = vec![store];
    let github = FakeGitHub::start().await;
    let writer = app_writer(&github, &github.url(), Duration::from_secs(3600));
    writer
        .write_all(&planned(6, SHA1, PlanResult::Planned(plan)))
        .await
        .unwrap();
    let inner = github.pr.lock();
    let body = inner.comments[0].body();
    assert!(body.chars().count() < MAX_COMMENT_CHARS, "{}", body.len());
    assert!(body.contains("Diffs cut to stay under GitHub's 65536-character comment limit"));
    assert_eq!(inner.check_runs[0].conclusion.as_deref(), Some("success"));
}

#[tokio::test]
async fn installation_tokens_are_refreshed_before_expiry_and_after_a_rotation() {
    let github = FakeGitHub::start().await;
    let writer = app_writer(&github, &github.url(), Duration::from_secs(3600));
    writer
        .write_all(&planned(2, SHA1, PlanResult::Planned(empty_plan(SHA1))))
        .await
        .unwrap();
    assert_eq!(github.pr.lock().token_exchanges, 1);
    // Rotated (revoked) on GitHub's side: a 401, a new token, the write goes through.
    github.pr.revoke_tokens();
    writer
        .write_all(&planned(2, SHA2, PlanResult::Planned(empty_plan(SHA2))))
        .await
        .unwrap();
    assert_eq!(github.pr.lock().token_exchanges, 2);
    let ours = storesync_comments(&github, 2);
    assert_eq!(ours.len(), 1);
    assert!(ours[0].body().contains(SHA2));

    // Tokens that expire within octocrab's 30 s margin are never used: a new one each time.
    let github = FakeGitHub::start().await;
    let writer = app_writer(&github, &github.url(), Duration::from_secs(20));
    writer
        .write_all(&planned(2, SHA1, PlanResult::Planned(empty_plan(SHA1))))
        .await
        .unwrap();
    let first = github.pr.lock().token_exchanges;
    writer
        .write_all(&planned(2, SHA2, PlanResult::Planned(empty_plan(SHA2))))
        .await
        .unwrap();
    assert!(github.pr.lock().token_exchanges > first);
    assert_eq!(github.pr.lock().unauthorized, Vec::<String>::new());
}

#[tokio::test]
async fn with_a_token_comments_work_and_check_runs_are_skipped() {
    let github = FakeGitHub::start().await;
    let writer = token_writer(&github.url());
    writer
        .write_all(&PrFeedback {
            number: 8,
            kind: FeedbackKind::Planning { sha: SHA1.into() },
        })
        .await
        .unwrap();
    writer
        .write_all(&planned(
            8,
            SHA1,
            PlanResult::Failed("the cluster did not answer".into()),
        ))
        .await
        .unwrap();
    writer
        .write_all(&PrFeedback {
            number: 8,
            kind: FeedbackKind::Closed { merged: false },
        })
        .await
        .unwrap();
    let inner = github.pr.lock();
    assert!(inner.check_runs.is_empty());
    assert!(
        !inner.requests.iter().any(|r| r.contains("check-runs")),
        "{:#?}",
        inner.requests
    );
    assert_eq!(inner.comments.len(), 1);
    let body = inner.comments[0].body();
    assert!(
        body.contains(CLOSED_MARKER) && body.contains("was closed"),
        "{body}"
    );
    assert!(body.contains("the cluster did not answer"), "{body}");
}

#[tokio::test]
async fn through_the_queue_ten_pushes_edit_the_comment_to_the_last_head() {
    let github = FakeGitHub::start().await;
    let notifier = GitHubNotifier::new("acme-platform", "stores", "t".into(), Some(&github.url())).unwrap();
    let writer = Arc::new(GitHubPrWriter::for_notifier(&notifier));
    let reporter = StatusReporter::spawn_full(
        Arc::new(notifier),
        Some(writer),
        Arc::new(|_| {}),
        Arc::new(|_, _| {}),
        ReporterOptions::default(),
    );
    // The worker runs only once this test awaits: all ten pushes are queued by then.
    let heads: Vec<String> = (0..10).map(|i| format!("{i:040}")).collect();
    for head in &heads {
        reporter.feedback(planned(11, head, PlanResult::Planned(empty_plan(head))));
    }
    assert!(reporter.flush(Duration::from_secs(10)).await);
    let ours = storesync_comments(&github, 11);
    assert_eq!(ours.len(), 1);
    let last = ours[0].bodies.last().unwrap();
    assert!(last.contains(&heads[9]), "{last}");
    assert_eq!(ours[0].bodies.len(), 1, "one write, of the last head");
    let writes = github
        .pr
        .lock()
        .requests
        .iter()
        .filter(|r| !r.starts_with("GET "))
        .count();
    assert_eq!(writes, 1);
}

#[tokio::test]
async fn the_fake_refuses_what_github_refuses() {
    let github = FakeGitHub::start().await;
    let app = TestApp::generate(99);
    github.pr.set_app(AppConfig {
        app_id: 99,
        public_key_der: app.public_key_der.clone(),
        installation_id: 5,
        token_ttl: Duration::from_secs(3600),
    });
    let status = |r: Result<serde_json::Value, octocrab::Error>| match r {
        Err(octocrab::Error::GitHub { source, .. }) => source.status_code.as_u16(),
        other => panic!("expected an error answer, got {other:?}"),
    };
    // A JWT signed with another key is refused.
    let stranger = TestApp::generate(99);
    let connect = |pem: String| {
        let app = GitHubAuth::App(AppCredentials::new(99, pem.into()).unwrap());
        Connection::new("acme-platform", "stores", app, Some(&github.url())).unwrap()
    };
    let err = connect(stranger.pem).client().await.unwrap_err();
    assert_eq!(err.metric_label(), "rejected", "{err}");
    let crab = connect(app.pem).client().await.unwrap();
    let long = serde_json::json!({ "body": "x".repeat(MAX_COMMENT_CHARS + 1) });
    assert_eq!(
        status(
            crab.post("/repos/acme-platform/stores/issues/1/comments", Some(&long))
                .await
        ),
        422
    );
    let note = serde_json::json!({ "path": "a", "start_line": 1, "end_line": 1,
                                   "annotation_level": "failure", "message": "m" });
    let run = serde_json::json!({ "name": "storesync/plan", "head_sha": SHA1,
        "output": { "title": "t", "summary": "s", "annotations": vec![note.clone(); 51] } });
    assert_eq!(
        status(
            crab.post("/repos/acme-platform/stores/check-runs", Some(&run))
                .await
        ),
        422
    );
    let run = serde_json::json!({ "name": "storesync/plan", "head_sha": SHA1,
        "output": { "title": "t", "summary": "s".repeat(65_536) } });
    assert_eq!(
        status(
            crab.post("/repos/acme-platform/stores/check-runs", Some(&run))
                .await
        ),
        422
    );
    // An annotation title over 255 characters, a message over 64 KB, an unknown level.
    for (field, value) in [
        ("title", serde_json::json!("t".repeat(256))),
        ("message", serde_json::json!("m".repeat(65_536))),
        ("annotation_level", serde_json::json!("error")),
    ] {
        let mut bad = note.clone();
        bad[field] = value;
        let run = serde_json::json!({ "name": "storesync/plan", "head_sha": SHA1,
            "output": { "title": "t", "summary": "s", "annotations": [bad] } });
        let answer = crab
            .post("/repos/acme-platform/stores/check-runs", Some(&run))
            .await;
        assert_eq!(status(answer), 422, "{field}");
    }
    assert!(github.pr.lock().comments.is_empty() && github.pr.lock().check_runs.is_empty());
}

#[tokio::test]
async fn an_app_posts_statuses_with_its_installation_token() {
    use storesync::report::{CommitStatus, Notifier, PLAN_CONTEXT, StatusState};
    let github = FakeGitHub::start().await;
    let app = TestApp::generate(31);
    github.pr.set_app(AppConfig {
        app_id: 31,
        public_key_der: app.public_key_der.clone(),
        installation_id: 8,
        token_ttl: Duration::from_secs(3600),
    });
    let credentials = AppCredentials::new(31, app.pem.into()).unwrap();
    let debug = format!("{credentials:?}");
    assert!(!debug.contains("PRIVATE KEY") && debug.contains("***"), "{debug}");
    let notifier =
        GitHubNotifier::with_app("acme-platform", "stores", credentials, Some(&github.url())).unwrap();
    let status = CommitStatus::new(
        SHA1,
        PLAN_CONTEXT,
        StatusState::Success,
        "plan: 3 unchanged",
        None,
    );
    notifier.post(&status).await.unwrap();
    let posted = github.statuses();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].authorization.as_deref(), Some("Bearer ghs_fake0001"));
}

#[tokio::test]
async fn an_app_without_the_checks_permission_still_gets_its_comment() {
    let github = FakeGitHub::start().await;
    let writer = app_writer(&github, &github.url(), Duration::from_secs(3600));
    github.pr.lock().checks_forbidden = true;
    let err = writer
        .write_all(&planned(12, SHA1, PlanResult::Planned(empty_plan(SHA1))))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rejected (HTTP 403): Resource not accessible by integration"
    );
    assert!(!err.is_retryable());
    let ours = storesync_comments(&github, 12);
    assert_eq!(ours.len(), 1);
    assert!(ours[0].body().contains(SHA1));
}
