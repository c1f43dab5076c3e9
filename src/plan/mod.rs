//! The plan: per store and object, what a sync would do. Pure: built from desired and live
//! state, no I/O. The same value feeds the CLI, logs, metrics, the status page and statuses.
mod diff;
mod output;

use std::collections::BTreeSet;

use rayon::prelude::*;
use serde::Serialize;

use crate::desired::model::DriftPolicy;
use crate::desired::{self, Catalog, DesiredStore, Limits, PlatformConfig};
use crate::live::{Drift, LiveState, LiveStore};
use crate::source::Revision;

pub use diff::{DRIFT_REASON, normalize, project, to_yaml};
pub use output::{render_json, render_text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Prune,
    /// Left alone on purpose (a suspended store).
    Skip,
    /// Would change, but a guard stops it; `reason` says which.
    Blocked,
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
            } += 1;
        }
        s
    }

    /// One line such as `2 to create, 1 to update, 0 to prune, 40 unchanged`.
    pub fn line(&self) -> String {
        let mut parts = vec![
            format!("{} to create", self.create),
            format!("{} to update", self.update),
            format!("{} to prune", self.prune),
            format!("{} unchanged", self.unchanged),
        ];
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
    let live_stores = live.stores.values().filter(|l| !l.terminating()).count();
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
        .map(|d| plan_store(d, live.stores.get(&d.store.name), options, platform.drift_policy))
        .collect();
    let wanted = desired.iter().map(|d| d.store.name.as_str()).collect();
    finish(revision, stores, wanted, live, &platform.limits, options, offline)
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
            plan_store(
                &d,
                live.stores.get(&s.name),
                options,
                catalog.platform.drift_policy,
            )
        })
        .collect();
    let wanted = catalog.stores.iter().map(|s| s.name.as_str()).collect();
    finish(
        revision,
        stores,
        wanted,
        live,
        &catalog.platform.limits,
        options,
        offline,
    )
}

/// Adds the prunes of stores in `live` but not `wanted`, guarded, and sums up.
fn finish(
    revision: Revision,
    mut stores: Vec<StorePlan>,
    wanted: BTreeSet<&str>,
    live: &LiveState,
    limits: &Limits,
    options: PlanOptions,
    offline: bool,
) -> Plan {
    let gone: Vec<(&String, &LiveStore)> = live
        .stores
        .iter()
        .filter(|(name, _)| !wanted.contains(name.as_str()))
        .collect();
    let mut blocked = Vec::new();
    let prunable: Vec<&(&String, &LiveStore)> = gone
        .iter()
        .filter(|(_, l)| !l.terminating() && l.label(desired::PROTECTED_LABEL) != Some("true"))
        .collect();
    let held = prune_breaker(prunable.len(), live, limits, options);
    let breaker = !held.is_empty();
    if breaker && !options.no_prune {
        blocked.extend(held);
    }
    for (name, l) in gone {
        let reason = if l.terminating() {
            Some((
                Action::Skip,
                "namespace is terminating: deletion in progress".to_string(),
            ))
        } else if l.label(desired::PROTECTED_LABEL) == Some("true") {
            // Kept on purpose, not an error: later syncs stay green while the store lives on.
            Some((
                Action::Skip,
                "store is protected: its file is gone but the store is kept".to_string(),
            ))
        } else if options.no_prune {
            Some((Action::Skip, "pruning is disabled (--no-prune)".to_string()))
        } else if breaker {
            Some((
                Action::Blocked,
                "prune breaker: too many stores would go at once (see the plan's blocked reasons)"
                    .to_string(),
            ))
        } else {
            None
        };
        stores.push(prune_store(name, l, reason));
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

fn prune_store(name: &str, live: &LiveStore, held: Option<(Action, String)>) -> StorePlan {
    let ns = desired::namespace_of(name);
    let action = held.as_ref().map_or(Action::Prune, |(a, _)| *a);
    let mut changes = Vec::new();
    if action == Action::Prune {
        if live.release.is_some() {
            changes.push(change(
                ObjectKind::HelmRelease,
                Some(&ns),
                name,
                Action::Prune,
                None,
            ));
        }
        changes.push(change(ObjectKind::Namespace, None, &ns, Action::Prune, None));
    }
    StorePlan {
        store: name.to_string(),
        action,
        owner: live.label(desired::OWNER_LABEL).map(String::from),
        engine: live.label(desired::ENGINE_LABEL).map(String::from),
        plan: live.label(desired::PLAN_LABEL).map(String::from),
        domain: None,
        spec_hash: None,
        reason: held.map(|(_, r)| r),
        changes,
    }
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
    drift_policy: DriftPolicy,
) -> StorePlan {
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
    plan.changes = diff::object_changes(d, live, options.create_diffs, drift_policy);
    if let Some(blocked) = plan.changes.iter().find(|c| c.action == Action::Blocked) {
        plan.action = Action::Blocked;
        plan.reason = blocked.reason.clone();
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
