//! Tenant isolation: helm and storesync act inside a store as the store's own identity, and
//! what a store team can write in its namespace (Helm's release Secrets, `managedFields`) never
//! makes storesync act outside it or stop repairing drift.
use serde_json::{Value, json};
use std::sync::Arc;
use storesync::apply::Outcome;
use storesync::live::DriftCheck;

use super::world::World;
use crate::common::fake_release;

const ACME_HELM: &str = "system:serviceaccount:store-acme:storesync-helm";

/// The helm calls since `before` that concern release `name`.
fn helm_calls_of(w: &World, before: usize, name: &str) -> Vec<Vec<String>> {
    w.helm.calls()[before..]
        .iter()
        .filter(|c| c.get(1).map(String::as_str) == Some(name) || c.get(2).map(String::as_str) == Some(name))
        .cloned()
        .collect()
}

fn last_error(w: &World, store: &str) -> Option<String> {
    let ns = w.cluster.get("namespaces", "", &format!("store-{store}"))?;
    ns["metadata"]["annotations"]["storesync.dev/last-error"]
        .as_str()
        .map(String::from)
}

fn event_reasons(w: &World, namespace: &str) -> Vec<(String, String)> {
    w.cluster
        .events()
        .into_iter()
        .filter(|(ns, _)| ns == namespace)
        .map(|(_, e)| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A release Secret as a store team could write it: any labels, any body.
fn forged(revision: u32, label_status: &str, body_status: &str, manifest: &str) -> Value {
    let mut secret = fake_release::release_secret("store-acme", "acme", revision, body_status, manifest);
    secret["metadata"]["labels"]["status"] = json!(label_status);
    secret
}

const OUTSIDE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: coredns\n  namespace: kube-system\n  labels:\n    app.kubernetes.io/managed-by: Helm\nspec:\n  replicas: 2\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: tenant-is-admin\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n  - kind: User\n    name: tenant\n";

#[tokio::test]
async fn helm_and_storesync_act_inside_a_store_as_its_own_identity() {
    let w = World::with_two_stores();
    let report = w.sync().await;
    assert_eq!(report.summary.applied, 2, "{report:?}");

    // Every helm run names its store's ServiceAccount, whatever it does.
    for call in w.helm.calls() {
        let ns = &call[call.iter().position(|a| a == "--namespace").unwrap() + 1];
        let at = call
            .iter()
            .position(|a| a == "--kube-as-user")
            .expect("an identity");
        assert_eq!(
            call[at + 1],
            format!("system:serviceaccount:{ns}:storesync-helm"),
            "{call:?}"
        );
    }

    // The identity exists, bound in the namespace only, before anything acts as it.
    let writes: Vec<_> = w
        .cluster
        .writes()
        .into_iter()
        .filter(|r| r.uri.contains("/namespaces/store-acme/"))
        .collect();
    let at = |part: &str| {
        writes
            .iter()
            .position(|r| r.uri.contains(part))
            .unwrap_or_else(|| panic!("no {part}"))
    };
    assert!(at("/serviceaccounts/storesync-helm") < at("/rolebindings/storesync-helm"));
    assert!(at("/rolebindings/storesync-helm") < at("/secrets"));
    let binding = w
        .cluster
        .get("rolebindings", "store-acme", "storesync-helm")
        .unwrap();
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "storesync-store"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "storesync-helm", "namespace": "store-acme"}])
    );
    let account = w
        .cluster
        .get("serviceaccounts", "store-acme", "storesync-helm")
        .unwrap();
    assert_eq!(account["automountServiceAccountToken"], false);
    assert_eq!(
        account["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "storesync"
    );

    // The credentials Secret is written as the store; storesync's own writes carry no identity.
    for r in &writes {
        let expected = r.uri.contains("/secrets").then_some(ACME_HELM);
        assert_eq!(r.impersonate.as_deref(), expected, "{}", r.line());
    }
    assert!(
        w.cluster
            .get("secrets", "store-acme", "store-credentials")
            .is_some()
    );

    // A second sync of the same commit still writes nothing and runs no helm.
    let (calls, requests) = (w.helm.calls().len(), w.cluster.writes().len());
    let again = w.sync().await;
    assert_eq!(again.summary.unchanged, 2, "{again:?}");
    assert_eq!(
        (w.helm.calls().len(), w.cluster.writes().len()),
        (calls, requests)
    );
}

