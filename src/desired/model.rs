//! The store file and platform config as their authors write them.
//!
//! Unknown fields are rejected everywhere so that a typo never passes silently.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One file under the stores directory: `stores/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    pub name: String,
    pub engine: String,
    pub plan: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub suspend: bool,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub values: Map<String, Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

/// `storesync.yaml` at the catalog root. Every field has a default; `plans` and `engines`, when
/// given, replace the built-in sets as a whole so that the file states the full platform.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PlatformConfig {
    /// Stores without `domain` get `<name>.<baseDomain>`.
    pub base_domain: String,
    /// `ingressClassName` of every store's Ingress.
    pub ingress_class: String,
    /// Namespace of the ingress controller: the only source of ingress traffic from outside.
    pub ingress_namespace: String,
    /// Directory holding the store files, relative to the catalog root.
    pub stores_dir: String,
    pub tls: TlsConfig,
    pub plans: BTreeMap<String, PlanSpec>,
    pub engines: BTreeMap<String, EngineSpec>,
    pub limits: Limits,
    /// What a sync does when objects the engine chart rendered were changed in the cluster.
    pub drift_policy: DriftPolicy,
}

/// `driftPolicy`: `repair` (the default) runs `helm upgrade` to put hand edits back; `report`
/// only shows them in plans and sync results. Any other value is an error at its position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftPolicy {
    #[default]
    Repair,
    Report,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct TlsConfig {
    /// Serve every store over TLS (the certificate lands in Secret `<store>-tls`).
    pub enabled: bool,
    /// cert-manager ClusterIssuer that issues the certificates; empty = certificates are
    /// provided some other way.
    pub cluster_issuer: String,
}

/// A plan sizes a store's guardrails.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlanSpec {
    /// `spec.hard` of the ResourceQuota `store-quota`.
    pub quota: BTreeMap<String, String>,
    #[serde(rename = "limitRange")]
    pub limit_range: LimitRangeSpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitRangeSpec {
    pub container: ContainerLimits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PvcLimits>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerLimits {
    /// Limits given to containers that set none.
    pub default: BTreeMap<String, String>,
    /// Requests given to containers that set none.
    pub default_request: BTreeMap<String, String>,
    /// The most one container may ask for.
    pub max: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PvcLimits {
    pub max: BTreeMap<String, String>,
}

/// An engine is a Helm chart and the chart values a store may set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EngineSpec {
    /// A chart directory name under the charts directory (one path segment: letters, digits,
    /// '-', '_', '.', not starting with '.'), or an `oci://host/path` reference.
    pub chart: String,
    pub version: String,
    /// Dotted value paths a store may set; a store value is allowed when its path equals an
    /// entry or lies under one.
    #[serde(default)]
    pub values_allowlist: Vec<String>,
    /// Platform-wide chart values for this engine, under the store's own values.
    #[serde(default)]
    pub values: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Limits {
    pub max_stores: usize,
    pub max_stores_per_owner: usize,
    /// More prunes than this in one sync blocks the whole prune (a circuit breaker against a
    /// bad merge deleting the platform).
    pub max_prunes_per_sync: usize,
}

#[cfg(test)]
mod tests {
    use super::DriftPolicy;
    use crate::desired::{RawCatalog, RawContent, load};

    fn platform(text: &str) -> Result<DriftPolicy, Vec<String>> {
        let raw = RawCatalog {
            platform: Some(RawContent::File(text.as_bytes().to_vec())),
            stores_dir: "stores".into(),
            entries: Some(Vec::new()),
        };
        load(&raw)
            .map(|c| c.platform.drift_policy)
            .map_err(|findings| findings.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn drift_policy_defaults_to_repair_and_rejects_other_values_where_they_are() {
        assert_eq!(
            platform("baseDomain: shop.example.com\n"),
            Ok(DriftPolicy::Repair)
        );
        assert_eq!(platform("driftPolicy: report\n"), Ok(DriftPolicy::Report));
        assert_eq!(
            platform("baseDomain: shop.example.com\ndriftPolicy: sometimes\n"),
            Err(vec![
                "storesync.yaml:2:14: error: driftPolicy: unknown variant `sometimes`, expected `repair` or `report`\n  hint: use one of the values the message lists"
                    .to_string()
            ])
        );
    }
}
