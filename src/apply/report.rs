//! The result of applying a plan, as data: per store an outcome, summed up, and the one-line
//! description commit statuses carry.
use serde::{Deserialize, Serialize};

use crate::source::Revision;
use crate::text::truncate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Pruned,
    Unchanged,
    Skipped,
    Blocked,
    Failed,
    /// Stopped in this sync, its data kept (its file is gone).
    Retired,
    /// Started again in this sync on the data it kept while retired.
    Restored,
    /// Uninstalled and deleted in this sync, its retention over.
    Purged,
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
            Outcome::Retired => "retired",
            Outcome::Restored => "restored",
            Outcome::Purged => "purged",
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
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retired: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restored: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub purged: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ResultSummary {
    /// Whether the sync changed some store (applied, restored, retired, pruned or purged it).
    pub fn wrote(&self) -> bool {
        self.applied + self.pruned + self.retired + self.restored + self.purged > 0
    }
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

    /// At most 140 characters for a commit status: `applied 2, pruned 1, unchanged 40` (with
    /// `restored`, `retired` and `purged` counts when there are some), and the
    /// first reason when something failed or was held back.
    pub fn description(&self) -> String {
        let s = &self.summary;
        let mut text = format!("applied {}, pruned {}", s.applied, s.pruned);
        for (n, what) in [
            (s.restored, "restored"),
            (s.retired, "retired"),
            (s.purged, "purged"),
        ] {
            if n > 0 {
                text.push_str(&format!(", {what} {n}"));
            }
        }
        text.push_str(&format!(", unchanged {}", s.unchanged));
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

pub(super) fn result(store: &str, outcome: Outcome, detail: Option<String>) -> StoreResult {
    StoreResult {
        store: store.to_string(),
        outcome,
        detail,
        transient: false,
    }
}
