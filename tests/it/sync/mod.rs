//! One sync against a fake API server and a recording helm: the exact calls, no wasted work,
//! repairs of drift and of stuck releases, and exit codes. The prune guards are in prune.rs.
use crate::common;

mod drift;
mod drift_cost;
mod events;
mod gate;
mod health;
mod release_storage;
mod tenant;
pub(crate) mod world;

use common::{repo_root, store_yaml};
use serde_json::json;
use storesync::apply::Outcome;
use storesync::plan::PlanOptions;
use storesync::sync::{self, SyncOutcome};
use world::{World, apply_cli};

const OWNED: &str = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dstoresync&limit=500";

#[tokio::test]
async fn first_sync_creates_everything_with_the_exact_calls() {
    let w = World::with_two_stores();
    let report = w.sync().await;
    assert_eq!(report.summary.applied, 2, "{report:?}");
    assert_eq!(report.description(), "applied 2, pruned 0, unchanged 0");

    let requests = w.cluster.requests();
    let gets: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.uri.clone())
        .collect();
    let mut counted: std::collections::BTreeMap<String, usize> = Default::default();
    for uri in &gets {
        *counted.entry(uri.clone()).or_default() += 1;
    }
    let helm = "labelSelector=app.kubernetes.io%2Fmanaged-by%3DHelm&limit=500";
    let expected: std::collections::BTreeMap<String, usize> = [
        // What storesync owns: one label-selected, cluster-wide LIST per kind, once before
        // planning and once after the writes, to judge the stores' health as they now are.
        (format!("/api/v1/limitranges?&{OWNED}"), 2),
        (format!("/api/v1/namespaces?&{OWNED}"), 2),
        (format!("/api/v1/resourcequotas?&{OWNED}"), 2),
        (format!("/api/v1/secrets?&{OWNED}"), 2),
        (
            "/api/v1/secrets?&labelSelector=owner%3Dhelm&limit=500".to_string(),
            2,
        ),
        (format!("/api/v1/serviceaccounts?&{OWNED}"), 2),
        (format!("/apis/networking.k8s.io/v1/networkpolicies?&{OWNED}"), 2),
        (
            format!("/apis/rbac.authorization.k8s.io/v1/rolebindings?&{OWNED}"),
            2,
        ),
        // The prune breaker's record of the last applied commit, in storesync's namespace.
        (
            "/api/v1/namespaces/default/configmaps/storesync-applied".to_string(),
            1,
        ),
        // The rollout record: read by every sync, so a halt is never forgotten.
        (
            "/api/v1/namespaces/default/configmaps/storesync-rollout".to_string(),
            1,
        ),
        // A new store's namespace is looked up once: an existing one that is not storesync's
        // is never taken over.
        ("/api/v1/namespaces/store-acme".to_string(), 1),
        ("/api/v1/namespaces/store-bobs".to_string(), 1),
        // Health after the writes: each new release read once, and one LIST per kind it holds.
        (
            "/api/v1/namespaces/store-acme/secrets/sh.helm.release.v1.acme.v1".to_string(),
            1,
        ),
        (
            "/api/v1/namespaces/store-bobs/secrets/sh.helm.release.v1.bobs.v1".to_string(),
            1,
        ),
        (format!("/api/v1/configmaps?&{helm}"), 1),
        (format!("/api/v1/persistentvolumeclaims?&{helm}"), 1),
        (format!("/api/v1/pods?&{helm}"), 1),
        (format!("/api/v1/services?&{helm}"), 1),
        (format!("/apis/apps/v1/deployments?&{helm}"), 1),
        (format!("/apis/apps/v1/statefulsets?&{helm}"), 1),
        (format!("/apis/batch/v1/jobs?&{helm}"), 1),
        (format!("/apis/networking.k8s.io/v1/ingresses?&{helm}"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counted, expected, "every read of a first sync, counted");
    // After a sync that applied everything, its prune limit is recorded for later syncs.
    let record = w
        .cluster
        .get("configmaps", "default", "storesync-applied")
        .expect("recorded");
    assert_eq!(record["data"]["maxPrunesPerSync"], "5");
    assert_eq!(
        record["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "storesync"
    );

    // Per store, in apply order.
    let acme: Vec<String> = w
        .cluster
        .writes()
        .iter()
        .filter(|r| r.uri.contains("store-acme"))
        .map(|r| r.line())
        .collect();
    let ssa = "force=true&fieldManager=storesync";
    assert_eq!(
        acme,
        vec![
            format!("PATCH /api/v1/namespaces/store-acme?&{ssa}"),
            format!("PATCH /api/v1/namespaces/store-acme/resourcequotas/store-quota?&{ssa}"),
            format!("PATCH /api/v1/namespaces/store-acme/limitranges/store-limits?&{ssa}"),
            format!(
                "PATCH /apis/networking.k8s.io/v1/namespaces/store-acme/networkpolicies/allow-dns?&{ssa}"
            ),
            format!(
                "PATCH /apis/networking.k8s.io/v1/namespaces/store-acme/networkpolicies/allow-from-ingress-controller?&{ssa}"
            ),
            format!(
                "PATCH /apis/networking.k8s.io/v1/namespaces/store-acme/networkpolicies/allow-https-egress?&{ssa}"
            ),
            format!(
                "PATCH /apis/networking.k8s.io/v1/namespaces/store-acme/networkpolicies/allow-same-namespace?&{ssa}"
            ),
            format!(
                "PATCH /apis/networking.k8s.io/v1/namespaces/store-acme/networkpolicies/default-deny?&{ssa}"
            ),
            // helm's identity in the namespace, before anything acts as it.
            format!("PATCH /api/v1/namespaces/store-acme/serviceaccounts/storesync-helm?&{ssa}"),
            format!(
                "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/store-acme/rolebindings/storesync-helm?&{ssa}"
            ),
            "POST /api/v1/namespaces/store-acme/secrets?&fieldManager=storesync".to_string(),
        ]
    );

    // Bodies are the rendered objects.
    let writes = w.cluster.writes();
    let quota = writes
        .iter()
        .find(|r| r.uri.contains("store-acme/resourcequotas"))
        .unwrap()
        .body
        .clone()
        .unwrap();
    assert_eq!(quota["spec"]["hard"]["requests.cpu"], "1");
    assert_eq!(
        quota["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "storesync"
    );
    let ns = writes
        .iter()
        .find(|r| r.uri.starts_with("/api/v1/namespaces/store-bobs?"))
        .unwrap()
        .body
        .clone()
        .unwrap();
    assert_eq!(ns["metadata"]["labels"]["storesync.dev/owner"], "team-bikes");
    assert_eq!(ns["metadata"]["labels"]["storesync.dev/engine"], "medusa");
    let secret = writes
        .iter()
        .find(|r| r.uri.contains("store-acme/secrets"))
        .unwrap()
        .body
        .clone()
        .unwrap();
    let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "admin-password",
            "cookie-secret",
            "database-password",
            "database-root-password",
            "jwt-secret"
        ]
    );

    // helm: an argument vector, values from a file, the release hash as a label.
    let calls = w.helm.calls();
    assert_eq!(calls.len(), 2);
    let acme_call = calls.iter().find(|c| c[2] == "acme").unwrap();
    assert_eq!(
        &acme_call[..4],
        [
            "upgrade",
            "--install",
            "acme",
            &repo_root().join("charts/woocommerce").display().to_string()
        ]
    );
    assert_eq!(
        &acme_call[4..8],
        ["--namespace", "store-acme", "--version", "0.1.0"]
    );
    assert_eq!(acme_call[8], "--values");
    assert!(acme_call[10] == "--labels" && acme_call[11].starts_with("storesync.dev/release-hash="));
    assert_eq!(
        &acme_call[12..],
        [
            "--wait",
            "--timeout",
            "60s",
            "--history-max",
            "10",
            // Fields someone took with kubectl go back to the chart instead of failing the upgrade.
            "--server-side",
            "true",
            "--force-conflicts",
            // As the store's ServiceAccount: RBAC confines helm to the store's namespace.
            "--kube-as-user",
            "system:serviceaccount:store-acme:storesync-helm"
        ]
    );
    assert!(
        !acme_call.iter().any(|a| a.starts_with("--set")),
        "values never go through --set"
    );
    let n = calls.iter().position(|c| c[2] == "acme").unwrap() + 1;
    let values = w.helm.values(n, "acme");
    assert!(values.contains("existingSecret: store-credentials"), "{values}");
    assert!(values.contains("host: acme.shop.example.com"), "{values}");
    assert!(!values.contains("password"), "no secret in values: {values}");
    let rendered = w.helm.rendered(n, "acme");
    assert!(
        rendered.contains("host: \"acme.shop.example.com\"")
            || rendered.contains("host: acme.shop.example.com")
    );
}

#[tokio::test]
async fn second_sync_of_the_same_commit_writes_nothing() {
    let w = World::with_two_stores();
    w.sync().await;
    w.cluster.clear_requests();
    let helm_calls = w.helm.calls().len();

    let report = w.sync().await;
    assert_eq!(report.summary.unchanged, 2, "{report:?}");
    assert_eq!(report.description(), "applied 0, pruned 0, unchanged 2");
    assert!(
        w.cluster.writes().is_empty(),
        "no writes: {:?}",
        w.cluster.writes()
    );
    assert_eq!(
        w.helm.calls().len(),
        helm_calls,
        "no helm invocation on a no-op sync"
    );
}

#[tokio::test]
async fn drifted_quota_is_repaired_without_helm() {
    let w = World::with_two_stores();
    w.sync().await;
    w.cluster
        .edit("resourcequotas", "store-acme", "store-quota", |q| {
            q["spec"]["hard"]["requests.cpu"] = json!("64")
        });
    w.cluster.clear_requests();
    let helm_calls = w.helm.calls().len();

    let report = w.sync().await;
    assert_eq!((report.summary.applied, report.summary.unchanged), (1, 1));
    let writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    assert_eq!(
        writes,
        vec![
            "PATCH /api/v1/namespaces/store-acme?&force=true&fieldManager=storesync",
            "PATCH /api/v1/namespaces/store-acme/resourcequotas/store-quota?&force=true&fieldManager=storesync",
        ]
    );
    assert_eq!(
        w.cluster
            .get("resourcequotas", "store-acme", "store-quota")
            .unwrap()["spec"]["hard"]["requests.cpu"],
        "1"
    );
    assert_eq!(w.helm.calls().len(), helm_calls);
}

#[tokio::test]
async fn changed_values_upgrade_the_release_only() {
    let w = World::with_two_stores();
    w.sync().await;
    w.catalog.store(
        "acme",
        &format!(
            "{}values:\n  storeTitle: Acme Outdoor\n",
            store_yaml("acme", "woocommerce", "small", "team-acme")
        ),
    );
    w.cluster.clear_requests();
    let before = w.helm.calls().len();

    let report = w.sync().await;
    assert_eq!(report.summary.applied, 1);
    let calls = w.helm.calls();
    assert_eq!(calls.len(), before + 1);
    assert_eq!(calls[before][2], "acme");
    assert!(
        w.helm
            .values(before + 1, "acme")
            .contains("storeTitle: Acme Outdoor")
    );
    let writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    assert_eq!(
        writes,
        vec!["PATCH /api/v1/namespaces/store-acme?&force=true&fieldManager=storesync"],
        "guardrails untouched"
    );
    assert!(
        w.helm
            .release("store-acme", "acme")
            .unwrap()
            .contains("2 deployed")
    );
}

#[tokio::test]
async fn credentials_are_generated_once() {
    let w = World::with_two_stores();
    w.sync().await;
    let first = w
        .cluster
        .get("secrets", "store-acme", "store-credentials")
        .unwrap()["data"]
        .clone();
    w.cluster.clear_requests();
    w.catalog
        .store("acme", &store_yaml("acme", "woocommerce", "medium", "team-acme"));
    w.sync().await;
    assert_eq!(
        w.cluster
            .get("secrets", "store-acme", "store-credentials")
            .unwrap()["data"],
        first
    );
    assert!(
        !w.cluster.writes().iter().any(|r| r.uri.contains("/secrets")),
        "the Secret is never written again"
    );
}

#[tokio::test]
async fn stuck_release_is_rolled_back_then_upgraded() {
    let w = World::with_two_stores();
    w.sync().await;
    w.helm.set_release(
        "store-acme",
        "acme",
        &[
            (1, "superseded", "old"),
            (2, "deployed", "older"),
            (3, "pending-upgrade", "new"),
        ],
    );
    let before = w.helm.calls().len();
    let report = w.sync().await;
    assert_eq!(report.summary.applied, 1, "{report:?}");
    let calls = &w.helm.calls()[before..];
    assert_eq!(
        calls[0],
        [
            "rollback",
            "acme",
            "2",
            "--namespace",
            "store-acme",
            "--server-side",
            "true",
            "--force-conflicts",
            "--wait",
            "--timeout",
            "60s",
            "--kube-as-user",
            "system:serviceaccount:store-acme:storesync-helm"
        ]
    );
    assert_eq!(&calls[1][..3], ["upgrade", "--install", "acme"]);
    let history = w.helm.release("store-acme", "acme").unwrap();
    assert!(!history.contains("pending"), "{history}");
    assert!(
        history.lines().last().unwrap().starts_with("5 deployed "),
        "{history}"
    );
}

#[tokio::test]
async fn release_that_never_deployed_is_uninstalled_then_installed() {
    let w = World::with_two_stores();
    w.sync().await;
    w.helm
        .set_release("store-bobs", "bobs", &[(1, "pending-install", "x")]);
    let before = w.helm.calls().len();
    w.sync().await;
    let calls = &w.helm.calls()[before..];
    assert_eq!(calls[0][..2], ["uninstall", "bobs"]);
    assert_eq!(calls[1][..3], ["upgrade", "--install", "bobs"]);
    assert_eq!(
        w.helm.release("store-bobs", "bobs").unwrap().lines().count(),
        1,
        "a fresh install"
    );
}

#[tokio::test]
async fn one_store_failing_does_not_stop_the_others() {
    let w = World::with_two_stores();
    w.helm.fail_upgrades_of("acme");
    let report = w.sync().await;
    assert_eq!((report.summary.applied, report.summary.failed), (1, 1));
    let acme = report.stores.iter().find(|r| r.store == "acme").unwrap();
    assert_eq!(acme.outcome, Outcome::Failed);
    assert!(
        acme.detail
            .as_deref()
            .unwrap()
            .contains("simulated failure for acme"),
        "stderr is in the error"
    );
    assert!(
        report
            .description()
            .starts_with("1 failed; applied 1, pruned 0, unchanged 0; acme: helm upgrade failed")
    );
    assert!(report.description().chars().count() <= 140);
    let ns = w.cluster.get("namespaces", "", "store-acme").unwrap();
    assert!(
        ns["metadata"]["annotations"]["storesync.dev/last-error"]
            .as_str()
            .unwrap()
            .contains("simulated failure")
    );

    // Fixed: the next sync upgrades acme only and clears the error.
    std::fs::remove_file(w.helm.path().join("fail-upgrade-acme")).unwrap();
    let report = w.sync().await;
    assert_eq!((report.summary.applied, report.summary.unchanged), (1, 1));
    let ns = w.cluster.get("namespaces", "", "store-acme").unwrap();
    assert!(
        ns["metadata"]["annotations"]
            .get("storesync.dev/last-error")
            .is_none()
    );
}

#[tokio::test]
async fn apply_exit_codes_follow_the_contract() {
    use storesync::config::OutputFormat;
    let w = World::with_two_stores();
    w.helm.fail_upgrades_of("bobs");
    let (code, out, _) = apply_cli(&w, OutputFormat::Text).await;
    assert_eq!(code, 3, "some stores failed: {out}");
    assert!(out.contains("failed       bobs: helm upgrade failed"), "{out}");
    assert!(
        out.contains("\nResult: 1 failed; applied 1, pruned 0, unchanged 0; bobs: helm upgrade failed"),
        "{out}"
    );

    std::fs::remove_file(w.helm.path().join("fail-upgrade-bobs")).unwrap();
    let (code, out, _) = apply_cli(&w, OutputFormat::Json).await;
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["result"]["summary"]["applied"], 1);
    assert_eq!(json["result"]["summary"]["unchanged"], 1);

    w.catalog.store("dune", "name: dune\n");
    let (code, out, err) = apply_cli(&w, OutputFormat::Text).await;
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(err.contains("invalid catalog: nothing applied, nothing pruned"));
}

#[tokio::test]
async fn dry_run_of_a_new_store_checks_only_its_namespace() {
    let w = World::with_two_stores();
    let mut applier = w.applier();
    applier.dry_run = true;
    let snapshot = storesync::source::read(&w.catalog.args().location(), None, &Default::default()).unwrap();
    let SyncOutcome::Done(synced) = sync::sync(&applier, &snapshot, PlanOptions::default())
        .await
        .unwrap()
    else {
        panic!("valid")
    };
    assert_eq!(synced.report.summary.failed, 0, "{:?}", synced.report);
    let mut writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    writes.sort();
    assert_eq!(
        writes,
        vec![
            "PATCH /api/v1/namespaces/store-acme?&dryRun=All&force=true&fieldManager=storesync",
            "PATCH /api/v1/namespaces/store-bobs?&dryRun=All&force=true&fieldManager=storesync",
        ]
    );
    assert!(w.cluster.get("namespaces", "", "store-acme").is_none());
    assert!(w.helm.calls().is_empty());
}
