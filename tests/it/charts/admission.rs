//! The chart's ValidatingAdmissionPolicies (off by default): rendered only when enabled on
//! Kubernetes 1.30+, bound with Deny, naming the release's ServiceAccount, the store role and the
//! crate's own identities; and deploy/admission/ is exactly what the chart renders for a release
//! `storesync` in namespace `storesync`.
//!
//! The CEL is checked here for what it names, not run: no CEL evaluator is among the crate's
//! dependencies. deploy/README.md ("Admission policy") lists the requests each policy admits
//! and denies.

use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use storesync::desired::tenancy::{HELM_ROLE_BINDING, HELM_SERVICE_ACCOUNT, helm_user};
use storesync::desired::{MANAGED_BY, MANAGER};

use super::helm::{render, repo_root, run_helm, yaml};
use super::manifest::{get, kind, seq, str_at};

const CHART: &str = "deploy/helm/storesync";
const POLICY: &str = "ValidatingAdmissionPolicy";
const BINDING: &str = "ValidatingAdmissionPolicyBinding";

fn values(extra: &str) -> Value {
    yaml(&format!("repo: {{url: 'https://x/y.git'}}\n{extra}"))
}

fn policies(docs: &[Value]) -> BTreeMap<String, &Value> {
    docs.iter()
        .filter(|d| kind(d) == POLICY)
        .map(|d| (str_at(d, "metadata.name").to_string(), d))
        .collect()
}

/// Every CEL expression and message of a policy, one per line.
fn cel(policy: &Value) -> String {
    let mut out = vec![];
    for key in ["spec.matchConditions", "spec.validations"] {
        for item in seq(policy, key) {
            for field in ["expression", "message", "messageExpression"] {
                out.push(str_at(item, field).to_string());
            }
        }
    }
    out.join("\n")
}

/// `(apiGroups, resources, operations)` of a policy's single resource rule.
fn rule(policy: &Value) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    let rules = seq(policy, "spec.matchConstraints.resourceRules");
    assert_eq!(
        rules.len(),
        1,
        "{}: one resource rule",
        str_at(policy, "metadata.name")
    );
    let strs = |key: &str| seq(&rules[0], key).iter().filter_map(Value::as_str).collect();
    (strs("apiGroups"), strs("resources"), strs("operations"))
}

#[test]
fn no_admission_policy_unless_enabled_on_kubernetes_1_30() {
    let docs = render(CHART, "storesync", "storesync", &values(""));
    assert!(
        !docs.iter().any(|d| kind(d).starts_with(POLICY)),
        "admission policies are off by default"
    );
    let refused = run_helm(
        &["template", "storesync", CHART, "--kube-version", "1.29.4"],
        &values("admissionPolicy: {enabled: true}"),
    )
    .unwrap_err();
    assert!(refused.contains("needs Kubernetes 1.30+"), "{refused}");
    let accepted = run_helm(
        &["template", "storesync", CHART, "--kube-version", "1.30.0"],
        &values("admissionPolicy: {enabled: true}"),
    );
    assert!(accepted.is_ok_and(|out| out.contains(&format!("kind: {POLICY}\n"))));
}

