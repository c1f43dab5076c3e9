//! storesync's two ClusterRoles, as the chart renders them and as deploy/rbac/ ships them:
//! storesync's own grants exactly what it does itself; the store role, bound per store namespace
//! to helm's ServiceAccount, grants exactly what the engine charts render; neither can escalate.

use serde_yaml_ng::Value;
use std::collections::BTreeSet;
use storesync::desired::tenancy::{DEFAULT_STORE_CLUSTER_ROLE, HELM_SERVICE_ACCOUNT, STORE_KINDS};

use super::assert_clean;
use super::helm::{chart_path, platform_values, render, repo_root, run_helm, yaml};
use super::manifest::{kind, seq, str_at};
use super::rbac::{NamedGrant, escalations, named_grants, store_role_grants, storesync_cluster_grants};

const CHART: &str = "deploy/helm/storesync";

fn docs(extra: &str) -> Vec<Value> {
    render(
        CHART,
        "storesync",
        "stores-system",
        &yaml(&format!("repo: {{url: 'https://x/y.git'}}\n{extra}")),
    )
}

fn named<'a>(docs: &'a [Value], k: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == k && str_at(d, "metadata.name") == name)
        .unwrap_or_else(|| panic!("the chart renders no {k} {name}"))
}

fn file(path: &str) -> Value {
    yaml(&std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn args(docs: &[Value]) -> Vec<String> {
    let deploy = docs
        .iter()
        .find(|d| kind(d) == "Deployment")
        .expect("a Deployment");
    seq(&seq(deploy, "spec.template.spec.containers")[0], "args")
        .iter()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

/// `got` equals `want`, or a message naming what is missing and what is extra.
fn assert_grants(what: &str, got: &BTreeSet<NamedGrant>, want: &BTreeSet<NamedGrant>) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}:\n  lacks {missing:?}\n  grants beyond what is needed {extra:?}"
    );
}

#[test]
fn storesync_cluster_role_grants_exactly_what_storesync_does_itself() {
    let docs = docs("");
    let want = storesync_cluster_grants(DEFAULT_STORE_CLUSTER_ROLE);
    let role = named(&docs, "ClusterRole", "storesync");
    let shipped = file("deploy/rbac/clusterrole.yaml");
    // The end-to-end suite binds the plain manifest by this name.
    assert_eq!(
        (kind(&shipped), str_at(&shipped, "metadata.name")),
        ("ClusterRole", "storesync")
    );
    for (what, rules) in [
        ("chart ClusterRole storesync", seq(role, "rules")),
        ("deploy/rbac/clusterrole.yaml", seq(&shipped, "rules")),
    ] {
        let errors = escalations(rules, &[DEFAULT_STORE_CLUSTER_ROLE], &[HELM_SERVICE_ACCOUNT]);
        assert_clean(what, errors);
        assert_grants(what, &named_grants(rules), &want);
    }
    // Independently of the expected set: nothing a store holds is written with storesync's own
    // identity, anywhere (SPEC: no cluster-wide create, update or delete of Secrets or workloads).
    let writes: Vec<_> = named_grants(seq(role, "rules"))
        .into_iter()
        .filter(|(group, resource, verb, _)| {
            ["create", "update", "patch", "delete", "deletecollection"].contains(&verb.as_str())
                && STORE_KINDS.iter().any(|(g, _, _, p)| g == group && p == resource)
        })
        .collect();
    assert!(writes.is_empty(), "storesync writes what helm should: {writes:?}");

    let binding = named(&docs, "ClusterRoleBinding", "storesync");
    assert_eq!(
        (str_at(binding, "roleRef.kind"), str_at(binding, "roleRef.name")),
        ("ClusterRole", "storesync")
    );
    let subject = &seq(binding, "subjects")[0];
    assert_eq!(
        (str_at(subject, "name"), str_at(subject, "namespace")),
        ("storesync", "stores-system"),
        "bound to the chart's ServiceAccount in the release namespace"
    );
    named(&docs, "ServiceAccount", "storesync");
}

