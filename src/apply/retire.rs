//! Retiring a store whose file is gone, and restoring it when its file comes back. A retired
//! store runs nothing and serves nothing, and keeps everything that holds data: its namespace,
//! claims, `store-credentials` and Helm release history. Helm itself stops it (an upgrade with
//! the release's last values and `retired: true`), so `helm history` tells what happened and a
//! restore is an ordinary upgrade back to the store's values. The namespace carries the marks
//! (`storesync.dev/state=retired`, when and by which commit) that later syncs and people read.
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use super::release::trusted_revision;
use super::{Applier, HelmOp, StoreEvent, objects, observe_helm};
use crate::desired::{
    self, ENGINE_LABEL, PURGE_AT_ANNOTATION, PlatformConfig, RETIRED_AT_ANNOTATION, RETIRED_BY_ANNOTATION,
    RETIRED_STATE, STATE_LABEL,
};
use crate::error::{Error, Result};
use crate::live::LiveStore;
use crate::plan::StorePlan;

/// The field manager of the retirement marks, apart from the namespace's applied fields.
const MARKS_MANAGER: &str = "storesync-retire";

/// Retires the store of `sp`: marks its namespace (unless it is marked with a readable time
/// already), then stops its release. The marks come first, so that the retention runs from
/// the first attempt even if helm fails (a later sync stops it again).
pub(super) async fn retire_store(
    applier: &Applier,
    sp: &StorePlan,
    live: Option<&LiveStore>,
    platform: &PlatformConfig,
    commit: Option<&str>,
) -> Result<()> {
    let Some(live) = live else { return Ok(()) };
    if live.label(desired::MANAGED_BY) != Some(desired::MANAGER) {
        return Err(Error::NotOwned(format!(
            "namespace of {} is not managed by storesync; not retired",
            sp.store
        )));
    }
    let ns = desired::namespace_of(&sp.store);
    let marked = live.retirement().is_some_and(|r| r.at.is_some());
    if applier.dry_run {
        // The marks as a server-side dry run (admission and RBAC still answer); no helm.
        let now = crate::text::rfc3339(crate::text::unix_now());
        let marks = Marks::Retired {
            at: &now,
            by: commit,
            purge: &now,
        };
        return match marked {
            true => Ok(()),
            false => {
                mark(
                    &applier.client,
                    &ns,
                    live.namespace.metadata.uid.as_deref(),
                    marks,
                    true,
                )
                .await
            }
        };
    }
    let retention = i64::try_from(platform.prune.retention().as_secs()).unwrap_or(i64::MAX);
    let purge = if marked {
        sp.purge_at.clone().unwrap_or_default()
    } else {
        let now = crate::text::unix_now();
        let (at, purge) = (
            crate::text::rfc3339(now),
            crate::text::rfc3339(now.saturating_add(retention)),
        );
        let marks = Marks::Retired {
            at: &at,
            by: commit,
            purge: &purge,
        };
        mark(
            &applier.client,
            &ns,
            live.namespace.metadata.uid.as_deref(),
            marks,
            false,
        )
        .await?;
        info!(namespace = %ns, purge = %purge, "store retired: its file is gone");
        purge
    };
    let stopped = match &live.release {
        None => "it has no release to stop".to_string(),
        Some(release) => {
            // helm acts on the latest revision's manifest: never on one a tenant forged.
            trusted_revision(applier, &sp.store, release.revision).await?;
            let engine = live.label(ENGINE_LABEL).unwrap_or_default();
            let Some(spec) = platform.engines.get(engine) else {
                return Err(Error::Helm {
                    operation: HelmOp::Retire.label(),
                    message: format!(
                        "cannot stop store {}: its engine `{engine}` is no longer in storesync.yaml, so there is no \
                         chart to stop it with; it keeps running until it is purged. Add the engine back, or \
                         stop it by hand",
                        sp.store
                    ),
                });
            };
            let ok = applier
                .gate
                .guard(
                    HelmOp::Retire,
                    applier.helm.retire(&sp.store, &ns, &spec.chart, &spec.version),
                )
                .await;
            observe_helm(applier, HelmOp::Retire, ok.is_ok());
            if let Err(e) = ok {
                applier
                    .event(&sp.store, StoreEvent::HelmFailed, format!("retiring: {e}"))
                    .await;
                return Err(e);
            }
            let hooks = stop_hooks(applier, &sp.store).await?;
            let hooks = match hooks {
                0 => String::new(),
                n => format!(
                    "; {n} setup Job{} still running stopped",
                    if n == 1 { "" } else { "s" }
                ),
            };
            format!(
                "{} {} upgraded with retired: true{hooks}",
                spec.chart, spec.version
            )
        }
    };
    let by = commit.map_or_else(
        || "the work tree".to_string(),
        |c| format!("commit {}", c.get(..12).unwrap_or(c)),
    );
    let note = if marked {
        format!("retired store stopped again ({stopped}); purged after {purge}")
    } else {
        format!(
            "its file is gone at {by}: retired, no pod runs and no Ingress serves ({stopped}); its claims, \
             credentials and release history are kept until its purge after {purge}. Restore it by adding its \
             file back with the same engine"
        )
    };
    applier.event(&sp.store, StoreEvent::Retired, note).await;
    Ok(())
}

