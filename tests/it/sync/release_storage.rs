//! Helm's release storage as a store's team can forge it: Secrets named and labelled as Helm's,
//! written in the store's namespace. storesync reads them as the store's own identity, decodes
//! them within bounds, reads a bad one once per revision, and never compares (or acts on) a
//! manifest that reaches outside the store.
use std::time::Duration;

use serde_json::{Value, json};
use storesync::error::Error;
use storesync::live::{DriftCheck, ReleaseRef};

use super::world::World;
use crate::common::fake_release::{
    alias_bomb_manifest, forged_release_secret, gzip_bomb, gzipped, release_secret,
};

const NS: &str = "store-acme";
const ACME_HELM: &str = "system:serviceaccount:store-acme:storesync-helm";

/// What a sync sets up before anything acts as the store: its helm identity, bound there.
fn bind_store_identity(w: &World) {
    w.cluster.insert(
        "rolebindings",
        NS,
        json!({"metadata": {"name": "storesync-helm", "namespace": NS},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "storesync-store"},
               "subjects": [{"kind": "ServiceAccount", "name": "storesync-helm", "namespace": NS}]}),
    );
}

fn acme(revision: u32) -> ReleaseRef {
    ReleaseRef {
        store: "acme".into(),
        namespace: NS.into(),
        name: "acme".into(),
        revision,
    }
}

/// `release_secret` for revision 9 of acme with `manifest`.
fn with_manifest(manifest: &str) -> Value {
    release_secret(NS, "acme", 9, "deployed", manifest)
}

fn renamed(mut secret: Value, name: &str) -> Value {
    secret["metadata"]["name"] = json!(name);
    secret
}

/// Labelled ConfigMaps as a chart renders them, one document each.
fn configmaps(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n  labels:\n    app.kubernetes.io/managed-by: Helm\ndata:\n  k: v\n"
            )
        })
        .collect()
}

/// The users the GETs of release Secret `name` acted as, since the requests were last cleared.
fn reads_of(w: &World, name: &str) -> Vec<Option<String>> {
    let path = format!("/api/v1/namespaces/{NS}/secrets/{name}");
    w.cluster
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.uri == path)
        .map(|r| r.impersonate)
        .collect()
}

#[tokio::test]
async fn hostile_release_secrets_fail_with_their_reason_and_are_read_once_per_revision() {
    let secret = "Helm's release Secret store-acme/sh.helm.release.v1.acme.v9";
    let bomb = gzip_bomb("acme", 9, 300 << 20);
    let cases = [
        (
            "alias bomb",
            with_manifest(&alias_bomb_manifest()),
            "manifest, line 9, column 7: anchor `&l0` is not allowed".to_string(),
        ),
        (
            "gzip bomb of 300 MiB",
            forged_release_secret(NS, "acme", 9, "deployed", &bomb),
            "release is larger than 8 MiB decompressed".to_string(),
        ),
        (
            "thousands of documents",
            with_manifest(&configmaps(3_000)),
            "manifest, line 4501, column 1: more than 500 YAML documents".to_string(),
        ),
        (
            "a syntax error at the end",
            with_manifest(&format!("{}---\nx: y: z\n", configmaps(400))),
            "manifest, line 3602, column 5: mapping values are not allowed in this context".to_string(),
        ),
        (
            "another release's body",
            renamed(
                release_secret(NS, "bobs", 9, "deployed", ""),
                "sh.helm.release.v1.acme.v9",
            ),
            "it holds release bobs v9, not acme v9".to_string(),
        ),
    ];
    for (case, forged, why) in cases {
        let w = World::new();
        bind_store_identity(&w);
        w.cluster.insert("secrets", NS, forged);
        let check = DriftCheck::new(Duration::ZERO);
        let client = w.cluster.client();
        let expected = format!("{secret}: {why}");

        let found = check.check(&client, &[acme(9)]).await.expect("the check runs");
        assert!(found.is_empty(), "{case}: nothing compared: {found:?}");
        assert_eq!(check.refused(&[acme(9)]).get("acme"), Some(&expected), "{case}");
        assert_eq!(
            reads_of(&w, "sh.helm.release.v1.acme.v9"),
            [Some(ACME_HELM.to_string())],
            "{case}: one GET, as the store's helm identity"
        );

        // Once per revision: neither the next check nor the apply step reads it again.
        w.cluster.clear_requests();
        check.check(&client, &[acme(9)]).await.expect("the check runs");
        for _ in 0..2 {
            match check.release(&client, &acme(9)).await {
                Err(Error::Unreadable(reason)) => assert_eq!(reason, expected, "{case}"),
                other => panic!("{case}: {other:?}"),
            }
        }
        assert!(
            w.cluster.requests().is_empty(),
            "{case}: {:?}",
            w.cluster.requests()
        );
        assert_eq!(check.cached().0, 1, "{case}: the failure is held");

        // A new revision is read (and judged) on its own.
        w.cluster.insert(
            "secrets",
            NS,
            release_secret(NS, "acme", 10, "deployed", &configmaps(1)),
        );
        check.check(&client, &[acme(10)]).await.expect("the check runs");
        assert!(check.refused(&[acme(10)]).is_empty(), "{case}");
        assert_eq!(reads_of(&w, "sh.helm.release.v1.acme.v10").len(), 1, "{case}");
        assert_eq!(check.cached().0, 1, "{case}: the superseded revision is dropped");
    }
}

