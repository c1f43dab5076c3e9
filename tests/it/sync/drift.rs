//! Drift of the objects the engine charts render: a hand edit of a store's workload is found by
//! comparing the release's manifest (read from Helm's release Secret) with the live objects, and
//! put back by exactly one `helm upgrade` that takes conflicting fields back; or only reported
//! under `driftPolicy: report`. Server defaults and fields an autoscaler owns are not drift.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use storesync::apply::Outcome;
use storesync::config::OutputFormat;
use storesync::live::DriftCheck;
use storesync::plan::{Action, Change, ObjectKind, StorePlan};

use super::world::{World, cluster_options};

/// Records `manager` as the owner of `fields`, taking them from helm, as the API server does
/// on an update by another manager.
fn taken_by(obj: &mut Value, manager: &str, subresource: Option<&str>, fields: Value, from_helm: &[&str]) {
    let managed = obj["metadata"]["managedFields"]
        .as_array_mut()
        .expect("managedFields");
    let helm = managed
        .iter_mut()
        .find(|e| e["manager"] == "helm")
        .expect("helm's entry");
    let mut node = &mut helm["fieldsV1"];
    for step in &from_helm[..from_helm.len() - 1] {
        node = &mut node[*step];
    }
    node.as_object_mut()
        .expect("a field set")
        .remove(from_helm[from_helm.len() - 1]);
    let mut entry = json!({"manager": manager, "operation": "Update", "fieldsV1": fields});
    if let Some(s) = subresource {
        entry["subresource"] = json!(s);
    }
    managed.push(entry);
}

/// `kubectl scale deployment acme-wordpress --replicas=<n>`.
fn kubectl_scale(w: &World, replicas: i64) {
    w.cluster
        .edit("deployments", "store-acme", "acme-wordpress", |d| {
            d["spec"]["replicas"] = json!(replicas);
            let fields = json!({"f:spec": {"f:replicas": {}}});
            taken_by(d, "kubectl", Some("scale"), fields, &["f:spec", "f:replicas"]);
        });
}

fn release_change(sp: &StorePlan) -> &Change {
    sp.changes
        .iter()
        .find(|c| c.kind == ObjectKind::HelmRelease)
        .expect("a HelmRelease change")
}

fn store<'a>(plan: &'a storesync::plan::Plan, name: &str) -> &'a StorePlan {
    plan.stores.iter().find(|s| s.store == name).expect("planned")
}

/// The helm invocations since the first `since`.
fn upgrades_since(w: &World, since: usize) -> Vec<Vec<String>> {
    w.helm.calls()[since..].to_vec()
}

