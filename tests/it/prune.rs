//! What one sync must not destroy or take over: a removed store is retired (see retire.rs), or
//! with `prune.retention: 0s` pruned release then namespace, guarded by its uid; unowned and
//! protected namespaces, the prune breaker (which counts retirements), an invalid catalog,
//! `--no-prune` and dry run. Same fake API server and recording helm as sync.rs.
use crate::common;

use crate::sync::world;

use common::store_yaml;
use serde_json::json;
use storesync::plan::{Action, PlanOptions};
use storesync::sync::{self, SyncOutcome};
use world::{World, apply_cli};

/// `storesync.yaml` that deletes a store as soon as its file is gone, as before retirement.
pub const NO_RETENTION: &str = "prune:\n  retention: 0s\n";

#[tokio::test]
async fn with_no_retention_a_removed_store_is_pruned_release_then_namespace() {
    let w = World::with_two_stores();
    w.catalog.platform(NO_RETENTION);
    w.sync().await;
    let uid = w.cluster.get("namespaces", "", "store-bobs").unwrap()["metadata"]["uid"].clone();
    std::fs::remove_file(w.catalog.path().join("stores/bobs.yaml")).unwrap();
    w.cluster.clear_requests();
    let before = w.helm.calls().len();

    let report = w.sync().await;
    assert_eq!(report.description(), "applied 0, pruned 1, unchanged 1");
    assert_eq!(
        w.helm.calls()[before],
        [
            "uninstall",
            "bobs",
            "--namespace",
            "store-bobs",
            "--wait",
            "--timeout",
            "60s",
            "--ignore-not-found",
            "--kube-as-user",
            "system:serviceaccount:store-bobs:storesync-helm"
        ]
    );
    let writes = w.cluster.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].line(), "DELETE /api/v1/namespaces/store-bobs?");
    assert_eq!(
        writes[0].body.as_ref().unwrap()["preconditions"]["uid"],
        uid,
        "deletion is guarded by the uid"
    );
    assert!(w.cluster.get("namespaces", "", "store-bobs").is_none());
}

#[tokio::test]
async fn unowned_namespaces_are_never_touched() {
    let w = World::with_two_stores();
    w.cluster.insert(
        "namespaces",
        "",
        json!({"metadata": {"name": "store-legacy", "labels": {"storesync.dev/store": "legacy"}}}),
    );
    w.sync().await;
    assert!(
        !w.cluster
            .requests()
            .iter()
            .any(|r| r.uri.contains("store-legacy")),
        "never named in any call"
    );
    assert!(w.cluster.get("namespaces", "", "store-legacy").is_some());
}

#[tokio::test]
async fn protected_store_is_kept_when_its_file_is_gone() {
    let w = World::with_two_stores();
    w.catalog.store(
        "bobs",
        &format!(
            "{}protected: true\n",
            store_yaml("bobs", "medusa", "medium", "team-bikes")
        ),
    );
    w.sync().await;
    std::fs::remove_file(w.catalog.path().join("stores/bobs.yaml")).unwrap();
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let report = w.sync().await;
    assert_eq!(report.summary.skipped, 1, "kept and reported, not a failure");
    assert!(w.cluster.writes().is_empty());
    assert_eq!(w.helm.calls().len(), before);
}

#[tokio::test]
async fn prune_breaker_blocks_a_mass_prune() {
    let w = World::new();
    for i in 0..7 {
        let name = format!("shop-{i}");
        w.catalog
            .store(&name, &store_yaml(&name, "woocommerce", "small", "team-a"));
    }
    w.sync().await;
    for i in 1..7 {
        std::fs::remove_file(w.catalog.path().join(format!("stores/shop-{i}.yaml"))).unwrap();
    }
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let report = w.sync().await;
    assert_eq!((report.summary.retired, report.summary.pruned), (0, 0));
    assert_eq!(report.summary.blocked, 6);
    assert_eq!(
        report.blocked,
        vec!["6 stores would be pruned; limits.maxPrunesPerSync is 5: no store is pruned"]
    );
    assert!(
        report.description().contains("blocked: 6 stores would be pruned"),
        "{}",
        report.description()
    );
    assert!(w.cluster.writes().is_empty());
    assert_eq!(w.helm.calls().len(), before);
}

