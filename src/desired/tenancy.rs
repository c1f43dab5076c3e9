//! Tenant isolation, as data: the identity helm runs with for a store, and the kinds a store's
//! chart may hold. Everything a store namespace contains may be written by its team, so helm for
//! store X acts as a ServiceAccount of `store-X` that Kubernetes RBAC confines there; storesync
//! itself checks each release manifest against [`STORE_KINDS`] before helm runs.

/// The ServiceAccount helm acts as, in every store namespace.
pub const HELM_SERVICE_ACCOUNT: &str = "storesync-helm";
/// The RoleBinding in every store namespace granting [`HELM_SERVICE_ACCOUNT`] the store role.
pub const HELM_ROLE_BINDING: &str = "storesync-helm";
/// The ClusterRole (bound per namespace, never cluster-wide) holding what the engine charts need.
pub const DEFAULT_STORE_CLUSTER_ROLE: &str = "storesync-store";

pub fn default_store_cluster_role() -> String {
    DEFAULT_STORE_CLUSTER_ROLE.to_string()
}

/// The user helm impersonates for the store whose namespace is `namespace`.
pub fn helm_user(namespace: &str) -> String {
    format!("system:serviceaccount:{namespace}:{HELM_SERVICE_ACCOUNT}")
}

/// A namespaced kind a store's release may hold: `(apiGroup, apiVersion, kind, plural)`.
pub type StoreKind = (&'static str, &'static str, &'static str, &'static str);

/// Every kind the engine charts render, all namespaced; the store ClusterRole grants exactly
/// these (plus [`STORE_READS`]), and a release manifest holding any other kind is refused.
pub const STORE_KINDS: &[StoreKind] = &[
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "Service", "services"),
    ("apps", "apps/v1", "Deployment", "deployments"),
    ("apps", "apps/v1", "StatefulSet", "statefulsets"),
    ("batch", "batch/v1", "Job", "jobs"),
    (
        "networking.k8s.io",
        "networking.k8s.io/v1",
        "Ingress",
        "ingresses",
    ),
];

/// What helm only reads in a store namespace, to wait for its workloads: `(apiGroup, plural)`.
pub const STORE_READS: &[(&str, &str)] = &[("", "pods"), ("apps", "replicasets"), ("", "events")];

/// Why an object of a release manifest may not be in store namespace `namespace`, if it may not.
/// `object_namespace` is the namespace the manifest names (empty: the release's own).
pub fn confinement(api_version: &str, kind: &str, object_namespace: &str, namespace: &str) -> Option<String> {
    if !STORE_KINDS
        .iter()
        .any(|(_, v, k, _)| *v == api_version && *k == kind)
    {
        return Some(format!(
            "{kind} ({api_version}) is not a kind a store's release may hold"
        ));
    }
    if !object_namespace.is_empty() && object_namespace != namespace {
        return Some(format!(
            "{kind} is in namespace {object_namespace}, outside {namespace}"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_release_stays_in_its_namespace_and_kinds() {
        assert_eq!(
            helm_user("store-acme"),
            "system:serviceaccount:store-acme:storesync-helm"
        );
        assert_eq!(confinement("apps/v1", "Deployment", "", "store-acme"), None);
        assert_eq!(confinement("v1", "Secret", "store-acme", "store-acme"), None);
        let elsewhere = confinement("apps/v1", "Deployment", "kube-system", "store-acme").unwrap();
        assert!(elsewhere.contains("kube-system"), "{elsewhere}");
        let cluster = confinement(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            "",
            "store-acme",
        );
        assert!(cluster.unwrap().contains("ClusterRoleBinding"));
        // The group/version counts, not the kind alone.
        assert!(confinement("example.com/v1", "Deployment", "", "store-acme").is_some());
    }
}
