//! The plan: per store and object, what a sync would do. Pure: built from desired and live
//! state, no I/O. The same value feeds the CLI, logs, metrics, the status page and statuses.
mod diff;
mod output;
pub mod waves;

use std::collections::BTreeSet;

use rayon::prelude::*;
use serde::Serialize;

use crate::desired::{self, Catalog, DesiredStore, Limits, PlatformConfig};
use crate::live::{Drift, LiveState, LiveStore};
use crate::source::Revision;

pub use diff::{CHANGED_REASON, DRIFT_REASON, normalize, project, to_yaml};
pub use output::{render_json, render_text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// Deleted at once: its file is gone and `prune.retention` is `0s`.
    Prune,
    /// Left alone on purpose (a suspended store).
    Skip,
    /// Would change, but a guard stops it; `reason` says which.
    Blocked,
    /// Its file is gone: stopped (no pod, no Ingress), its namespace, claims, credentials and
    /// release kept until its purge.
    Retire,
    /// Retired, and its file is back: started again on the same claims and credentials.
    Restore,
    /// Retired for `prune.retention`: the release uninstalled and the namespace deleted.
    Purge,
    /// Retired, waiting for its purge; nothing to do.
    Retired,
}

impl Action {
    /// The word for people and scripts, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Prune => "prune",
            Action::Skip => "skip",
            Action::Blocked => "blocked",
            Action::Retire => "retire",
            Action::Restore => "restore",
            Action::Purge => "purge",
            Action::Retired => "retired",
        }
    }
}

/// Object kinds in apply order; prune runs in reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum ObjectKind {
    Namespace,
    ResourceQuota,
    LimitRange,
    NetworkPolicy,
    ServiceAccount,
    RoleBinding,
    Secret,
    HelmRelease,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub kind: ObjectKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub action: Action,
    /// Unified diff, live → desired, of normalised YAML. Secret data never appears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Which fields of which chart-rendered objects were changed in the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

