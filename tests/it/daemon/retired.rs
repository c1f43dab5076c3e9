//! A store retired and restored by the daemon, as people see it: the commit statuses count it,
//! `/api/stores`, the status page and the store page show it with its purge time, and the
//! revert of the removal brings it back.
use std::time::Duration;

use axum::http::StatusCode;

use super::running::{Running, catalog_repo, statuses_of};
use super::webhooks::push_body;
use crate::common::store_yaml;

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
    r.signed("push", "rm", &push_body(&r.branch.clone(), &removal))
        .await;
    r.until_synced("the removal", &removal).await;
    assert_eq!(
        statuses_of(&r, &removal, "storesync/sync").last().unwrap(),
        &(
            "success".to_string(),
            "applied 0, pruned 0, retired 1, unchanged 1".to_string()
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

    let (code, api) = r.get("/api/stores").await;
    assert_eq!(code, StatusCode::OK);
    let stores: serde_json::Value = serde_json::from_str(&api).unwrap();
    let bobs = stores
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "bobs")
        .expect("a retired store is listed");
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
    r.signed("push", "revert", &push_body(&r.branch.clone(), &revert))
        .await;
    r.until_synced("the revert", &revert).await;
    assert_eq!(
        statuses_of(&r, &revert, "storesync/sync").last().unwrap(),
        &(
            "success".to_string(),
            "applied 0, pruned 0, restored 1, unchanged 1".to_string()
        )
    );
    let (_, api) = r.get("/api/stores").await;
    let stores: serde_json::Value = serde_json::from_str(&api).unwrap();
    let bobs = stores
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "bobs")
        .unwrap();
    assert!(
        matches!(bobs["state"].as_str(), Some("applied" | "in-sync")),
        "{bobs}"
    );
    assert_eq!(bobs["health"], "Healthy", "{bobs}");
    assert!(bobs.get("purgeAt").is_none(), "{bobs}");
    r.stop().await;
}