#[tokio::test]
async fn a_manifest_reaching_outside_the_store_is_refused_and_not_compared() {
    let w = World::new();
    bind_store_identity(&w);
    let outside = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: coredns\n  namespace: kube-system\n  labels:\n    app.kubernetes.io/managed-by: Helm\nspec:\n  replicas: 0\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: tenant-is-admin\n  labels:\n    app.kubernetes.io/managed-by: Helm\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: unlabelled\n  namespace: default\n";
    w.cluster.insert(
        "secrets",
        NS,
        with_manifest(&format!("{}{outside}", configmaps(2))),
    );
    let check = DriftCheck::new(Duration::ZERO);
    let client = w.cluster.client();

    let found = check.check(&client, &[acme(9)]).await.expect("the check runs");
    assert!(found.is_empty(), "{found:?}");
    let listed: Vec<String> = w
        .cluster
        .requests()
        .iter()
        .filter(|r| r.uri.contains('?'))
        .map(|r| r.line())
        .collect();
    assert!(listed.is_empty(), "nothing listed to compare: {listed:?}");
    assert_eq!(
        check.refused(&[acme(9)]).get("acme").map(String::as_str),
        Some(
            "Helm's release Secret store-acme/sh.helm.release.v1.acme.v9: its manifest reaches outside \
             store-acme: Deployment kube-system/coredns: Deployment is in namespace kube-system, outside \
             store-acme; ClusterRoleBinding tenant-is-admin: ClusterRoleBinding (rbac.authorization.k8s.io/v1) \
             is not a kind a store's release may hold; Secret default/unlabelled: Secret is in namespace \
             default, outside store-acme"
        )
    );

    // The apply step gets the whole release, to refuse it with its reasons, without a GET.
    w.cluster.clear_requests();
    let decoded = check
        .release(&client, &acme(9))
        .await
        .expect("decoded")
        .expect("there");
    assert_eq!(
        (decoded.name.as_str(), decoded.version, decoded.status.as_str()),
        ("acme", 9, "deployed")
    );
    assert_eq!(decoded.refused.len(), 3, "{:?}", decoded.refused);
    assert!(w.cluster.requests().is_empty());
}

#[tokio::test]
async fn a_release_secret_the_store_identity_may_not_read_is_tried_again() {
    let w = World::new();
    w.cluster.insert("secrets", NS, with_manifest(&configmaps(1)));
    let check = DriftCheck::new(Duration::ZERO);
    let client = w.cluster.client();

    // No RoleBinding yet: RBAC refuses the store's identity, and nothing is kept.
    check.check(&client, &[acme(9)]).await.expect("the check runs");
    match check.release(&client, &acme(9)).await {
        Err(Error::Kube { context, .. }) => assert_eq!(
            context,
            "cannot read Helm's release Secret store-acme/sh.helm.release.v1.acme.v9"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(reads_of(&w, "sh.helm.release.v1.acme.v9").len(), 2);
    assert_eq!(check.cached().0, 0);
    assert!(
        check.refused(&[acme(9)]).is_empty(),
        "a refused GET is not the release's fault"
    );

    bind_store_identity(&w);
    let decoded = check
        .release(&client, &acme(9))
        .await
        .expect("read")
        .expect("there");
    assert_eq!(decoded.objects.len(), 1);
    assert!(
        check.release(&client, &acme(10)).await.expect("read").is_none(),
        "gone"
    );
}

#[tokio::test]
async fn syncs_after_a_forged_release_read_it_once() {
    let w = World::with_two_stores();
    w.sync().await;
    // The store's team copies the real revision's labels onto a bomb, as revision 2.
    let real = w.cluster.client();
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(real, NS);
    let v1 = api.get("sh.helm.release.v1.acme.v1").await.expect("revision 1");
    let mut forged = forged_release_secret(
        NS,
        "acme",
        2,
        "deployed",
        &gzipped(&[b"{\"manifest\": \"a: *b\"}"]),
    );
    forged["metadata"]["labels"] = json!(v1.metadata.labels);
    forged["metadata"]["labels"]["version"] = json!("2");
    w.cluster.insert("secrets", NS, forged);

    let applier = storesync::apply::Applier {
        drift: std::sync::Arc::new(DriftCheck::new(Duration::ZERO)),
        ..w.applier()
    };
    w.cluster.clear_requests();
    let before = w.helm.calls().len();
    for _ in 0..3 {
        w.sync_by(&applier).await;
    }
    assert_eq!(
        reads_of(&w, "sh.helm.release.v1.acme.v2"),
        [Some(ACME_HELM.to_string())],
        "one GET in three syncs"
    );
    let acme_calls: Vec<_> = w.helm.calls()[before..]
        .iter()
        .filter(|c| c.contains(&"acme".to_string()))
        .cloned()
        .collect();
    assert!(acme_calls.is_empty(), "no helm acts on it: {acme_calls:?}");
    let reason = applier.drift.refused(&[acme(2)]);
    assert!(
        reason["acme"].ends_with("manifest, line 1, column 4: while parsing node, found unknown anchor"),
        "{reason:?}"
    );
}