impl Change {
    /// `Kind namespace/name`, for people.
    pub fn object(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{:?} {ns}/{}", self.kind, self.name),
            None => format!("{:?} {}", self.kind, self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorePlan {
    pub store: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A retired store's retirement (RFC 3339), and the commit that retired it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_by: Option<String>,
    /// When a store being retired, or retired, is purged (RFC 3339): for a retirement planned
    /// now, `prune.retention` after the cluster was observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_at: Option<String>,
    /// The wave of a rollout that updates this store, when `rollout` waves this sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<waves::Wave>,
    /// In apply order (prunes in reverse apply order).
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub unchanged: usize,
    pub prune: usize,
    pub skip: usize,
    pub blocked: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub retire: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub restore: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub purge: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub retired: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    fn count(stores: &[StorePlan]) -> Summary {
        let mut s = Summary::default();
        for p in stores {
            *match p.action {
                Action::Create => &mut s.create,
                Action::Update => &mut s.update,
                Action::Unchanged => &mut s.unchanged,
                Action::Prune => &mut s.prune,
                Action::Skip => &mut s.skip,
                Action::Blocked => &mut s.blocked,
                Action::Retire => &mut s.retire,
                Action::Restore => &mut s.restore,
                Action::Purge => &mut s.purge,
                Action::Retired => &mut s.retired,
            } += 1;
        }
        s
    }

    /// One line such as `2 to create, 1 to update, 1 to retire, 0 to prune, 40 unchanged`:
    /// retirements, restores, purges and retired stores only when there are some.
    pub fn line(&self) -> String {
        let mut parts = vec![
            format!("{} to create", self.create),
            format!("{} to update", self.update),
        ];
        let rare = [
            (self.restore, "to restore"),
            (self.retire, "to retire"),
            (self.purge, "to purge"),
        ];
        parts.extend(
            rare.iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, what)| format!("{n} {what}")),
        );
        parts.push(format!("{} to prune", self.prune));
        parts.push(format!("{} unchanged", self.unchanged));
        if self.retired > 0 {
            parts.push(format!("{} retired", self.retired));
        }
        if self.skip > 0 {
            parts.push(format!("{} skipped", self.skip));
        }
        if self.blocked > 0 {
            parts.push(format!("{} blocked", self.blocked));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub revision: Revision,
    /// Planned against an empty cluster, without contacting one.
    pub offline: bool,
    pub summary: Summary,
    /// Sorted by store name.
    pub stores: Vec<StorePlan>,
    /// Reasons that hold back part of the plan as a whole (such as the prune breaker).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<String>,
}

impl Plan {
    pub fn is_blocked(&self) -> bool {
        !self.blocked.is_empty() || self.summary.blocked > 0
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Include the full YAML of objects to be created as diffs (always shown for updates).
    pub create_diffs: bool,
    /// Leave stores whose files are gone in place.
    pub no_prune: bool,
    /// The operator allows one sync to prune every live store (`--allow-prune-all`).
    pub allow_prune_all: bool,
}

/// Why `prunable` stores may not go at once, if they may not. The limit is the lower of the
/// synced commit's `limits.maxPrunesPerSync` and the one recorded at the last successfully
/// applied commit: a commit can lower its own breaker, never lift it.
fn prune_breaker(prunable: usize, live: &LiveState, limits: &Limits, options: PlanOptions) -> Vec<String> {
    let mut reasons = Vec::new();
    let live_stores = live
        .stores
        .values()
        .filter(|l| !l.terminating() && l.retirement().is_none())
        .count();
    if prunable >= 2 && prunable == live_stores && !options.allow_prune_all {
        reasons.push(format!(
            "every live store ({prunable}) would be pruned: no store is pruned; storesync must run with \
             --allow-prune-all to empty the platform"
        ));
    }
    let own = limits.max_prunes_per_sync;
    match &live.applied {
        Some(applied) if applied.max_prunes_per_sync < own && prunable > applied.max_prunes_per_sync => {
            let at = match applied.commit.get(..12) {
                Some(short) => format!(" {short}"),
                None => String::new(),
            };
            reasons.push(format!(
                "{prunable} stores would be pruned; the limit is {} (limits.maxPrunesPerSync at the last \
                 applied commit{at}; this commit's {own} counts once applied): no store is pruned; raise the \
                 limit in a commit of its own first",
                applied.max_prunes_per_sync
            ));
        }
        _ if prunable > own => reasons.push(format!(
            "{prunable} stores would be pruned; limits.maxPrunesPerSync is {own}: no store is pruned"
        )),
        _ => {}
    }
    reasons
}

/// Plans a sync of `desired` (a valid catalog, rendered with `platform`) against `live`.
pub fn plan(
    revision: Revision,
    desired: &[DesiredStore],
    live: &LiveState,
    platform: &PlatformConfig,
    options: PlanOptions,
    offline: bool,
) -> Plan {
    let stores = desired
        .iter()
        .map(|d| plan_store(d, live.stores.get(&d.store.name), options, platform))
        .collect();
    let wanted = desired.iter().map(|d| d.store.name.as_str()).collect();
    let mut plan = finish(revision, stores, wanted, live, platform, options, offline);
    if let Some(rollout) = &platform.rollout {
        waves::assign(&mut plan, rollout);
    }
    plan
}

/// Plans a whole valid catalog, rendering one store at a time so that the rendered objects of
/// thousands of stores are never held at once.
pub fn plan_catalog(
    revision: Revision,
    catalog: &Catalog,
    live: &LiveState,
    options: PlanOptions,
    offline: bool,
) -> Plan {
    let commit = revision.commit.clone();
    let stores = catalog
        .stores
        .par_iter()
        .map(|s| {
            let d = desired::render_store(s, &catalog.platform, commit.as_deref());
            plan_store(&d, live.stores.get(&s.name), options, &catalog.platform)
        })
        .collect();
    let wanted = catalog.stores.iter().map(|s| s.name.as_str()).collect();
    let mut plan = finish(
        revision,
        stores,
        wanted,
        live,
        &catalog.platform,
        options,
        offline,
    );
    if let Some(rollout) = &catalog.platform.rollout {
        waves::assign(&mut plan, rollout);
    }
    plan
}

/// Whether a store whose file is gone is one to retire (or prune) now: not already retired, not
/// being deleted, not protected. These are the stores the breaker counts.
fn leaving(l: &LiveStore) -> bool {
    kept(l).is_none() && l.retirement().is_none()
}

/// Why a store whose file is gone is left as it is, whatever the plan: being deleted already,
/// or protected (kept on purpose, not an error: later syncs stay green while it lives on).
fn kept(l: &LiveStore) -> Option<&'static str> {
    if l.terminating() {
        Some("namespace is terminating: deletion in progress")
    } else if l.label(desired::PROTECTED_LABEL) == Some("true") {
        Some("store is protected: its file is gone but the store is kept")
    } else {
        None
    }
}

/// Adds what happens to stores in `live` but not `wanted` (retire, purge, prune), guarded,
/// and sums up.
fn finish(
    revision: Revision,
    mut stores: Vec<StorePlan>,
    wanted: BTreeSet<&str>,
    live: &LiveState,
    platform: &PlatformConfig,
    options: PlanOptions,
    offline: bool,
) -> Plan {
    let limits = &platform.limits;
    let gone: Vec<(&String, &LiveStore)> = live
        .stores
        .iter()
        .filter(|(name, _)| !wanted.contains(name.as_str()))
        .collect();
    let mut blocked = Vec::new();
    let prunable = gone.iter().filter(|(_, l)| leaving(l)).count();
    let held = prune_breaker(prunable, live, limits, options);
    let breaker = !held.is_empty();
    if breaker && !options.no_prune {
        blocked.extend(held);
    }
    let retention = platform.prune.retention();
    // Purges due, the longest retired first, at most maxPrunesPerSync of them in one sync.
    let mut due: Vec<(i64, &str)> = gone
        .iter()
        .filter(|(_, l)| kept(l).is_none())
        .filter_map(|(name, l)| {
            let at = l.retirement()?.purge_at(retention)?;
            (live.observed_at > 0 && at <= live.observed_at).then_some((at, name.as_str()))
        })
        .collect();
    due.sort_unstable();
    let purge_now: BTreeSet<&str> = due
        .iter()
        .take(limits.max_prunes_per_sync)
        .map(|(_, name)| *name)
        .collect();
    let gone_plan = GonePlan {
        live,
        retention,
        retention_text: &platform.prune.retention_text,
        max_purges: limits.max_prunes_per_sync,
    };
    for (name, l) in gone {
        let held = kept(l).map(|why| (Action::Skip, why.to_string()));
        let plan = match (held, l.retirement()) {
            (Some(held), _) => prune_store(name, l, Some(held)),
            (None, Some(r)) => gone_plan.retired(name, l, &r, purge_now.contains(name.as_str()), options),
            (None, None) if options.no_prune => prune_store(
                name,
                l,
                Some((Action::Skip, "pruning is disabled (--no-prune)".to_string())),
            ),
            (None, None) if breaker => prune_store(
                name,
                l,
                Some((
                    Action::Blocked,
                    "prune breaker: too many stores would go at once (see the plan's blocked reasons)"
                        .to_string(),
                )),
            ),
            (None, None) if retention.is_zero() => prune_store(name, l, None),
            (None, None) => gone_plan.retire(name, l),
        };
        stores.push(plan);
    }
    stores.sort_by(|a, b| a.store.cmp(&b.store));
    Plan {
        revision,
        offline,
        summary: Summary::count(&stores),
        stores,
        blocked,
    }
}

/// The plan of a store whose file is gone, from what its namespace says.
fn gone_store(name: &str, live: &LiveStore, action: Action, reason: Option<String>) -> StorePlan {
    StorePlan {
        store: name.to_string(),
        action,
        owner: live.label(desired::OWNER_LABEL).map(String::from),
        engine: live.label(desired::ENGINE_LABEL).map(String::from),
        plan: live.label(desired::PLAN_LABEL).map(String::from),
        domain: None,
        spec_hash: None,
        reason,
        retired_at: None,
        retired_by: None,
        purge_at: None,
        wave: None,
        changes: Vec::new(),
    }
}

fn prune_store(name: &str, live: &LiveStore, held: Option<(Action, String)>) -> StorePlan {
    let ns = desired::namespace_of(name);
    let action = held.as_ref().map_or(Action::Prune, |(a, _)| *a);
    let mut plan = gone_store(name, live, action, held.map(|(_, r)| r));
    if action == Action::Prune {
        plan.changes = uninstall_and_delete(name, &ns, live);
    }
    plan
}

/// The release uninstalled (when there is one), then the namespace deleted.
fn uninstall_and_delete(name: &str, ns: &str, live: &LiveStore) -> Vec<Change> {
    let mut changes = Vec::new();
    if live.release.is_some() {
        changes.push(change(
            ObjectKind::HelmRelease,
            Some(ns),
            name,
            Action::Prune,
            None,
        ));
    }
    changes.push(change(ObjectKind::Namespace, None, ns, Action::Prune, None));
    changes
}

/// `2026-12-13T15:00:00Z`, or what stands for an unknown time.
fn time_or(at: Option<i64>, unknown: &str) -> String {
    at.map_or_else(|| unknown.to_string(), crate::text::rfc3339)
}

/// `abc123def456`: a commit as people read it.
fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// How stores whose files are gone are retired and purged.
struct GonePlan<'a> {
    live: &'a LiveState,
    retention: std::time::Duration,
    retention_text: &'a str,
    max_purges: usize,
}

impl GonePlan<'_> {
    /// When a retirement planned now is purged: `prune.retention` after the observation.
    fn purge_of_now(&self) -> Option<i64> {
        let secs = i64::try_from(self.retention.as_secs()).ok()?;
        (self.live.observed_at > 0).then(|| self.live.observed_at.saturating_add(secs))
    }

    /// An active store whose file is gone: stopped, labelled retired, its data kept.
    fn retire(&self, name: &str, l: &LiveStore) -> StorePlan {
        let purge = self.purge_of_now();
        let reason = format!(
            "its file is gone: stopped (no pod, no Ingress), its namespace, claims, credentials and release \
             history kept; purged after {} (prune.retention {}), unless its file comes back",
            time_or(purge, "the retention"),
            self.retention_text
        );
        let mut plan = gone_store(name, l, Action::Retire, Some(reason));
        plan.purge_at = purge.map(crate::text::rfc3339);
        plan.changes = retire_changes(name, l, "retire");
        plan
    }

    /// A retired store: purged when its time came (within the per-sync bound), stopped again
    /// when its release is not stopped, else left waiting.
    fn retired(
        &self,
        name: &str,
        l: &LiveStore,
        r: &crate::live::Retirement,
        purge_now: bool,
        options: PlanOptions,
    ) -> StorePlan {
        let purge_at = r.purge_at(self.retention);
        let since = format!(
            "retired at {}{}",
            time_or(r.at, "an unknown time"),
            r.by.as_deref()
                .map(|c| format!(" by {}", short(c)))
                .unwrap_or_default()
        );
        let ns = desired::namespace_of(name);
        let mut plan = gone_store(name, l, Action::Retired, None);
        plan.retired_at = r.at.map(crate::text::rfc3339);
        plan.retired_by = r.by.clone();
        plan.purge_at = purge_at.map(crate::text::rfc3339);
        let due = purge_at.is_some_and(|at| self.live.observed_at > 0 && at <= self.live.observed_at);
        let stopped = l.release.as_ref().is_none_or(|rel| {
            rel.status == "deployed" && rel.release_hash.as_deref() == Some(desired::RETIRED_RELEASE_HASH)
        });
        let purge = time_or(purge_at, "");
        if options.no_prune {
            plan.reason = Some(format!("{since}; not purged: pruning is disabled (--no-prune)"));
        } else if due && purge_now {
            plan.action = Action::Purge;
            plan.reason = Some(format!(
                "{since}; prune.retention ({}) passed at {purge}",
                self.retention_text
            ));
            plan.changes = uninstall_and_delete(name, &ns, l);
        } else if due {
            plan.reason = Some(format!(
                "{since}; its purge is due since {purge} and waits for a later sync: at most {} purges per \
                 sync (limits.maxPrunesPerSync)",
                self.max_purges
            ));
        } else if r.at.is_none() {
            // Never purged on a guess: stamped again, which starts the retention over.
            let now = self.purge_of_now();
            plan.action = Action::Retire;
            plan.purge_at = now.map(crate::text::rfc3339);
            plan.reason = Some(format!(
                "retired, but its namespace has no readable {}: stamped again; purged after {}",
                desired::RETIRED_AT_ANNOTATION,
                time_or(now, "the retention")
            ));
            plan.changes = retire_changes(name, l, "stamp");
        } else if !stopped {
            plan.action = Action::Retire;
            let status = l.release.as_ref().map(|r| r.status.as_str()).unwrap_or_default();
            plan.reason = Some(format!(
                "{since}, but its release is not stopped ({status}): stopped again; purged after {purge}"
            ));
            plan.changes = retire_changes(name, l, "stop");
        } else {
            plan.reason = Some(format!("{since}; purged after {purge}"));
        }
        plan
    }
}

/// What retiring changes: the namespace's marks, and the release upgraded to stop the store.
fn retire_changes(name: &str, l: &LiveStore, why: &str) -> Vec<Change> {
    let ns = desired::namespace_of(name);
    let mut marks = change(ObjectKind::Namespace, None, &ns, Action::Update, None);
    marks.reason = Some(match why {
        "stop" => "already marked retired".into(),
        _ => format!(
            "labelled {}={}, annotated with the time and commit of its retirement",
            desired::STATE_LABEL,
            desired::RETIRED_STATE
        ),
    });
    if why == "stop" {
        marks.action = Action::Unchanged;
    }
    let mut changes = vec![marks];
    if l.release.is_some() {
        let mut release = change(ObjectKind::HelmRelease, Some(&ns), name, Action::Update, None);
        release.reason = Some(
            "helm upgrade with its last values and retired: true: no pod, no Ingress; claims, Services and \
             credentials stay"
                .into(),
        );
        changes.push(release);
    }
    changes
}

fn change(
    kind: ObjectKind,
    namespace: Option<&str>,
    name: &str,
    action: Action,
    diff: Option<String>,
) -> Change {
    Change {
        kind,
        namespace: namespace.map(String::from),
        name: name.to_string(),
        action,
        diff,
        reason: None,
        drift: None,
    }
}

fn plan_store(
    d: &DesiredStore,
    live: Option<&LiveStore>,
    options: PlanOptions,
    platform: &PlatformConfig,
) -> StorePlan {
    let (drift_policy, retention) = (platform.drift_policy, platform.prune.retention());
    let s = &d.store;
    let mut plan = StorePlan {
        store: s.name.clone(),
        action: Action::Unchanged,
        owner: Some(s.owner.clone()),
        engine: Some(s.engine.clone()),
        plan: Some(s.plan.clone()),
        domain: Some(s.domain.clone()),
        spec_hash: Some(d.spec_hash.clone()),
        reason: None,
        retired_at: None,
        retired_by: None,
        purge_at: None,
        wave: None,
        changes: Vec::new(),
    };
    if s.suspend {
        plan.action = Action::Skip;
        plan.reason = Some("store is suspended".into());
        return plan;
    }
    if let Some(l) = live
        && l.terminating()
    {
        plan.action = Action::Blocked;
        plan.reason =
            Some("namespace is terminating: the store is re-created once its deletion completes".into());
        return plan;
    }
    let retired = live.and_then(LiveStore::retirement);
    if let (Some(r), Some(l)) = (&retired, live) {
        plan.retired_at = r.at.map(crate::text::rfc3339);
        plan.retired_by = r.by.clone();
        plan.purge_at = r.purge_at(retention).map(crate::text::rfc3339);
        if let Some(engine) = l.label(desired::ENGINE_LABEL).filter(|e| *e != s.engine) {
            plan.action = Action::Blocked;
            plan.reason = Some(format!(
                "{}: `engine: {}` is not valid yet: store {} is retired as a {engine} store, its data kept until \
                 its purge at {}; a store of another engine can take the name only after that. Write \
                 `engine: {engine}` to restore the store, or choose another name",
                s.file,
                s.engine,
                s.name,
                plan.purge_at.as_deref().unwrap_or("an unknown time"),
            ));
            return plan;
        }
    }
    plan.changes = diff::object_changes(d, live, options.create_diffs, drift_policy);
    if let Some(blocked) = plan.changes.iter().find(|c| c.action == Action::Blocked) {
        plan.action = Action::Blocked;
        plan.reason = blocked.reason.clone();
        return plan;
    }
    if retired.is_some() {
        if let Some(ns) = plan.changes.iter_mut().find(|c| c.kind == ObjectKind::Namespace) {
            ns.action = Action::Update;
            ns.reason = Some(format!(
                "restored: {}={} and the retirement annotations removed",
                desired::STATE_LABEL,
                desired::RETIRED_STATE
            ));
        }
        plan.action = Action::Restore;
        plan.reason = Some(format!(
            "its file is back: started again on the claims and credentials it kept since its retirement at {}",
            plan.retired_at.as_deref().unwrap_or("an unknown time")
        ));
        return plan;
    }
    plan.action = if live.is_none() {
        Action::Create
    } else if plan
        .changes
        .iter()
        .any(|c| !matches!(c.action, Action::Unchanged | Action::Skip))
    {
        Action::Update
    } else if let Some(held) = plan.changes.iter().find(|c| c.action == Action::Skip) {
        // Only drift that policy says to report: the store is left alone on purpose.
        plan.reason = held.reason.clone();
        Action::Skip
    } else {
        Action::Unchanged
    };
    plan
}

#[cfg(test)]
mod tests;
