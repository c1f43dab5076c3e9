//! RBAC rules as sets of grants, what storesync and a store's helm identity must be granted, and
//! the rule shapes that would let either hand itself more (escalation).

use super::manifest::seq;
use serde_yaml_ng::Value;
use std::collections::BTreeSet;
use storesync::desired::tenancy::{HELM_SERVICE_ACCOUNT, STORE_KINDS, STORE_READS};

/// A grant of a rule: (apiGroup, resource, verb, object name or `*` for any).
pub type NamedGrant = (String, String, String, String);

const ALL_VERBS: [&str; 7] = ["get", "list", "watch", "create", "update", "patch", "delete"];
const READ: [&str; 3] = ["get", "list", "watch"];
/// Verbs that hand out or assume rights beyond the role's own.
const ESCALATING: [&str; 3] = ["bind", "escalate", "impersonate"];

fn list(rule: &Value, key: &str) -> Vec<String> {
    seq(rule, key)
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect()
}

pub fn named_grants(rules: &[Value]) -> BTreeSet<NamedGrant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let names = match list(rule, "resourceNames") {
            n if n.is_empty() => vec!["*".to_string()],
            n => n,
        };
        for group in list(rule, "apiGroups") {
            for resource in list(rule, "resources") {
                for verb in list(rule, "verbs") {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

/// `(apiGroup, resources, verbs, names)`, as a rule writes them; no names = any object.
type Row<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);

/// The grants of `rows`.
fn grant_set(rows: &[Row<'_>]) -> BTreeSet<NamedGrant> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs, names) in rows {
        let names: &[&str] = if names.is_empty() { &["*"] } else { names };
        for r in *resources {
            for v in *verbs {
                for n in names {
                    out.insert((group.to_string(), r.to_string(), v.to_string(), n.to_string()));
                }
            }
        }
    }
    out
}

/// What storesync itself does, cluster-wide (SPEC "Tenant isolation"): set up store namespaces
/// and helm's identity in them, act as that identity, list Secret metadata, read for drift and
/// health, record Events. Everything a store holds is written by helm as the store, not by this.
pub fn storesync_cluster_grants(store_role: &str) -> BTreeSet<NamedGrant> {
    grant_set(&[
        (
            "",
            &["namespaces"],
            &["get", "list", "watch", "create", "patch", "delete"],
            &[],
        ),
        (
            "",
            &["resourcequotas", "limitranges"],
            &["get", "list", "create", "patch"],
            &[],
        ),
        (
            "networking.k8s.io",
            &["networkpolicies"],
            &["get", "list", "create", "patch", "delete"],
            &[],
        ),
        ("", &["serviceaccounts"], &["get", "list", "create", "patch"], &[]),
        (
            "rbac.authorization.k8s.io",
            &["rolebindings"],
            &["get", "list", "create", "patch"],
            &[],
        ),
        (
            "rbac.authorization.k8s.io",
            &["clusterroles"],
            &["bind"],
            &[store_role],
        ),
        (
            "",
            &["serviceaccounts"],
            &["impersonate"],
            &[HELM_SERVICE_ACCOUNT],
        ),
        // Metadata of release and credentials Secrets; no get, no write.
        ("", &["secrets"], &["list"], &[]),
        (
            "",
            &["configmaps", "persistentvolumeclaims", "services", "pods"],
            &READ,
            &[],
        ),
        (
            "apps",
            &["deployments", "statefulsets", "replicasets"],
            &READ,
            &[],
        ),
        ("batch", &["jobs"], &READ, &[]),
        ("networking.k8s.io", &["ingresses"], &READ, &[]),
        ("events.k8s.io", &["events"], &["create", "patch", "list"], &[]),
    ])
}

/// What helm needs in a store namespace, from the crate's own list of what a store may hold: every
/// verb on [`STORE_KINDS`], reads on [`STORE_READS`].
pub fn store_role_grants() -> BTreeSet<NamedGrant> {
    let mut out = BTreeSet::new();
    for (group, _, _, plural) in STORE_KINDS {
        out.extend(grant_set(&[(group, &[plural], &ALL_VERBS, &[])]));
    }
    for (group, plural) in STORE_READS {
        out.extend(grant_set(&[(group, &[plural], &READ, &[])]));
    }
    out
}

/// Rules that could grant more than they name: wildcards, non-resource URLs, `escalate`, and any
/// `bind` or `impersonate` but `bind` on the ClusterRoles `may_bind` and `impersonate` on the
/// ServiceAccounts `may_impersonate`, each by exact name.
pub fn escalations(rules: &[Value], may_bind: &[&str], may_impersonate: &[&str]) -> Vec<String> {
    let mut errors = vec![];
    for rule in rules {
        let (groups, resources, verbs) = (
            list(rule, "apiGroups"),
            list(rule, "resources"),
            list(rule, "verbs"),
        );
        let names = list(rule, "resourceNames");
        let shape = format!("{groups:?} {resources:?} {verbs:?} names {names:?}");
        if rule.get("nonResourceURLs").is_some() {
            errors.push(format!("nonResourceURLs in a rule: {shape}"));
        }
        if [&groups, &resources, &verbs, &names]
            .iter()
            .any(|l| l.iter().any(|s| s.contains('*')))
        {
            errors.push(format!("wildcard in a rule: {shape}"));
        }
        if groups.is_empty() || resources.is_empty() || verbs.is_empty() {
            errors.push(format!("incomplete rule: {shape}"));
        }
        for verb in verbs.iter().filter(|v| ESCALATING.contains(&v.as_str())) {
            let (group, resource, allowed) = match verb.as_str() {
                "bind" => ("rbac.authorization.k8s.io", "clusterroles", may_bind),
                "impersonate" => ("", "serviceaccounts", may_impersonate),
                _ => ("", "", &[][..]),
            };
            let exact = !allowed.is_empty()
                && groups == [group]
                && resources == [resource]
                && !names.is_empty()
                && names.iter().all(|n| allowed.contains(&n.as_str()));
            if !exact {
                errors.push(format!(
                    "{verb} is allowed only on {group}/{resource} named {allowed:?}: {shape}"
                ));
            }
        }
    }
    errors
}

/// What storesync does in its own namespace: the leader Lease and its ConfigMaps, by name;
/// creating cannot be limited to a name.
pub fn storesync_namespace_grants() -> BTreeSet<NamedGrant> {
    grant_set(&[
        ("coordination.k8s.io", &["leases"], &["create"], &[]),
        (
            "coordination.k8s.io",
            &["leases"],
            &["get", "update"],
            &["storesync"],
        ),
        ("", &["configmaps"], &["create"], &[]),
        (
            "",
            &["configmaps"],
            &["get", "update", "patch"],
            &[
                "storesync-state",
                "storesync-requests",
                "storesync-applied",
                "storesync-rollout",
            ],
        ),
    ])
}
