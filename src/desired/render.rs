//! Renders each valid store into the exact objects and Helm release it needs in the cluster.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::labels::*;
use super::model::{Catalog, PlatformConfig, Store};
use super::tenancy::{HELM_ROLE_BINDING, HELM_SERVICE_ACCOUNT};

pub const QUOTA_NAME: &str = "store-quota";
pub const LIMITS_NAME: &str = "store-limits";
pub const CREDENTIALS_SECRET: &str = "store-credentials";
/// Keys of the credentials Secret; the engine charts read exactly these.
pub const CREDENTIAL_KEYS: &[&str] = &[
    "admin-password",
    "database-password",
    "database-root-password",
    "jwt-secret",
    "cookie-secret",
];

pub fn namespace_of(store: &str) -> String {
    format!("store-{store}")
}

/// A Helm release as storesync wants it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseSpec {
    pub name: String,
    pub namespace: String,
    /// The engine's chart as configured: a name under the charts directory, a path or an OCI
    /// reference; resolved when the release is installed.
    pub chart: String,
    pub version: String,
    pub values: Value,
}

/// Everything one store needs in the cluster, in apply order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredStore {
    pub store: Store,
    pub namespace: Namespace,
    pub quota: ResourceQuota,
    pub limit_range: LimitRange,
    /// Sorted by name.
    pub network_policies: Vec<NetworkPolicy>,
    /// The identity helm acts as for this store, confined to its namespace by RBAC.
    pub service_account: ServiceAccount,
    /// Binds [`Self::service_account`] to the store ClusterRole, in the store's namespace only.
    pub role_binding: RoleBinding,
    pub release: ReleaseSpec,
    /// Digest of everything above that shapes live objects (the commit annotation excluded), so
    /// an unchanged store is recognised without comparing objects.
    pub spec_hash: String,
    /// Digest of the release alone (chart, version, values): `helm upgrade` runs only when it
    /// differs from the one recorded on the live release.
    pub release_hash: String,
}

/// Renders every store of a valid catalog, sorted by store name.
pub fn render(catalog: &Catalog, commit: Option<&str>) -> Vec<DesiredStore> {
    use rayon::prelude::*;
    catalog
        .stores
        .par_iter()
        .map(|s| render_store(s, &catalog.platform, commit))
        .collect()
}

pub fn render_store(store: &Store, platform: &PlatformConfig, commit: Option<&str>) -> DesiredStore {
    let ns = namespace_of(&store.name);
    // A valid catalog only references plans and engines that exist.
    let plan = platform.plans.get(&store.plan);
    let engine = platform.engines.get(&store.engine);

    let mut ns_labels = labels(&store.name);
    ns_labels.insert(OWNER_LABEL.into(), store.owner.clone());
    ns_labels.insert(ENGINE_LABEL.into(), store.engine.clone());
    ns_labels.insert(PLAN_LABEL.into(), store.plan.clone());
    ns_labels.insert(PROTECTED_LABEL.into(), store.protected.to_string());
    // Engine pods run unprivileged; baseline keeps host access out of every store.
    ns_labels.insert("pod-security.kubernetes.io/enforce".into(), "baseline".into());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(ns_labels),
            ..Default::default()
        },
        ..Default::default()
    };

    let quota = ResourceQuota {
        metadata: meta(QUOTA_NAME, &ns, &store.name),
        spec: Some(ResourceQuotaSpec {
            hard: Some(quantities(plan.map(|p| &p.quota))),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut items = Vec::new();
    if let Some(c) = plan.map(|p| &p.limit_range.container) {
        items.push(LimitRangeItem {
            type_: "Container".into(),
            default: Some(quantities(Some(&c.default))),
            default_request: Some(quantities(Some(&c.default_request))),
            max: Some(quantities(Some(&c.max))),
            ..Default::default()
        });
    }
    if let Some(pvc) = plan.and_then(|p| p.limit_range.persistent_volume_claim.as_ref()) {
        items.push(LimitRangeItem {
            type_: "PersistentVolumeClaim".into(),
            max: Some(quantities(Some(&pvc.max))),
            ..Default::default()
        });
    }
    let limit_range = LimitRange {
        metadata: meta(LIMITS_NAME, &ns, &store.name),
        spec: Some(LimitRangeSpec { limits: items }),
    };

    let network_policies = network_policies(&ns, &store.name, platform);
    let (service_account, role_binding) = helm_identity(&ns, &store.name, &platform.store_cluster_role);

    let mut values = engine
        .map(|e| Value::Object(e.values.clone()))
        .unwrap_or_else(|| json!({}));
    merge(&mut values, Value::Object(store.values.clone()));
    merge(&mut values, platform_values(store, platform));
    let release = ReleaseSpec {
        name: store.name.clone(),
        namespace: ns.clone(),
        chart: engine.map(|e| e.chart.clone()).unwrap_or_default(),
        version: engine.map(|e| e.version.clone()).unwrap_or_default(),
        values,
    };

    let mut desired = DesiredStore {
        store: store.clone(),
        namespace,
        quota,
        limit_range,
        network_policies,
        service_account,
        role_binding,
        release,
        spec_hash: String::new(),
        release_hash: String::new(),
    };
    desired.spec_hash = spec_hash(&desired);
    desired.release_hash = digest(&desired.release);
    let annotations = desired
        .namespace
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.insert(SPEC_HASH_ANNOTATION.into(), desired.spec_hash.clone());
    if let Some(commit) = commit {
        annotations.insert(COMMIT_ANNOTATION.into(), commit.to_string());
    }
    desired
}

/// helm's ServiceAccount in the store namespace and its RoleBinding to the store ClusterRole: the
/// API server then refuses whatever a chart or a forged release tries outside the namespace.
fn helm_identity(ns: &str, store: &str, store_role: &str) -> (ServiceAccount, RoleBinding) {
    let service_account = ServiceAccount {
        metadata: meta(HELM_SERVICE_ACCOUNT, ns, store),
        // helm authenticates by impersonation; no pod runs as it, so it needs no token.
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let role_binding = RoleBinding {
        metadata: meta(HELM_ROLE_BINDING, ns, store),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: store_role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: HELM_SERVICE_ACCOUNT.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    (service_account, role_binding)
}

/// Labels every object of a store carries.
pub fn labels(store: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.into(), MANAGER.into()),
        (STORE_LABEL.into(), store.into()),
    ])
}

fn meta(name: &str, namespace: &str, store: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        labels: Some(labels(store)),
        ..Default::default()
    }
}

