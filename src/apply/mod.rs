//! Applying a plan: the only code that writes to the cluster. Stores are applied concurrently
//! with a bound; within a store objects go in apply order (Namespace, ResourceQuota,
//! LimitRange, NetworkPolicies, credentials, Helm release); prunes run last.
mod events;
mod gate;
mod helm;
mod objects;
mod release;
mod report;
mod retire;

use std::sync::Arc;

use kube::Client;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};

use crate::desired::{self, Catalog, DesiredStore, LAST_ERROR_ANNOTATION};
use crate::error::{Error, Result};
use crate::live::{DriftCheck, LiveState, LiveStore};
use crate::plan::{Action, ObjectKind, Plan, StorePlan};
use crate::text::truncate;

pub use events::{Events, REPORTING_CONTROLLER, StoreEvent};
pub use gate::WriteGate;
pub use helm::{Helm, HelmOp};
pub use objects::record_applied;
use release::{prune_store, remediate, trusted_revision};
use report::result;
pub use report::{Outcome, ResultSummary, StoreResult, SyncReport};

/// How a sync writes.
#[derive(Clone)]
pub struct Applier {
    pub client: Client,
    pub helm: Helm,
    /// Stores applied at once.
    pub concurrency: usize,
    /// Server-side dry run of object writes; no helm, no credentials, no prune.
    pub dry_run: bool,
    /// Observer of helm invocations (metrics).
    pub on_helm: Option<Arc<dyn Fn(HelmOp, bool) + Send + Sync>>,
    pub policy: Policy,
    /// Kubernetes Events on the stores' namespaces; none in a dry run.
    pub events: Option<Events>,
    /// Drift checks of chart-rendered objects: their interval, clock and manifest cache,
    /// shared by every sync of this process.
    pub drift: Arc<DriftCheck>,
    /// Observer of drift repaired by `helm upgrade` (metrics).
    pub on_drift_repair: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Observer of the time each store took to apply, in seconds (metrics).
    pub on_store_applied: Option<Arc<dyn Fn(f64) + Send + Sync>>,
    /// Closed when this replica stops leading: no store or prune starts, helm in flight stops.
    pub gate: WriteGate,
    /// How long a pod may wait in a stuck state before its workload counts as Degraded.
    pub health_grace: std::time::Duration,
    /// Now, in seconds since the epoch: when rollout waves were applied and how long they waited.
    pub clock: Clock,
}

/// A clock in seconds since the epoch; tests run rollouts on a clock of their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What the operator allows a catalog to do, whatever a commit says.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// One sync may prune every live store (`--allow-prune-all`).
    pub allow_prune_all: bool,
    /// Namespace of storesync's own records (the prune breaker's); `None`: the client's default.
    pub namespace: Option<String>,
    /// The ClusterRole helm's identity is bound to in store namespaces (`--store-cluster-role`);
    /// `None`: `storesync-store`.
    pub store_cluster_role: Option<String>,
}

impl Applier {
    /// An applier with the defaults: 4 stores at once, real writes, Events on.
    pub fn new(client: Client, helm: Helm) -> Applier {
        Applier {
            events: Some(Events::new(client.clone())),
            client,
            helm,
            concurrency: 4,
            dry_run: false,
            on_helm: None,
            policy: Policy::default(),
            drift: Arc::new(DriftCheck::default()),
            on_drift_repair: None,
            on_store_applied: None,
            gate: WriteGate::default(),
            health_grace: crate::live::health::DEFAULT_HEALTH_GRACE,
            clock: Arc::new(crate::text::unix_now),
        }
    }

    /// An Event on the store's namespace; none in a dry run.
    pub async fn event(&self, store: &str, event: StoreEvent, note: String) {
        if let (Some(events), false) = (&self.events, self.dry_run) {
            events.store(store, event, note).await;
        }
    }

