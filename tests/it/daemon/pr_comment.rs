//! A pull request's life as the daemon sees it: opened, pushed twice, closed. One comment,
//! edited on every head and marked when closed; a late delivery after the close changes
//! nothing until a reopen; an older head finishing last, on this replica or another, never
//! replaces the newer one.
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use storesync::apply::{Applier, Helm};
use storesync::daemon::{Context, PlanTrigger, Replicas, Settings};
use storesync::metrics::Metrics;
use storesync::report::comment::{CLOSED_MARKER, MARKER};
use storesync::report::github::GitHubNotifier;
use storesync::report::{GitHubPrWriter, PlanReport, PlanResult, ReporterOptions, StatusReporter};
use storesync::source::tracked::TrackedRepo;
use storesync::source::{RepoLocation, SourceOptions};

use super::running::{Running, catalog_repo, statuses_of};
use crate::common::fake_cluster::FakeCluster;
use crate::common::fake_github::FakeGitHub;
use crate::common::{repo_root, store_yaml};

fn pr_event(action: &str, number: u64, sha: &str, base: &str) -> String {
    serde_json::json!({
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "merged": false,
            "head": {"sha": sha, "ref": "add-store", "repo": {"full_name": "acme-platform/stores"}},
            "base": {"ref": base, "sha": sha, "repo": {"full_name": "acme-platform/stores"}},
        },
        "repository": {"full_name": "acme-platform/stores"},
    })
    .to_string()
}

/// storesync's comments on `issue`: (id, every body it had).
fn comments(r: &Running, issue: u64) -> Vec<(u64, Vec<String>)> {
    r.github
        .pr
        .lock()
        .comments
        .iter()
        .filter(|c| c.issue == issue && c.bodies[0].starts_with(MARKER))
        .map(|c| (c.id, c.bodies.clone()))
        .collect()
}

#[tokio::test]
async fn opened_pushed_twice_and_closed_is_one_comment_edited_three_times() {
    let (mut repo, base) = catalog_repo();
    let branch = repo.repo.head().unwrap().shorthand().unwrap().to_string();
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let first = repo.commit("Ben", "Add bobs");
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "large", "team-bikes"),
    );
    let second = repo.commit("Ben", "bobs is large");
    // The third head is invalid: the comment lists the finding, linked to its line.
    repo.write(
        "stores/bobs.yaml",
        "name: bobs\nengine: medusa\nplan: galactic\nowner: team-bikes\n",
    );
    let third = repo.commit("Ben", "bobs is galactic");
    // The pull request's commits exist in the repository; the branch stays at `base`.
    let oid = git2::Oid::from_str(&base).unwrap();
    repo.repo
        .reference(&format!("refs/heads/{branch}"), oid, true, "reset")
        .unwrap();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &base).await;

    for (i, (action, head)) in [
        ("opened", &first),
        ("synchronize", &second),
        ("synchronize", &third),
    ]
    .into_iter()
    .enumerate()
    {
        let (code, _) = r
            .signed(
                "pull_request",
                &format!("pr-{i}"),
                &pr_event(action, 7, head, &r.branch),
            )
            .await;
        assert_eq!(code, StatusCode::ACCEPTED);
        r.until(&format!("the comment for {head}"), Duration::from_secs(30), |r| {
            comments(r, 7).iter().any(|(_, bodies)| bodies.len() == i + 1)
        })
        .await;
        assert!(!statuses_of(&r, head, "storesync/plan").is_empty());
    }
    let (code, _) = r
        .signed(
            "pull_request",
            "pr-close",
            &pr_event("closed", 7, &third, &r.branch),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    r.until("the comment marked closed", Duration::from_secs(30), |r| {
        comments(r, 7).iter().any(|(_, bodies)| bodies.len() == 4)
    })
    .await;

    let all = comments(&r, 7);
    assert_eq!(all.len(), 1, "exactly one comment: {all:#?}");
    let bodies = &all[0].1;
    assert_eq!(bodies.len(), 4, "created, then edited three times");
    for (body, head) in bodies.iter().zip([&first, &second, &third, &third]) {
        assert!(body.contains(&format!("Head commit: `{head}`")), "{head}: {body}");
    }
    assert!(
        bodies[0].contains("| bobs | create | medusa | small | team-bikes |"),
        "{}",
        bodies[0]
    );
    assert!(
        bodies[1].contains("| bobs | create | medusa | large | team-bikes |"),
        "{}",
        bodies[1]
    );
    assert!(bodies[2].contains("**Invalid catalog:**"), "{}", bodies[2]);
    assert!(
        bodies[2].contains(&format!(
            "/acme-platform/stores/blob/{third}/stores/bobs.yaml#L3)"
        )),
        "{}",
        bodies[2]
    );
    assert!(bodies[3].contains(CLOSED_MARKER) && bodies[3].contains("was closed"));
    assert!(bodies[3].contains("**Invalid catalog:**"), "the last plan stays");
    // Each write is counted once its answer is in, just after the fake recorded it.
    let counted = "storesync_pr_feedback_writes_total{kind=\"comment\",result=\"success\"} 4";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut metrics = r.get("/metrics").await.1;
    while !metrics.contains(counted) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        metrics = r.get("/metrics").await.1;
    }
    assert!(metrics.contains(counted), "{metrics}");
    assert!(
        metrics.contains("storesync_pr_feedback_writes_total{kind=\"check_run\",result=\"success\"} 0"),
        "a token writes no check run: {metrics}"
    );
    r.stop().await;
}