/// Every (apiVersion, kind) an engine chart can render: platform mode and standalone, for every
/// chart under charts/, so a new engine chart is covered without editing this test.
fn engine_kinds() -> BTreeSet<(String, String)> {
    let mut charts: Vec<String> = std::fs::read_dir(repo_root().join("charts"))
        .expect("charts/")
        .map(|e| e.expect("a charts/ entry").path())
        .filter(|p| p.join("Chart.yaml").is_file())
        .map(|p| chart_path(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    charts.sort();
    assert!(charts.len() >= 2, "the engine charts: {charts:?}");
    let mut kinds = BTreeSet::new();
    for chart in &charts {
        for values in [
            platform_values("small", true, "x", ""),
            yaml("ingress: {host: solo.example}"),
        ] {
            for doc in render(chart, "acme", "store-acme", &values) {
                kinds.insert((str_at(&doc, "apiVersion").to_string(), kind(&doc).to_string()));
            }
        }
    }
    kinds
}

#[test]
fn store_cluster_role_grants_exactly_the_kinds_the_engine_charts_render() {
    let rendered = engine_kinds();
    let declared: BTreeSet<(String, String)> = STORE_KINDS
        .iter()
        .map(|(_, version, kind, _)| (version.to_string(), kind.to_string()))
        .collect();
    let undeclared: Vec<_> = rendered.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "the engine charts render {undeclared:?}, which storesync refuses in a release: add them to \
         STORE_KINDS (src/desired/tenancy.rs) and the store ClusterRole, or render them no more"
    );
    let unused: Vec<_> = declared.difference(&rendered).collect();
    assert!(
        unused.is_empty(),
        "STORE_KINDS (and so the store ClusterRole) holds {unused:?}, which no engine chart renders"
    );
    // Bound only by RoleBindings: a cluster-scoped kind granted there would grant nothing, and a
    // chart rendering one would be refused by the API server.
    let cluster_scoped = [
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ];
    assert!(
        !STORE_KINDS.iter().any(|(_, _, k, _)| cluster_scoped.contains(k)),
        "STORE_KINDS holds a cluster-scoped kind: {STORE_KINDS:?}"
    );

    let docs = docs("");
    let role = named(&docs, "ClusterRole", DEFAULT_STORE_CLUSTER_ROLE);
    let shipped = file("deploy/rbac/store-clusterrole.yaml");
    assert_eq!(
        (kind(&shipped), str_at(&shipped, "metadata.name")),
        ("ClusterRole", DEFAULT_STORE_CLUSTER_ROLE)
    );
    for (what, rules) in [
        ("chart store ClusterRole", seq(role, "rules")),
        ("deploy/rbac/store-clusterrole.yaml", seq(&shipped, "rules")),
    ] {
        assert_clean(what, escalations(rules, &[], &[]));
        assert_grants(what, &named_grants(rules), &store_role_grants());
    }
    let cluster_bound: Vec<_> = docs
        .iter()
        .filter(|d| {
            kind(d) == "ClusterRoleBinding" && str_at(d, "roleRef.name") == DEFAULT_STORE_CLUSTER_ROLE
        })
        .collect();
    assert!(
        cluster_bound.is_empty(),
        "the store role is bound cluster-wide: {cluster_bound:?}"
    );
}

#[test]
fn one_value_names_the_store_role_what_storesync_may_bind_and_its_flag() {
    for (extra, name) in [
        ("", DEFAULT_STORE_CLUSTER_ROLE),
        ("rbac: {storeClusterRole: acme-store}", "acme-store"),
    ] {
        let docs = docs(extra);
        named(&docs, "ClusterRole", name);
        let storesync = named(&docs, "ClusterRole", "storesync");
        assert_grants(
            &format!("storesync's ClusterRole with store role {name}"),
            &named_grants(seq(storesync, "rules")),
            &storesync_cluster_grants(name),
        );
        let args = args(&docs);
        assert!(
            args.windows(2).any(|w| w == ["--store-cluster-role", name]),
            "--store-cluster-role {name} not in {args:?}"
        );
    }
    // Without the chart's RBAC the role is the platform's to create; storesync still names it.
    let docs = docs("rbac: {create: false, storeClusterRole: platform-store}");
    assert!(!docs.iter().any(|d| kind(d).starts_with("ClusterRole")));
    assert!(
        args(&docs)
            .windows(2)
            .any(|w| w == ["--store-cluster-role", "platform-store"])
    );

    let refused = run_helm(
        &["template", "storesync", CHART],
        &yaml("repo: {url: 'https://x/y.git'}\nrbac: {storeClusterRole: ''}\n"),
    )
    .unwrap_err();
    assert!(refused.contains("rbac.storeClusterRole is required"), "{refused}");
}

#[test]
fn escalating_rules_are_reported_whatever_their_shape() {
    let allowed = |rules: &str| {
        escalations(
            seq(&yaml(rules), "rules"),
            &["storesync-store"],
            &["storesync-helm"],
        )
    };
    let fine = "rules:
      - {apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], resourceNames: [storesync-store], verbs: [bind]}
      - {apiGroups: [''], resources: [serviceaccounts], resourceNames: [storesync-helm], verbs: [impersonate]}
      - {apiGroups: [''], resources: [secrets], verbs: [list]}";
    assert_clean("the rules storesync needs", allowed(fine));
    let shipped = file("deploy/rbac/clusterrole.yaml");
    assert!(
        !escalations(seq(&shipped, "rules"), &[], &[]).is_empty(),
        "storesync's bind and impersonate must be reported where nothing is allowed"
    );
    for bad in [
        "{apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], verbs: [bind]}",
        "{apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], resourceNames: [admin], verbs: [bind]}",
        "{apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], resourceNames: [storesync-store, admin], verbs: [bind]}",
        "{apiGroups: [rbac.authorization.k8s.io], resources: [roles, clusterroles], resourceNames: [storesync-store], verbs: [bind]}",
        "{apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], resourceNames: [storesync-store], verbs: [escalate]}",
        "{apiGroups: [''], resources: [serviceaccounts], verbs: [impersonate]}",
        "{apiGroups: [''], resources: [users], resourceNames: [storesync-helm], verbs: [impersonate]}",
        "{apiGroups: [''], resources: [groups], verbs: [impersonate]}",
        "{apiGroups: [authentication.k8s.io], resources: [userextras/scopes], verbs: [impersonate]}",
        "{apiGroups: [''], resources: [serviceaccounts], resourceNames: [default], verbs: [impersonate]}",
        "{apiGroups: [''], resources: [secrets], verbs: ['*']}",
        "{apiGroups: ['*'], resources: [secrets], verbs: [list]}",
        "{apiGroups: [''], resources: ['*'], verbs: [list]}",
        "{apiGroups: [''], resources: [secrets], resourceNames: ['*'], verbs: [get]}",
        "{nonResourceURLs: ['/metrics'], verbs: [get]}",
    ] {
        let errors = allowed(&format!("rules: [{bad}]"));
        assert!(!errors.is_empty(), "not reported as an escalation: {bad}");
    }
}