#[tokio::test]
async fn invalid_catalog_changes_nothing_and_reads_nothing() {
    let w = World::with_two_stores();
    w.sync().await;
    std::fs::remove_file(w.catalog.path().join("stores/bobs.yaml")).unwrap();
    w.catalog.store(
        "dune",
        "name: dune\nengine: magento\nplan: small\nowner: team-d\n",
    );
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    match w.sync_with(PlanOptions::default()).await {
        SyncOutcome::Invalid(findings) => {
            assert!(findings.iter().any(|f| f.message == "unknown engine `magento`"))
        }
        SyncOutcome::Done(_) => panic!("an invalid catalog must not sync"),
    }
    assert!(w.cluster.requests().is_empty(), "not even observed");
    assert_eq!(w.helm.calls().len(), before);
    assert!(
        w.cluster.get("namespaces", "", "store-bobs").is_some(),
        "nothing pruned"
    );
}

#[tokio::test]
async fn terminating_namespace_is_reported_not_recreated() {
    let w = World::with_two_stores();
    w.catalog.platform(NO_RETENTION);
    w.cluster.slow_namespace_deletion();
    w.sync().await;
    std::fs::remove_file(w.catalog.path().join("stores/bobs.yaml")).unwrap();
    let report = w.sync().await;
    assert_eq!(report.summary.pruned, 1);
    assert!(
        w.cluster.get("namespaces", "", "store-bobs").unwrap()["metadata"]["deletionTimestamp"].is_string()
    );

    // The file comes back while the namespace is still going away.
    w.catalog
        .store("bobs", &store_yaml("bobs", "medusa", "medium", "team-bikes"));
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let outcome = w.sync_with(PlanOptions::default()).await;
    let SyncOutcome::Done(synced) = outcome else {
        panic!("valid")
    };
    let (plan, report) = (synced.plan, synced.report);
    let bobs = plan.stores.iter().find(|s| s.store == "bobs").unwrap();
    assert_eq!(bobs.action, Action::Blocked);
    assert!(bobs.reason.as_deref().unwrap().contains("terminating"));
    assert_eq!(report.summary.blocked, 1);
    assert!(w.cluster.writes().is_empty());
    assert_eq!(w.helm.calls().len(), before);
}

#[tokio::test]
async fn no_prune_and_dry_run_write_nothing_destructive() {
    let w = World::with_two_stores();
    w.sync().await;
    std::fs::remove_file(w.catalog.path().join("stores/bobs.yaml")).unwrap();
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let SyncOutcome::Done(synced) = w
        .sync_with(PlanOptions {
            no_prune: true,
            ..Default::default()
        })
        .await
    else {
        panic!("valid")
    };
    assert_eq!(synced.report.summary.skipped, 1);
    assert!(w.cluster.writes().is_empty());
    assert_eq!(w.helm.calls().len(), before);

    // Dry run: a new store's writes are sent with dryRun=All, nothing is stored, no helm.
    w.catalog
        .store("cafe", &store_yaml("cafe", "woocommerce", "small", "team-c"));
    let mut applier = w.applier();
    applier.dry_run = true;
    let snapshot = storesync::source::read(&w.catalog.args().location(), None, &Default::default()).unwrap();
    let SyncOutcome::Done(_) = sync::sync(
        &applier,
        &snapshot,
        PlanOptions {
            no_prune: true,
            ..Default::default()
        },
    )
    .await
    .unwrap() else {
        panic!("valid")
    };
    assert!(w.cluster.get("namespaces", "", "store-cafe").is_none());
    assert!(
        w.cluster.writes().iter().all(|r| r.uri.contains("dryRun=All")),
        "{:?}",
        w.cluster.writes()
    );
    assert_eq!(w.helm.calls().len(), before);
}