#[tokio::test]
async fn a_scaled_down_deployment_is_put_back_by_one_upgrade_that_forces_conflicts() {
    let w = World::with_two_stores();
    w.sync().await;
    kubectl_scale(&w, 0);
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let repairs = Arc::new(AtomicUsize::new(0));
    let counted = repairs.clone();
    let mut applier = w.applier();
    applier.on_drift_repair = Some(Arc::new(move || {
        counted.fetch_add(1, Ordering::Relaxed);
    }));

    let synced = w.sync_by(&applier).await;
    let acme = store(&synced.plan, "acme");
    assert_eq!(acme.action, Action::Update);
    let change = release_change(acme);
    assert_eq!(change.action, Action::Update);
    assert_eq!(
        change.reason.as_deref(),
        Some("drift: Deployment acme-wordpress spec.replicas")
    );
    assert_eq!(store(&synced.plan, "bobs").action, Action::Unchanged);
    assert_eq!(
        (synced.report.summary.applied, synced.report.summary.unchanged),
        (1, 1)
    );

    let calls = upgrades_since(&w, before);
    assert_eq!(calls.len(), 1, "exactly one helm invocation: {calls:?}");
    assert_eq!(&calls[0][..3], ["upgrade", "--install", "acme"]);
    assert!(
        calls[0]
            .windows(3)
            .any(|w| w == ["--server-side", "true", "--force-conflicts"]),
        "{:?}",
        calls[0]
    );
    assert_eq!(repairs.load(Ordering::Relaxed), 1, "the metric's hook");
    let writes: Vec<String> = w.cluster.writes().iter().map(|r| r.line()).collect();
    assert_eq!(
        writes,
        ["PATCH /api/v1/namespaces/store-acme?&force=true&fieldManager=storesync"],
        "storesync itself writes no chart-rendered object"
    );
    let repaired = w
        .cluster
        .get("deployments", "store-acme", "acme-wordpress")
        .unwrap();
    assert_eq!(repaired["spec"]["replicas"], 1, "helm put the chart's value back");

    let event = w
        .cluster
        .events()
        .into_iter()
        .find(|(ns, e)| ns == "store-acme" && e["reason"] == "DriftRepaired")
        .map(|(_, e)| e)
        .expect("a DriftRepaired Event");
    assert_eq!(
        (event["type"].as_str(), event["action"].as_str()),
        (Some("Normal"), Some("HelmUpgrade"))
    );
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .ends_with("Deployment acme-wordpress spec.replicas"),
        "{event}"
    );

    // Repaired: the next check finds nothing and nothing runs.
    let after = w.helm.calls().len();
    w.cluster.clear_requests();
    let report = w.sync().await;
    assert_eq!(report.summary.unchanged, 2, "{report:?}");
    assert!(w.cluster.writes().is_empty(), "{:?}", w.cluster.writes());
    assert_eq!(w.helm.calls().len(), after);
}

#[tokio::test]
async fn an_image_taken_with_kubectl_set_and_an_edited_configmap_key_are_drift() {
    let w = World::with_two_stores();
    w.sync().await;
    w.cluster
        .edit("deployments", "store-acme", "acme-wordpress", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("wordpress:hotfix");
            let key = r#"k:{"name":"wordpress"}"#;
            let fields =
                json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {key: {"f:image": {}}}}}}});
            let image = ["f:spec", "f:template", "f:spec", "f:containers", key, "f:image"];
            taken_by(d, "kubectl-set", None, fields, &image);
        });
    w.cluster.edit("configmaps", "store-bobs", "bobs-scripts", |c| {
        c["data"]["provision.js"] = json!("// patched by hand\n")
    });
    let before = w.helm.calls().len();
    let synced = w.sync_by(&w.applier()).await;
    let reason = |s: &str| {
        release_change(store(&synced.plan, s))
            .reason
            .clone()
            .unwrap_or_default()
    };
    assert_eq!(
        reason("acme"),
        r#"drift: Deployment acme-wordpress spec.template.spec.containers[name="wordpress"].image"#
    );
    assert_eq!(
        reason("bobs"),
        r#"drift: ConfigMap bobs-scripts data["provision.js"]"#
    );
    let mut upgraded: Vec<String> = upgrades_since(&w, before)
        .iter()
        .inspect(|c| assert!(c.contains(&"--force-conflicts".to_string()), "{c:?}"))
        .map(|c| c[2].clone())
        .collect();
    upgraded.sort();
    assert_eq!(upgraded, ["acme", "bobs"], "one upgrade per drifted store");
    let image = &w
        .cluster
        .get("deployments", "store-acme", "acme-wordpress")
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"];
    assert!(
        image
            .as_str()
            .unwrap()
            .starts_with("docker.io/library/wordpress:"),
        "{image}"
    );
}

