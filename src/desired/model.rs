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
    /// Store updates in waves, each judged by store health; `None`: every update at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutConfig>,
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

/// `rollout`: a sync that updates two stores or more updates them in waves: the canaries
/// alone, then cumulative shares of the others, each wave judged by store health before the
/// next starts. Fields as written; [`RolloutConfig`]'s methods read them once validated.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutConfig {
    /// Stores updated first, on their own, in this order (those the sync updates).
    #[serde(default)]
    pub canaries: Vec<String>,
    /// Cumulative shares of the other updated stores, `25%` … `100%`, the last `100%`.
    #[serde(default = "default_waves")]
    pub waves: Vec<Scalar>,
    /// Stores of a wave that may be other than Healthy at its end: a count or a share (`10%`).
    #[serde(default = "default_max_unhealthy")]
    pub max_unhealthy: Scalar,
    /// How long each store of a wave has to become Healthy after its update.
    #[serde(default = "default_health_timeout")]
    pub health_timeout: String,
    /// How long a wave stays Healthy before the next starts.
    #[serde(default = "default_soak")]
    pub soak: String,
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// A YAML scalar that may be written as a number or as text (`0`, `25%`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Number(i64),
    Text(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Text(t) => f.write_str(t),
        }
    }
}

/// What a rollout does when a wave has more unhealthy stores than allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// No later wave starts; the stores updated keep their new release.
    #[default]
    Halt,
    /// Also each unhealthy store of the wave goes back to its previous release revision.
    Rollback,
}

fn default_waves() -> Vec<Scalar> {
    vec![Scalar::Text("100%".into())]
}

fn default_max_unhealthy() -> Scalar {
    Scalar::Number(0)
}

fn default_health_timeout() -> String {
    "10m".into()
}

fn default_soak() -> String {
    "2m".into()
}

/// The longest `healthTimeout` or `soak` a rollout may ask for.
pub const MAX_ROLLOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `25%` as 25; `None` for anything else.
pub fn percent(s: &Scalar) -> Option<u32> {
    let Scalar::Text(t) = s else { return None };
    let n = t.trim().strip_suffix('%')?.trim();
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 3 {
        return None;
    }
    n.parse().ok().filter(|p| *p <= 100)
}

/// A rollout wait (`10m`, `30s`, `0s`): whole seconds, at most [`MAX_ROLLOUT_WAIT`].
pub fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| e.to_string())?;
    if d.subsec_nanos() != 0 {
        return Err("it is not a whole number of seconds".into());
    }
    if d > MAX_ROLLOUT_WAIT {
        return Err("it is longer than 24 hours".into());
    }
    Ok(d)
}

impl RolloutConfig {
    /// The cumulative shares, in percent (validated: increasing, the last 100).
    pub fn shares(&self) -> Vec<u32> {
        self.waves.iter().filter_map(percent).collect()
    }

    /// The stores of a wave of `n` that may be other than Healthy at its end.
    pub fn max_unhealthy_of(&self, n: usize) -> usize {
        match &self.max_unhealthy {
            Scalar::Number(c) => usize::try_from(*c).unwrap_or(0),
            share => percent(share).map_or(0, |p| n * p as usize / 100),
        }
    }

    pub fn health_timeout(&self) -> std::time::Duration {
        parse_wait(&self.health_timeout).unwrap_or(std::time::Duration::from_secs(600))
    }

    pub fn soak(&self) -> std::time::Duration {
        parse_wait(&self.soak).unwrap_or(std::time::Duration::from_secs(120))
    }
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
