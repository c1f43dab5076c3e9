//! One sync of one commit: load and validate the catalog, observe the cluster, plan, apply,
//! prune last. The CLI's `apply` and the daemon both run exactly this.
use tracing::{info, instrument, warn};

use crate::apply::{self, Applier, SyncReport};
use crate::desired::{self, Catalog, Diagnostic};
use crate::error::Result;
use crate::live;
use crate::plan::{self, Action, ObjectKind, Plan, PlanOptions};
use crate::rollout;
use crate::source::Snapshot;

/// What a sync came to.
#[derive(Debug)]
pub enum SyncOutcome {
    /// The catalog is invalid: nothing was applied, nothing pruned.
    Invalid(Vec<Diagnostic>),
    Done(Box<Synced>),
}

/// A sync that ran: the catalog, its plan and what applying it did.
#[derive(Debug)]
pub struct Synced {
    pub catalog: Catalog,
    pub plan: Plan,
    pub report: SyncReport,
    /// The cluster as observed before applying (after, when the sync wrote).
    pub live: live::LiveState,
    /// This sync's step of a rollout (where it stands after it), when one is configured or
    /// recorded.
    pub rollout: Option<rollout::Step>,
}

/// Plans `snapshot` against the live cluster without writing: the catalog must be valid and
/// within the operator's policy; the prune breaker also holds to the limit recorded at the last
/// successfully applied commit. Chart-rendered objects are always compared with the cluster.
pub async fn plan_against_cluster(
    applier: &Applier,
    snapshot: &Snapshot,
    options: PlanOptions,
) -> Result<std::result::Result<(Catalog, Plan, live::LiveState), Vec<Diagnostic>>> {
    plan_live(applier, snapshot, options, true).await
}

type Planned = std::result::Result<(Catalog, Plan, live::LiveState), Vec<Diagnostic>>;

/// Plans against the cluster. Chart-rendered objects are compared with the cluster always (a
/// plan on demand), or for a sync only when its last comparison is older than the drift
/// interval; only syncs set that clock, so plans of pull requests never delay a repair.
async fn plan_live(
    applier: &Applier,
    snapshot: &Snapshot,
    mut options: PlanOptions,
    always_check_drift: bool,
) -> Result<Planned> {
    let mut catalog = match desired::load_with_policy(&snapshot.raw, &applier.helm.allowed_chart_prefixes) {
        Ok(c) => c,
        Err(findings) => return Ok(Err(findings)),
    };
    if let Some(role) = &applier.policy.store_cluster_role {
        catalog.platform.store_cluster_role = role.clone();
    }
    let own_namespace = applier.own_namespace();
    let (live, applied) = tokio::join!(
        live::observe(&applier.client),
        live::read_applied(&applier.client, &own_namespace),
    );
    let (mut live, applied) = (live?, applied?);
    live.applied = applied;
    options.allow_prune_all = applier.policy.allow_prune_all;
    let taken = names_taken(&catalog, &live, &snapshot.raw);
    if !taken.is_empty() {
        return Ok(Err(taken));
    }
    let mut plan = plan::plan_catalog(snapshot.revision.clone(), &catalog, &live, options, false);
    let sync_due = !always_check_drift && applier.drift.is_due();
    if drift(
        applier,
        &plan,
        &mut live,
        always_check_drift || sync_due,
        sync_due,
    )
    .await?
    {
        plan = plan::plan_catalog(snapshot.revision.clone(), &catalog, &live, options, false);
    }
    Ok(Ok((catalog, plan, live)))
}

/// Store files that take the name of a retired store of another engine: invalid until that
/// store is purged (its data would otherwise meet a chart it was never written by), each a
/// finding at the file's `engine` that says when.
fn names_taken(catalog: &Catalog, live: &live::LiveState, raw: &desired::RawCatalog) -> Vec<Diagnostic> {
    let retention = catalog.platform.prune.retention();
    catalog
        .stores
        .iter()
        .filter_map(|s| {
            let l = live.stores.get(&s.name)?;
            let retired = l.retirement()?;
            let engine = l.label(desired::ENGINE_LABEL).filter(|e| *e != s.engine)?;
            let text = raw
                .entries
                .iter()
                .flatten()
                .find(|e| e.path == s.file)
                .and_then(|e| e.content.file())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default();
            let purge = retired
                .purge_at(retention)
                .map_or_else(|| "its purge".to_string(), |at| format!("its purge at {}", crate::text::rfc3339(at)));
            Some(
                Diagnostic::error(
                    &s.file,
                    desired::value_position(text, &["engine"]),
                    format!(
                        "`engine: {}` is not valid yet: store {} is retired as a {engine} store, its data kept until \
                         {purge}",
                        s.engine, s.name
                    ),
                )
                .hint(format!(
                    "write `engine: {engine}` to restore the store on its data, choose another name, or wait until \
                     the retired store is purged"
                )),
            )
        })
        .collect()
}

