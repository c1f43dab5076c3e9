//! The catalog's data: the files as read (`RawCatalog`), the store file and platform config as
//! their authors write them, and a validated `Catalog`.
//!
//! Unknown fields are rejected everywhere so that a typo never passes silently.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::diagnostics::Diagnostic;
use super::position::Positions;

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
    /// What happens to a store whose file is gone.
    pub prune: PruneConfig,
    /// What a sync does when objects the engine chart rendered were changed in the cluster.
    pub drift_policy: DriftPolicy,
    /// The ClusterRole helm's identity is bound to in each store namespace: the operator's
    /// choice (`--store-cluster-role`), never the catalog's, so it is not read from the file.
    #[serde(skip, default = "super::tenancy::default_store_cluster_role")]
    pub store_cluster_role: String,
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

/// `prune`: a store whose file is gone is retired (stopped, its data kept) and purged
/// `retention` later; `0s` purges it at once.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PruneConfig {
    /// A duration such as `168h`, `7d` or `0s`, as written; see [`PruneConfig::retention`].
    #[serde(rename = "retention")]
    pub retention_text: String,
}

/// How long a retired store waits for its purge unless `prune.retention` says otherwise (the
/// built-in `prune.retention: 168h`).
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(168 * 3600);
/// The longest retention `prune.retention` may ask for.
pub const MAX_RETENTION: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

impl PruneConfig {
    /// How long a retired store waits for its purge. A value that does not parse never reaches
    /// a valid catalog; should one be read anyway, the default is used (the safe side: no
    /// store is purged sooner than the default says).
    pub fn retention(&self) -> std::time::Duration {
        parse_retention(&self.retention_text).unwrap_or(DEFAULT_RETENTION)
    }

    /// Whether a store whose file is gone is deleted at once (`retention: 0s`).
    pub fn immediate(&self) -> bool {
        self.retention().is_zero()
    }
}

/// `168h`, `7d`, `90m`, `0s`: humantime's durations, whole seconds, at most [`MAX_RETENTION`].
pub fn parse_retention(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| e.to_string())?;
    if d.subsec_nanos() != 0 {
        return Err("it is not a whole number of seconds".into());
    }
    if d > MAX_RETENTION {
        return Err("it is longer than 366 days".into());
    }
    Ok(d)
}

pub const MAX_FILE_BYTES: u64 = 64 * 1024;
pub const PLATFORM_FILE: &str = "storesync.yaml";

/// What one directory entry under the stores directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawContent {
    File(Vec<u8>),
    /// A file over [`MAX_FILE_BYTES`], not read; holds its size.
    TooLarge(u64),
    Symlink,
    Directory,
    /// Anything else Git or the file system can hold (a submodule, a socket).
    Other,
    /// A symbolic link on the way to the stores directory, named by the entry's path; nothing
    /// behind it is read.
    LinkToStoresDir,
}

impl RawContent {
    /// The bytes of a regular file that was read.
    pub fn file(&self) -> Option<&[u8]> {
        match self {
            RawContent::File(bytes) => Some(bytes),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// Path relative to the catalog root, `/`-separated: `stores/acme.yaml`.
    pub path: String,
    /// File name within the stores directory: `acme.yaml`.
    pub name: String,
    pub content: RawContent,
}

/// The files of a catalog as read from a work tree or a commit.
#[derive(Debug, Clone, Default)]
pub struct RawCatalog {
    /// `storesync.yaml`, when present.
    pub platform: Option<RawContent>,
    /// The stores directory, as configured (or defaulted) when the source was read.
    pub stores_dir: String,
    /// `None` when the stores directory does not exist. A symbolic link on the way to it is
    /// the only entry, as [`RawContent::LinkToStoresDir`]; a `stores_dir` that is not a relative
    /// path inside the catalog is not read (an empty list; the platform file's finding says why).
    pub entries: Option<Vec<RawEntry>>,
}

/// A store that passed validation, with its effective domain.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Store {
    /// Path of the store's file relative to the catalog root.
    pub file: String,
    pub name: String,
    pub engine: String,
    pub plan: String,
    pub owner: String,
    pub domain: String,
    pub protected: bool,
    pub suspend: bool,
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// A fully valid catalog: every file parsed and passed every rule.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub platform: PlatformConfig,
    /// Sorted by name.
    pub stores: Vec<Store>,
    /// Findings that do not invalidate the catalog; every rule today reports an error.
    pub warnings: Vec<Diagnostic>,
}

/// A parsed store file, kept with its text so that later rules can locate their findings.
pub(crate) struct Parsed {
    pub path: String,
    pub stem: String,
    pub text: String,
    pub(super) positions: OnceLock<Positions>,
    pub store: StoreFile,
}

impl Parsed {
    pub(crate) fn positions(&self) -> &Positions {
        self.positions
            .get_or_init(|| super::scan::positions_of(&self.text))
    }
}