    /// The namespace holding storesync's own records.
    pub fn own_namespace(&self) -> String {
        self.policy
            .namespace
            .clone()
            .unwrap_or_else(|| self.client.default_namespace().to_string())
    }
}

/// Applies `plan`, made from `catalog` at `plan.revision` against `live`.
pub async fn apply(applier: &Applier, catalog: &Catalog, plan: &Plan, live: &LiveState) -> SyncReport {
    let commit = plan.revision.commit.clone();
    let limit = Arc::new(Semaphore::new(applier.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut results = Vec::with_capacity(plan.stores.len());

    for sp in &plan.stores {
        match sp.action {
            Action::Create | Action::Update | Action::Restore => {
                // The catalog's stores are sorted by name.
                let found = catalog
                    .stores
                    .binary_search_by(|s| s.name.as_str().cmp(&sp.store));
                let Some(store) = found.ok().map(|i| &catalog.stores[i]) else {
                    results.push(result(
                        &sp.store,
                        Outcome::Failed,
                        Some("store is not in the catalog".into()),
                    ));
                    continue;
                };
                let desired = desired::render_store(store, &catalog.platform, commit.as_deref());
                let (applier, sp, live) = (applier.clone(), sp.clone(), live.stores.get(&sp.store).cloned());
                let limit = limit.clone();
                let span = info_span!("apply_store", store = %sp.store, revision = %plan.revision.label);
                tasks.spawn(
                    async move {
                        let _permit = limit.acquire_owned().await;
                        if !applier.gate.is_open() {
                            return (not_started(&sp.store), false);
                        }
                        let started = std::time::Instant::now();
                        let mut outcome = apply_store(&applier, &desired, &sp, live.as_ref()).await;
                        if let (Ok(()), Action::Restore, Some(l), false) =
                            (&outcome, sp.action, &live, applier.dry_run)
                        {
                            outcome = retire::unmark(&applier, &sp.store, l).await;
                        }
                        if let Some(observe) = &applier.on_store_applied {
                            observe(started.elapsed().as_secs_f64());
                        }
                        let (mut r, unreachable) =
                            finish_store(&applier, &sp.store, live.as_ref(), outcome).await;
                        if r.outcome == Outcome::Applied {
                            r.detail = reported_drift(&sp);
                            if sp.action == Action::Restore {
                                r.outcome = Outcome::Restored;
                            }
                        }
                        (r, unreachable)
                    }
                    .instrument(span),
                );
            }
            Action::Unchanged => results.push(result(&sp.store, Outcome::Unchanged, None)),
            Action::Skip => results.push(result(&sp.store, Outcome::Skipped, sp.reason.clone())),
            Action::Blocked => {
                let gone = catalog
                    .stores
                    .binary_search_by(|s| s.name.as_str().cmp(&sp.store))
                    .is_err();
                if gone {
                    let note = format!(
                        "its file is gone at {} but it was not pruned: {}",
                        plan.revision.label,
                        plan.blocked
                            .first()
                            .or(sp.reason.as_ref())
                            .map_or("", String::as_str)
                    );
                    applier.event(&sp.store, StoreEvent::PruneBlocked, note).await;
                }
                results.push(result(&sp.store, Outcome::Blocked, sp.reason.clone()))
            }
            // What stays retired is reported with when it goes.
            Action::Retired => {
                // A record for readers; the purge itself reads retired-at and the retention.
                if let Err(e) = retire::keep_purge_time(applier, sp, live.stores.get(&sp.store)).await {
                    warn!(store = %sp.store, error = %e, "purge time not recorded; trying again at the next sync");
                }
                results.push(result(&sp.store, Outcome::Skipped, sp.reason.clone()));
            }
            Action::Prune | Action::Retire | Action::Purge => {}
        }
    }
    let mut cluster_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((r, unreachable)) => {
                if unreachable && cluster_error.is_none() {
                    cluster_error = r.detail.clone();
                }
                results.push(r)
            }
            Err(e) => warn!(error = %e, "a store task ended abnormally"),
        }
    }

    // Retire, purge and prune last, only what the plan allowed, and never while the cluster
    // does not answer.
    let leaving = |s: &&StorePlan| matches!(s.action, Action::Prune | Action::Retire | Action::Purge);
    for sp in plan.stores.iter().filter(leaving) {
        if !applier.gate.is_open() {
            results.push(not_started(&sp.store));
            continue;
        }
        if cluster_error.is_some() {
            results.push(result(
                &sp.store,
                Outcome::Failed,
                Some(format!(
                    "not {}: the cluster stopped answering during this sync",
                    match sp.action {
                        Action::Retire => "retired",
                        Action::Purge => "purged",
                        _ => "pruned",
                    }
                )),
            ));
            continue;
        }
        let l = live.stores.get(&sp.store);
        let (r, done) = match sp.action {
            Action::Retire => {
                let span = info_span!("retire_store", store = %sp.store);
                let r = retire::retire_store(applier, sp, l, &catalog.platform, commit.as_deref())
                    .instrument(span)
                    .await;
                (r, Outcome::Retired)
            }
            _ => {
                let purge = sp.action == Action::Purge;
                let span = info_span!("prune_store", store = %sp.store, purge);
                let r = prune_store(applier, sp, l, purge).instrument(span).await;
                (r, if purge { Outcome::Purged } else { Outcome::Pruned })
            }
        };
        results.push(match r {
            Ok(()) => result(
                &sp.store,
                done,
                sp.reason.clone().filter(|_| done == Outcome::Retired),
            ),
            Err(e) => {
                let mut failed = result(&sp.store, Outcome::Failed, Some(e.to_string()));
                failed.transient = e.is_unreachable() || e.is_transient();
                failed
            }
        });
    }

    results.sort_by(|a, b| a.store.cmp(&b.store));
    let mut summary = ResultSummary::default();
    for r in &results {
        *match r.outcome {
            Outcome::Applied => &mut summary.applied,
            Outcome::Pruned => &mut summary.pruned,
            Outcome::Unchanged => &mut summary.unchanged,
            Outcome::Skipped => &mut summary.skipped,
            Outcome::Blocked => &mut summary.blocked,
            Outcome::Failed => &mut summary.failed,
            Outcome::Retired => &mut summary.retired,
            Outcome::Restored => &mut summary.restored,
            Outcome::Purged => &mut summary.purged,
        } += 1;
    }
    SyncReport {
        revision: plan.revision.clone(),
        summary,
        stores: results,
        blocked: plan.blocked.clone(),
        cluster_error,
    }
}

