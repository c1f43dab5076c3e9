//! A replica that no longer leads writes nothing: no store starts, no prune, no breaker record.

use serde_json::Value;
use storesync::apply::{Applier, Outcome, WriteGate};
use tokio::sync::watch;

use super::world::World;

#[tokio::test]
async fn a_closed_write_gate_starts_no_store_and_no_prune() {
    let w = World::with_two_stores();
    w.sync().await;
    let helm_calls = w.helm.calls().len();
    // One store changes, the other's file is gone: an update and a prune are planned.
    w.catalog.store(
        "acme",
        &crate::common::store_yaml("acme", "woocommerce", "medium", "team-acme"),
    );
    std::fs::remove_file(w.catalog.path().join("stores/bobs.yaml")).unwrap();
    w.cluster.clear_requests();

    let (_open, closed) = watch::channel(false);
    let applier = Applier {
        gate: WriteGate::new(closed),
        ..w.applier()
    };
    let synced = w.sync_by(&applier).await;
    let outcomes: Vec<(&str, Outcome, Option<&str>)> = synced
        .report
        .stores
        .iter()
        .map(|r| (r.store.as_str(), r.outcome, r.detail.as_deref()))
        .collect();
    let not_started = Some("not started: this replica no longer leads");
    assert_eq!(
        outcomes,
        [
            ("acme", Outcome::Skipped, not_started),
            ("bobs", Outcome::Skipped, not_started)
        ]
    );
    assert_eq!(w.helm.calls().len(), helm_calls, "no helm");
    let writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "no write at all (breaker record included)"
    );
    let ns: Option<Value> = w.cluster.get("namespaces", "", "store-bobs");
    assert!(ns.is_some(), "bobs is still there");
}
