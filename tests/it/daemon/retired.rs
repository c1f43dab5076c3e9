//! A store retired and restored by the daemon, as people see it: the commit statuses count it,
//! `/api/stores`, the status page and the store page show it with its purge time, and the
//! revert of the removal brings it back.
use std::time::Duration;

use axum::http::StatusCode;

use super::running::{Running, catalog_repo, statuses_of};
use super::webhooks::push_body;
use crate::common::store_yaml;

/// Pushes `sha`, waits for its sync, and gives its last `storesync/sync` status.
async fn pushed(r: &Running, sha: &str) -> (String, String) {
    r.signed("push", sha, &push_body(&r.branch.clone(), sha)).await;
    r.until_synced("the push", sha).await;
    statuses_of(r, sha, "storesync/sync").last().unwrap().clone()
}

/// `store`'s entry in `/api/stores`.
async fn api_store(r: &Running, store: &str) -> serde_json::Value {
    let (code, api) = r.get("/api/stores").await;
    assert_eq!(code, StatusCode::OK);
    let stores: serde_json::Value = serde_json::from_str(&api).unwrap();
    let found = stores.as_array().unwrap().iter().find(|s| s["name"] == store);
    found
        .cloned()
        .unwrap_or_else(|| panic!("{store} is not listed: {api}"))
}

#[tokio::test]
async fn a_removal_is_retired_shown_with_its_purge_time_and_undone_by_a_revert() {
    let (mut repo, _) = catalog_repo();
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let first = repo.commit("Ben", "Add bobs");
    let mut r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;

    r.repo.remove("stores/bobs.yaml");
    let removal = r.repo.commit("Ben", "Remove bobs");
    assert_eq!(
        pushed(&r, &removal).await,
        (
            "success".into(),
            "applied 0, pruned 0, retired 1, unchanged 1".into()
        )
    );
    let ns = r.cluster.get("namespaces", "", "store-bobs").expect("kept");
    assert_eq!(
        ns["metadata"]["annotations"]["storesync.dev/retired-by"],
        removal.as_str()
    );
    let purge = ns["metadata"]["annotations"]["storesync.dev/purge-at"]
        .as_str()
        .expect("purge time")
        .to_string();

    let bobs = api_store(&r, "bobs").await;
    assert_eq!(bobs["state"], "retired", "{bobs}");
    assert_eq!(bobs["health"], "Retired", "{bobs}");
    assert_eq!(bobs["purgeAt"], purge.as_str(), "{bobs}");
    assert!(bobs["retiredAt"].is_string(), "{bobs}");

    let (_, status) = r.get("/").await;
    assert!(status.contains(&format!("purged after {purge}")), "{status}");
    let (code, page) = r.get("/stores/bobs").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        page.contains("id=\"retired\"") && page.contains(&format!("after <time>{purge}</time>")),
        "{page}"
    );

    // The revert brings it back on the data it kept.
    r.repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let revert = r.repo.commit("Ben", "Revert \"Remove bobs\"");
    assert_eq!(
        pushed(&r, &revert).await,
        (
            "success".into(),
            "applied 0, pruned 0, restored 1, unchanged 1".into()
        )
    );
    let bobs = api_store(&r, "bobs").await;
    assert!(
        matches!(bobs["state"].as_str(), Some("applied" | "in-sync")),
        "{bobs}"
    );
    assert_eq!(bobs["health"], "Healthy", "{bobs}");
    assert!(bobs.get("purgeAt").is_none(), "{bobs}");
    r.stop().await;
}