#[tokio::test]
async fn a_store_whose_identity_was_removed_gets_it_back_before_helm_runs() {
    let w = World::with_two_stores();
    w.sync().await;
    // A store team with `admin` in its namespace deletes the RoleBinding.
    w.cluster.remove("rolebindings", "store-acme", "storesync-helm");
    let report = w.sync().await;
    assert_eq!(report.summary.applied, 1, "{report:?}");
    assert!(
        w.cluster
            .get("rolebindings", "store-acme", "storesync-helm")
            .is_some()
    );
}

#[tokio::test]
async fn a_forged_revision_reaching_outside_the_namespace_runs_no_helm() {
    let w = World::with_two_stores();
    w.sync().await;
    w.cluster.insert(
        "secrets",
        "store-acme",
        forged(2, "deployed", "deployed", OUTSIDE),
    );
    let before = w.helm.calls().len();
    let report = w.sync().await;

    let acme = report.stores.iter().find(|r| r.store == "acme").unwrap();
    assert_eq!(acme.outcome, Outcome::Failed, "{report:?}");
    let detail = acme.detail.clone().unwrap_or_default();
    assert!(detail.contains("sh.helm.release.v1.acme.v2"), "{detail}");
    assert!(detail.contains("kube-system"), "{detail}");
    assert!(
        helm_calls_of(&w, before, "acme").is_empty(),
        "{:?}",
        w.helm.calls()
    );
    let bobs = report.stores.iter().find(|r| r.store == "bobs").unwrap();
    assert_eq!(
        bobs.outcome,
        Outcome::Unchanged,
        "the other store is not affected"
    );

    assert!(last_error(&w, "acme").unwrap().contains("kube-system"));
    let refused = event_reasons(&w, "store-acme");
    assert!(
        refused
            .iter()
            .any(|(reason, note)| reason == "ReleaseRefused" && note.contains("kube-system")),
        "{refused:?}"
    );
    // Nothing was written outside the store's namespace.
    assert!(w.cluster.get("deployments", "kube-system", "coredns").is_none());
    assert!(w.cluster.writes().iter().all(|r| !r.uri.contains("kube-system")));

    // Every later sync says the same, and still runs no helm for it.
    let before = w.helm.calls().len();
    let again = w.sync().await;
    assert_eq!(
        again.stores.iter().find(|r| r.store == "acme").unwrap().outcome,
        Outcome::Failed
    );
    assert!(helm_calls_of(&w, before, "acme").is_empty());

    // Once the forged Secret is gone, the store is in sync again, with no helm run needed.
    w.cluster
        .remove("secrets", "store-acme", "sh.helm.release.v1.acme.v2");
    let before = w.helm.calls().len();
    let healed = w.sync().await;
    let acme = healed.stores.iter().find(|r| r.store == "acme").unwrap();
    assert_eq!(acme.outcome, Outcome::Unchanged, "{healed:?}");
    assert!(helm_calls_of(&w, before, "acme").is_empty());
}

#[tokio::test]
async fn a_pending_label_over_a_deployed_release_is_not_rolled_back() {
    let w = World::with_two_stores();
    w.sync().await;
    // The first revision's manifest, under a forged label: helm would roll back to revision 1.
    let manifest = std::fs::read_to_string(w.helm.path().join("manifests/store-acme__acme__1.yaml")).unwrap();
    let manifest = fake_release::manifest_without_hooks(&manifest);
    w.cluster.insert(
        "secrets",
        "store-acme",
        forged(2, "pending-upgrade", "deployed", &manifest),
    );
    let before = w.helm.calls().len();
    let report = w.sync().await;
    let acme = report.stores.iter().find(|r| r.store == "acme").unwrap();
    assert_eq!(acme.outcome, Outcome::Failed, "{report:?}");
    let detail = acme.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("labelled pending-upgrade") && detail.contains("holds deployed"),
        "{detail}"
    );
    assert!(
        helm_calls_of(&w, before, "acme").is_empty(),
        "no rollback, no upgrade"
    );
}

