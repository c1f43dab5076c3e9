//! Retire, then purge: a store whose file is gone is stopped with its data kept, restored on
//! the same claims and credentials when its file comes back, and purged only once
//! `prune.retention` passed, a bounded number per sync. Same fake API server and recording
//! helm as sync.rs: the helm that stops a store renders the real chart with `retired: true`.
use serde_json::Value;
use storesync::plan::{Action, PlanOptions};
use storesync::sync::SyncOutcome;

use crate::common::store_yaml;
use crate::sync::world::World;

/// The uids of what holds bobs' data: its namespace, claims and credentials.
fn data_uids(w: &World) -> Vec<(String, Value)> {
    let mut out = vec![(
        "namespace".to_string(),
        w.cluster.get("namespaces", "", "store-bobs").unwrap()["metadata"]["uid"].clone(),
    )];
    for claim in w.cluster.names("persistentvolumeclaims", "store-bobs") {
        let uid = w
            .cluster
            .get("persistentvolumeclaims", "store-bobs", &claim)
            .unwrap()["metadata"]["uid"]
            .clone();
        out.push((format!("claim {claim}"), uid));
    }
    out.push((
        "credentials".to_string(),
        w.cluster
            .get("secrets", "store-bobs", "store-credentials")
            .unwrap()["metadata"]["uid"]
            .clone(),
    ));
    out
}

fn labels(w: &World) -> Value {
    w.cluster.get("namespaces", "", "store-bobs").unwrap()["metadata"]["labels"].clone()
}

fn annotations(w: &World) -> Value {
    w.cluster.get("namespaces", "", "store-bobs").unwrap()["metadata"]["annotations"].clone()
}

/// Replicas of every Deployment and StatefulSet in store-bobs.
fn replicas(w: &World) -> Vec<i64> {
    let mut out = Vec::new();
    for plural in ["deployments", "statefulsets"] {
        for name in w.cluster.names(plural, "store-bobs") {
            let obj = w.cluster.get(plural, "store-bobs", &name).unwrap();
            out.push(obj["spec"]["replicas"].as_i64().unwrap_or(1));
        }
    }
    out
}

