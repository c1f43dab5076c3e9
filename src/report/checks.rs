//! The `storesync/plan` check run of a pull request's head (GitHub App only): `in_progress`
//! when the plan starts, `completed` with a conclusion when it ends; its summary is the plan
//! comment, and validation findings are annotations on their file and line.
//!
//! Within GitHub's limits, so GitHub never refuses it: at most [`MAX_ANNOTATIONS`] annotations
//! in all (one request; the summary counts the rest), titles of at most [`MAX_TITLE_CHARS`]
//! characters, messages of at most [`MAX_MESSAGE_BYTES`] bytes and a summary of at most
//! [`MAX_SUMMARY_CHARS`] characters, each cut at a character boundary. Catalog text in them is
//! made inert ([`super::inert`]). A run is never left `in_progress`: when completing it fails for
//! good, [`CheckRuns::complete_known`] completes it with a short summary and no annotations.
use std::collections::HashMap;
use std::sync::Mutex;

use octocrab::Octocrab;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::NotifyError;
use super::PLAN_CONTEXT;
use super::connection::{Connection, classify};
use super::inert::inert;
use crate::desired::Diagnostic;
use crate::text::{truncate, truncate_bytes};
use crate::untrusted::printable_lines;

/// Annotations storesync puts on one check run, all in one request: the Checks API takes at
/// most 50 per request, and each further request counts against the App's rate limit.
pub const MAX_ANNOTATIONS: usize = 50;
/// GitHub refuses a longer annotation title (and storesync keeps the run's title as short).
pub const MAX_TITLE_CHARS: usize = 255;
/// GitHub refuses a longer annotation message (64 KB).
pub const MAX_MESSAGE_BYTES: usize = 65_535;
/// GitHub refuses a longer check-run summary.
pub const MAX_SUMMARY_CHARS: usize = 65_535;
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
    /// finding about a whole file sits on its first line. Title and message are plain text:
    /// control characters escaped, made inert, cut to GitHub's limits.
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
            title: plain_title(&format!("storesync: {}", d.location())),
            message: truncate_bytes(&inert(&printable_lines(&message)), MAX_MESSAGE_BYTES),
        }
    }
}

/// Plain text on one line within [`MAX_TITLE_CHARS`]: control characters escaped, inert.
pub fn plain_title(text: &str) -> String {
    let flat = text.replace(['\n', '\t'], " ");
    truncate(&inert(&crate::untrusted::printable(&flat)), MAX_TITLE_CHARS)
}

/// `summary` cut to [`MAX_SUMMARY_CHARS`].
pub fn fit_summary(summary: &str) -> String {
    truncate(summary, MAX_SUMMARY_CHARS)
}

/// How a check run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    Success,
    Failure,
}

impl Conclusion {
    fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
        }
    }
}

/// What a completed check run says. Build the title with [`plain_title`], the summary with
/// [`fit_summary`], and give at most [`MAX_ANNOTATIONS`] annotations.
#[derive(Debug, Clone, Copy)]
pub struct Completion<'a> {
    pub sha: &'a str,
    pub conclusion: Conclusion,
    pub title: &'a str,
    pub summary: &'a str,
    pub annotations: &'a [Annotation],
}

/// A check run made for a head, and whether it was completed since.
#[derive(Debug, Clone, Copy)]
struct Run {
    id: u64,
    completed: bool,
}

/// The check runs made, by head commit.
#[derive(Default)]
pub struct CheckRuns {
    runs: Mutex<HashMap<String, Run>>,
}

#[derive(Deserialize)]
struct CheckRun {
    id: u64,
}

impl CheckRuns {
    /// The head's check run, `in_progress`: the one already open, or a new one.
    pub async fn start(&self, crab: &Octocrab, conn: &Connection, sha: &str) -> Result<u64, NotifyError> {
        if let Some(run) = self.get(sha).filter(|r| !r.completed) {
            return Ok(run.id);
        }
        let route = format!("/repos/{}/{}/check-runs", conn.owner(), conn.repo());
        // No output here: a create that GitHub refuses must never be for what the plan says.
        let body = json!({ "name": PLAN_CONTEXT, "head_sha": sha, "status": "in_progress" });
        let run: CheckRun = crab.post(route, Some(&body)).await.map_err(classify)?;
        self.set(
            sha,
            Run {
                id: run.id,
                completed: false,
            },
        );
        Ok(run.id)
    }

    /// Completes the check run of `done.sha` (made now if none is open) in one request: its
    /// output, its annotations and its conclusion.
    pub async fn complete(
        &self,
        crab: &Octocrab,
        conn: &Connection,
        done: &Completion<'_>,
    ) -> Result<(), NotifyError> {
        let id = self.start(crab, conn, done.sha).await?;
        self.patch(crab, conn, id, done).await
    }