#[tokio::test]
async fn apply_exits_one_when_the_breaker_holds_prunes_back() {
    use storesync::config::OutputFormat;
    let w = World::new();
    w.catalog.platform("limits:\n  maxPrunesPerSync: 1\n");
    for name in ["aaa", "bbb", "ccc"] {
        w.catalog
            .store(name, &store_yaml(name, "woocommerce", "small", "team-a"));
    }
    assert_eq!(apply_cli(&w, OutputFormat::Text).await.0, 0);
    std::fs::remove_file(w.catalog.path().join("stores/aaa.yaml")).unwrap();
    std::fs::remove_file(w.catalog.path().join("stores/bbb.yaml")).unwrap();
    let (code, out, _) = apply_cli(&w, OutputFormat::Text).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Blocked: 2 stores would be pruned; limits.maxPrunesPerSync is 1: no store is pruned"),
        "{out}"
    );
    assert!(w.cluster.get("namespaces", "", "store-aaa").is_some());
}

#[tokio::test]
async fn a_namespace_that_is_not_storesyncs_is_never_taken_over() {
    let w = World::with_two_stores();
    w.cluster.insert(
        "namespaces",
        "",
        json!({"metadata": {"name": "store-acme", "labels": {"team": "legacy"}}}),
    );
    let report = w.sync().await;
    assert_eq!((report.summary.applied, report.summary.failed), (1, 1));
    let acme = report.stores.iter().find(|r| r.store == "acme").unwrap();
    assert!(
        acme.detail
            .as_deref()
            .unwrap()
            .starts_with("namespace store-acme exists but is not managed by storesync")
    );
    let writes: Vec<String> = w
        .cluster
        .writes()
        .iter()
        .filter(|r| r.uri.contains("store-acme"))
        .map(|r| r.line())
        .collect();
    assert!(
        writes.is_empty(),
        "nothing written into the foreign namespace: {writes:?}"
    );
    assert!(
        !w.helm.calls().iter().any(|c| c[2] == "acme"),
        "no release installed into it"
    );
    assert_eq!(
        w.cluster.get("namespaces", "", "store-acme").unwrap()["metadata"]["labels"],
        json!({"team": "legacy"})
    );
}

/// A world with `names` synced once, so the prune limit of that commit is recorded.
async fn synced_world(names: &[&str]) -> World {
    let w = World::new();
    for name in names {
        w.catalog
            .store(name, &store_yaml(name, "woocommerce", "small", "team-a"));
    }
    w.sync().await;
    w
}

fn remove(w: &World, names: &[&str]) {
    for name in names {
        std::fs::remove_file(w.catalog.path().join(format!("stores/{name}.yaml"))).unwrap();
    }
}

#[tokio::test]
async fn a_commit_cannot_lift_its_own_prune_breaker() {
    let all = [
        "shop-0", "shop-1", "shop-2", "shop-3", "shop-4", "shop-5", "shop-6",
    ];
    let w = synced_world(&all).await;
    let record = w
        .cluster
        .get("configmaps", "default", "storesync-applied")
        .unwrap();
    assert_eq!(
        record["data"]["maxPrunesPerSync"], "5",
        "the applied limit is recorded"
    );

    // One change empties most of the catalog and raises the limit that guards it.
    remove(&w, &all[1..]);
    w.catalog.platform("limits:\n  maxPrunesPerSync: 1000\n");
    w.cluster.clear_requests();
    let helm_before = w.helm.calls().len();
    let report = w.sync().await;
    assert_eq!((report.summary.retired, report.summary.blocked), (0, 6));
    assert_eq!(report.blocked.len(), 1, "{:?}", report.blocked);
    assert!(
        report.blocked[0].starts_with(
            "6 stores would be pruned; the limit is 5 (limits.maxPrunesPerSync at the last applied commit"
        ),
        "{}",
        report.blocked[0]
    );
    assert!(report.description().contains("blocked: 6 stores would be pruned"));
    assert!(w.cluster.writes().is_empty(), "{:?}", w.cluster.writes());
    assert_eq!(w.helm.calls().len(), helm_before);
    let record = w
        .cluster
        .get("configmaps", "default", "storesync-applied")
        .unwrap();
    assert_eq!(
        record["data"]["maxPrunesPerSync"], "5",
        "a blocked sync records nothing"
    );

    // Raised in a change of its own first, the new limit counts for the next one.
    for name in &all[1..] {
        w.catalog
            .store(name, &store_yaml(name, "woocommerce", "small", "team-a"));
    }
    let report = w.sync().await;
    assert!(report.blocked.is_empty(), "{:?}", report.blocked);
    let record = w
        .cluster
        .get("configmaps", "default", "storesync-applied")
        .unwrap();
    assert_eq!(record["data"]["maxPrunesPerSync"], "1000");
    remove(&w, &all[1..]);
    let report = w.sync().await;
    assert_eq!(report.summary.retired, 6, "{:?}", report.blocked);
}