/// A store left alone because this replica stopped leading before it started.
fn not_started(store: &str) -> StoreResult {
    result(
        store,
        Outcome::Skipped,
        Some("not started: this replica no longer leads".into()),
    )
}

/// Turns a store's outcome into its result, recording or clearing its last error; true when
/// it failed because the API server did not answer.
async fn finish_store(
    applier: &Applier,
    store: &str,
    live: Option<&LiveStore>,
    outcome: Result<()>,
) -> (StoreResult, bool) {
    if !applier.gate.is_open() {
        // Whoever leads now records the store's state; this replica writes nothing more.
        let detail = outcome.err().map(|e| truncate(&e.to_string(), 1024));
        return (result(store, Outcome::Failed, detail), false);
    }
    let previous = live
        .and_then(|l| l.annotation(LAST_ERROR_ANNOTATION))
        .map(String::from);
    match outcome {
        Ok(()) => {
            if previous.is_some() && !applier.dry_run {
                let _ = objects::record_error(&applier.client, store, None).await;
            }
            info!("store applied");
            (result(store, Outcome::Applied, None), false)
        }
        Err(e) => {
            let message = truncate(&e.to_string(), 1024);
            warn!(error = %message, "store failed");
            let ours = !matches!(e, Error::NotOwned(_));
            if ours && previous.as_deref() != Some(message.as_str()) && !applier.dry_run {
                // The namespace may not exist if its own creation failed; nothing to record on.
                let _ = objects::record_error(&applier.client, store, Some(&message)).await;
            }
            // Helm failures have their own Event; a foreign namespace is never written to.
            if ours && !e.is_unreachable() && !matches!(e, Error::Helm { .. }) {
                let event = match e {
                    Error::Refused(_) => StoreEvent::ReleaseRefused,
                    _ => StoreEvent::SyncFailed,
                };
                applier.event(store, event, message.clone()).await;
            }
            // helm says nothing typed about why it failed: whether the cluster answers now does.
            let unreachable = e.is_unreachable()
                || (matches!(e, Error::Helm { .. }) && !cluster_answers(&applier.client).await);
            let mut r = result(store, Outcome::Failed, Some(message));
            r.transient = unreachable || e.is_transient();
            (r, unreachable)
        }
    }
}

