//! Live state: what storesync owns in the cluster, found by label. This module holds the plain
//! data the planner compares against; [`observe`] fills it in, and [`DriftCheck`] adds what
//! changed in the cluster under each store's Helm release.
mod applied;
mod compare;
mod drift;
pub mod health;
mod health_observe;
mod observe;
mod release;
mod tenant;

pub use applied::{
    APPLIED_CONFIGMAP, AppliedLimits, COMMIT_KEY, MAX_PRUNES_KEY, check_record_owned, read_applied,
};

pub use compare::{drifted_fields, quantity_nanos};
pub use drift::{DEFAULT_DRIFT_INTERVAL, Drift, DriftCheck, DriftedField, Observation};
pub use health_observe::HealthJudge;
pub use observe::{HELM_RELEASE_SELECTOR, Listed, assemble, observe, owned_selector, readiness};
pub use release::{
    DecodedRelease, HELM_MANAGED_SELECTOR, MAX_MANIFEST_BYTES, MAX_MANIFEST_DOCUMENTS, MAX_MANIFEST_NODES,
    MAX_RELEASE_BYTES, ReleaseRef, RenderedObject, decode_release, secret_name,
};
use std::collections::BTreeMap;
pub use tenant::{IMPERSONATE_USER, store_client};

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use serde::Serialize;

/// Everything storesync owns in the cluster, by store name.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    pub stores: BTreeMap<String, LiveStore>,
    /// What the last successfully applied commit allowed, when it was read (syncs and plans).
    pub applied: Option<AppliedLimits>,
    /// When the cluster was observed, in seconds since the epoch; 0 when unknown (a plan
    /// then purges nothing: no retention can be known to have passed).
    pub observed_at: i64,
    /// Whether the stores' health was judged from this observation (not carried over from an
    /// earlier one).
    pub health_fresh: bool,
}

/// What a retired store's namespace says of its retirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// When it was retired, in seconds since the epoch; `None` when the annotation is missing
    /// or not a time (the store is then stamped again, never purged on a guess).
    pub at: Option<i64>,
    /// The commit that retired it.
    pub by: Option<String>,
}

impl Retirement {
    /// When the store's purge is due with `retention`.
    pub fn purge_at(&self, retention: std::time::Duration) -> Option<i64> {
        let secs = i64::try_from(retention.as_secs()).ok()?;
        self.at?.checked_add(secs)
    }
}

#[derive(Debug, Clone, Default)]
pub struct LiveStore {
    pub namespace: Namespace,
    pub quota: Option<ResourceQuota>,
    pub limit_range: Option<LimitRange>,
    pub network_policies: Vec<NetworkPolicy>,
    /// helm's identity in the namespace: its ServiceAccount and RoleBinding, when they exist.
    pub service_account: Option<ServiceAccount>,
    pub role_binding: Option<RoleBinding>,
    /// Whether it serves, when observed (see [`health`]).
    pub health: Option<health::StoreHealth>,
    /// Whether the credentials Secret exists (its data is never read into plans).
    pub credentials: bool,
    pub release: Option<LiveRelease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveRelease {
    /// Helm's status: deployed, failed, pending-install, pending-upgrade, ...
    pub status: String,
    /// The latest revision.
    pub revision: u32,
    /// Digest of the chart, version and values last installed, as storesync recorded it.
    pub release_hash: Option<String>,
    /// Every revision Helm keeps, oldest first, with its status.
    pub history: Vec<(u32, String)>,
    /// What changed in the cluster under the latest revision, when a drift check ran.
    pub drift: Drift,
    /// Why the latest revision's storage is not to be acted on (it does not decode, or its
    /// manifest reaches outside the store's namespace), when a drift check found so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl LiveRelease {
    /// Whether a Helm operation was cut off (storesync or helm killed mid-way).
    pub fn is_pending(&self) -> bool {
        self.status.starts_with("pending-")
    }

    /// The newest revision that was deployed successfully, to roll back to.
    pub fn last_good_revision(&self) -> Option<u32> {
        self.history
            .iter()
            .rev()
            .find(|(v, status)| *v < self.revision && (status == "deployed" || status == "superseded"))
            .map(|(v, _)| *v)
    }
}

impl LiveStore {
    /// Whether the namespace is being deleted.
    pub fn terminating(&self) -> bool {
        self.namespace.metadata.deletion_timestamp.is_some()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.namespace
            .metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// Whether the store is retired (its file gone, stopped, its data kept), and since when.
    pub fn retirement(&self) -> Option<Retirement> {
        if self.label(crate::desired::STATE_LABEL) != Some(crate::desired::RETIRED_STATE) {
            return None;
        }
        Some(Retirement {
            at: self
                .annotation(crate::desired::RETIRED_AT_ANNOTATION)
                .and_then(crate::text::parse_rfc3339),
            by: self
                .annotation(crate::desired::RETIRED_BY_ANNOTATION)
                .map(String::from),
        })
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.namespace
            .metadata
            .labels
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }
}
