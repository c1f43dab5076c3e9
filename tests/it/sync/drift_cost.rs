//! What a drift check of a large platform costs, counted in requests: 1,000 installed,
//! unchanged stores cost no write and one LIST per kind of chart-rendered object, and each
//! release's manifest is read once.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use storesync::apply::Applier;
use storesync::live::DriftCheck;
use storesync::plan::{Action, ObjectKind};

use super::world::World;
use crate::common::fake_helm::real_helm;
use crate::common::store_yaml;

const STORES: usize = 1000;

fn name(i: usize) -> String {
    format!("s{i:04}")
}

/// A platform of `STORES` installed stores, seeded without running helm once per store: the
/// chart is rendered once for the first store and the others' manifests differ only in the name.
fn installed_platform() -> World {
    let w = World::new();
    w.catalog
        .platform("limits:\n  maxStores: 1000\n  maxStoresPerOwner: 1000\n  maxPrunesPerSync: 5\n");
    for i in 1..=STORES {
        w.catalog
            .store(&name(i), &store_yaml(&name(i), "woocommerce", "small", "team-a"));
    }
    let snapshot = storesync::source::read(&w.catalog.args().location(), None, &Default::default()).unwrap();
    let catalog = storesync::desired::load(&snapshot.raw).expect("valid catalog");
    let desired = storesync::desired::render(&catalog, None);

    let first = &desired[0];
    let values = w.helm.path().join("seed-values.yaml");
    std::fs::write(&values, serde_yaml_ng::to_string(&first.release.values).unwrap()).unwrap();
    let chart = crate::common::repo_root().join("charts/woocommerce");
    let rendered = std::process::Command::new(real_helm())
        .args(["template", &name(1), chart.to_str().unwrap(), "--namespace"])
        .arg(&first.release.namespace)
        .arg("--values")
        .arg(&values)
        .output()
        .expect("helm template");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let template = String::from_utf8(rendered.stdout).unwrap();

    for d in &desired {
        let store = &d.store.name;
        let manifest = template.replace(&name(1), store);
        w.helm
            .seed_release(&d.release.namespace, store, &d.release_hash, &manifest);
        // The store as a sync leaves it, so that the syncs below are drift checks alone.
        let ns = &d.release.namespace;
        let json = |o: &dyn erased::Json| o.json();
        w.cluster.insert("namespaces", "", json(&d.namespace));
        w.cluster.insert("resourcequotas", ns, json(&d.quota));
        w.cluster.insert("limitranges", ns, json(&d.limit_range));
        for p in &d.network_policies {
            w.cluster.insert("networkpolicies", ns, json(p));
        }
        w.cluster.insert("serviceaccounts", ns, json(&d.service_account));
        w.cluster.insert("rolebindings", ns, json(&d.role_binding));
        w.cluster.insert(
            "secrets",
            &d.release.namespace,
            json!({"metadata": {"name": "store-credentials", "labels": storesync::desired::labels(store)},
                   "data": {"admin-password": "eA=="}}),
        );
    }
    w
}

mod erased {
    /// An object as the JSON storesync applies.
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("JSON")
        }
    }
}

fn release_reads(w: &World) -> Vec<String> {
    w.cluster
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.uri.contains("/secrets/sh.helm.release.v1."))
        .map(|r| r.uri.clone())
        .collect()
}

#[tokio::test]
async fn a_thousand_unchanged_stores_cost_no_write_and_one_list_per_kind() {
    let w = installed_platform();
    // Every sync checks drift here (a zero interval); one applier, as the daemon keeps one.
    let applier = Applier {
        drift: Arc::new(DriftCheck::new(Duration::ZERO)),
        concurrency: 16,
        ..w.applier()
    };

    // First check: each release's manifest is read, once; nothing is written.
    let first = w.sync_by(&applier).await;
    assert_eq!(
        first.report.summary.unchanged,
        STORES,
        "{:?}",
        first.report.description()
    );
    let writes: Vec<String> = w.cluster.writes().iter().take(3).map(|r| r.line()).collect();
    assert_eq!(
        writes,
        ["PATCH /api/v1/namespaces/default/configmaps/storesync-applied?&force=true&fieldManager=storesync"],
        "only the prune breaker's record of the first sync"
    );
    assert!(
        w.helm.calls().is_empty(),
        "no helm: every release is installed and unchanged"
    );
    for s in &first.plan.stores {
        let release = s
            .changes
            .iter()
            .find(|c| c.kind == ObjectKind::HelmRelease)
            .unwrap();
        assert_eq!(
            release.action,
            Action::Unchanged,
            "{}: {:?}",
            s.store,
            release.reason
        );
    }
    assert_eq!(release_reads(&w).len(), STORES, "one GET per release");
    let (held, bytes) = applier.drift.cached();
    assert_eq!(held, STORES);
    eprintln!(
        "manifest cache: {held} releases, {bytes} bytes ({} bytes a release)",
        bytes / held
    );

    // Second check: nothing to do, and the drift check costs one LIST per kind, no GET.
    w.cluster.clear_requests();
    let second = w.sync_by(&applier).await;
    assert_eq!(second.report.summary.unchanged, STORES);
    let writes: Vec<String> = w.cluster.writes().iter().take(3).map(|r| r.line()).collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert!(w.helm.calls().is_empty());
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for r in w.cluster.requests() {
        *calls.entry(format!("{} {}", r.method, r.uri)).or_default() += 1;
    }
    let owned = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dstoresync&limit=500";
    let helm = "labelSelector=app.kubernetes.io%2Fmanaged-by%3DHelm&limit=500";
    let expected: BTreeMap<String, usize> = [
        format!("GET /api/v1/configmaps?&{helm}"),
        format!("GET /api/v1/limitranges?&{owned}"),
        "GET /api/v1/namespaces/default/configmaps/storesync-applied".to_string(),
        "GET /api/v1/namespaces/default/configmaps/storesync-rollout".to_string(),
        format!("GET /api/v1/namespaces?&{owned}"),
        format!("GET /api/v1/persistentvolumeclaims?&{helm}"),
        // Health: the workloads' pods and the setup Jobs, one LIST each.
        format!("GET /api/v1/pods?&{helm}"),
        format!("GET /apis/batch/v1/jobs?&{helm}"),
        format!("GET /api/v1/resourcequotas?&{owned}"),
        format!("GET /api/v1/secrets?&{owned}"),
        "GET /api/v1/secrets?&labelSelector=owner%3Dhelm&limit=500".to_string(),
        format!("GET /api/v1/serviceaccounts?&{owned}"),
        format!("GET /api/v1/services?&{helm}"),
        format!("GET /apis/apps/v1/deployments?&{helm}"),
        format!("GET /apis/apps/v1/statefulsets?&{helm}"),
        format!("GET /apis/networking.k8s.io/v1/ingresses?&{helm}"),
        format!("GET /apis/networking.k8s.io/v1/networkpolicies?&{owned}"),
        format!("GET /apis/rbac.authorization.k8s.io/v1/rolebindings?&{owned}"),
    ]
    .into_iter()
    .map(|c| (c, 1))
    .collect();
    assert_eq!(calls, expected, "the requests of a no-op sync of {STORES} stores");
}
