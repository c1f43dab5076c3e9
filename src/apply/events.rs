//! Kubernetes Events (`events.k8s.io/v1`, reporting controller `storesync`) that tell the story
//! of a store in its own namespace: `kubectl events -n store-acme`. kube-rs's recorder
//! aggregates a repeat of the same event (a store failing every minute) into one Event with a
//! growing series count, so nothing floods etcd. Publishing never fails a sync.
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

use crate::desired;

/// The reporting controller of every Event storesync writes.
pub const REPORTING_CONTROLLER: &str = "storesync";
/// Longest note an Event carries, in bytes: the API refuses a longer one (422), Event and all.
const NOTE_LIMIT: usize = 1024;

/// What happened to a store, as an Event reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    Created,
    GuardrailsUpdated,
    HelmInstalled,
    HelmUpgraded,
    HelmFailed,
    /// `helm upgrade` took back chart-rendered objects changed in the cluster.
    DriftRepaired,
    ReleaseRemediated,
    /// Helm's release storage in the namespace reaches outside it or does not decode: no helm ran.
    ReleaseRefused,
    SyncFailed,
    PruneBlocked,
    Pruning,
    Pruned,
    /// Its file is gone: stopped, its data kept until its purge.
    Retired,
    /// Its file is back while retired: started again on the data it kept.
    Restored,
    /// Retired for the retention: uninstalled and its namespace deleted.
    Purged,
    /// A rollout stopped at a wave this store was part of.
    RolloutHalted,
    /// A halted rollout put this store's release back to its previous revision.
    RolledBack,
}

impl StoreEvent {
    fn parts(self) -> (EventType, &'static str, &'static str) {
        use EventType::{Normal, Warning};
        match self {
            StoreEvent::Created => (Normal, "Created", "Create"),
            StoreEvent::GuardrailsUpdated => (Normal, "GuardrailsUpdated", "Apply"),
            StoreEvent::HelmInstalled => (Normal, "HelmInstalled", "HelmUpgrade"),
            StoreEvent::HelmUpgraded => (Normal, "HelmUpgraded", "HelmUpgrade"),
            StoreEvent::HelmFailed => (Warning, "HelmFailed", "HelmUpgrade"),
            StoreEvent::DriftRepaired => (Normal, "DriftRepaired", "HelmUpgrade"),
            StoreEvent::ReleaseRemediated => (Warning, "ReleaseRemediated", "Remediate"),
            StoreEvent::ReleaseRefused => (Warning, "ReleaseRefused", "HelmUpgrade"),
            StoreEvent::SyncFailed => (Warning, "SyncFailed", "Sync"),
            StoreEvent::PruneBlocked => (Warning, "PruneBlocked", "Prune"),
            StoreEvent::Pruning => (Normal, "Pruning", "Prune"),
            StoreEvent::Pruned => (Normal, "Pruned", "Prune"),
            StoreEvent::Retired => (Normal, "Retired", "Retire"),
            StoreEvent::Restored => (Normal, "Restored", "Restore"),
            StoreEvent::Purged => (Normal, "Purged", "Purge"),
            StoreEvent::RolloutHalted => (Warning, "RolloutHalted", "Rollout"),
            StoreEvent::RolledBack => (Warning, "RolledBack", "Rollback"),
        }
    }
}

/// Publishes store Events; clones share one recorder, so repeats aggregate across syncs.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    pub fn new(client: Client) -> Events {
        let instance = std::env::var("POD_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .or_else(hostname);
        Events {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: REPORTING_CONTROLLER.into(),
                    instance,
                },
            ),
        }
    }

    /// An Event on the store's Namespace, stored in that namespace: a cluster-scoped object's
    /// Event would otherwise land in `default`, where nobody looks for it.
    pub async fn store(&self, store: &str, event: StoreEvent, note: String) {
        let ns = desired::namespace_of(store);
        self.publish(namespace_ref(&ns, &ns), event, note).await;
    }

    /// An Event about a store whose namespace is gone, kept in storesync's own namespace.
    pub async fn elsewhere(&self, store: &str, own_namespace: &str, event: StoreEvent, note: String) {
        let ns = desired::namespace_of(store);
        self.publish(namespace_ref(&ns, own_namespace), event, note).await;
    }

    async fn publish(&self, regarding: ObjectReference, event: StoreEvent, note: String) {
        let (type_, reason, action) = event.parts();
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(crate::text::truncate_bytes(&note, NOTE_LIMIT)),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &regarding).await {
            warn!(error = %e, reason, namespace = ?regarding.namespace, "cannot publish an event");
        }
    }
}

/// By name, without a uid: the same store gives the same reference whether its namespace was
/// just created or not, so repeats aggregate.
fn namespace_ref(name: &str, stored_in: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Namespace".into()),
        name: Some(name.into()),
        namespace: Some(stored_in.into()),
        ..Default::default()
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
