//! Kubernetes Events: every action storesync takes on a store is told in the store's own
//! namespace (`kubectl events -n store-acme`), by reporting controller `storesync`, and a
//! repeat is one Event with a growing count, not a flood.
use serde_json::Value;
use storesync::plan::PlanOptions;
use storesync::sync::{self, SyncOutcome};

use super::world::World;
use crate::common::store_yaml;

/// The reasons of the Events stored in `namespace`, sorted.
fn reasons(w: &World, namespace: &str) -> Vec<String> {
    let mut r: Vec<String> = w
        .cluster
        .events()
        .into_iter()
        .filter(|(ns, _)| ns == namespace)
        .map(|(_, e)| e["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    r.sort();
    r
}

fn event(w: &World, namespace: &str, reason: &str) -> Value {
    w.cluster
        .events()
        .into_iter()
        .find(|(ns, e)| ns == namespace && e["reason"] == reason)
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no {reason} event in {namespace}: {:?}", w.cluster.events()))
}

#[tokio::test]
async fn a_new_store_tells_its_story_in_its_own_namespace() {
    let w = World::with_two_stores();
    w.sync().await;
    assert_eq!(reasons(&w, "store-acme"), ["Created", "HelmInstalled"]);
    let created = event(&w, "store-acme", "Created");
    assert_eq!(created["reportingController"], "storesync");
    assert_eq!(created["type"], "Normal");
    assert_eq!(created["regarding"]["kind"], "Namespace");
    assert_eq!(created["regarding"]["name"], "store-acme");
    assert_eq!(
        created["regarding"]["namespace"], "store-acme",
        "a regarding without a namespace would put the Event in `default`"
    );
    assert!(
        created["note"]
            .as_str()
            .unwrap()
            .starts_with("store acme (woocommerce on plan small) created"),
        "{created}"
    );
    assert!(
        w.cluster.events().iter().all(|(ns, _)| ns != "default"),
        "nothing in default"
    );

    // Nothing changed: no Event either.
    let before = w.cluster.events().len();
    w.sync().await;
    assert_eq!(w.cluster.events().len(), before);

    // A plan change: guardrails updated, release upgraded.
    w.catalog
        .store("acme", &store_yaml("acme", "woocommerce", "medium", "team-acme"));
    w.sync().await;
    assert_eq!(
        reasons(&w, "store-acme"),
        ["Created", "GuardrailsUpdated", "HelmInstalled", "HelmUpgraded"]
    );
    let updated = event(&w, "store-acme", "GuardrailsUpdated");
    assert!(
        updated["note"]
            .as_str()
            .unwrap()
            .contains("ResourceQuota store-quota"),
        "{updated}"
    );
}

#[tokio::test]
async fn a_store_failing_every_sync_is_one_event_with_a_count() {
    let w = World::with_two_stores();
    w.helm.fail_upgrades_of("acme");
    // One applier for all syncs, as the daemon keeps one.
    let applier = w.applier();
    let snapshot = storesync::source::read(&w.catalog.args().location(), None, &Default::default()).unwrap();
    for _ in 0..3 {
        sync::sync(&applier, &snapshot, PlanOptions::default())
            .await
            .unwrap();
    }
    let failed: Vec<Value> = w
        .cluster
        .events()
        .into_iter()
        .filter(|(ns, e)| ns == "store-acme" && e["reason"] == "HelmFailed")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(failed.len(), 1, "aggregated, not one Event per sync: {failed:?}");
    assert_eq!(failed[0]["type"], "Warning");
    assert_eq!(failed[0]["series"]["count"], 3);
    assert!(
        failed[0]["note"]
            .as_str()
            .unwrap()
            .contains("simulated failure for acme")
    );
}

#[tokio::test]
async fn prunes_are_told_before_in_the_store_and_after_where_storesync_lives() {
    let w = World::with_two_stores();
    w.catalog.platform(crate::prune::NO_RETENTION);
    w.sync().await;
    std::fs::remove_file(w.catalog.path().join("stores/bobs.yaml")).unwrap();
    w.cluster.clear_requests();
    w.sync().await;
    let calls: Vec<String> = w
        .cluster
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| r.line())
        .collect();
    let pruning = calls
        .iter()
        .position(|c| c == "POST /apis/events.k8s.io/v1/namespaces/store-bobs/events?")
        .expect("a Pruning Event while the namespace still exists");
    let delete = calls
        .iter()
        .position(|c| c == "DELETE /api/v1/namespaces/store-bobs?")
        .unwrap();
    assert!(pruning < delete, "{calls:?}");
    let pruned = event(&w, "default", "Pruned");
    assert_eq!(pruned["regarding"]["name"], "store-bobs");
    assert!(
        pruned["note"].as_str().unwrap().starts_with("store bobs pruned"),
        "{pruned}"
    );
}

#[tokio::test]
async fn a_blocked_prune_is_a_warning_on_each_store_held_back() {
    let w = World::with_two_stores();
    w.sync().await;
    for name in ["acme", "bobs"] {
        std::fs::remove_file(w.catalog.path().join(format!("stores/{name}.yaml"))).unwrap();
    }
    w.sync().await;
    for ns in ["store-acme", "store-bobs"] {
        let blocked = event(&w, ns, "PruneBlocked");
        assert_eq!(blocked["type"], "Warning");
        assert!(
            blocked["note"].as_str().unwrap().contains("--allow-prune-all"),
            "the reason is in the note: {blocked}"
        );
    }
}

#[tokio::test]
async fn a_dry_run_publishes_nothing() {
    let w = World::with_two_stores();
    let mut applier = w.applier();
    applier.dry_run = true;
    let snapshot = storesync::source::read(&w.catalog.args().location(), None, &Default::default()).unwrap();
    let outcome = sync::sync(&applier, &snapshot, PlanOptions::default())
        .await
        .unwrap();
    assert!(matches!(outcome, SyncOutcome::Done(_)));
    assert!(w.cluster.events().is_empty());
}