#[tokio::test]
async fn a_commit_that_lowers_its_breaker_is_held_to_it_at_once() {
    let w = synced_world(&["aaa", "bbb", "ccc", "ddd"]).await;
    remove(&w, &["aaa", "bbb"]);
    w.catalog.platform("limits:\n  maxPrunesPerSync: 1\n");
    w.cluster.clear_requests();
    let report = w.sync().await;
    assert_eq!(
        report.blocked,
        vec!["2 stores would be pruned; limits.maxPrunesPerSync is 1: no store is pruned"]
    );
    assert!(w.cluster.writes().is_empty());
}

#[tokio::test]
async fn pruning_every_live_store_needs_allow_prune_all() {
    let w = synced_world(&["aaa", "bbb", "ccc"]).await;
    remove(&w, &["aaa", "bbb", "ccc"]);
    w.cluster.clear_requests();
    let helm_before = w.helm.calls().len();
    let report = w.sync().await;
    assert_eq!((report.summary.retired, report.summary.blocked), (0, 3));
    assert_eq!(
        report.blocked,
        vec![
            "every live store (3) would be pruned: no store is pruned; storesync must run with \
             --allow-prune-all to empty the platform"
        ]
    );
    assert!(w.cluster.writes().is_empty());
    assert_eq!(w.helm.calls().len(), helm_before);

    // The operator's flag, not the commit, lets it through.
    let mut applier = w.applier();
    applier.policy.allow_prune_all = true;
    let snapshot = storesync::source::read(&w.catalog.args().location(), None, &Default::default()).unwrap();
    let outcome = sync::sync(&applier, &snapshot, PlanOptions::default())
        .await
        .unwrap();
    let SyncOutcome::Done(synced) = outcome else {
        panic!("valid catalog")
    };
    assert_eq!(synced.report.summary.retired, 3, "{:?}", synced.report.blocked);
    assert_eq!(
        w.cluster.get("namespaces", "", "store-aaa").unwrap()["metadata"]["labels"]["storesync.dev/state"],
        "retired"
    );
}

#[tokio::test]
async fn the_last_single_store_may_go_without_the_flag() {
    let w = synced_world(&["aaa"]).await;
    remove(&w, &["aaa"]);
    let report = w.sync().await;
    assert_eq!(report.summary.retired, 1, "{:?}", report.blocked);
}

#[tokio::test]
async fn a_foreign_breaker_record_stops_the_sync_before_any_write() {
    let w = World::with_two_stores();
    w.cluster.insert(
        "configmaps",
        "default",
        json!({"metadata": {"name": "storesync-applied"}, "data": {"maxPrunesPerSync": "1000"}}),
    );
    let snapshot = storesync::source::read(&w.catalog.args().location(), None, &Default::default()).unwrap();
    let err = sync::sync(&w.applier(), &snapshot, PlanOptions::default())
        .await
        .expect_err("a record storesync did not write is never trusted");
    assert!(err.to_string().contains("is not managed by storesync"), "{err}");
    assert!(w.cluster.writes().is_empty());
    assert!(w.helm.calls().is_empty());
}