/// A pull request with two heads beside the tracked branch: (repo, base, first, second).
fn two_heads() -> (crate::common::GitRepo, String, String, String) {
    let (mut repo, base) = catalog_repo();
    let branch = repo.repo.head().unwrap().shorthand().unwrap().to_string();
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let first = repo.commit("Ben", "Add bobs");
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "large", "team-bikes"),
    );
    let second = repo.commit("Ben", "bobs is large");
    let oid = git2::Oid::from_str(&base).unwrap();
    repo.repo
        .reference(&format!("refs/heads/{branch}"), oid, true, "reset")
        .unwrap();
    (repo, base, first, second)
}

#[tokio::test]
async fn a_late_synchronize_after_the_close_changes_nothing_until_reopened() {
    let (repo, base, first, second) = two_heads();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &base).await;
    let to = &r;
    let deliver = |id: &'static str, action: &'static str, head: String| async move {
        let body = pr_event(action, 7, &head, &to.branch);
        to.signed("pull_request", id, &body).await.0
    };
    assert_eq!(deliver("o", "opened", first.clone()).await, StatusCode::ACCEPTED);
    r.until("the first plan", Duration::from_secs(30), |r| {
        comments(r, 7).first().is_some_and(|(_, b)| b.len() == 1)
    })
    .await;
    assert_eq!(deliver("c", "closed", first.clone()).await, StatusCode::ACCEPTED);
    r.until("the comment marked closed", Duration::from_secs(30), |r| {
        comments(r, 7).first().is_some_and(|(_, b)| b.len() == 2)
    })
    .await;

    // A synchronize delivered late, after the close: no plan, no status, no edit.
    assert_eq!(
        deliver("s", "synchronize", second.clone()).await,
        StatusCode::ACCEPTED
    );
    assert!(r.ctx.plans.is_empty(), "nothing queued");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(statuses_of(&r, &second, "storesync/plan").is_empty());
    let bodies = &comments(&r, 7)[0].1;
    assert_eq!(bodies.len(), 2, "the closed comment is left alone");
    assert!(bodies[1].contains(CLOSED_MARKER));

    // Reopened: planned again, and the comment follows the head.
    assert_eq!(
        deliver("r", "reopened", second.clone()).await,
        StatusCode::ACCEPTED
    );
    r.until("the plan after the reopen", Duration::from_secs(30), |r| {
        comments(r, 7).first().is_some_and(|(_, b)| b.len() == 3)
    })
    .await;
    let bodies = &comments(&r, 7)[0].1;
    assert!(
        bodies[2].contains(&format!("Head commit: `{second}`")),
        "{}",
        bodies[2]
    );
    assert!(!bodies[2].contains(CLOSED_MARKER));
    r.until("the plan status", Duration::from_secs(10), |r| {
        !statuses_of(r, &second, "storesync/plan").is_empty()
    })
    .await;
    r.stop().await;
}

fn trigger(number: u64, sha: &str) -> PlanTrigger {
    PlanTrigger {
        number,
        sha: sha.into(),
        from_fork: false,
        reopened: false,
    }
}

fn report(sha: &str) -> PlanReport {
    PlanReport::new(
        sha.into(),
        String::new(),
        false,
        PlanResult::Failed(format!("plan of {sha}")),
    )
}

