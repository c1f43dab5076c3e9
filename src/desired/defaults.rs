//! The built-in platform: what a catalog gets when `storesync.yaml` leaves a field out.
use std::collections::BTreeMap;

use super::model::{
    ContainerLimits, EngineSpec, LimitRangeSpec, Limits, PlanSpec, PlatformConfig, PruneConfig, PvcLimits,
    TlsConfig,
};

pub const CHART_VERSION: &str = "0.1.0";

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig {
            retention_text: "168h".into(),
        }
    }
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            base_domain: "shop.example.com".into(),
            ingress_class: "nginx".into(),
            ingress_namespace: "ingress-nginx".into(),
            stores_dir: "stores".into(),
            tls: TlsConfig::default(),
            plans: default_plans(),
            engines: default_engines(),
            limits: Limits::default(),
            prune: PruneConfig::default(),
            rollout: None,
            drift_policy: Default::default(),
            store_cluster_role: super::tenancy::default_store_cluster_role(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stores: 500,
            max_stores_per_owner: 25,
            max_prunes_per_sync: 5,
        }
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sizes of one plan, scaled from the `small` plan.
struct Size {
    cpu: &'static str,
    memory: &'static str,
    limits_cpu: &'static str,
    limits_memory: &'static str,
    pods: &'static str,
    pvcs: &'static str,
    storage: &'static str,
    container_cpu: &'static str,
    container_memory: &'static str,
    pvc_max: &'static str,
}

fn plan(size: Size) -> PlanSpec {
    PlanSpec {
        quota: map(&[
            ("requests.cpu", size.cpu),
            ("requests.memory", size.memory),
            ("limits.cpu", size.limits_cpu),
            ("limits.memory", size.limits_memory),
            ("pods", size.pods),
            ("persistentvolumeclaims", size.pvcs),
            ("requests.storage", size.storage),
            ("services.loadbalancers", "0"),
            ("services.nodeports", "0"),
        ]),
        limit_range: LimitRangeSpec {
            container: ContainerLimits {
                default: map(&[("cpu", "500m"), ("memory", "512Mi")]),
                default_request: map(&[("cpu", "100m"), ("memory", "128Mi")]),
                max: map(&[("cpu", size.container_cpu), ("memory", size.container_memory)]),
            },
            persistent_volume_claim: Some(PvcLimits {
                max: map(&[("storage", size.pvc_max)]),
            }),
        },
    }
}

pub fn default_plans() -> BTreeMap<String, PlanSpec> {
    let small = Size {
        cpu: "1",
        memory: "2Gi",
        limits_cpu: "2",
        limits_memory: "4Gi",
        pods: "10",
        pvcs: "4",
        storage: "20Gi",
        container_cpu: "1",
        container_memory: "2Gi",
        pvc_max: "10Gi",
    };
    let medium = Size {
        cpu: "2",
        memory: "4Gi",
        limits_cpu: "4",
        limits_memory: "8Gi",
        pods: "20",
        pvcs: "8",
        storage: "50Gi",
        container_cpu: "2",
        container_memory: "4Gi",
        pvc_max: "25Gi",
    };
    let large = Size {
        cpu: "4",
        memory: "8Gi",
        limits_cpu: "8",
        limits_memory: "16Gi",
        pods: "40",
        pvcs: "16",
        storage: "200Gi",
        container_cpu: "4",
        container_memory: "8Gi",
        pvc_max: "100Gi",
    };
    [("small", small), ("medium", medium), ("large", large)]
        .into_iter()
        .map(|(n, s)| (n.to_string(), plan(s)))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub fn default_engines() -> BTreeMap<String, EngineSpec> {
    let woocommerce = EngineSpec {
        chart: "woocommerce".into(),
        version: CHART_VERSION.into(),
        values_allowlist: strings(&[
            "storeTitle",
            "currency",
            "admin.email",
            "admin.username",
            "sampleProduct.name",
            "sampleProduct.price",
            "persistence.wordpress.size",
            "persistence.database.size",
        ]),
        values: Default::default(),
    };
    let medusa = EngineSpec {
        chart: "medusa".into(),
        version: CHART_VERSION.into(),
        values_allowlist: strings(&[
            "storeName",
            "currency",
            "admin.email",
            "storefront.enabled",
            "persistence.database.size",
            "sampleProduct.name",
            "sampleProduct.price",
        ]),
        values: Default::default(),
    };
    [("woocommerce", woocommerce), ("medusa", medusa)]
        .into_iter()
        .map(|(n, e)| (n.to_string(), e))
        .collect()
}
