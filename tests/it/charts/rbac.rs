//! RBAC grants: the (apiGroup, resource, verb) triples a ClusterRole grants, and what storesync
//! and helm need.

use super::manifest::seq;
use serde_yaml_ng::Value;
use std::collections::BTreeSet;

pub type Grant = (String, String, String); // (apiGroup, resource, verb)

pub fn grants(rules: &[Value], errors: &mut Vec<String>) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let list = |key: &str| {
            seq(rule, key)
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        if rule.get("nonResourceURLs").is_some() || rule.get("resourceNames").is_some() {
            errors.push(format!("unexpected rule shape: {rule:?}"));
        }
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    if [&group, &resource, &verb].iter().any(|s| s.contains('*')) {
                        errors.push(format!("wildcard in rule: {group}/{resource}/{verb}"));
                    }
                    if ["escalate", "bind", "impersonate"].contains(&verb.as_str()) {
                        errors.push(format!("forbidden verb {verb} on {resource}"));
                    }
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// What storesync itself does (SPEC, sync engine), independent of the engine charts.
pub fn storesync_own_grants() -> BTreeSet<Grant> {
    let own: [(&str, &[&str], &[&str]); 9] = [
        (
            "",
            &["namespaces"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        (
            "",
            &["resourcequotas", "limitranges"],
            &["get", "list", "create", "patch"],
        ),
        (
            "networking.k8s.io",
            &["networkpolicies"],
            &["get", "list", "create", "patch", "delete"],
        ),
        (
            "",
            &["secrets"],
            &["get", "list", "create", "patch", "update", "delete"],
        ),
        ("", &["pods"], &["get", "list", "watch"]),
        (
            "apps",
            &["deployments", "statefulsets"],
            &["get", "list", "watch"],
        ),
        // helm --wait judges a Deployment ready from its ReplicaSets.
        ("apps", &["replicasets"], &["get", "list", "watch"]),
        // The prune breaker's record of the last applied commit.
        ("", &["configmaps"], &["get", "create", "patch"]),
        // Events on the stores' namespaces, aggregated by patching their series.
        ("events.k8s.io", &["events"], &["create", "patch"]),
    ];
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in own {
        for r in resources {
            for v in verbs {
                out.insert((group.to_string(), r.to_string(), v.to_string()));
            }
        }
    }
    out
}

pub fn resource_of(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "Secret" => ("", "secrets"),
        "ConfigMap" => ("", "configmaps"),
        "Service" => ("", "services"),
        "PersistentVolumeClaim" => ("", "persistentvolumeclaims"),
        "ServiceAccount" => ("", "serviceaccounts"),
        "Deployment" => ("apps", "deployments"),
        "StatefulSet" => ("apps", "statefulsets"),
        "Job" => ("batch", "jobs"),
        "Ingress" => ("networking.k8s.io", "ingresses"),
        "NetworkPolicy" => ("networking.k8s.io", "networkpolicies"),
        "PodDisruptionBudget" => ("policy", "poddisruptionbudgets"),
        other => panic!("engine charts render {other}: add it to resource_of and to the ClusterRole"),
    }
}