/// The releases whose chart-rendered objects are worth comparing: deployed, and not about to
/// be upgraded (or left alone) anyway.
fn drift_candidates(plan: &Plan, live: &live::LiveState) -> Vec<live::ReleaseRef> {
    plan.stores
        .iter()
        .filter(|s| matches!(s.action, Action::Unchanged | Action::Update))
        .filter(|s| {
            s.changes
                .iter()
                .any(|c| c.kind == ObjectKind::HelmRelease && c.action == Action::Unchanged)
        })
        .filter_map(|s| {
            let release = live.stores.get(&s.store)?.release.as_ref()?;
            (release.status == "deployed").then(|| live::ReleaseRef {
                store: s.store.clone(),
                namespace: desired::namespace_of(&s.store),
                name: s.store.clone(),
                revision: release.revision,
            })
        })
        .collect()
}

/// Records the drift of chart-rendered objects on `live`: checked now, or between checks what
/// the last check found at the same revisions. True when some store drifted. `sync`: a sync's
/// check, which restarts the interval and judges every store's health in the same pass. A check that fails for any reason but an unreachable
/// API server is logged and tried again at the next sync.
async fn drift(
    applier: &Applier,
    plan: &Plan,
    live: &mut live::LiveState,
    check_now: bool,
    sync: bool,
) -> Result<bool> {
    let candidates = drift_candidates(plan, live);
    // Health is judged by syncs (what the store table, the gauge and the verdict read); a plan
    // shows none, so it pays for no Pods or Jobs LIST.
    let judge = sync.then(|| health_judge(applier.health_grace, live));
    let nothing_to_judge = judge.as_ref().is_none_or(|j| j.releases.is_empty());
    let found = if !check_now {
        record_health(live, applier.drift.last_health());
        applier.drift.last_found(&candidates)
    } else if candidates.is_empty() && nothing_to_judge {
        Default::default()
    } else {
        match applier
            .drift
            .observe(&applier.client, &candidates, judge.as_ref())
            .await
        {
            Ok(observed) if judge.is_some() => {
                record_health(live, observed.health);
                live.health_fresh = true;
                observed.drift
            }
            Ok(observed) => {
                record_health(live, applier.drift.last_health());
                observed.drift
            }
            Err(e) if e.is_unreachable() => return Err(e),
            Err(e) => {
                warn!(error = %e, "drift of chart-rendered objects not checked; trying again at the next sync");
                record_health(live, applier.drift.last_health());
                let refused = applier.drift.refused(&candidates);
                return Ok(record(live, applier.drift.last_found(&candidates)) | refuse(live, refused));
            }
        }
    };
    if sync {
        applier.drift.checked();
    }
    let refused = applier.drift.refused(&candidates);
    Ok(record(live, found) | refuse(live, refused))
}

/// Every store with a release is judged, whatever its plan: health is what a person looks at.
fn health_judge(grace: std::time::Duration, live: &live::LiveState) -> live::HealthJudge {
    let now = crate::text::unix_now();
    live::HealthJudge {
        releases: live
            .stores
            .iter()
            .filter(|(_, l)| !l.terminating() && l.retirement().is_none())
            .filter_map(|(store, l)| {
                let release = l.release.as_ref()?;
                Some(live::ReleaseRef {
                    store: store.clone(),
                    namespace: desired::namespace_of(store),
                    name: store.clone(),
                    revision: release.revision,
                })
            })
            .collect(),
        now,
        grace,
    }
}

/// Puts each store's health on it; a store without a release is Missing, a retired one Retired.
fn record_health(
    live: &mut live::LiveState,
    judged: std::collections::BTreeMap<String, live::health::StoreHealth>,
) {
    use live::health::{Health, StoreHealth};
    for (store, l) in live.stores.iter_mut() {
        l.health = match (&l.release, judged.get(store)) {
            _ if l.terminating() => None,
            _ if l.retirement().is_some() => Some(StoreHealth::only(Health::Retired, &retired_reason(l))),
            (None, _) => Some(StoreHealth::only(Health::Missing, "its Helm release is missing")),
            (Some(_), found) => found.cloned(),
        };
    }
}

/// `retired at …; purged after …`: why a retired store runs nothing.
fn retired_reason(l: &live::LiveStore) -> String {
    let at = l
        .annotation(desired::RETIRED_AT_ANNOTATION)
        .unwrap_or("an unknown time");
    match l.annotation(desired::PURGE_AT_ANNOTATION) {
        Some(purge) => format!("retired at {at}; purged after {purge}"),
        None => format!("retired at {at}"),
    }
}

/// Health as it stands once a sync's writes are done: the cluster observed again and every
/// store with a release judged, so the store table and the verdict see what was just applied.
/// Logged, not failed, when the cluster does not say.
pub async fn observe_health(applier: &Applier, live: &mut live::LiveState) {
    let fresh = match live::observe(&applier.client).await {
        Ok(fresh) => fresh,
        Err(e) => {
            warn!(error = %e, "cannot observe store health after the sync");
            // What was judged before the writes says nothing about the stores now.
            live.stores.values_mut().for_each(|l| l.health = None);
            return;
        }
    };
    let applied = live.applied.take();
    *live = fresh;
    live.applied = applied;
    if let Err(e) = judge_health(&applier.client, &applier.drift, applier.health_grace, live).await {
        warn!(error = %e, "cannot judge store health after the sync");
        live.stores.values_mut().for_each(|l| l.health = None);
    }
}

