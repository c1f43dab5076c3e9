//! A pull request's life as the daemon sees it: opened, pushed twice, closed. One comment,
//! edited on every head and marked when closed.
use std::time::Duration;

use axum::http::StatusCode;
use storesync::report::comment::{CLOSED_MARKER, MARKER};

use super::running::{Running, catalog_repo, statuses_of};
use crate::common::store_yaml;

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
