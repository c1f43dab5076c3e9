//! storesync's own chart as replicas: two by default, one elected leader, a disruption budget,
//! spread across nodes, and a Role for exactly the Lease and ConfigMaps of its namespace.

use serde_yaml_ng::Value;

use super::helm::{render, run_helm, yaml};
use super::manifest::{get, kind, seq, str_at};
use super::rbac::{named_grants, storesync_namespace_grants};

const CHART: &str = "deploy/helm/storesync";

fn docs(extra: &str) -> Vec<Value> {
    render(
        CHART,
        "storesync",
        "stores-system",
        &yaml(&format!("repo: {{url: 'https://x/y.git'}}\n{extra}")),
    )
}

fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == k)
        .unwrap_or_else(|| panic!("the chart renders a {k}"))
}

fn seconds(text: &str) -> u64 {
    text.trim_end_matches('s').parse().expect("a duration in seconds")
}

#[test]
fn two_replicas_elect_a_leader_and_survive_a_drain() {
    let docs = docs("");
    let deploy = one(&docs, "Deployment");
    assert_eq!(get(deploy, "spec.replicas").and_then(Value::as_i64), Some(2));
    assert_eq!(str_at(deploy, "spec.strategy.type"), "RollingUpdate");
    assert_eq!(
        get(deploy, "spec.strategy.rollingUpdate.maxUnavailable").and_then(Value::as_i64),
        Some(0),
        "a rollout never takes the last replica away"
    );
    let pod = get(deploy, "spec.template.spec").unwrap();
    let c = &seq(pod, "containers")[0];
    let args: Vec<&str> = seq(c, "args").iter().filter_map(Value::as_str).collect();
    assert!(args.contains(&"--leader-elect"), "{args:?}");
    let flag = |name: &str| {
        let at = args
            .iter()
            .position(|a| *a == name)
            .unwrap_or_else(|| panic!("{name} in {args:?}"));
        seconds(args[at + 1])
    };
    let (lease, renew, retry) = (
        flag("--lease-duration"),
        flag("--renew-deadline"),
        flag("--retry-period"),
    );
    assert_eq!((lease, renew, retry), (15, 10, 2));
    let grace = get(pod, "terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap();
    assert!(
        grace > renew,
        "graceful termination ({grace}s) outlasts the renew deadline ({renew}s)"
    );
    let env: Vec<(&str, &str)> = seq(c, "env")
        .iter()
        .map(|e| (str_at(e, "name"), str_at(e, "valueFrom.fieldRef.fieldPath")))
        .collect();
    assert!(env.contains(&("POD_NAME", "metadata.name")), "{env:?}");
    assert!(env.contains(&("POD_NAMESPACE", "metadata.namespace")), "{env:?}");

    let spread = &seq(pod, "topologySpreadConstraints")[0];
    assert_eq!(str_at(spread, "topologyKey"), "kubernetes.io/hostname");
    let selector = get(deploy, "spec.selector.matchLabels").unwrap();
    assert_eq!(get(spread, "labelSelector.matchLabels"), Some(selector));

    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(str_at(pdb, "apiVersion"), "policy/v1");
    assert_eq!(get(pdb, "spec.minAvailable").and_then(Value::as_i64), Some(1));
    assert_eq!(get(pdb, "spec.selector.matchLabels"), Some(selector));
}

#[test]
fn the_role_grants_exactly_the_lease_and_configmaps_of_its_namespace() {
    let docs = docs("");
    let role = one(&docs, "Role");
    assert_eq!(str_at(role, "metadata.namespace"), "stores-system");
    assert_eq!(named_grants(seq(role, "rules")), storesync_namespace_grants());
    let binding = one(&docs, "RoleBinding");
    assert_eq!(str_at(binding, "roleRef.kind"), "Role");
    assert_eq!(str_at(binding, "roleRef.name"), str_at(role, "metadata.name"));
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(
        str_at(&seq(binding, "subjects")[0], "name"),
        str_at(sa, "metadata.name")
    );
    let cluster_role = one(&docs, "ClusterRole");
    assert!(
        !seq(cluster_role, "rules").iter().any(|r| seq(r, "apiGroups")
            .iter()
            .any(|g| g.as_str() == Some("coordination.k8s.io"))),
        "nothing cluster-wide for the election"
    );
}

#[test]
fn without_election_one_reconciler_runs_alone() {
    let docs = docs("leaderElection: {enabled: false}\nreplicaCount: 1\n");
    let deploy = one(&docs, "Deployment");
    assert_eq!(get(deploy, "spec.replicas").and_then(Value::as_i64), Some(1));
    assert_eq!(str_at(deploy, "spec.strategy.type"), "Recreate");
    let args = seq(&seq(deploy, "spec.template.spec.containers")[0], "args");
    assert!(
        !args.iter().any(|a| a.as_str() == Some("--leader-elect")),
        "{args:?}"
    );
    assert!(
        !docs.iter().any(|d| kind(d) == "PodDisruptionBudget"),
        "no budget that would block every drain of a single replica"
    );

    let refused = run_helm(
        &["template", "storesync", CHART],
        &yaml("repo: {url: 'https://x/y.git'}\nleaderElection: {enabled: false}\nreplicaCount: 3\n"),
    )
    .unwrap_err();
    assert!(refused.contains("needs leaderElection.enabled"), "{refused}");
}