/// Judges the health of every store of `live` with a release, from one pass over the cluster
/// (the drift check's LISTs, Pods and Jobs), and puts it on each store.
pub async fn judge_health(
    client: &kube::Client,
    drift: &live::DriftCheck,
    grace: std::time::Duration,
    live: &mut live::LiveState,
) -> Result<()> {
    let judge = health_judge(grace, live);
    let observed = drift.observe(client, &[], Some(&judge)).await?;
    record_health(live, observed.health);
    live.health_fresh = true;
    Ok(())
}

/// Puts each store's drift on its live release; true when some store drifted.
fn record(live: &mut live::LiveState, found: std::collections::BTreeMap<String, live::Drift>) -> bool {
    let drifted = !found.is_empty();
    for (store, drift) in found {
        if let Some(release) = live.stores.get_mut(&store).and_then(|s| s.release.as_mut()) {
            release.drift = drift;
        }
    }
    drifted
}

/// Marks the releases whose storage the drift check refused to read; true when there is one.
fn refuse(live: &mut live::LiveState, refused: std::collections::BTreeMap<String, String>) -> bool {
    let any = !refused.is_empty();
    for (store, why) in refused {
        if let Some(release) = live.stores.get_mut(&store).and_then(|s| s.release.as_mut()) {
            release.refused = Some(why);
        }
    }
    any
}

#[instrument(skip_all, fields(revision = %snapshot.revision.label))]
pub async fn sync(applier: &Applier, snapshot: &Snapshot, options: PlanOptions) -> Result<SyncOutcome> {
    let (catalog, plan, live) = match plan_live(applier, snapshot, options, false).await? {
        Ok(planned) => planned,
        Err(findings) => return Ok(SyncOutcome::Invalid(findings)),
    };
    info!(summary = %plan.summary.line(), "planned");
    let (mut live, mut plan) = (live, plan);
    let mut rollout = carry_rollout(applier, &catalog, &plan, &mut live).await?;
    if let Some(r) = &rollout {
        r.annotate(&mut plan, catalog.platform.rollout.as_ref());
    }
    let applied = rollout.as_ref().map_or_else(|| plan.clone(), |r| r.held(&plan));
    let report = apply::apply(applier, &catalog, &applied, &live).await;
    info!(result = %report.description(), "synced");
    if let Some(r) = &mut rollout {
        r.finish(applier, &live).await;
    }
    record_applied(applier, &catalog, &plan, &live, &report).await?;
    if !applier.dry_run && report.summary.wrote() && report.cluster_error.is_none() {
        observe_health(applier, &mut live).await;
    }
    if let Some(r) = &mut rollout {
        // A wave Healthy as soon as helm --wait returned starts its soak now, not at the next look.
        r.record(applier, &live).await?;
    }
    Ok(SyncOutcome::Done(Box::new(Synced {
        catalog,
        plan,
        report,
        live,
        rollout: rollout.map(|r| r.step),
    })))
}

/// Reads the rollout record and takes this sync's step of it, when a rollout is configured or
/// recorded. A run in flight needs the health of its wave as it is now: judged afresh.
async fn carry_rollout(
    applier: &Applier,
    catalog: &Catalog,
    plan: &Plan,
    live: &mut live::LiveState,
) -> Result<Option<rollout::Carried>> {
    let read = rollout::read(&applier.client, &applier.own_namespace()).await?;
    if !rollout::concerns(catalog, &read) {
        return Ok(None);
    }
    if read.run.is_some() && !live.health_fresh {
        judge_health(&applier.client, &applier.drift, applier.health_grace, live).await?;
    }
    Ok(Some(rollout::begin(applier, catalog, plan, live, read)))
}

/// After a sync that applied everything it planned, records its commit's prune limit for the
/// breaker of later syncs. Not recording is an error, never silence: without a record, a
/// later commit would set its own limit.
async fn record_applied(
    applier: &Applier,
    catalog: &Catalog,
    plan: &Plan,
    live: &live::LiveState,
    report: &SyncReport,
) -> Result<()> {
    if applier.dry_run || report.failed() || plan.is_blocked() || !applier.gate.is_open() {
        return Ok(());
    }
    let applied = live::AppliedLimits {
        commit: plan.revision.commit.clone().unwrap_or_default(),
        max_prunes_per_sync: catalog.platform.limits.max_prunes_per_sync,
    };
    if live.applied.as_ref() == Some(&applied) {
        return Ok(());
    }
    apply::record_applied(&applier.client, &applier.own_namespace(), &applied).await
}