const OCI_PLATFORM: &str = "engines:\n  woocommerce:\n    chart: oci://registry.example.com/charts/woocommerce\n    version: 0.1.0\n";

#[tokio::test]
async fn oci_charts_need_a_prefix_the_operator_allows() {
    let w = World::new();
    w.catalog.platform(OCI_PLATFORM);
    w.catalog
        .store("acme", &store_yaml("acme", "woocommerce", "small", "team-a"));
    let snapshot = storesync::source::read(&w.catalog.args().location(), None, &Default::default()).unwrap();
    let outcome = sync::sync(&w.applier(), &snapshot, PlanOptions::default())
        .await
        .unwrap();
    let SyncOutcome::Invalid(findings) = outcome else {
        panic!("a chart outside the allowed prefixes")
    };
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].location(), "storesync.yaml:3:12");
    assert!(
        findings[0].message.contains("none are allowed"),
        "{}",
        findings[0].message
    );
    assert!(w.cluster.requests().is_empty(), "not even observed");
    assert!(w.helm.calls().is_empty());

    // Under an allowed prefix (segment-wise), helm is handed the reference as written.
    let mut applier = w.applier();
    applier.helm.allowed_chart_prefixes = vec!["oci://registry.example.com/charts-other".into()];
    let outcome = sync::sync(&applier, &snapshot, PlanOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, SyncOutcome::Invalid(_)),
        "a look-alike prefix allows nothing"
    );
    applier.helm.allowed_chart_prefixes = vec!["oci://registry.example.com/charts".into()];
    let outcome = sync::sync(&applier, &snapshot, PlanOptions::default())
        .await
        .unwrap();
    assert!(matches!(outcome, SyncOutcome::Done(_)));
    let calls = w.helm.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0][3], "oci://registry.example.com/charts/woocommerce");
}

/// A store file renamed so that it is no longer read: each rename makes the catalog invalid, so
/// the sync writes and deletes nothing, instead of pruning the store.
#[tokio::test]
async fn a_renamed_store_file_is_never_pruned() {
    let renames: [(&str, &str, &str); 3] = [
        ("acme", "stores/archive/acme.yaml", "stores/archive: error"),
        (
            "corner-books",
            "stores/corner-books.YAML",
            "stores/corner-books.YAML: error",
        ),
        (
            "dune-coffee",
            "stores/.dune-coffee.yaml",
            "stores/.dune-coffee.yaml: error",
        ),
    ];
    for (store, to, finding) in renames {
        let w = World::new();
        for (name, engine) in [
            ("acme", "woocommerce"),
            ("corner-books", "woocommerce"),
            ("dune-coffee", "medusa"),
        ] {
            w.catalog
                .store(name, &store_yaml(name, engine, "small", "team-a"));
        }
        assert_eq!(w.sync().await.summary.applied, 3);
        let to = w.catalog.path().join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(w.catalog.path().join(format!("stores/{store}.yaml")), to).unwrap();
        w.cluster.clear_requests();
        let helm_calls = w.helm.calls().len();

        match w.sync_with(PlanOptions::default()).await {
            SyncOutcome::Invalid(findings) => assert!(
                findings.iter().any(|f| f.to_string().starts_with(finding)),
                "{store}: {findings:?}"
            ),
            SyncOutcome::Done(synced) => panic!(
                "{store}: the rename must invalidate the catalog, not sync: {}",
                synced.report.description()
            ),
        }
        let requests: Vec<String> = w.cluster.requests().iter().map(|r| r.line()).collect();
        assert!(
            !requests.iter().any(|r| !r.starts_with("GET ")),
            "{store}: no write and no delete: {requests:?}"
        );
        assert_eq!(w.helm.calls().len(), helm_calls, "{store}: helm not run");
        assert!(
            w.cluster
                .get("namespaces", "", &format!("store-{store}"))
                .is_some(),
            "{store}: not pruned"
        );
    }
}
