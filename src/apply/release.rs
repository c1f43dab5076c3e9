//! What storesync does to a store's Helm release besides upgrading it: checking that its
//! storage can be trusted before helm acts on it, unsticking a release left pending, and
//! pruning a store whose file is gone.
use std::sync::Arc;

use tracing::{info, warn};

use super::{Applier, HelmOp, StoreEvent, objects, observe_helm};
use crate::desired::{self, DesiredStore};
use crate::error::{Error, Result};
use crate::live::LiveStore;
use crate::plan::StorePlan;

/// Most attempts at unsticking a release in one sync.
const REMEDIATION_ATTEMPTS: u32 = 3;

/// A release cut off mid-operation (`pending-*`) blocks every later upgrade. Roll it back to the
/// last good revision, or uninstall it when it never deployed, a bounded number of times.
pub(super) async fn remediate(
    applier: &Applier,
    d: &DesiredStore,
    release: &crate::live::LiveRelease,
) -> Result<()> {
    let (name, ns) = (&d.release.name, &d.release.namespace);
    // The labels said pending; only the release itself may say so, and a rollback applies the
    // target revision's manifest and hooks: both are checked first.
    let latest = trusted_revision(applier, &d.store.name, release.revision).await?;
    if latest.status != release.status || latest.version != release.revision {
        return Err(Error::Refused(format!(
            "Helm's release Secret {ns}/{} is labelled {} (revision {}) but holds {} (revision {}): not \
             rolled back; delete the forged Secret",
            crate::live::secret_name(name, release.revision),
            release.status,
            release.revision,
            latest.status,
            latest.version
        )));
    }
    if let Some(target) = release.last_good_revision() {
        trusted_revision(applier, &d.store.name, target).await?;
    }
    let mut last = None;
    for attempt in 1..=REMEDIATION_ATTEMPTS {
        let (op, outcome) = match release.last_good_revision() {
            Some(revision) => {
                warn!(status = %release.status, revision, attempt, "release is stuck; rolling back");
                (
                    HelmOp::Rollback,
                    applier
                        .gate
                        .guard(HelmOp::Rollback, applier.helm.rollback(name, ns, revision))
                        .await,
                )
            }
            None => {
                warn!(status = %release.status, attempt, "release never deployed and is stuck; uninstalling");
                (
                    HelmOp::Uninstall,
                    applier
                        .gate
                        .guard(HelmOp::Uninstall, applier.helm.uninstall(name, ns))
                        .await,
                )
            }
        };
        observe_helm(applier, op, outcome.is_ok());
        match outcome {
            Ok(()) => return Ok(()),
            // Another replica leads now: it remediates; no point in trying again here.
            Err(e) if !applier.gate.is_open() => return Err(e),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt) * 2)).await;
    }
    Err(Error::Helm {
        operation: "remediate",
        message: format!(
            "release {ns}/{name} is stuck in {} and could not be remediated in {REMEDIATION_ATTEMPTS} attempts: {}",
            release.status,
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    })
}

/// Revision `revision` of the store's release, decoded within bounds (once per revision), when
/// helm may act on it: refused when it does not decode or its manifest reaches outside the
/// store's namespace, with the reason as the store's error.
pub(super) async fn trusted_revision(
    applier: &Applier,
    store: &str,
    revision: u32,
) -> Result<Arc<crate::live::DecodedRelease>> {
    // The store's release is named after the store, in its namespace.
    let (name, ns) = (store.to_string(), desired::namespace_of(store));
    let r = crate::live::ReleaseRef {
        store: store.to_string(),
        namespace: ns.clone(),
        name: name.clone(),
        revision,
    };
    let secret = crate::live::secret_name(&name, revision);
    // `why` names the Secret first (`Helm's release Secret store-x/sh.helm.release.v1.x.v2: …`).
    let refused = |why: String| {
        Error::Refused(format!(
            "{why}; it cannot be trusted, so no helm command runs for this store: delete the Secret (or \
             restore it from a backup)"
        ))
    };
    let decoded = match applier.drift.release(&applier.client, &r).await {
        Ok(Some(decoded)) => decoded,
        Ok(None) => return Err(refused(format!("Helm's release Secret {ns}/{secret} is gone"))),
        Err(Error::Unreadable(why)) => return Err(refused(why)),
        Err(e) => return Err(e),
    };
    if let Some(first) = decoded.refused.first() {
        let more = decoded.refused.len() - 1 + decoded.refused_more;
        let more = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        return Err(refused(format!(
            "Helm's release Secret {ns}/{secret}: its manifest reaches outside {ns}: {first}{more}"
        )));
    }
    Ok(decoded)
}