/// Stops the release's hook Jobs still running (a setup Job left by an upgrade that timed out:
/// the retired chart renders no hook, so helm removes none), as the store's own identity, which
/// RBAC confines to its namespace. Returns how many were deleted; their pods go with them.
async fn stop_hooks(applier: &Applier, store: &str) -> Result<usize> {
    let ns = desired::namespace_of(store);
    let api: Api<Job> = Api::namespaced(crate::live::store_client(&applier.client, store), &ns);
    let selector = format!("app.kubernetes.io/instance={store},app.kubernetes.io/managed-by=Helm");
    let jobs = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube(format!("cannot list the Jobs of {ns}")))?;
    let mut stopped = 0;
    for job in jobs.items {
        let hook = job
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("helm.sh/hook"));
        let running = job.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0;
        let Some(name) = job.metadata.name.as_deref().filter(|_| hook && running) else {
            continue;
        };
        let what = format!("the running Job {ns}/{name}");
        if objects::delete_guarded(&api, name, job.metadata.uid.as_deref(), false, &what).await? {
            stopped += 1;
        }
    }
    Ok(stopped)
}

/// Takes the retirement marks off a restored store's namespace, once its release serves again.
pub(super) async fn unmark(applier: &Applier, store: &str, live: &LiveStore) -> Result<()> {
    let ns = desired::namespace_of(store);
    mark(
        &applier.client,
        &ns,
        live.namespace.metadata.uid.as_deref(),
        Marks::None,
        false,
    )
    .await?;
    let since = live
        .retirement()
        .and_then(|r| r.at)
        .map_or_else(|| "an unknown time".into(), crate::text::rfc3339);
    let note = format!(
        "its file is back: restored on the claims, credentials and release history it kept since its retirement \
         at {since}"
    );
    applier.event(store, StoreEvent::Restored, note).await;
    Ok(())
}

/// Keeps a retired store's purge time in step with the retention of the commit synced (which
/// may have changed it since the store was retired): one write when it changed, none else.
pub(super) async fn keep_purge_time(
    applier: &Applier,
    sp: &StorePlan,
    live: Option<&LiveStore>,
) -> Result<()> {
    let (Some(live), Some(purge)) = (live, sp.purge_at.as_deref()) else {
        return Ok(());
    };
    if applier.dry_run || live.annotation(PURGE_AT_ANNOTATION) == Some(purge) {
        return Ok(());
    }
    let ns = desired::namespace_of(&sp.store);
    mark(
        &applier.client,
        &ns,
        live.namespace.metadata.uid.as_deref(),
        Marks::PurgeAt(purge),
        false,
    )
    .await
}

/// What [`mark`] writes on a namespace.
#[derive(Debug, Clone, Copy)]
enum Marks<'a> {
    /// Retired now, by a commit, to be purged then.
    Retired {
        at: &'a str,
        by: Option<&'a str>,
        purge: &'a str,
    },
    /// Only the purge time, when the retention changed.
    PurgeAt(&'a str),
    /// No marks: restored.
    None,
}

/// Writes the retirement marks as a merge patch that names the namespace's uid, so that a
/// namespace re-created since it was observed is refused.
async fn mark(client: &Client, ns: &str, uid: Option<&str>, marks: Marks<'_>, dry_run: bool) -> Result<()> {
    let mut patch = match marks {
        Marks::Retired { at, by, purge } => json!({ "metadata": {
            "labels": { STATE_LABEL: RETIRED_STATE },
            "annotations": {
                RETIRED_AT_ANNOTATION: at,
                RETIRED_BY_ANNOTATION: by.unwrap_or("work-tree"),
                PURGE_AT_ANNOTATION: purge,
            },
        }}),
        Marks::PurgeAt(purge) => json!({ "metadata": { "annotations": { PURGE_AT_ANNOTATION: purge } } }),
        Marks::None => json!({ "metadata": {
            "labels": { STATE_LABEL: null },
            "annotations": {
                RETIRED_AT_ANNOTATION: null,
                RETIRED_BY_ANNOTATION: null,
                PURGE_AT_ANNOTATION: null,
            },
        }}),
    };
    if let Some(uid) = uid {
        patch["metadata"]["uid"] = json!(uid);
    }
    let params = PatchParams {
        field_manager: Some(MARKS_MANAGER.into()),
        dry_run,
        ..Default::default()
    };
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(ns, &params, &Patch::Merge(&patch)).await.map_err(|e| {
        warn!(namespace = %ns, error = %e, "cannot write the retirement marks");
        Error::Kube {
            context: format!("cannot write the retirement marks of Namespace {ns}"),
            source: e,
        }
    })?;
    Ok(())
}
