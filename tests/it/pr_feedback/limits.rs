//! Check runs within GitHub's limits, whatever the catalog holds, and always completed; pull
//! request feedback on its own worker, so a rate-limited check run never delays a status.
use std::sync::Arc;
use std::time::{Duration, Instant};

use storesync::desired::Diagnostic;
use storesync::report::checks::{MAX_ANNOTATIONS, MAX_MESSAGE_BYTES, MAX_TITLE_CHARS};
use storesync::report::github::GitHubNotifier;
use storesync::report::{
    CommitStatus, FeedbackKind, GitHubPrWriter, PlanResult, PrFeedback, ReporterOptions, SYNC_CONTEXT,
    StatusReporter, StatusState,
};

use super::{SHA1, SHA2, app_writer, planned};
use crate::common::fake_github::FakeGitHub;
use crate::common::fake_github_pr::CheckRun;
use crate::common::fake_github_pr::limits::Endpoint;

fn invalid_files(n: usize) -> Vec<Diagnostic> {
    (1..=n)
        .map(|i| {
            Diagnostic::error(
                format!("stores/s{i:03}.yaml"),
                (2, 9),
                format!("unknown engine `e{i}`"),
            )
        })
        .collect()
}

fn only_run(github: &FakeGitHub) -> CheckRun {
    let inner = github.pr.lock();
    assert_eq!(inner.check_runs.len(), 1, "{:#?}", inner.check_runs);
    inner.check_runs[0].clone()
}

/// A reporter writing as the fake's App, with `options`.
fn app_reporter(github: &FakeGitHub, options: ReporterOptions) -> StatusReporter {
    let writer = app_writer(github, &github.url(), Duration::from_secs(3600));
    let notifier = GitHubNotifier::new("acme-platform", "stores", "t".into(), Some(&github.url())).unwrap();
    StatusReporter::spawn_full(
        Arc::new(notifier),
        Some(Arc::new(writer) as Arc<dyn storesync::report::PrWriter>),
        Arc::new(|_| {}),
        Arc::new(|_, _| {}),
        options,
    )
}

fn fast() -> ReporterOptions {
    ReporterOptions {
        first_backoff: Duration::from_millis(5),
        ..Default::default()
    }
}

#[tokio::test]
async fn two_hundred_invalid_files_make_one_completed_run_while_a_sync_status_goes_out_at_once() {
    let github = FakeGitHub::start().await;
    let reporter = app_reporter(&github, ReporterOptions::default());
    // GitHub's secondary rate limit holds the check run back for 2 s.
    github
        .pr
        .limits
        .secondary_next(Endpoint::CheckRunCreate, 1, 429, Some(2));
    reporter.feedback(PrFeedback {
        number: 4,
        kind: FeedbackKind::Planning { sha: SHA1.into() },
    });
    reporter.feedback(planned(4, SHA1, PlanResult::Invalid(invalid_files(200))));
    // A sync status for another commit, sent after: it does not wait for the feedback.
    let sent = Instant::now();
    reporter.send(CommitStatus::new(
        SHA2,
        SYNC_CONTEXT,
        StatusState::Success,
        "applied 1",
        None,
    ));
    let statuses = github.wait_for(1, Duration::from_secs(1)).await;
    assert!(sent.elapsed() < Duration::from_secs(1), "{:?}", sent.elapsed());
    assert_eq!(statuses[0].sha, SHA2);
    assert!(
        github.pr.lock().check_runs.is_empty(),
        "the check run was still waiting for GitHub"
    );

    assert!(reporter.flush(Duration::from_secs(20)).await);
    let run = only_run(&github);
    assert_eq!(
        (run.status.as_str(), run.conclusion.as_deref()),
        ("completed", Some("failure"))
    );
    assert!(run.annotations.len() <= MAX_ANNOTATIONS);
    assert_eq!(run.batches, [50]);
    assert_eq!(
        run.writes, 2,
        "created, then completed: no request per 50 annotations"
    );
    let summary = run.summary.unwrap();
    assert!(
        summary.contains("200 findings: the first 50") && summary.contains("the 150 more are listed below"),
        "{summary}"
    );
    assert_eq!(github.pr.limits.refused().len(), 1);
}

#[tokio::test]
async fn long_file_names_and_messages_are_cut_to_githubs_limits() {
    let github = FakeGitHub::start().await;
    let writer = app_writer(&github, &github.url(), Duration::from_secs(3600));
    let name = format!("stores/{}.yaml", "ü".repeat(300));
    let message = format!("{} @acme/everyone #12", "é".repeat(50_000));
    let findings = vec![Diagnostic::error(name.as_str(), (1, 1), message)];
    writer
        .write_all(&planned(6, SHA1, PlanResult::Invalid(findings)))
        .await
        .unwrap_or_else(|e| panic!("{e}: GitHub refused what storesync sent"));
    let run = only_run(&github);
    let note = &run.annotations[0];
    let title = note["title"].as_str().unwrap();
    let message = note["message"].as_str().unwrap();
    assert!(
        title.chars().count() <= MAX_TITLE_CHARS,
        "{}",
        title.chars().count()
    );
    assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
    assert!(title.ends_with('…') && message.ends_with('…'), "cut, and said so");
    assert_eq!(
        note["path"], name,
        "the path stays whole: it places the annotation"
    );
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
}

