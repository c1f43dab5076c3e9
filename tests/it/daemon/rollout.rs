//! A rollout carried by the daemon: the commit stays `pending` with its progress while the
//! waves go, webhooks and pull-request plans are answered meanwhile, and the commit ends
//! `success`; the pages and `/api/stores` show where each store stands.
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use super::running::{Running, statuses_of};
use super::webhooks::{pr_body, push_body};
use crate::common::{GitRepo, store_yaml};
use crate::rollout::platform;

const ROLLOUT: &str =
    "rollout:\n  canaries: [c-shop]\n  waves: [50%, 100%]\n  healthTimeout: 30s\n  soak: 1s\n";
const STORES: [&str; 5] = ["a-shop", "b-shop", "c-shop", "d-shop", "e-shop"];

/// A daemon that installed five stores with `rollout` configured.
async fn five_stores(rollout: &str) -> Running {
    let mut repo = GitRepo::new();
    repo.write("storesync.yaml", &platform("7.1.0-php8.3-apache", rollout));
    for name in STORES {
        repo.write(
            &format!("stores/{name}.yaml"),
            &store_yaml(name, "woocommerce", "small", "team-a"),
        );
    }
    let first = repo.commit("Ada", "Five stores");
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;
    r
}

#[tokio::test]
async fn a_rollout_is_pending_wave_by_wave_and_the_daemon_answers_meanwhile() {
    let mut r = five_stores(ROLLOUT).await;

    r.repo
        .write("storesync.yaml", &platform("7.1.1-php8.3-apache", ROLLOUT));
    let change = r.repo.commit("Ada", "WordPress 7.1.1");
    // A pull request's head, next to the branch (which stays at `change`).
    r.repo.write(
        "stores/f-shop.yaml",
        &store_yaml("f-shop", "woocommerce", "small", "team-f"),
    );
    let pr_head = r.repo.commit("Ben", "Add f-shop");
    let branch = format!("refs/heads/{}", r.branch);
    r.repo
        .repo
        .reference(&branch, git2::Oid::from_str(&change).unwrap(), true, "reset")
        .unwrap();

    r.signed("push", "change", &push_body(&r.branch.clone(), &change))
        .await;
    r.until("the rollout to start", Duration::from_secs(60), |r| {
        statuses_of(r, &change, "storesync/sync")
            .iter()
            .any(|(_, d)| d.starts_with("rollout wave 1/3"))
    })
    .await;

    // While it goes: a ping is answered at once, a pull request is planned.
    let asked = Instant::now();
    assert_eq!(
        r.signed("ping", "p1", "{\"zen\": \"hi\"}").await.0,
        StatusCode::OK
    );
    assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
    assert_eq!(
        r.signed("pull_request", "pr1", &pr_body(9, &pr_head, &r.branch, &change))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    r.until("the plan of the pull request", Duration::from_secs(30), |r| {
        !statuses_of(r, &pr_head, "storesync/plan").is_empty()
    })
    .await;
    let (_, api) = r.get("/api/stores").await;
    let stores: serde_json::Value = serde_json::from_str(&api).unwrap();
    let states: Vec<&str> = stores
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["state"].as_str())
        .collect();
    assert!(
        states.contains(&"waiting")
            || statuses_of(&r, &change, "storesync/sync")
                .iter()
                .any(|(s, _)| s == "success"),
        "stores waiting for their wave are shown: {api}"
    );

    r.until("the rollout to end", Duration::from_secs(90), |r| {
        statuses_of(r, &change, "storesync/sync")
            .iter()
            .any(|(s, _)| s != "pending")
    })
    .await;
    let statuses = statuses_of(&r, &change, "storesync/sync");
    let descriptions: Vec<&str> = statuses.iter().map(|(_, d)| d.as_str()).collect();
    for wave in [
        "rollout wave 1/3: 1 of 5 updated",
        "rollout wave 2/3: 3 of 5 updated",
        "rollout wave 3/3: 5 of 5 updated",
    ] {
        assert!(
            statuses
                .iter()
                .any(|(s, d)| s == "pending" && d.starts_with(wave)),
            "{wave} in {descriptions:?}"
        );
    }
    let (state, description) = statuses.last().unwrap();
    assert_eq!(state, "success", "{descriptions:?}");
    assert!(
        description.starts_with("rollout done: 5 stores updated in 3 waves"),
        "{description}"
    );
    let metrics = r.get("/metrics").await.1;
    assert!(metrics.contains("storesync_rollout_wave 0"), "{metrics}");
    assert!(metrics.contains("storesync_rollouts_halted_total 0"), "{metrics}");
    let upgrades = r.helm.calls().iter().filter(|c| c[0] == "upgrade").count();
    assert_eq!(upgrades, 10, "5 installs, 5 upgrades: one each");
    r.stop().await;
}