#[tokio::test]
async fn an_older_head_that_finishes_last_never_replaces_the_newer_one() {
    let (repo, base, first, second) = two_heads();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &base).await;
    // Two workers plan two heads of one pull request; the older one finishes last.
    let older = r.ctx.start_pull_plan(&trigger(7, &first)).await.unwrap();
    let newer = r.ctx.start_pull_plan(&trigger(7, &second)).await.unwrap();
    assert!(r.ctx.finish_pull_plan(&newer, report(&second)).await);
    assert!(!r.ctx.finish_pull_plan(&older, report(&first)).await, "dropped");
    assert!(
        r.ctx
            .statuses
            .as_ref()
            .unwrap()
            .flush(Duration::from_secs(10))
            .await
    );
    let all = comments(&r, 7);
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0].1.len(),
        1,
        "written once, by the newer head: {:#?}",
        all[0].1
    );
    assert!(all[0].1[0].contains(&format!("plan of {second}")));
    r.stop().await;
}

/// A replica's context sharing `cluster` (its records and pull requests) and `github`; no
/// daemon loop runs: the test drives its plans.
fn replica(cluster: &FakeCluster, github: &FakeGitHub, repo: &std::path::Path, branch: &str) -> Context {
    let helm = Helm {
        binary: "helm".into(),
        charts_dir: repo_root().join("charts"),
        timeout: Duration::from_secs(60),
        allowed_chart_prefixes: Vec::new(),
    };
    let notifier = GitHubNotifier::new(
        "acme-platform",
        "stores",
        "test-token".into(),
        Some(&github.url()),
    )
    .unwrap();
    let writer = Arc::new(GitHubPrWriter::for_notifier(&notifier));
    let statuses = StatusReporter::spawn_full(
        Arc::new(notifier),
        Some(writer),
        Arc::new(|_| {}),
        Arc::new(|_, _| {}),
        ReporterOptions::default(),
    );
    let settings = Settings {
        tracked: TrackedRepo {
            location: RepoLocation::Local(repo.to_path_buf()),
            branch: branch.into(),
            options: SourceOptions::default(),
        },
        interval: Duration::from_secs(3600),
        external_url: None,
        plan_workers: 1,
    };
    Context::new(
        Applier::new(cluster.client(), helm),
        Arc::new(Metrics::default()),
        Some(statuses),
        settings,
    )
    .with_replicas(Replicas::new(cluster.client(), "storesync".into(), None))
}

#[tokio::test]
async fn replicas_agree_on_the_newest_head_and_on_a_close() {
    let (repo, _, first, second) = two_heads();
    let cluster = FakeCluster::new(tempfile::tempdir().unwrap().keep());
    cluster.insert(
        "namespaces",
        "",
        serde_json::json!({"metadata": {"name": "storesync"}}),
    );
    let github = FakeGitHub::start().await;
    let (one, two) = (
        replica(&cluster, &github, repo.path(), "main"),
        replica(&cluster, &github, repo.path(), "main"),
    );
    // The older head is planned on one replica, the newer on the other, which finishes first.
    let older = one.start_pull_plan(&trigger(7, &first)).await.unwrap();
    let newer = two.start_pull_plan(&trigger(7, &second)).await.unwrap();
    assert!(two.finish_pull_plan(&newer, report(&second)).await);
    assert!(
        !one.finish_pull_plan(&older, report(&first)).await,
        "the other replica's head is newer"
    );
    for ctx in [&one, &two] {
        assert!(
            ctx.statuses
                .as_ref()
                .unwrap()
                .flush(Duration::from_secs(10))
                .await
        );
    }
    let bodies: Vec<String> = github
        .pr
        .lock()
        .comments
        .iter()
        .flat_map(|c| c.bodies.clone())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert!(bodies[0].contains(&format!("plan of {second}")));

    // Closed through one replica: a late synchronize delivered to the other plans nothing.
    two.pull_request_closed(7, false);
    let closed = |cluster: &FakeCluster| {
        cluster
            .get("configmaps", "storesync", "storesync-state")
            .and_then(|cm| {
                cm["data"]["pulls.json"]
                    .as_str()
                    .map(|p| p.contains("\"closed\":true"))
            })
            .unwrap_or(false)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !closed(&cluster) {
        assert!(tokio::time::Instant::now() < deadline, "the close was not shared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(one.start_pull_plan(&trigger(7, &second)).await.is_none());
    let reopen = PlanTrigger {
        reopened: true,
        ..trigger(7, &second)
    };
    assert!(
        one.start_pull_plan(&reopen).await.is_some(),
        "a reopen plans again"
    );
}