/// Whether the API server answers at all (any answer, even a refusal, means it is there).
async fn cluster_answers(client: &Client) -> bool {
    match client.apiserver_version().await {
        Ok(_) => true,
        Err(e) => !Error::Kube {
            context: String::new(),
            source: e,
        }
        .is_unreachable(),
    }
}

/// Changes of `kind` to carry out (drift held back by `driftPolicy: report` is not one).
fn changed(sp: &StorePlan, kind: ObjectKind) -> impl Iterator<Item = &crate::plan::Change> {
    sp.changes
        .iter()
        .filter(move |c| c.kind == kind && !matches!(c.action, Action::Unchanged | Action::Skip))
}

/// Drift of chart-rendered objects that policy says only to report, as the store's result says it.
fn reported_drift(sp: &StorePlan) -> Option<String> {
    sp.changes
        .iter()
        .find(|c| c.kind == ObjectKind::HelmRelease && c.action == Action::Skip && c.drift.is_some())
        .and_then(|c| c.reason.clone())
}

async fn apply_store(
    applier: &Applier,
    d: &DesiredStore,
    sp: &StorePlan,
    live: Option<&LiveStore>,
) -> Result<()> {
    let (client, dry_run) = (&applier.client, applier.dry_run);
    let ns = d.release.namespace.as_str();
    if live.is_none() && objects::is_foreign_namespace(client, ns).await? {
        return Err(Error::NotOwned(format!(
            "namespace {ns} exists but is not managed by storesync (no {}={} label); it is never taken \
             over: rename the store or move the namespace out of the way",
            desired::MANAGED_BY,
            desired::MANAGER
        )));
    }
    // The namespace carries the commit being applied whenever anything of the store changes.
    objects::apply_namespace(client, &d.namespace, dry_run).await?;
    let commit = d
        .namespace
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(desired::COMMIT_ANNOTATION));
    let at = commit.map_or_else(
        || "the work tree".to_string(),
        |c| format!("commit {}", c.get(..12).unwrap_or(c)),
    );
    if live.is_none() {
        let note = format!(
            "store {} ({} on plan {}) created from {at}",
            d.store.name, d.store.engine, d.store.plan
        );
        applier.event(&d.store.name, StoreEvent::Created, note).await;
    }
    if dry_run && live.is_none() {
        // Objects inside a namespace that a dry run did not create cannot be checked yet.
        return Ok(());
    }
    if changed(sp, ObjectKind::ResourceQuota).next().is_some() {
        objects::apply_namespaced(client, &d.quota, dry_run).await?;
    }
    if changed(sp, ObjectKind::LimitRange).next().is_some() {
        objects::apply_namespaced(client, &d.limit_range, dry_run).await?;
    }
    for c in changed(sp, ObjectKind::NetworkPolicy) {
        match c.action {
            Action::Prune => {
                let uid = live
                    .and_then(|l| {
                        l.network_policies
                            .iter()
                            .find(|p| p.metadata.name.as_deref() == Some(&c.name))
                    })
                    .and_then(|p| p.metadata.uid.as_deref());
                objects::delete_network_policy(client, &d.release.namespace, &c.name, uid, dry_run).await?;
            }
            _ => {
                if let Some(p) = d
                    .network_policies
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(&c.name))
                {
                    objects::apply_namespaced(client, p, dry_run).await?;
                }
            }
        }
    }
    // helm's identity before anything that acts as it (the credentials, helm itself).
    if changed(sp, ObjectKind::ServiceAccount).next().is_some() {
        objects::apply_namespaced(client, &d.service_account, dry_run).await?;
    }
    if changed(sp, ObjectKind::RoleBinding).next().is_some() {
        objects::apply_namespaced(client, &d.role_binding, dry_run).await?;
        if !dry_run {
            // The API server's RBAC cache takes a moment to learn a new binding.
            objects::await_identity(client, &d.store.name).await?;
        }
    }
    if dry_run {
        return Ok(());
    }
    let guardrails = [
        ObjectKind::ResourceQuota,
        ObjectKind::LimitRange,
        ObjectKind::NetworkPolicy,
    ];
    let updated: Vec<String> = sp
        .changes
        .iter()
        .filter(|c| guardrails.contains(&c.kind) && c.action != Action::Unchanged)
        .map(|c| format!("{:?} {}", c.kind, c.name))
        .collect();
    if live.is_some() && !updated.is_empty() {
        let note = format!("{} applied from {at}", updated.join(", "));
        applier
            .event(&d.store.name, StoreEvent::GuardrailsUpdated, note)
            .await;
    }
    if changed(sp, ObjectKind::Secret).next().is_some() {
        objects::create_credentials(client, &d.store.name, false).await?;
    }
    if let Some(release_change) = changed(sp, ObjectKind::HelmRelease).next() {
        let installed = live.and_then(|l| l.release.as_ref());
        if let Some(release) = installed {
            // helm acts on the latest revision's manifest (an upgrade deletes what it has and the
            // chart lacks): never on one the store's team could have forged to reach outside.
            trusted_revision(applier, &d.store.name, release.revision).await?;
        }
        if let Some(release) = installed.filter(|r| r.is_pending()) {
            remediate(applier, d, release).await?;
            let note = format!(
                "release {} was stuck in {}; recovered before the upgrade",
                d.release.name, release.status
            );
            applier
                .event(&d.store.name, StoreEvent::ReleaseRemediated, note)
                .await;
        }
        let ok = applier
            .gate
            .guard(
                HelmOp::Upgrade,
                applier.helm.upgrade_install(&d.release, &d.release_hash),
            )
            .await;
        observe_helm(applier, HelmOp::Upgrade, ok.is_ok());
        let (event, note) = match (&ok, &release_change.drift) {
            (Ok(()), Some(drift)) => {
                if let Some(f) = &applier.on_drift_repair {
                    f();
                }
                (
                    StoreEvent::DriftRepaired,
                    format!(
                        "helm upgrade took back what was changed in the cluster: {}",
                        drift.summary()
                    ),
                )
            }
            (Ok(()), None) if installed.is_none() => (
                StoreEvent::HelmInstalled,
                format!("{} {} installed from {at}", d.release.chart, d.release.version),
            ),
            (Ok(()), None) => (
                StoreEvent::HelmUpgraded,
                format!("{} {} upgraded from {at}", d.release.chart, d.release.version),
            ),
            (Err(e), _) => (StoreEvent::HelmFailed, e.to_string()),
        };
        applier.event(&d.store.name, event, note).await;
        ok?;
    }
    Ok(())
}

fn observe_helm(applier: &Applier, op: HelmOp, ok: bool) {
    if let Some(f) = &applier.on_helm {
        f(op, ok);
    }
}