#[tokio::test]
async fn a_deleted_object_is_drift_and_is_put_back() {
    let w = World::with_two_stores();
    w.sync().await;
    let gone = w.cluster.get("services", "store-acme", "acme-wordpress").unwrap();
    w.cluster.edit("services", "store-acme", "acme-wordpress", |s| {
        // Another release's object now: no longer labelled as this one's, so the LIST skips it.
        s["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("someone")
    });
    let synced = w.sync_by(&w.applier()).await;
    assert_eq!(
        release_change(store(&synced.plan, "acme")).reason.as_deref(),
        Some("drift: Service acme-wordpress is missing")
    );
    let back = w.cluster.get("services", "store-acme", "acme-wordpress").unwrap();
    assert_eq!(back["metadata"]["labels"], gone["metadata"]["labels"]);
}

#[tokio::test]
async fn under_report_policy_drift_is_shown_and_nothing_runs() {
    let w = World::with_two_stores();
    w.catalog.platform("driftPolicy: report\n");
    w.sync().await;
    kubectl_scale(&w, 0);
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let synced = w.sync_by(&w.applier()).await;
    let acme = store(&synced.plan, "acme");
    assert_eq!(acme.action, Action::Skip);
    let reported = "drift, reported only (driftPolicy: report): Deployment acme-wordpress spec.replicas";
    assert_eq!(acme.reason.as_deref(), Some(reported));
    assert_eq!(release_change(acme).action, Action::Skip);
    let result = synced.report.stores.iter().find(|r| r.store == "acme").unwrap();
    assert_eq!(
        (result.outcome, result.detail.as_deref()),
        (Outcome::Skipped, Some(reported))
    );
    assert_eq!(w.helm.calls().len(), before, "no helm");
    assert!(w.cluster.writes().is_empty(), "{:?}", w.cluster.writes());
    let live = w
        .cluster
        .get("deployments", "store-acme", "acme-wordpress")
        .unwrap();
    assert_eq!(live["spec"]["replicas"], 0, "left as it is");
}

#[tokio::test]
async fn server_defaults_others_additions_and_an_autoscaled_replica_count_are_not_drift() {
    let w = World::with_two_stores();
    w.sync().await;
    w.cluster
        .edit("deployments", "store-acme", "acme-wordpress", |d| {
            // A default the chart does not set, changed by hand.
            d["spec"]["revisionHistoryLimit"] = json!(3);
            // `kubectl rollout restart`.
            d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] =
                json!("2026-11-22T10:00:00Z");
            d["metadata"]["labels"]["cost-center"] = json!("retail");
            // An HPA scaled it up: kube-controller-manager owns spec.replicas now.
            d["spec"]["replicas"] = json!(4);
            let fields = json!({"f:spec": {"f:replicas": {}}});
            taken_by(
                d,
                "kube-controller-manager",
                Some("scale"),
                fields,
                &["f:spec", "f:replicas"],
            );
        });
    w.cluster.edit("services", "store-acme", "acme-wordpress", |s| {
        s["spec"]["sessionAffinity"] = json!("ClientIP")
    });
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let synced = w.sync_by(&w.applier()).await;
    assert_eq!(
        store(&synced.plan, "acme").action,
        Action::Unchanged,
        "{:#?}",
        store(&synced.plan, "acme")
    );
    assert_eq!(w.helm.calls().len(), before);
    assert!(w.cluster.writes().is_empty());
    let lists = w
        .cluster
        .requests()
        .iter()
        .filter(|r| r.uri.starts_with("/apis/apps/v1/deployments?"))
        .count();
    assert_eq!(lists, 1, "the objects were compared");
}

