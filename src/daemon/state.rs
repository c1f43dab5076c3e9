//! What the daemon knows for people and scripts: the stores as last observed, the last syncs
//! and the plan or result of recent commits. Memory only: the cluster holds the live state, so
//! a restart loses nothing that the next sync does not rebuild.
use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::apply::{Outcome, SyncReport};
use crate::desired::{COMMIT_ANNOTATION, Catalog, ENGINE_LABEL, OWNER_LABEL, PLAN_LABEL};
use crate::live::LiveState;

const KEEP_SYNCS: usize = 50;
const KEEP_COMMITS: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreView {
    pub name: String,
    pub owner: Option<String>,
    pub engine: Option<String>,
    pub plan: Option<String>,
    pub domain: Option<String>,
    /// in-sync, applied, failed, blocked, suspended, pruned, terminating, pending, unmanaged
    #[serde(deserialize_with = "known_label")]
    pub state: Label,
    /// Commit last applied to the store.
    pub commit: Option<String>,
    pub release: Option<String>,
    /// Ready workloads / workloads.
    pub ready: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    pub sha: Option<String>,
    #[serde(deserialize_with = "known_label")]
    pub reason: Label,
    /// Unix seconds.
    pub started: u64,
    pub seconds: f64,
    /// success, failure or error.
    #[serde(deserialize_with = "known_label")]
    pub state: Label,
    pub description: String,
    /// The head synced was not a descendant of the one synced before: the branch moved back
    /// or was rewritten.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_fast_forward: bool,
}

/// The verdict last reached for a head of the tracked branch: a poll that finds the same head
/// and reaches the same verdict reports nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastResult {
    pub sha: String,
    #[serde(deserialize_with = "known_label")]
    pub state: Label,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitRecord {
    pub sha: String,
    /// sync or plan.
    #[serde(deserialize_with = "known_label")]
    pub kind: Label,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    pub finished: u64,
    #[serde(deserialize_with = "known_label")]
    pub state: Label,
    pub description: String,
    /// The plan as text (what a reviewer reads).
    pub plan: String,
    /// Per-store results of a sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<SyncReport>,
    /// Validation findings of an invalid catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// A fixed word of a record (a plain `&'static str` field would make serde borrow from its input).
type Label = &'static str;

/// Every word a record uses for a kind, reason or state: records read back from the cluster
/// carry only these.
const LABELS: [&str; 21] = [
    "sync",
    "plan",
    "startup",
    "poll",
    "webhook",
    "file-watch",
    "retry",
    "elected",
    "success",
    "failure",
    "error",
    "in-sync",
    "applied",
    "failed",
    "blocked",
    "suspended",
    "pruned",
    "terminating",
    "pending",
    "unmanaged",
    "skipped",
];

fn known_label<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let word = String::deserialize(d)?;
    LABELS
        .iter()
        .find(|l| **l == word)
        .copied()
        .ok_or_else(|| serde::de::Error::custom(format!("unknown state or reason `{word}`")))
}

/// What the daemon knows, as one value: what the leader shares with the other replicas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Records {
    /// Oldest first.
    pub syncs: Vec<SyncRecord>,
    /// Oldest first.
    pub commits: Vec<CommitRecord>,
    pub stores: Vec<StoreView>,
    pub last_result: Option<LastResult>,
}

#[derive(Default)]
pub struct DaemonState {
    ready: AtomicBool,
    stores: RwLock<Vec<StoreView>>,
    syncs: RwLock<VecDeque<SyncRecord>>,
    commits: RwLock<VecDeque<CommitRecord>>,
    last_result: RwLock<Option<LastResult>>,
}