#[tokio::test]
async fn a_halted_rollout_fails_its_commit_and_a_restart_does_not_retry_it() {
    let rollout = "rollout:\n  canaries: [c-shop]\n  waves: [100%]\n  healthTimeout: 2s\n  soak: 1s\n";
    let mut r = five_stores(rollout).await;

    r.repo.write("storesync.yaml", &platform("crashloop", rollout));
    let bad = r.repo.commit("Ada", "A WordPress that crash-loops");
    r.signed("push", "bad", &push_body(&r.branch.clone(), &bad)).await;
    r.until("the rollout to halt", Duration::from_secs(60), |r| {
        statuses_of(r, &bad, "storesync/sync")
            .iter()
            .any(|(s, _)| s != "pending")
    })
    .await;
    let (state, description) = statuses_of(&r, &bad, "storesync/sync").last().unwrap().clone();
    assert_eq!(state, "failure");
    assert!(
        description.starts_with(
            "rollout halted at wave 1/2: c-shop unhealthy: Degraded: Deployment c-shop-wordpress"
        ),
        "{description}"
    );
    let upgraded = |r: &Running| -> Vec<String> {
        r.helm
            .calls()
            .iter()
            .filter(|c| c[0] == "upgrade")
            .skip(5)
            .map(|c| c[2].clone())
            .collect()
    };
    assert_eq!(upgraded(&r), ["c-shop"], "the others keep their release");
    let (_, page) = r.get("/").await;
    assert!(
        page.contains("id=\"rollout\"") && page.contains("rollout halted at wave 1/2"),
        "{page}"
    );
    assert!(r.get("/metrics").await.1.contains("storesync_rollout_halted 1"));

    // A restart syncs the same commit: nothing is upgraded again, the commit stays failed.
    let r = r.restart(Duration::from_secs(3600)).await;
    r.until("the sync after the restart", Duration::from_secs(60), |r| {
        r.ctx.state.last_result().is_some_and(|l| l.sha == bad)
    })
    .await;
    assert_eq!(upgraded(&r), ["c-shop"]);
    let last = r.ctx.state.last_result().unwrap();
    assert_eq!(last.state.as_str(), "failure");
    assert!(
        last.description.starts_with("rollout halted at wave 1/2"),
        "{}",
        last.description
    );
    r.stop().await;
}

#[tokio::test]
async fn a_restart_mid_rollout_goes_on_from_the_wave_where_it_stood() {
    let rollout = "rollout:\n  canaries: [c-shop]\n  waves: [50%, 100%]\n  healthTimeout: 30s\n  soak: 2s\n";
    let mut r = five_stores(rollout).await;
    r.repo
        .write("storesync.yaml", &platform("7.1.1-php8.3-apache", rollout));
    let change = r.repo.commit("Ada", "WordPress 7.1.1");
    r.signed("push", "change", &push_body(&r.branch.clone(), &change))
        .await;
    r.until("the canary", Duration::from_secs(60), |r| {
        statuses_of(r, &change, "storesync/sync")
            .iter()
            .any(|(_, d)| d.starts_with("rollout wave 1/3"))
    })
    .await;

    // A graceful stop while the canary soaks, and a new process (or a new leader).
    let r = r.restart(Duration::from_secs(3600)).await;
    r.until("the rollout to end", Duration::from_secs(90), |r| {
        statuses_of(r, &change, "storesync/sync")
            .iter()
            .any(|(s, _)| s == "success")
    })
    .await;
    let descriptions: Vec<String> = statuses_of(&r, &change, "storesync/sync")
        .into_iter()
        .map(|(s, d)| format!("{s}: {d}"))
        .collect();
    assert!(
        descriptions
            .iter()
            .any(|d| d.starts_with("pending: rollout wave 3/3")),
        "{descriptions:?}"
    );
    let mut upgraded: Vec<String> = r
        .helm
        .calls()
        .iter()
        .filter(|c| c[0] == "upgrade")
        .skip(5)
        .map(|c| c[2].clone())
        .collect();
    upgraded.sort();
    assert_eq!(
        upgraded, STORES,
        "each store upgraded once, the canary not again: {descriptions:?}"
    );
    r.stop().await;
}