fn event_reasons(w: &World, namespace: &str) -> Vec<String> {
    w.cluster
        .events()
        .into_iter()
        .filter(|(ns, _)| ns == namespace)
        .map(|(_, e)| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Two stores synced, then bobs' file removed and synced again: bobs is retired.
async fn bobs_retired() -> (World, Vec<(String, Value)>) {
    let w = World::with_two_stores();
    assert_eq!(w.sync().await.summary.applied, 2);
    let uids = data_uids(&w);
    assert!(uids.len() >= 3, "a claim to keep: {uids:?}");
    assert!(!w.cluster.names("ingresses", "store-bobs").is_empty());
    std::fs::remove_file(w.catalog.path().join("stores/bobs.yaml")).unwrap();
    (w, uids)
}

#[tokio::test]
async fn a_removed_store_is_retired_stopped_with_its_data_kept() {
    let (w, uids) = bobs_retired().await;
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let SyncOutcome::Done(synced) = w.sync_with(PlanOptions::default()).await else {
        panic!("valid")
    };
    let report = &synced.report;
    assert_eq!(
        report.description(),
        "applied 0, pruned 0, retired 1, unchanged 1"
    );

    // Helm stops it: the release's own values plus retired: true, recorded as retired.
    let calls = w.helm.calls();
    assert_eq!(calls.len(), before + 1, "{calls:?}");
    let call = &calls[before];
    assert_eq!(&call[..3], ["upgrade", "--reset-then-reuse-values", "bobs"]);
    assert!(!call.contains(&"--install".to_string()), "{call:?}");
    for flag in [
        "--reset-then-reuse-values",
        "--wait=hookOnly",
        "storesync.dev/release-hash=retired",
    ] {
        assert!(call.contains(&flag.to_string()), "{flag} in {call:?}");
    }
    assert!(call.ends_with(&[
        "--kube-as-user".to_string(),
        "system:serviceaccount:store-bobs:storesync-helm".to_string()
    ]));
    assert_eq!(w.helm.values(before + 1, "bobs"), "retired: true\n");
    let rendered = w.helm.rendered(before + 1, "bobs");
    assert!(
        rendered.contains("store-credentials"),
        "rendered from the release's last values: {rendered}"
    );

    // Nothing is deleted but what the chart stops rendering when retired (the Ingress).
    let writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    assert!(!writes.iter().any(|r| r.starts_with("DELETE")), "{writes:?}");
    assert_eq!(
        data_uids(&w),
        uids,
        "namespace, claims and credentials are the same objects"
    );
    assert!(
        w.cluster.names("ingresses", "store-bobs").is_empty(),
        "no Ingress serves"
    );
    assert!(
        !replicas(&w).is_empty() && replicas(&w).iter().all(|r| *r == 0),
        "no pod runs"
    );

    // The namespace says it, with when and by what.
    assert_eq!(labels(&w)["storesync.dev/state"], "retired");
    let ann = annotations(&w);
    let at = ann["storesync.dev/retired-at"].as_str().expect("retired-at");
    let at = storesync::text::parse_rfc3339(at).expect("RFC 3339");
    assert!((storesync::text::unix_now() - at).abs() < 60);
    assert_eq!(ann["storesync.dev/retired-by"], "work-tree");
    assert_eq!(
        ann["storesync.dev/purge-at"],
        storesync::text::rfc3339(at + 168 * 3600).as_str()
    );
    assert!(event_reasons(&w, "store-bobs").contains(&"Retired".to_string()));
    let health = synced.live.stores["bobs"].health.as_ref().expect("judged");
    assert_eq!(health.health.as_str(), "Retired");

    // Synced again: nothing to do, nothing written, and it says when it goes.
    w.cluster.clear_requests();
    let SyncOutcome::Done(again) = w.sync_with(PlanOptions::default()).await else {
        panic!("valid")
    };
    assert_eq!(again.report.description(), "applied 0, pruned 0, unchanged 1");
    let bobs = again.plan.stores.iter().find(|s| s.store == "bobs").unwrap();
    assert_eq!(bobs.action, Action::Retired);
    assert!(
        bobs.reason.as_deref().unwrap().contains("purged after"),
        "{bobs:?}"
    );
    let writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(w.helm.calls().len(), before + 1);
}

#[tokio::test]
async fn its_file_back_restores_the_store_on_the_same_claims_and_credentials() {
    let (w, uids) = bobs_retired().await;
    w.sync().await;
    let replicas_retired = replicas(&w);
    w.catalog
        .store("bobs", &store_yaml("bobs", "medusa", "medium", "team-bikes"));
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let SyncOutcome::Done(synced) = w.sync_with(PlanOptions::default()).await else {
        panic!("valid")
    };
    let bobs = synced.plan.stores.iter().find(|s| s.store == "bobs").unwrap();
    assert_eq!(bobs.action, Action::Restore);
    assert_eq!(
        synced.report.description(),
        "applied 0, pruned 0, restored 1, unchanged 1"
    );

    let call = &w.helm.calls()[before];
    assert_eq!(&call[..3], ["upgrade", "--install", "bobs"]);
    assert!(
        !call.contains(&"--reset-then-reuse-values".to_string()),
        "the store's own values: {call:?}"
    );
    assert_eq!(data_uids(&w), uids, "the same namespace, claims and credentials");
    let writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    assert!(
        !writes.iter().any(|r| r.contains("/secrets")),
        "no new credentials: {writes:?}"
    );
    assert!(
        !w.cluster.names("ingresses", "store-bobs").is_empty(),
        "it serves again"
    );
    assert!(
        replicas(&w).iter().all(|r| *r > 0),
        "{:?} after {replicas_retired:?}",
        replicas(&w)
    );
    assert!(labels(&w).get("storesync.dev/state").is_none(), "{}", labels(&w));
    let ann = annotations(&w);
    for key in [
        "storesync.dev/retired-at",
        "storesync.dev/retired-by",
        "storesync.dev/purge-at",
    ] {
        assert!(ann.get(key).is_none(), "{key} left on {ann}");
    }
    assert!(event_reasons(&w, "store-bobs").contains(&"Restored".to_string()));
    let health = synced.live.stores["bobs"].health.as_ref().expect("judged");
    assert_eq!(health.health.as_str(), "Healthy", "{health:?}");

    // Then it is a store like any other.
    let again = w.sync().await;
    assert_eq!(again.description(), "applied 0, pruned 0, unchanged 2");
}

#[tokio::test]
async fn a_file_of_another_engine_waits_until_the_retired_store_is_purged() {
    let (w, _) = bobs_retired().await;
    w.sync().await;
    let purge = annotations(&w)["storesync.dev/purge-at"]
        .as_str()
        .unwrap()
        .to_string();
    w.catalog
        .store("bobs", &store_yaml("bobs", "woocommerce", "small", "team-bikes"));
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    // An acme change in the same commit: an invalid catalog applies nothing, in whole or part.
    w.catalog
        .store("acme", &store_yaml("acme", "woocommerce", "medium", "team-acme"));
    let SyncOutcome::Invalid(findings) = w.sync_with(PlanOptions::default()).await else {
        panic!("a file taking a retired store's name with another engine is invalid")
    };
    assert_eq!(findings.len(), 1, "{findings:?}");
    let finding = findings[0].to_string();
    assert!(
        finding.starts_with(
            "stores/bobs.yaml:2:9: error: `engine: woocommerce` is not valid yet: store bobs is retired as a medusa store"
        ) && finding.contains(&purge)
            && finding.contains("hint: write `engine: medusa` to restore the store"),
        "{finding}"
    );
    let writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(w.helm.calls().len(), before);
    assert_eq!(labels(&w)["storesync.dev/state"], "retired");
}

/// Moves the retirement of `store` back by `seconds`, as if it had been retired that long ago.
fn retired_ago(w: &World, store: &str, seconds: i64) {
    let at = storesync::text::rfc3339(storesync::text::unix_now() - seconds);
    w.cluster.edit("namespaces", "", &format!("store-{store}"), |ns| {
        ns["metadata"]["annotations"]["storesync.dev/retired-at"] = Value::String(at);
    });
}

#[tokio::test]
async fn a_store_retired_for_the_retention_is_purged_a_few_per_sync() {
    let w = World::new();
    w.catalog
        .platform("prune:\n  retention: 2h\nlimits:\n  maxPrunesPerSync: 2\n");
    let names = ["keep", "old-1", "old-2", "old-3"];
    for name in names {
        w.catalog
            .store(name, &store_yaml(name, "woocommerce", "small", "team-a"));
    }
    w.sync().await;
    let remove = |names: &[&str]| {
        for name in names {
            std::fs::remove_file(w.catalog.path().join(format!("stores/{name}.yaml"))).unwrap();
        }
    };
    // Retirements count against the breaker as deletions did: three at once are too many.
    remove(&names[1..]);
    let report = w.sync().await;
    assert_eq!((report.summary.retired, report.summary.blocked), (0, 3));
    for name in &names[3..] {
        w.catalog
            .store(name, &store_yaml(name, "woocommerce", "small", "team-a"));
    }
    assert_eq!(w.sync().await.summary.retired, 2);
    remove(&names[3..]);
    assert_eq!(w.sync().await.summary.retired, 1);
    // Within the retention: nothing goes.
    retired_ago(&w, "old-1", 3600);
    assert_eq!(w.sync().await.summary.purged, 0);

    // old-3 and old-1 have been retired longest: they go first, two in this sync.
    retired_ago(&w, "old-1", 3 * 3600);
    retired_ago(&w, "old-2", 2 * 3600 + 60);
    retired_ago(&w, "old-3", 4 * 3600);
    let uid = w.cluster.get("namespaces", "", "store-old-3").unwrap()["metadata"]["uid"].clone();
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let report = w.sync().await;
    assert_eq!(report.description(), "applied 0, pruned 0, purged 2, unchanged 1");
    let calls: Vec<String> = w.helm.calls()[before..]
        .iter()
        .map(|c| c[..2].join(" "))
        .collect();
    assert_eq!(calls, ["uninstall old-1", "uninstall old-3"]);
    let delete = w
        .cluster
        .writes()
        .into_iter()
        .find(|r| r.line() == "DELETE /api/v1/namespaces/store-old-3?")
        .expect("the namespace deleted");
    assert_eq!(delete.body.unwrap()["preconditions"]["uid"], uid, "uid-guarded");
    assert!(w.cluster.get("namespaces", "", "store-old-1").is_none());
    assert!(
        w.cluster.get("namespaces", "", "store-old-2").is_some(),
        "waits for the next sync"
    );
    let purged: Vec<Value> = w
        .cluster
        .events()
        .into_iter()
        .filter(|(ns, e)| ns == "default" && e["reason"] == "Purged")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(purged.len(), 2, "{purged:?}");

    let report = w.sync().await;
    assert_eq!(report.summary.purged, 1);
    assert!(w.cluster.get("namespaces", "", "store-old-2").is_none());
    assert!(w.cluster.get("namespaces", "", "store-keep").is_some());
}

#[tokio::test]
async fn a_setup_job_still_running_is_stopped_with_the_store() {
    let (w, _) = bobs_retired().await;
    // An upgrade timed out while its setup hook ran: the Job outlives it, its pod running.
    let job = |name: &str, instance: &str, hook: bool, active: i64| {
        let mut annotations = serde_json::json!({});
        if hook {
            annotations["helm.sh/hook"] = "post-install,post-upgrade".into();
        }
        serde_json::json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name,
            "labels": {"app.kubernetes.io/instance": instance, "app.kubernetes.io/managed-by": "Helm"},
            "annotations": annotations}, "status": {"active": active}})
    };
    w.cluster
        .insert("jobs", "store-bobs", job("bobs-setup", "bobs", true, 1));
    w.cluster
        .insert("jobs", "store-bobs", job("bobs-done", "bobs", true, 0));
    w.cluster
        .insert("jobs", "store-bobs", job("team-report", "bobs", false, 1));
    w.cluster.clear_requests();
    assert_eq!(w.sync().await.summary.retired, 1);
    let deletes: Vec<String> = w
        .cluster
        .writes()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.line())
        .collect();
    assert_eq!(
        deletes,
        ["DELETE /apis/batch/v1/namespaces/store-bobs/jobs/bobs-setup?"],
        "only the release's running hook"
    );
    let delete = w
        .cluster
        .writes()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(
        delete.impersonate.as_deref(),
        Some("system:serviceaccount:store-bobs:storesync-helm"),
        "as the store's identity"
    );
    assert!(w.cluster.get("jobs", "store-bobs", "bobs-setup").is_none());
    assert!(w.cluster.get("jobs", "store-bobs", "team-report").is_some());
}

