//! What the leader reads back from `storesync-requests` is untrusted: whoever can write that
//! ConfigMap must not make it speak for commits that are not on the tracked branch, nor stop
//! forwarding with a counter at its end. Real time: statuses go to a fake GitHub over a socket.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::replicas::{NAMESPACE, Timings, World, empty_catalog, until};
use crate::common::GitRepo;

const QUICK: Timings = Timings {
    lease: Duration::from_secs(3),
    renew: Duration::from_secs(2),
    retry: Duration::from_millis(500),
};

/// A pull request's head: a commit beside the branch, fetched into the repository as storesync
/// fetches `refs/pull/<n>/head`.
fn pull_request_head(repo: &GitRepo) -> String {
    let base = repo.repo.head().unwrap().peel_to_commit().unwrap();
    let sig = git2::Signature::now("Mallory", "mallory@example.com").unwrap();
    repo.repo
        .commit(
            Some("refs/pull/7/head"),
            &sig,
            &sig,
            "Change the catalog",
            &base.tree().unwrap(),
            &[&base],
        )
        .unwrap()
        .to_string()
}

/// Puts `data` in `storesync-requests` as someone with write access to it would.
fn plant(world: &World, data: Value) {
    world.cluster.insert(
        "configmaps",
        NAMESPACE,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "storesync-requests"}, "data": data}),
    );
}

fn requests(world: &World) -> Value {
    world
        .cluster
        .get("configmaps", NAMESPACE, "storesync-requests")
        .unwrap_or_default()
}

#[tokio::test]
async fn forged_requests_get_no_status_and_forwarding_goes_on() {
    let (repo, _) = empty_catalog();
    let pull = pull_request_head(&repo);
    let mut world = World::with_github(repo).await;
    // On the branch but never pushed: only a forged request could name it.
    world.repo.write("README.md", "stores of acme\n");
    let unpushed = world.repo.commit("Ada", "Say what this is");
    let a = world.start("storesync-a", QUICK);
    until("a to lead", Duration::from_secs(10), || a.leads()).await;
    let b = world.start("storesync-b", QUICK);
    until("a's first sync", Duration::from_secs(10), || {
        a.ctx.state.last_result().is_some_and(|l| l.sha == unpushed)
    })
    .await;
    let before = world.github.as_ref().unwrap().statuses().len();

    // A pull request's head, a value that is no commit id, a line past the sequence.
    let max = u64::MAX.to_string();
    plant(
        &world,
        json!({
            "sequence": "3",
            "commits": format!("1 {pull}\n2 {}\n3 {}\n{max} {unpushed}", "z".repeat(40), pull.to_uppercase()),
        }),
    );
    until("the leader to take them", Duration::from_secs(5), || {
        requests(&world)["data"]["handled"] == "3"
    })
    .await;
    // Counters at the end of u64: the next push must not wrap to 0, below what was handled.
    plant(
        &world,
        json!({"sequence": max, "handled": "3", "commits": format!("{max} {unpushed}")}),
    );
    until("the leader to look again", Duration::from_secs(5), || {
        let data = &requests(&world)["data"];
        data["sequence"].is_null() || data["sequence"] == data["handled"]
    })
    .await;

    // Forwarding still works.
    world
        .repo
        .write("README.md", "stores of acme, and their owners\n");
    let pushed = world.repo.commit("Ada", "Say who owns them");
    let (code, _) = b.push(&world.branch, &pushed, "7f3c2a10-0101").await;
    assert_eq!(code, StatusCode::ACCEPTED);
    // `queued` comes only from the leader taking the push (the watch of the repository also
    // syncs the new head, but announces nothing).
    until(
        "the leader to announce and sync the push",
        Duration::from_secs(10),
        || {
            let statuses = world.statuses(&pushed);
            statuses
                .iter()
                .any(|(state, d)| state == "pending" && d.starts_with("queued"))
                && statuses.last().is_some_and(|(state, _)| state == "success")
        },
    )
    .await;
    let statuses = world.github.as_ref().unwrap().statuses();
    let forged: Vec<_> = statuses[before..]
        .iter()
        .filter(|s| s.sha != pushed)
        .map(|s| (s.sha.clone(), s.state.clone(), s.description.clone()))
        .collect();
    assert_eq!(forged, [], "statuses on commits no push named");
    assert!(world.statuses(&pull).is_empty(), "the pull request's head");
    assert_eq!(b.syncs_run(), 0.0);
    a.stop().await;
    b.stop().await;
}