/// Uninstalls the release, then deletes the namespace (which takes every object with it):
/// a prune (`prune.retention: 0s`), or the purge of a store retired for the retention.
pub(super) async fn prune_store(
    applier: &Applier,
    sp: &StorePlan,
    live: Option<&LiveStore>,
    purge: bool,
) -> Result<()> {
    let Some(live) = live else { return Ok(()) };
    // The planner only prunes what it observed as storesync's; check again before deleting.
    if live.label(desired::MANAGED_BY) != Some(desired::MANAGER) {
        return Err(Error::NotOwned(format!(
            "namespace of {} is not managed by storesync; not pruned",
            sp.store
        )));
    }
    let ns = live
        .namespace
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| desired::namespace_of(&sp.store));
    if applier.dry_run {
        return objects::delete_namespace(&applier.client, &ns, live.namespace.metadata.uid.as_deref(), true)
            .await;
    }
    let uid = live.namespace.metadata.uid.as_deref();
    let note = match (purge, &sp.reason) {
        (true, Some(reason)) => format!("{reason}: uninstalling the release and deleting {ns}"),
        _ => format!("its file is gone: uninstalling the release and deleting {ns}"),
    };
    applier.event(&sp.store, StoreEvent::Pruning, note).await;
    // A release whose storage cannot be trusted is not uninstalled by helm (which would act on
    // its manifest): deleting the namespace removes everything a store's release may hold.
    let uninstall = match &live.release {
        None => false,
        Some(release) => match trusted_revision(applier, &sp.store, release.revision).await {
            Ok(_) => true,
            Err(Error::Refused(why)) => {
                warn!(reason = %why, "release not uninstalled by helm; the namespace goes with it");
                false
            }
            Err(e) => return Err(e),
        },
    };
    if uninstall {
        let ok = applier
            .gate
            .guard(HelmOp::Uninstall, applier.helm.uninstall(&sp.store, &ns))
            .await;
        observe_helm(applier, HelmOp::Uninstall, ok.is_ok());
        ok?;
    }
    info!(namespace = %ns, "pruning store");
    objects::delete_namespace(&applier.client, &ns, uid, false).await?;
    // The store's namespace is going away with its Events: say it where storesync lives.
    if let Some(events) = &applier.events {
        let (event, done) = if purge {
            (StoreEvent::Purged, "purged")
        } else {
            (StoreEvent::Pruned, "pruned")
        };
        let note = format!(
            "store {} {done}: release uninstalled, namespace {ns} deleted",
            sp.store
        );
        events
            .elsewhere(&sp.store, &applier.own_namespace(), event, note)
            .await;
    }
    Ok(())
}

impl Applier {
    /// Rolls the store's release back to the revision before its latest (a rollout's unhealthy
    /// update undone), after checking both revisions' storage, as the store's identity. Returns
    /// the revision rolled back to.
    pub async fn roll_back(&self, store: &str, live: &LiveStore) -> Result<u32> {
        let ns = desired::namespace_of(store);
        let release = live.release.as_ref().ok_or_else(|| Error::Helm {
            operation: HelmOp::Rollback.label(),
            message: format!("store {store} has no release to roll back"),
        })?;
        let target = release.last_good_revision().ok_or_else(|| Error::Helm {
            operation: HelmOp::Rollback.label(),
            message: format!(
                "release {ns}/{store} has no earlier deployed revision than {} to roll back to",
                release.revision
            ),
        })?;
        trusted_revision(self, store, release.revision).await?;
        trusted_revision(self, store, target).await?;
        let ok = self
            .gate
            .guard(HelmOp::Rollback, self.helm.rollback(store, &ns, target))
            .await;
        observe_helm(self, HelmOp::Rollback, ok.is_ok());
        ok?;
        Ok(target)
    }
}
