//! The `storesync/plan` check run of a pull request's head (GitHub App only): `in_progress`
//! when the plan starts, `completed` with `success` or `failure` when it ends; its summary is the
//! plan comment, and each validation finding an annotation on its file and line.
use std::collections::HashMap;
use std::sync::Mutex;

use octocrab::Octocrab;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::NotifyError;
use super::PLAN_CONTEXT;
use super::connection::{Connection, classify};
use crate::desired::Diagnostic;

/// The Checks API takes at most 50 annotations per request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
/// Check runs remembered for their head; older ones are created anew if ever needed.
const REMEMBERED: usize = 1024;

/// One finding on a line of a file, as the Checks API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotation {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<usize>,
    /// `failure` or `warning`.
    pub annotation_level: &'static str,
    pub title: String,
    pub message: String,
}

impl Annotation {
    /// The annotation of finding `d` in the file at `path` (from the repository's root). A
    /// finding about a whole file sits on its first line.
    pub fn of(path: &str, d: &Diagnostic) -> Annotation {
        let line = d.line.max(1);
        let column = (d.line > 0 && d.column > 0).then_some(d.column);
        let mut message = d.message.clone();
        if let Some(hint) = &d.hint {
            message.push_str("\nhint: ");
            message.push_str(hint);
        }
        Annotation {
            path: path.to_owned(),
            start_line: line,
            end_line: line,
            start_column: column,
            end_column: column,
            annotation_level: if d.is_error() { "failure" } else { "warning" },
            title: format!("storesync: {}", d.location()),
            message,
        }
    }
}

/// What a completed check run says.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    pub sha: &'a str,
    pub success: bool,
    pub title: &'a str,
    pub summary: &'a str,
    pub annotations: &'a [Annotation],
}

/// How far the check run of one head got, so a retried write neither makes a second run nor
/// sends a batch of annotations twice.
#[derive(Debug, Clone, Copy)]
struct Progress {
    id: u64,
    batches_sent: usize,
}

/// The check runs made, by head commit.
#[derive(Default)]
pub struct CheckRuns {
    runs: Mutex<HashMap<String, Progress>>,
}

#[derive(Deserialize)]
struct CheckRun {
    id: u64,
}

impl CheckRuns {
    /// Creates the head's check run, `in_progress`.
    pub async fn start(&self, crab: &Octocrab, conn: &Connection, sha: &str) -> Result<u64, NotifyError> {
        if let Some(known) = self.get(sha) {
            return Ok(known.id);
        }
        let route = format!("/repos/{}/{}/check-runs", conn.owner(), conn.repo());
        let body = json!({ "name": PLAN_CONTEXT, "head_sha": sha, "status": "in_progress" });
        let run: CheckRun = crab.post(route, Some(&body)).await.map_err(classify)?;
        self.set(
            sha,
            Progress {
                id: run.id,
                batches_sent: 0,
            },
        );
        Ok(run.id)
    }

    /// Completes the check run of `finished.sha` (made now if its start was never written):
    /// `title` and `summary` as its output, the annotations in batches of
    /// [`ANNOTATIONS_PER_REQUEST`], the last request with the conclusion.
    pub async fn finish(
        &self,
        crab: &Octocrab,
        conn: &Connection,
        finished: &Finished<'_>,
    ) -> Result<(), NotifyError> {
        let Finished {
            sha,
            success,
            title,
            summary,
            annotations: notes,
        } = *finished;
        let id = self.start(crab, conn, sha).await?;
        let batches: Vec<&[Annotation]> = if notes.is_empty() {
            vec![&[]]
        } else {
            notes.chunks(ANNOTATIONS_PER_REQUEST).collect()
        };
        let route = format!("/repos/{}/{}/check-runs/{id}", conn.owner(), conn.repo());
        let conclusion = if success { "success" } else { "failure" };
        let from = self.get(sha).map_or(0, |p| p.batches_sent);
        for (i, batch) in batches.iter().enumerate().skip(from) {
            let mut body = json!({
                "output": { "title": title, "summary": summary, "annotations": batch },
            });
            if i + 1 == batches.len() {
                body["status"] = json!("completed");
                body["conclusion"] = json!(conclusion);
            }
            let _: CheckRun = crab.patch(&route, Some(&body)).await.map_err(classify)?;
            self.set(
                sha,
                Progress {
                    id,
                    batches_sent: i + 1,
                },
            );
        }
        Ok(())
    }

    fn get(&self, sha: &str) -> Option<Progress> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(sha)
            .copied()
    }

    fn set(&self, sha: &str, progress: Progress) {
        let mut runs = self
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if runs.len() >= REMEMBERED && !runs.contains_key(sha) {
            runs.clear();
        }
        runs.insert(sha.to_owned(), progress);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_becomes_an_annotation_on_its_line() {
        let d = Diagnostic::error("stores/acme.yaml", (3, 7), "unknown field").hint("remove it");
        let a = Annotation::of("catalog/stores/acme.yaml", &d);
        assert_eq!(a.path, "catalog/stores/acme.yaml");
        assert_eq!((a.start_line, a.end_line, a.start_column), (3, 3, Some(7)));
        assert_eq!(a.annotation_level, "failure");
        assert_eq!(a.message, "unknown field\nhint: remove it");
        let whole = Annotation::of(
            "stores/x.txt",
            &Diagnostic::warning("stores/x.txt", (0, 0), "odd"),
        );
        assert_eq!((whole.start_line, whole.start_column), (1, None));
        assert_eq!(whole.annotation_level, "warning");
        let json = serde_json::to_value(&whole).unwrap();
        assert!(json.get("start_column").is_none(), "{json}");
    }
}