/// `storesync plan` against the cluster.
async fn plan_cli(w: &World, output: OutputFormat) -> (u8, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = storesync::commands::plan_live(
        w.cluster.client(),
        &w.catalog.args(),
        &cluster_options(w),
        output,
        false,
        &mut out,
        &mut err,
    )
    .await
    .unwrap();
    (code, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn a_sync_checks_drift_once_per_interval_and_a_plan_always() {
    let w = World::with_two_stores();
    // The daemon keeps one applier; its drift interval is --drift-interval (10m by default).
    let applier = w.applier();
    assert_eq!(applier.drift.interval(), Duration::from_secs(600));
    w.sync_by(&applier).await;
    kubectl_scale(&w, 0);
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    let synced = w.sync_by(&applier).await;
    assert_eq!(
        store(&synced.plan, "acme").action,
        Action::Unchanged,
        "not due yet"
    );
    assert!(
        !w.cluster.requests().iter().any(|r| r.uri.contains("deployments")),
        "not even listed"
    );

    // `storesync plan` against the cluster shows it at once, in text and JSON.
    let (code, text) = plan_cli(&w, OutputFormat::Text).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("    ~ HelmRelease store-acme/acme (drift: Deployment acme-wordpress spec.replicas)\n"),
        "{text}"
    );
    let (_, json) = plan_cli(&w, OutputFormat::Json).await;
    let json: Value = serde_json::from_str(&json).unwrap();
    let change = json["stores"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "HelmRelease")
        .unwrap()
        .clone();
    assert_eq!(change["action"], "update");
    assert_eq!(
        change["drift"],
        json!({"fields": [{"kind": "Deployment", "name": "acme-wordpress", "field": "spec.replicas"}]})
    );
    assert_eq!(w.helm.calls().len(), before, "plans run no helm");

    // Once the interval has passed, the next sync repairs it.
    let due = storesync::apply::Applier {
        drift: Arc::new(DriftCheck::new(Duration::ZERO)),
        ..applier
    };
    let synced = w.sync_by(&due).await;
    assert_eq!(release_change(store(&synced.plan, "acme")).action, Action::Update);
    assert_eq!(w.helm.calls().len(), before + 1);
}

#[tokio::test]
async fn a_manifest_is_read_once_per_revision() {
    let w = World::with_two_stores();
    let applier = storesync::apply::Applier {
        drift: Arc::new(DriftCheck::new(Duration::ZERO)),
        ..w.applier()
    };
    let reads = |w: &World| -> Vec<String> {
        let requests = w.cluster.requests();
        let mut r: Vec<String> = requests
            .iter()
            .filter(|r| r.method == "GET" && r.uri.contains("/secrets/sh.helm.release.v1."))
            .map(|r| r.uri.clone())
            .collect();
        r.sort();
        r
    };
    w.sync_by(&applier).await;
    assert_eq!(
        reads(&w),
        [
            "/api/v1/namespaces/store-acme/secrets/sh.helm.release.v1.acme.v1",
            "/api/v1/namespaces/store-bobs/secrets/sh.helm.release.v1.bobs.v1",
        ],
        "read once the install is done, to judge the stores' health"
    );
    w.cluster.clear_requests();
    w.sync_by(&applier).await;
    assert!(reads(&w).is_empty(), "then kept for the drift check");
    kubectl_scale(&w, 0);
    w.cluster.clear_requests();
    w.sync_by(&applier).await;
    assert_eq!(
        reads(&w),
        ["/api/v1/namespaces/store-acme/secrets/sh.helm.release.v1.acme.v2"],
        "the repair's new revision, and nothing else"
    );
    w.cluster.clear_requests();
    w.sync_by(&applier).await;
    assert!(reads(&w).is_empty());
    assert_eq!(applier.drift.cached().0, 2, "the superseded revision is dropped");
}

#[tokio::test]
async fn what_a_check_found_stands_until_the_next_check() {
    let w = World::with_two_stores();
    w.catalog.platform("driftPolicy: report\n");
    let applier = w.applier(); // checks every 10 minutes
    w.sync_by(&applier).await;
    kubectl_scale(&w, 0);
    // A plan compares at once (and restarts no clock); the syncs before the next check keep
    // reporting what it found instead of calling the store in sync.
    let snapshot = storesync::source::read(&w.catalog.args().location(), None, &Default::default()).unwrap();
    storesync::sync::plan_against_cluster(&applier, &snapshot, Default::default())
        .await
        .unwrap()
        .unwrap();
    for _ in 0..2 {
        w.cluster.clear_requests();
        let synced = w.sync_by(&applier).await;
        let acme = store(&synced.plan, "acme");
        assert_eq!(acme.action, Action::Skip, "{acme:#?}");
        assert!(
            !w.cluster.requests().iter().any(|r| r.uri.contains("deployments")),
            "not compared again before the interval"
        );
    }
}
