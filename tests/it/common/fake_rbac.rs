//! RBAC of the fake API server for impersonated requests, as the real one decides them for a
//! store's helm identity: `system:serviceaccount:<ns>:storesync-helm` may act only in `<ns>`, only
//! on the kinds of the store ClusterRole, and only while the RoleBinding `storesync-helm` in
//! `<ns>` binds that ServiceAccount to it. Anything else is 403 with the real server's message.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;
use storesync::desired::tenancy::{
    DEFAULT_STORE_CLUSTER_ROLE, HELM_ROLE_BINDING, HELM_SERVICE_ACCOUNT, STORE_KINDS, STORE_READS,
};

use super::fake_cluster::status;

type Key = (String, String, String);

/// The verb RBAC sees for a request.
fn verb(method: &str, name: Option<&str>) -> &'static str {
    match (method, name) {
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "unknown",
    }
}

fn group_of(plural: &str) -> &'static str {
    STORE_KINDS
        .iter()
        .find(|(_, _, _, p)| *p == plural)
        .map(|(g, ..)| *g)
        .or_else(|| STORE_READS.iter().find(|(_, p)| *p == plural).map(|(g, _)| *g))
        .unwrap_or("")
}

/// The answer to a SelfSubjectAccessReview `spec` asked by `user` (`None`: the test's own client,
/// which may do anything, as a cluster admin).
pub fn allows(objects: &BTreeMap<Key, Value>, user: Option<&str>, spec: &Value) -> bool {
    let Some(user) = user else { return true };
    let attributes = &spec["resourceAttributes"];
    let method = match attributes["verb"].as_str().unwrap_or_default() {
        "get" | "list" | "watch" => "GET",
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" => "DELETE",
        _ => return false,
    };
    let name = attributes["name"].as_str().filter(|n| !n.is_empty());
    let name = if attributes["verb"] == "get" {
        name.or(Some("any"))
    } else {
        name
    };
    let plural = attributes["resource"].as_str().unwrap_or_default();
    let ns = attributes["namespace"].as_str().unwrap_or_default();
    authorize(objects, user, method, plural, ns, name).is_ok()
}

/// Whether `user` may do `method` on `plural` in namespace `ns`; the 403 answer otherwise.
pub fn authorize(
    objects: &BTreeMap<Key, Value>,
    user: &str,
    method: &str,
    plural: &str,
    ns: &str,
    name: Option<&str>,
) -> Result<(), (u16, Value)> {
    let verb = verb(method, name);
    let forbidden = || {
        let what = match name {
            Some(n) => format!("{plural} \"{n}\" is forbidden"),
            None => format!("{plural} is forbidden"),
        };
        let scope = if ns.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{ns}\"")
        };
        Err(status(
            403,
            "Forbidden",
            &format!(
                "{what}: User \"{user}\" cannot {verb} resource \"{plural}\" in API group \"{}\" {scope}",
                group_of(plural)
            ),
        ))
    };
    let Some(home) = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.strip_suffix(&format!(":{HELM_SERVICE_ACCOUNT}")))
    else {
        return forbidden();
    };
    if ns != home {
        return forbidden();
    }
    let binding = objects.get(&(
        "rolebindings".to_string(),
        ns.to_string(),
        HELM_ROLE_BINDING.to_string(),
    ));
    let bound = binding.is_some_and(|b| {
        b["roleRef"]["kind"] == "ClusterRole"
            && b["roleRef"]["name"] == DEFAULT_STORE_CLUSTER_ROLE
            && b["subjects"].as_array().is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s["kind"] == "ServiceAccount" && s["name"] == HELM_SERVICE_ACCOUNT && s["namespace"] == ns
                })
            })
    });
    if !bound {
        return forbidden();
    }
    let writable = STORE_KINDS.iter().any(|(_, _, _, p)| *p == plural);
    let readable = STORE_READS.iter().any(|(_, p)| *p == plural);
    let reading = matches!(verb, "get" | "list");
    if writable || (readable && reading) {
        Ok(())
    } else {
        forbidden()
    }
}