#[tokio::test]
async fn a_retirement_whose_helm_failed_is_marked_and_stopped_again_later() {
    let (w, _) = bobs_retired().await;
    w.helm.fail_upgrades_of("bobs");
    let report = w.sync().await;
    assert_eq!(report.summary.failed, 1, "{report:?}");
    assert_eq!(
        labels(&w)["storesync.dev/state"],
        "retired",
        "the retention runs from the first attempt"
    );
    let at = annotations(&w)["storesync.dev/retired-at"].clone();

    std::fs::remove_file(w.helm.path().join("fail-upgrade-bobs")).unwrap();
    let SyncOutcome::Done(synced) = w.sync_with(PlanOptions::default()).await else {
        panic!("valid")
    };
    let bobs = synced.plan.stores.iter().find(|s| s.store == "bobs").unwrap();
    assert_eq!(bobs.action, Action::Retire);
    assert!(
        bobs.reason.as_deref().unwrap().contains("stopped again"),
        "{bobs:?}"
    );
    assert_eq!(synced.report.summary.retired, 1);
    assert_eq!(
        annotations(&w)["storesync.dev/retired-at"],
        at,
        "the retention is not restarted"
    );
    assert!(replicas(&w).iter().all(|r| *r == 0));
}

#[tokio::test]
async fn a_dry_run_retires_nothing() {
    let (w, _) = bobs_retired().await;
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let mut applier = w.applier();
    applier.dry_run = true;
    let synced = w.sync_by(&applier).await;
    let bobs = synced.plan.stores.iter().find(|s| s.store == "bobs").unwrap();
    assert_eq!(bobs.action, Action::Retire);
    let writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    assert!(
        !writes.is_empty() && writes.iter().all(|r| r.contains("dryRun=All")),
        "{writes:?}"
    );
    assert_eq!(w.helm.calls().len(), before, "no helm in a dry run");
    assert!(labels(&w).get("storesync.dev/state").is_none());
    assert!(!replicas(&w).contains(&0));
}
