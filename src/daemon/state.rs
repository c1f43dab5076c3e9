//! What the daemon knows for people and scripts: the stores as last observed, the last syncs
//! and the plan or result of recent commits. Kept in memory, and written by the leader to the
//! cluster as [`Records`] (`persist.rs`), so a restart or a failover keeps the pages.
use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::apply::{Outcome, SyncReport};
use crate::live::health::StoreHealth;
use crate::report::{StatusState, StoreView};

use super::queue::Reason;

const KEEP_SYNCS: usize = 50;
const KEEP_COMMITS: usize = 200;

/// How a sync or a plan ended: the label of records and metrics, and its commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultState {
    Success,
    /// The catalog or a store failed, or something was held back.
    Failure,
    /// storesync could not finish.
    Error,
    /// A rollout carries the commit's updates wave by wave: later syncs finish it.
    Pending,
}

impl ResultState {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultState::Success => "success",
            ResultState::Failure => "failure",
            ResultState::Error => "error",
            ResultState::Pending => "pending",
        }
    }

    pub fn status(self) -> StatusState {
        match self {
            ResultState::Success => StatusState::Success,
            ResultState::Failure => StatusState::Failure,
            ResultState::Error => StatusState::Error,
            ResultState::Pending => StatusState::Pending,
        }
    }
}

impl std::fmt::Display for ResultState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What produced a commit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitKind {
    /// A sync of the tracked branch.
    Sync,
    /// A plan of a pull request's head.
    Plan,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    pub sha: Option<String>,
    pub reason: Reason,
    /// Unix seconds.
    pub started: u64,
    pub seconds: f64,
    pub state: ResultState,
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
    pub state: ResultState,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitRecord {
    pub sha: String,
    pub kind: CommitKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    pub finished: u64,
    pub state: ResultState,
    pub description: String,
    /// The plan as text (what a reviewer reads).
    pub plan: String,
    /// Per-store results of a sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<SyncReport>,
    /// Validation findings of an invalid catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
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

/// What one sync did to one store, for the store's page.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSync {
    pub sha: String,
    /// Unix seconds.
    pub finished: u64,
    /// The sync's verdict and description, as its commit status said.
    pub state: ResultState,
    pub description: String,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

#[derive(Default)]
pub struct DaemonState {
    ready: AtomicBool,
    stores: RwLock<Vec<StoreView>>,
    /// The health last judged per store, with each object's (the table keeps only the verdict).
    /// Memory only: a replica that did not sync has none.
    store_health: RwLock<BTreeMap<String, StoreHealth>>,
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

    /// Replaces the health kept per store (set with the store table after a sync).
    pub fn set_store_health(&self, health: BTreeMap<String, StoreHealth>) {
        if let Ok(mut h) = self.store_health.write() {
            *h = health;
        }
    }

    pub fn store_health(&self, store: &str) -> Option<StoreHealth> {
        self.store_health.read().ok()?.get(store).cloned()
    }

    /// The last `keep` syncs whose results name `store`, newest first.
    pub fn store_syncs(&self, store: &str, keep: usize) -> Vec<StoreSync> {
        let Ok(commits) = self.commits.read() else {
            return Vec::new();
        };
        commits
            .iter()
            .rev()
            .filter(|c| c.kind == CommitKind::Sync)
            .filter_map(|c| {
                let result = c.report.as_ref()?.stores.iter().find(|r| r.store == store)?;
                Some(StoreSync {
                    sha: c.sha.clone(),
                    finished: c.finished,
                    state: c.state,
                    description: c.description.clone(),
                    outcome: result.outcome,
                    detail: result.detail.clone(),
                })
            })
            .take(keep)
            .collect()
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
            .find(|c| c.kind == CommitKind::Sync)
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
                .filter(|c| c.kind == CommitKind::Plan && !commits.contains(c))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::StoreState;
    use serde_json::json;

    #[test]
    fn records_keep_their_json_and_read_back() {
        let sync = SyncRecord {
            sha: Some("a".repeat(40)),
            reason: Reason::FileWatch,
            started: 7,
            seconds: 0.5,
            state: ResultState::Failure,
            description: "1 failed".into(),
            non_fast_forward: false,
        };
        let text = serde_json::to_value(&sync).unwrap();
        assert_eq!(
            text,
            json!({"sha": "a".repeat(40), "reason": "file-watch", "started": 7, "seconds": 0.5,
                   "state": "failure", "description": "1 failed"})
        );
        assert_eq!(serde_json::from_value::<SyncRecord>(text).unwrap(), sync);

        let commit = CommitRecord {
            sha: "b".repeat(40),
            kind: CommitKind::Plan,
            pull_request: Some(3),
            finished: 9,
            state: ResultState::Success,
            description: "plan: 1 to create".into(),
            plan: "+ acme".into(),
            report: None,
            errors: Vec::new(),
        };
        let text = serde_json::to_value(&commit).unwrap();
        assert_eq!(text["kind"], "plan");
        assert_eq!(text["state"], "success");
        assert_eq!(serde_json::from_value::<CommitRecord>(text).unwrap(), commit);

        for (state, word) in [
            (StoreState::InSync, "in-sync"),
            (StoreState::Terminating, "terminating"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), word);
            assert_eq!(state.as_str(), word);
        }
    }
}
