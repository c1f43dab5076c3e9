//! Applying a plan: the only code that writes to the cluster. Stores are applied concurrently
//! with a bound; within a store objects go in apply order (Namespace, ResourceQuota,
//! LimitRange, NetworkPolicies, credentials, Helm release); prunes run last.
mod events;
mod gate;
mod helm;
mod objects;

use std::sync::Arc;

use kube::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};

use crate::desired::{self, Catalog, DesiredStore, LAST_ERROR_ANNOTATION};
use crate::error::{Error, Result};
use crate::live::{DriftCheck, LiveState, LiveStore};
use crate::plan::{Action, ObjectKind, Plan, StorePlan};
use crate::source::Revision;
use crate::text::truncate;

pub use events::{Events, REPORTING_CONTROLLER, StoreEvent};
pub use gate::WriteGate;
pub use helm::{Helm, HelmOp};
pub use objects::record_applied;

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
}

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
        }
    }

    async fn event(&self, store: &str, event: StoreEvent, note: String) {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Pruned,
    Unchanged,
    Skipped,
    Blocked,
    Failed,
}

impl Outcome {
    /// The word for people and scripts, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Pruned => "pruned",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
            Outcome::Blocked => "blocked",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreResult {
    pub store: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Failed for a reason outside the catalog (the API server unreachable, a 5xx, a conflict):
    /// a retry may succeed without a new commit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultSummary {
    pub applied: usize,
    pub pruned: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub blocked: usize,
    pub failed: usize,
}

/// The result of applying one plan: data that feeds output, logs, metrics and statuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    pub revision: Revision,
    pub summary: ResultSummary,
    pub stores: Vec<StoreResult>,
    /// Plan-wide reasons that held something back (the prune breaker).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<String>,
    /// The API server stopped answering mid-sync: the first such error. Nothing was pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_error: Option<String>,
}

impl SyncReport {
    pub fn failed(&self) -> bool {
        self.summary.failed > 0
    }

    /// Some stores failed, each for a reason outside the catalog: nothing a commit must fix.
    pub fn failed_transiently(&self) -> bool {
        self.failed()
            && self
                .stores
                .iter()
                .filter(|r| r.outcome == Outcome::Failed)
                .all(|r| r.transient)
    }

    /// At most 140 characters for a commit status: `applied 2, pruned 1, unchanged 40`, and the
    /// first reason when something failed or was held back.
    pub fn description(&self) -> String {
        let s = &self.summary;
        let mut text = format!(
            "applied {}, pruned {}, unchanged {}",
            s.applied, s.pruned, s.unchanged
        );
        if s.failed > 0 {
            text = format!("{} failed; {text}", s.failed);
            if let Some(first) = self.stores.iter().find(|r| r.outcome == Outcome::Failed) {
                text.push_str(&format!(
                    "; {}: {}",
                    first.store,
                    first.detail.as_deref().unwrap_or("")
                ));
            }
        } else if let Some(reason) = self.blocked.first() {
            text.push_str(&format!("; blocked: {reason}"));
        }
        truncate(&text, 140)
    }
}

fn result(store: &str, outcome: Outcome, detail: Option<String>) -> StoreResult {
    StoreResult {
        store: store.to_string(),
        outcome,
        detail,
        transient: false,
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
            Action::Create | Action::Update => {
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
                        let outcome = apply_store(&applier, &desired, &sp, live.as_ref()).await;
                        if let Some(observe) = &applier.on_store_applied {
                            observe(started.elapsed().as_secs_f64());
                        }
                        let (mut r, unreachable) =
                            finish_store(&applier, &sp.store, live.as_ref(), outcome).await;
                        if r.outcome == Outcome::Applied {
                            r.detail = reported_drift(&sp);
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
            Action::Prune => {}
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

    // Prune last, only what the plan allowed, and never while the cluster does not answer.
    for sp in plan.stores.iter().filter(|s| s.action == Action::Prune) {
        if !applier.gate.is_open() {
            results.push(not_started(&sp.store));
            continue;
        }
        if cluster_error.is_some() {
            results.push(result(
                &sp.store,
                Outcome::Failed,
                Some("not pruned: the cluster stopped answering during this sync".into()),
            ));
            continue;
        }
        let span = info_span!("prune_store", store = %sp.store);
        let r = prune_store(applier, sp, live.stores.get(&sp.store))
            .instrument(span)
            .await;
        results.push(match r {
            Ok(()) => result(&sp.store, Outcome::Pruned, None),
            Err(e) => result(&sp.store, Outcome::Failed, Some(e.to_string())),
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

/// Most attempts at unsticking a release in one sync.
const REMEDIATION_ATTEMPTS: u32 = 3;

/// A release cut off mid-operation (`pending-*`) blocks every later upgrade. Roll it back to the
/// last good revision, or uninstall it when it never deployed, a bounded number of times.
async fn remediate(applier: &Applier, d: &DesiredStore, release: &crate::live::LiveRelease) -> Result<()> {
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
async fn trusted_revision(
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

/// Uninstalls the release, then deletes the namespace (which takes every object with it).
async fn prune_store(applier: &Applier, sp: &StorePlan, live: Option<&LiveStore>) -> Result<()> {
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
    let note = format!("its file is gone: uninstalling the release and deleting {ns}");
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
        let note = format!(
            "store {} pruned: release uninstalled, namespace {ns} deleted",
            sp.store
        );
        events
            .elsewhere(&sp.store, &applier.own_namespace(), StoreEvent::Pruned, note)
            .await;
    }
    Ok(())
}