#[tokio::test]
async fn a_rollback_target_reaching_outside_is_never_rolled_back_to() {
    let w = World::with_two_stores();
    w.sync().await;
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: takeover\n  namespace: kube-system\nspec:\n  template:\n    spec:\n      serviceAccountName: clusterrole-aggregation-controller\n";
    // Revision 2 deployed, reaching into kube-system; revision 3 genuinely pending.
    w.cluster.insert(
        "secrets",
        "store-acme",
        forged(2, "superseded", "superseded", job),
    );
    w.cluster.insert(
        "secrets",
        "store-acme",
        forged(3, "pending-upgrade", "pending-upgrade", ""),
    );
    let before = w.helm.calls().len();
    let report = w.sync().await;
    let acme = report.stores.iter().find(|r| r.store == "acme").unwrap();
    assert_eq!(acme.outcome, Outcome::Failed, "{report:?}");
    assert!(
        acme.detail
            .as_deref()
            .unwrap_or_default()
            .contains("sh.helm.release.v1.acme.v2"),
        "{acme:?}"
    );
    assert!(
        helm_calls_of(&w, before, "acme").is_empty(),
        "{:?}",
        &w.helm.calls()[before..]
    );
}

#[tokio::test]
async fn an_image_shielded_by_a_claimed_exemption_is_still_repaired() {
    let w = World::with_two_stores();
    w.sync().await;
    let deployments: Vec<String> = w.cluster.names("deployments", "store-acme").into_iter().collect();
    let name = deployments
        .first()
        .expect("the chart renders a Deployment")
        .clone();
    w.cluster.edit("deployments", "store-acme", &name, |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example/tenant:latest");
        d["metadata"]["managedFields"] = json!([{
            "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
            "fieldsV1": {"f:spec": {".": {}}},
        }]);
    });
    let applier = w.applier();
    let applier = storesync::apply::Applier {
        drift: Arc::new(DriftCheck::new(std::time::Duration::ZERO)),
        ..applier
    };
    let before = w.helm.calls().len();
    let synced = w.sync_by(&applier).await;
    let acme = synced.report.stores.iter().find(|r| r.store == "acme").unwrap();
    assert_eq!(acme.outcome, Outcome::Applied, "{:?}", synced.report);
    let calls = helm_calls_of(&w, before, "acme");
    assert_eq!(calls.len(), 1, "one upgrade repairs it: {calls:?}");
    let image =
        w.cluster.get("deployments", "store-acme", &name).unwrap()["spec"]["template"]["spec"]["containers"]
            [0]["image"]
            .clone();
    assert_ne!(image, "registry.example/tenant:latest");
}

#[tokio::test]
async fn a_long_multibyte_event_note_is_cut_to_what_the_api_server_takes() {
    let w = World::with_two_stores();
    w.helm.fail_upgrades_saying("acme", &"é".repeat(1500));
    w.sync().await;
    let failed: Vec<_> = event_reasons(&w, "store-acme")
        .into_iter()
        .filter(|(reason, _)| reason == "HelmFailed")
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "the Event was stored: {:?}",
        event_reasons(&w, "store-acme")
    );
    assert!(failed[0].1.len() <= 1024, "{}", failed[0].1.len());
    assert!(failed[0].1.ends_with('…'));
}

#[tokio::test]
async fn a_new_binding_is_waited_for_until_rbac_knows_it() {
    let w = World::with_two_stores();
    // The API server's RBAC cache learns of a RoleBinding three decisions after it is written.
    w.cluster.rbac_lag(3);
    let report = w.sync().await;
    assert_eq!(report.summary.applied, 2, "{report:?}");
    assert!(
        w.cluster
            .get("secrets", "store-acme", "store-credentials")
            .is_some()
    );
    let asked = w
        .cluster
        .requests()
        .iter()
        .filter(|r| {
            r.uri
                .starts_with("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
        })
        .filter(|r| r.impersonate.as_deref() == Some(ACME_HELM))
        .count();
    assert!(asked >= 2, "asked again until allowed: {asked}");
}