#[test]
fn enabled_policies_bind_with_deny_and_name_the_release_identity_and_store_role() {
    let docs = render(
        CHART,
        "ops",
        "platform",
        &values(
            "admissionPolicy: {enabled: true}\nserviceAccount: {name: reconciler}\n\
             rbac: {storeClusterRole: acme-store}\n",
        ),
    );
    let policies = policies(&docs);
    let names: Vec<&str> = policies.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "ops-storesync-helm-release-storage",
            "ops-storesync-store-namespaces",
            "ops-storesync-store-rolebindings"
        ]
    );
    let bindings: Vec<&Value> = docs.iter().filter(|d| kind(d) == BINDING).collect();
    assert_eq!(bindings.len(), policies.len(), "one binding per policy");
    for binding in bindings {
        let policy = str_at(binding, "spec.policyName");
        assert!(policies.contains_key(policy), "binding to no policy: {policy}");
        let actions: Vec<&str> = seq(binding, "spec.validationActions")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(actions, ["Deny"], "{policy}");
        assert!(
            get(binding, "spec.matchResources").is_none(),
            "{policy}: the policy scopes itself"
        );
    }
    for (name, policy) in &policies {
        assert_eq!(
            str_at(policy, "apiVersion"),
            "admissionregistration.k8s.io/v1",
            "{name}"
        );
        assert_eq!(str_at(policy, "spec.failurePolicy"), "Fail", "{name}");
    }
    let managed = format!("namespaceObject.metadata.labels['{MANAGED_BY}'] == '{MANAGER}'");
    let only_storesync = "request.userInfo.username == 'system:serviceaccount:platform:reconciler'";

    let bind = policies["ops-storesync-store-rolebindings"];
    assert_eq!(
        rule(bind),
        (
            vec!["rbac.authorization.k8s.io"],
            vec!["rolebindings"],
            vec!["CREATE", "UPDATE"]
        )
    );
    let text = cel(bind);
    for needed in [
        only_storesync,
        &managed,
        &format!("object.metadata.name == '{HELM_ROLE_BINDING}'"),
        "object.roleRef.kind == 'ClusterRole'",
        "object.roleRef.name == 'acme-store'",
        "size(object.subjects) == 1",
        &format!("object.subjects[0].name == '{HELM_SERVICE_ACCOUNT}'"),
        "object.subjects[0].namespace == request.namespace",
    ] {
        assert!(
            text.contains(needed),
            "store-rolebindings lacks {needed:?}:\n{text}"
        );
    }
    assert!(
        !text.contains("storesync-store"),
        "the release's store role, not the default"
    );

    let storage = policies["ops-storesync-helm-release-storage"];
    assert_eq!(
        rule(storage),
        (vec![""], vec!["secrets"], vec!["CREATE", "UPDATE", "DELETE"])
    );
    assert_eq!(
        get(storage, "spec.matchConstraints.namespaceSelector.matchLabels"),
        Some(&yaml(&format!("{{'{MANAGED_BY}': {MANAGER}}}")))
    );
    // The writer allowed is the crate's own helm identity, built from the request's namespace.
    let (before, after) = helm_user("{ns}")
        .split_once("{ns}")
        .map(|(b, a)| (b.to_string(), a.to_string()))
        .unwrap();
    let text = cel(storage);
    for needed in [
        format!("request.userInfo.username == '{before}' + request.namespace + '{after}'"),
        "'helm.sh/release.v1'".to_string(),
        "labels['owner'] == 'helm'".to_string(),
        "startsWith('sh.helm.release.v1.')".to_string(),
        "oldObject != null".to_string(),
        "has(namespaceObject.metadata.deletionTimestamp)".to_string(),
    ] {
        assert!(
            text.contains(&needed),
            "helm-release-storage lacks {needed:?}:\n{text}"
        );
    }

    let namespaces = policies["ops-storesync-store-namespaces"];
    assert_eq!(
        rule(namespaces),
        (vec![""], vec!["namespaces"], vec!["CREATE", "UPDATE", "DELETE"])
    );
    let text = cel(namespaces);
    for needed in [
        only_storesync.to_string(),
        format!("oldObject.metadata.labels['{MANAGED_BY}'] == '{MANAGER}'"),
        format!("object.metadata.labels['{MANAGED_BY}'] == '{MANAGER}'"),
    ] {
        assert!(
            text.contains(&needed),
            "store-namespaces lacks {needed:?}:\n{text}"
        );
    }
}

/// `(kind, name) → spec` of every admission object in `docs`.
fn specs(docs: &[Value]) -> BTreeMap<(String, String), Value> {
    docs.iter()
        .filter(|d| kind(d).starts_with(POLICY))
        .map(|d| {
            let key = (kind(d).to_string(), str_at(d, "metadata.name").to_string());
            (key, get(d, "spec").cloned().unwrap_or(Value::Null))
        })
        .collect()
}

#[test]
fn deploy_admission_is_what_the_chart_renders_for_storesync_in_storesync() {
    let rendered = render(
        CHART,
        "storesync",
        "storesync",
        &values("admissionPolicy: {enabled: true}"),
    );
    let dir = repo_root().join("deploy/admission");
    let mut shipped = vec![];
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/admission/")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a manifest");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc: Value = serde::Deserialize::deserialize(doc).expect("YAML");
            if !doc.is_null() {
                shipped.push(doc);
            }
        }
    }
    let (want, got) = (specs(&rendered), specs(&shipped));
    assert_eq!(want.len(), 6, "three policies and their bindings");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "deploy/admission/ holds other objects than the chart renders"
    );
    for (key, spec) in &want {
        assert_eq!(
            &got[key], spec,
            "deploy/admission/ {key:?} differs from the chart's"
        );
    }
}