#[tokio::test]
async fn a_final_422_still_completes_the_run_with_a_short_summary() {
    let github = FakeGitHub::start().await;
    let reporter = app_reporter(&github, fast());
    github.pr.limits.fail_next(Endpoint::CheckRunUpdate, 1, 422);
    reporter.feedback(planned(8, SHA1, PlanResult::Invalid(invalid_files(3))));
    assert!(reporter.flush(Duration::from_secs(10)).await);
    let run = only_run(&github);
    assert_eq!(
        (run.status.as_str(), run.conclusion.as_deref()),
        ("completed", Some("failure")),
        "never left in_progress"
    );
    let summary = run.summary.unwrap();
    assert!(
        summary.contains("GitHub did not take storesync's full report"),
        "{summary}"
    );
    assert!(summary.contains("HTTP 422"), "{summary}");
    assert!(run.annotations.is_empty());
    // The comment was written all the same.
    assert_eq!(github.pr.lock().comments.len(), 1);
}

#[tokio::test]
async fn retries_spent_on_server_errors_still_complete_the_run() {
    let github = FakeGitHub::start().await;
    let reporter = app_reporter(&github, fast());
    // Five tries, all answered 502; the settling write goes through.
    github.pr.limits.fail_next(Endpoint::CheckRunUpdate, 5, 502);
    reporter.feedback(planned(
        9,
        SHA2,
        PlanResult::Failed("the cluster did not answer".into()),
    ));
    assert!(reporter.flush(Duration::from_secs(10)).await);
    let run = only_run(&github);
    assert_eq!(run.status, "completed");
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert!(run.summary.unwrap().contains("HTTP 502"));
    assert_eq!(github.pr.limits.refused().len(), 5);
}

#[tokio::test]
async fn a_started_run_of_a_head_that_a_newer_one_displaced_is_completed_too() {
    let github = FakeGitHub::start().await;
    let reporter = app_reporter(&github, fast());
    reporter.feedback(PrFeedback {
        number: 2,
        kind: FeedbackKind::Planning { sha: SHA1.into() },
    });
    assert!(reporter.flush(Duration::from_secs(10)).await);
    // The worker is held (another pull request's comment waits out a rate limit), so the
    // finished plan of SHA1 and the start of SHA2 meet in the queue.
    github
        .pr
        .limits
        .secondary_next(Endpoint::Comment, 1, 429, Some(1));
    reporter.feedback(planned(99, SHA2, PlanResult::Failed("x".into())));
    reporter.feedback(planned(2, SHA1, PlanResult::Invalid(invalid_files(2))));
    reporter.feedback(PrFeedback {
        number: 2,
        kind: FeedbackKind::Planning { sha: SHA2.into() },
    });
    assert!(reporter.flush(Duration::from_secs(10)).await);
    let inner = github.pr.lock();
    let first = inner.check_runs.iter().find(|r| r.head_sha == SHA1).unwrap();
    assert_eq!(
        (first.status.as_str(), first.conclusion.as_deref()),
        ("completed", Some("failure")),
        "the displaced head's run completes with its own result"
    );
    assert_eq!(first.annotations.len(), 2);
    let comments_of_2 = inner.comments.iter().filter(|c| c.issue == 2).count();
    assert_eq!(comments_of_2, 0, "the outdated plan wrote no comment");
}

#[tokio::test]
async fn a_spent_primary_rate_limit_is_waited_out_until_its_reset() {
    let github = FakeGitHub::start().await;
    github.pr.limits.set_primary(2, Duration::from_secs(2));
    let writer = Arc::new(GitHubPrWriter::for_notifier(
        &GitHubNotifier::new("acme-platform", "stores", "t".into(), Some(&github.url())).unwrap(),
    ));
    let notifier = GitHubNotifier::new("acme-platform", "stores", "t".into(), Some(&github.url())).unwrap();
    let reporter = StatusReporter::spawn_full(
        Arc::new(notifier),
        Some(writer),
        Arc::new(|_| {}),
        Arc::new(|_, _| {}),
        fast(),
    );
    for i in 0..3 {
        reporter.send(CommitStatus::new(
            format!("{i:040}"),
            SYNC_CONTEXT,
            StatusState::Success,
            "ok",
            None,
        ));
    }
    assert!(reporter.flush(Duration::from_secs(15)).await);
    assert_eq!(github.statuses().len(), 3, "the third waited for the reset");
    let refused = github.pr.limits.refused();
    assert!(!refused.is_empty(), "GitHub refused it first");
}