    /// Completes the check run of `done.sha` only when one is open: a head storesync did not
    /// start a run for gets none.
    pub async fn complete_known(
        &self,
        crab: &Octocrab,
        conn: &Connection,
        done: &Completion<'_>,
    ) -> Result<(), NotifyError> {
        match self.get(done.sha) {
            Some(run) if !run.completed => self.patch(crab, conn, run.id, done).await,
            _ => Ok(()),
        }
    }

    async fn patch(
        &self,
        crab: &Octocrab,
        conn: &Connection,
        id: u64,
        done: &Completion<'_>,
    ) -> Result<(), NotifyError> {
        let route = format!("/repos/{}/{}/check-runs/{id}", conn.owner(), conn.repo());
        let notes = &done.annotations[..done.annotations.len().min(MAX_ANNOTATIONS)];
        let body = json!({
            "status": "completed",
            "conclusion": done.conclusion.as_str(),
            "output": { "title": done.title, "summary": done.summary, "annotations": notes },
        });
        let _: CheckRun = crab.patch(&route, Some(&body)).await.map_err(classify)?;
        self.set(done.sha, Run { id, completed: true });
        Ok(())
    }

    fn get(&self, sha: &str) -> Option<Run> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(sha)
            .copied()
    }

    fn set(&self, sha: &str, run: Run) {
        let mut runs = self
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if runs.len() >= REMEMBERED && !runs.contains_key(sha) {
            // Completed runs go first; open ones are kept while there is room, so they complete.
            runs.retain(|_, r| !r.completed);
            if runs.len() >= REMEMBERED {
                runs.clear();
            }
        }
        runs.insert(sha.to_owned(), run);
    }
}

/// The annotations of `findings` (paths from the repository's root, made by `path`): errors
/// first, at most [`MAX_ANNOTATIONS`].
pub fn annotations_of(findings: &[Diagnostic], path: impl Fn(&Diagnostic) -> String) -> Vec<Annotation> {
    let errors = findings.iter().filter(|d| d.is_error());
    let warnings = findings.iter().filter(|d| !d.is_error());
    errors
        .chain(warnings)
        .take(MAX_ANNOTATIONS)
        .map(|d| Annotation::of(&path(d), d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::inert::WORD_JOINER;

    #[test]
    fn a_finding_becomes_an_annotation_on_its_line() {
        let d = Diagnostic::error("stores/acme.yaml", (3, 7), "unknown field").hint("remove it");
        let a = Annotation::of("catalog/stores/acme.yaml", &d);
        assert_eq!((a.start_line, a.end_line), (3, 3));
        assert_eq!((a.start_column, a.end_column), (Some(7), Some(7)));
        assert_eq!(a.annotation_level, "failure");
        assert_eq!(a.title, "storesync: stores/acme.yaml:3:7");
        assert_eq!(a.message, "unknown field\nhint: remove it");
        let whole_file = Diagnostic::warning("stores/x.yml", (0, 0), "rename it");
        let a = Annotation::of("stores/x.yml", &whole_file);
        assert_eq!((a.start_line, a.start_column), (1, None));
        assert_eq!(a.annotation_level, "warning");
    }

    #[test]
    fn titles_and_messages_fit_githubs_limits_at_character_boundaries() {
        let long_name = format!("stores/{}.yaml", "é".repeat(400));
        let message = "ü".repeat(40_000) + "\x1b[2J @team";
        let a = Annotation::of(&long_name, &Diagnostic::error(&long_name, (1, 1), message));
        assert!(
            a.title.chars().count() <= MAX_TITLE_CHARS,
            "{}",
            a.title.chars().count()
        );
        assert!(a.title.ends_with('…'));
        assert!(a.message.len() <= MAX_MESSAGE_BYTES, "{}", a.message.len());
        assert!(a.message.ends_with('…'));
        let short = Annotation::of("a", &Diagnostic::error("a", (1, 1), "\x1b[2J cc @team #7"));
        assert_eq!(
            short.message,
            format!("\\u{{1b}}[2J cc @{WORD_JOINER}team #{WORD_JOINER}7")
        );
        assert_eq!(plain_title("a\nb"), "a b");
        assert_eq!(
            fit_summary(&"x".repeat(70_000)).chars().count(),
            MAX_SUMMARY_CHARS
        );
    }

    #[test]
    fn at_most_fifty_annotations_errors_first() {
        let mut findings: Vec<Diagnostic> = (1..=30)
            .map(|i| Diagnostic::warning("w.yaml", (i, 1), "w"))
            .collect();
        findings.extend((1..=170).map(|i| Diagnostic::error("e.yaml", (i, 1), "e")));
        let notes = annotations_of(&findings, |d| d.file.clone());
        assert_eq!(notes.len(), MAX_ANNOTATIONS);
        assert!(notes.iter().all(|a| a.annotation_level == "failure"));
        let few = annotations_of(&findings[..3], |d| d.file.clone());
        assert_eq!(few.len(), 3);
    }
}
