//! The store table people and scripts read (`storesync status`, the status page, `/api/stores`):
//! each store's state from live state, the catalog of the last sync and its results.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apply::{Outcome, SyncReport};
use crate::desired::{
    COMMIT_ANNOTATION, Catalog, ENGINE_LABEL, LAST_ERROR_ANNOTATION, OWNER_LABEL, PLAN_LABEL,
    PURGE_AT_ANNOTATION, RETIRED_AT_ANNOTATION,
};
use crate::live::LiveState;
use crate::live::health::Health;

/// What the status page says of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreState {
    InSync,
    Applied,
    Failed,
    Blocked,
    Suspended,
    Skipped,
    Pruned,
    Terminating,
    Pending,
    /// Its file is gone: stopped, its data kept until `purgeAt`.
    Retired,
    Purged,
    /// Its update waits for a later wave of a rollout.
    Waiting,
    /// Its update was refused by a halted rollout, until a commit changes it.
    Held,
}

impl StoreState {
    /// The word for people and scripts, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreState::InSync => "in-sync",
            StoreState::Applied => "applied",
            StoreState::Failed => "failed",
            StoreState::Blocked => "blocked",
            StoreState::Suspended => "suspended",
            StoreState::Skipped => "skipped",
            StoreState::Pruned => "pruned",
            StoreState::Terminating => "terminating",
            StoreState::Pending => "pending",
            StoreState::Retired => "retired",
            StoreState::Purged => "purged",
            StoreState::Waiting => "waiting",
            StoreState::Held => "held",
        }
    }
}

impl std::fmt::Display for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreView {
    pub name: String,
    pub owner: Option<String>,
    pub engine: Option<String>,
    pub plan: Option<String>,
    pub domain: Option<String>,
    pub state: StoreState,
    /// Commit last applied to the store.
    pub commit: Option<String>,
    pub release: Option<String>,
    /// Ready workloads / workloads.
    pub ready: Option<String>,
    pub last_error: Option<String>,
    /// Whether the store serves, from the objects its release rendered; `None` before the first
    /// observation of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Why it is not Healthy: the first bad object and what is wrong with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// A retired store: when it was retired and when it is purged (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_at: Option<String>,
    /// Where the store stands in a rollout: its wave, or why its update waits or is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
}

/// The store table from live state, the catalog of the last sync, its results and its step
/// of a rollout.
pub fn store_views(
    live: &LiveState,
    catalog: Option<&Catalog>,
    report: Option<&SyncReport>,
    ready: &BTreeMap<String, (usize, usize)>,
    rollout: Option<(&crate::plan::Plan, &crate::rollout::Step)>,
) -> Vec<StoreView> {
    let mut views: BTreeMap<String, StoreView> = BTreeMap::new();
    for (name, l) in &live.stores {
        let ns = l.namespace.metadata.name.clone().unwrap_or_default();
        let retired = l.retirement().is_some();
        views.insert(
            name.clone(),
            StoreView {
                name: name.clone(),
                owner: l.label(OWNER_LABEL).map(String::from),
                engine: l.label(ENGINE_LABEL).map(String::from),
                plan: l.label(PLAN_LABEL).map(String::from),
                domain: None,
                state: if l.terminating() {
                    StoreState::Terminating
                } else if retired {
                    StoreState::Retired
                } else {
                    StoreState::InSync
                },
                commit: l.annotation(COMMIT_ANNOTATION).map(String::from),
                release: l
                    .release
                    .as_ref()
                    .map(|r| format!("{} (rev {})", r.status, r.revision)),
                ready: ready.get(&ns).map(|(r, t)| format!("{r}/{t}")),
                last_error: l.annotation(LAST_ERROR_ANNOTATION).map(String::from),
                health: l.health.as_ref().map(|h| h.health),
                health_reason: l.health.as_ref().and_then(|h| h.reason.clone()),
                retired_at: retired
                    .then(|| l.annotation(RETIRED_AT_ANNOTATION).map(String::from))
                    .flatten(),
                purge_at: retired
                    .then(|| l.annotation(PURGE_AT_ANNOTATION).map(String::from))
                    .flatten(),
                rollout: None,
            },
        );
    }
    if let Some(catalog) = catalog {
        for s in &catalog.stores {
            let view = views.entry(s.name.clone()).or_insert_with(|| StoreView {
                name: s.name.clone(),
                owner: None,
                engine: None,
                plan: None,
                domain: None,
                state: StoreState::Pending,
                commit: None,
                release: None,
                ready: None,
                last_error: None,
                health: None,
                health_reason: None,
                retired_at: None,
                purge_at: None,
                rollout: None,
            });
            view.owner = Some(s.owner.clone());
            view.engine = Some(s.engine.clone());
            view.plan = Some(s.plan.clone());
            view.domain = Some(s.domain.clone());
            if s.suspend {
                view.state = StoreState::Suspended;
                view.health = Some(Health::Suspended);
                view.health_reason = None;
            }
        }
    }
    if let Some(report) = report {
        for r in &report.stores {
            let Some(view) = views.get_mut(&r.store) else {
                continue;
            };
            view.state = match r.outcome {
                Outcome::Applied => StoreState::Applied,
                Outcome::Pruned => StoreState::Pruned,
                Outcome::Restored => StoreState::Applied,
                Outcome::Retired => StoreState::Retired,
                Outcome::Purged => StoreState::Purged,
                Outcome::Failed => StoreState::Failed,
                Outcome::Blocked => StoreState::Blocked,
                Outcome::Skipped if matches!(view.state, StoreState::Suspended | StoreState::Retired) => {
                    view.state
                }
                Outcome::Skipped => StoreState::Skipped,
                Outcome::Unchanged => view.state,
            };
            if r.outcome == Outcome::Failed {
                view.last_error = r.detail.clone();
            }
        }
    }
    if let Some((plan, step)) = rollout {
        for s in &plan.stores {
            let Some(view) = views.get_mut(&s.store) else {
                continue;
            };
            if let Some(reason) = step.hold.get(&s.store) {
                view.state = if reason.starts_with(crate::rollout::HELD) {
                    StoreState::Held
                } else {
                    StoreState::Waiting
                };
                view.rollout = Some(reason.clone());
            } else if let Some(wave) = &s.wave {
                view.rollout = Some(format!("updated in {wave}"));
            }
        }
    }
    views.into_values().collect()
}