impl DaemonState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// The cluster stopped answering: not ready until it is observed again.
    pub fn set_unready(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }

    pub fn stores(&self) -> Vec<StoreView> {
        self.stores.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn set_stores(&self, stores: Vec<StoreView>) {
        if let Ok(mut s) = self.stores.write() {
            *s = stores;
        }
    }

    /// Newest first.
    pub fn syncs(&self) -> Vec<SyncRecord> {
        self.syncs
            .read()
            .map(|s| s.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    pub fn record_sync(&self, record: SyncRecord) {
        if let Ok(mut s) = self.syncs.write() {
            s.push_back(record);
            while s.len() > KEEP_SYNCS {
                s.pop_front();
            }
        }
    }

    /// The newest record of `sha` (a sync wins over a plan of the same commit).
    pub fn commit(&self, sha: &str) -> Option<CommitRecord> {
        let commits = self.commits.read().ok()?;
        let matching = || {
            commits
                .iter()
                .rev()
                .filter(|c| c.sha == sha || (sha.len() >= 7 && c.sha.starts_with(sha)))
        };
        matching()
            .find(|c| c.kind == "sync")
            .or_else(|| matching().next())
            .cloned()
    }

    pub fn record_commit(&self, record: CommitRecord) {
        if let Ok(mut c) = self.commits.write() {
            c.push_back(record);
            while c.len() > KEEP_COMMITS {
                c.pop_front();
            }
        }
    }

    /// Everything recorded, oldest first.
    pub fn records(&self) -> Records {
        Records {
            syncs: self
                .syncs
                .read()
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
            commits: self
                .commits
                .read()
                .map(|c| c.iter().cloned().collect())
                .unwrap_or_default(),
            stores: self.stores(),
            last_result: self.last_result(),
        }
    }

    /// Takes the records of another replica (the leader's); plans this replica ran itself and
    /// the leader does not know are kept.
    pub fn adopt(&self, records: Records) {
        let mut commits: Vec<CommitRecord> = records.commits;
        if let Ok(mine) = self.commits.read() {
            let own_plans = mine
                .iter()
                .filter(|c| c.kind == "plan" && !commits.contains(c))
                .cloned()
                .collect::<Vec<_>>();
            commits.extend(own_plans);
        }
        commits.sort_by_key(|c| c.finished);
        let skip = commits.len().saturating_sub(KEEP_COMMITS);
        if let Ok(mut c) = self.commits.write() {
            *c = commits.into_iter().skip(skip).collect();
        }
        let skip = records.syncs.len().saturating_sub(KEEP_SYNCS);
        if let Ok(mut s) = self.syncs.write() {
            *s = records.syncs.into_iter().skip(skip).collect();
        }
        if !records.stores.is_empty() {
            self.set_stores(records.stores);
        }
        if let Ok(mut l) = self.last_result.write() {
            *l = records.last_result;
        }
    }

    pub fn last_result(&self) -> Option<LastResult> {
        self.last_result.read().ok().and_then(|l| l.clone())
    }

    pub fn set_last_result(&self, result: LastResult) {
        if let Ok(mut l) = self.last_result.write() {
            *l = Some(result);
        }
    }
}

/// The store table from live state, the catalog of the last sync and its results.
pub fn store_views(
    live: &LiveState,
    catalog: Option<&Catalog>,
    report: Option<&SyncReport>,
    ready: &BTreeMap<String, (usize, usize)>,
) -> Vec<StoreView> {
    let mut views: BTreeMap<String, StoreView> = BTreeMap::new();
    for (name, l) in &live.stores {
        let ns = l.namespace.metadata.name.clone().unwrap_or_default();
        views.insert(
            name.clone(),
            StoreView {
                name: name.clone(),
                owner: l.label(OWNER_LABEL).map(String::from),
                engine: l.label(ENGINE_LABEL).map(String::from),
                plan: l.label(PLAN_LABEL).map(String::from),
                domain: None,
                state: if l.terminating() { "terminating" } else { "in-sync" },
                commit: l.annotation(COMMIT_ANNOTATION).map(String::from),
                release: l
                    .release
                    .as_ref()
                    .map(|r| format!("{} (rev {})", r.status, r.revision)),
                ready: ready.get(&ns).map(|(r, t)| format!("{r}/{t}")),
                last_error: l
                    .annotation(crate::apply::LAST_ERROR_ANNOTATION)
                    .map(String::from),
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
                state: "pending",
                commit: None,
                release: None,
                ready: None,
                last_error: None,
            });
            view.owner = Some(s.owner.clone());
            view.engine = Some(s.engine.clone());
            view.plan = Some(s.plan.clone());
            view.domain = Some(s.domain.clone());
            if s.suspend {
                view.state = "suspended";
            }
        }
    }
    if let Some(report) = report {
        for r in &report.stores {
            let Some(view) = views.get_mut(&r.store) else {
                continue;
            };
            view.state = match r.outcome {
                Outcome::Applied => "applied",
                Outcome::Pruned => "pruned",
                Outcome::Failed => "failed",
                Outcome::Blocked => "blocked",
                Outcome::Skipped if view.state == "suspended" => "suspended",
                Outcome::Skipped => "skipped",
                Outcome::Unchanged => view.state,
            };
            if r.outcome == Outcome::Failed {
                view.last_error = r.detail.clone();
            }
        }
    }
    views.into_values().collect()
}