fn quantities(map: Option<&BTreeMap<String, String>>) -> BTreeMap<String, Quantity> {
    map.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
        .collect()
}

/// The values storesync always sets; they win over engine and store values.
fn platform_values(store: &Store, platform: &PlatformConfig) -> Value {
    json!({
        "store": { "name": store.name, "owner": store.owner, "plan": store.plan },
        "ingress": {
            "enabled": true,
            "className": platform.ingress_class,
            "host": store.domain,
            "tls": {
                "enabled": platform.tls.enabled,
                "clusterIssuer": platform.tls.cluster_issuer,
                "secretName": if platform.tls.enabled { format!("{}-tls", store.name) } else { String::new() },
            },
        },
        "credentials": { "existingSecret": CREDENTIALS_SECRET },
    })
}

/// Deep merge: maps merge key by key, anything else is replaced.
fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}

fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn namespace_peer(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(selector(&[("kubernetes.io/metadata.name", name)])),
        ..Default::default()
    }
}

fn same_namespace_peer() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..Default::default()
    }
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(number)),
        ..Default::default()
    }
}

/// Default deny, then the explicit allows: ingress from the ingress controller and the
/// namespace itself; egress to the namespace itself, cluster DNS and HTTPS.
fn network_policies(ns: &str, store: &str, platform: &PlatformConfig) -> Vec<NetworkPolicy> {
    let policy = |name: &str, types: &[&str], ingress, egress| NetworkPolicy {
        metadata: meta(name, ns, store),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(types.iter().map(|t| t.to_string()).collect()),
            ingress,
            egress,
        }),
    };
    let mut policies = vec![
        policy("default-deny", &["Ingress", "Egress"], None, None),
        policy(
            "allow-same-namespace",
            &["Ingress", "Egress"],
            Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![same_namespace_peer()]),
                ports: None,
            }]),
            Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![same_namespace_peer()]),
                ports: None,
            }]),
        ),
        policy(
            "allow-from-ingress-controller",
            &["Ingress"],
            Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![namespace_peer(&platform.ingress_namespace)]),
                ports: None,
            }]),
            None,
        ),
        policy(
            "allow-dns",
            &["Egress"],
            None,
            Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![namespace_peer("kube-system")]),
                ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
            }]),
        ),
        policy(
            "allow-https-egress",
            &["Egress"],
            None,
            Some(vec![NetworkPolicyEgressRule {
                // Cloud metadata endpoints hand out node credentials; stores never need them.
                to: Some(vec![
                    NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: "0.0.0.0/0".into(),
                            except: Some(vec!["169.254.169.254/32".into()]),
                        }),
                        ..Default::default()
                    },
                    NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: "::/0".into(),
                            except: None,
                        }),
                        ..Default::default()
                    },
                ]),
                ports: Some(vec![port("TCP", 443)]),
            }]),
        ),
    ];
    policies.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    policies
}

fn spec_hash(d: &DesiredStore) -> String {
    #[derive(Serialize)]
    struct Hashed<'a> {
        namespace: &'a Namespace,
        quota: &'a ResourceQuota,
        limit_range: &'a LimitRange,
        network_policies: &'a [NetworkPolicy],
        service_account: &'a ServiceAccount,
        role_binding: &'a RoleBinding,
        release: &'a ReleaseSpec,
        credentials: (&'a str, &'a [&'a str]),
    }
    let hashed = Hashed {
        namespace: &d.namespace,
        quota: &d.quota,
        limit_range: &d.limit_range,
        network_policies: &d.network_policies,
        service_account: &d.service_account,
        role_binding: &d.role_binding,
        release: &d.release,
        credentials: (CREDENTIALS_SECRET, CREDENTIAL_KEYS),
    };
    digest(&hashed)
}

/// First 128 bits of the SHA-256 of the JSON form, in hex.
fn digest<T: Serialize>(value: &T) -> String {
    // Serialising plain data into a Vec cannot fail; an empty input would still hash.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}
