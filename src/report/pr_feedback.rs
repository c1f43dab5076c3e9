//! Feedback on a pull request besides its `storesync/plan` status: the sticky plan comment
//! (always) and the `storesync/plan` check run with line annotations (GitHub App only). Writes
//! go through the [`super::StatusReporter`]'s feedback worker, beside (never in front of) the
//! commit statuses, coalesced per pull request, so a pull request pushed ten times in a minute
//! gets its one comment edited to the latest head.
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use super::checks::{self, CheckRuns, Completion, Conclusion, MAX_ANNOTATIONS};
use super::comment::{self, CommentContext, Outcome};
use super::comments::{self, Comments};
use super::connection::Connection;
use super::{NotifyError, github::GitHubNotifier};
use crate::desired::Diagnostic;
use crate::plan::Plan;

/// One write for one pull request; a newer one for the same pull request replaces one not yet
/// written.
#[derive(Debug, Clone)]
pub struct PrFeedback {
    pub number: u64,
    pub kind: FeedbackKind,
}

#[derive(Debug, Clone)]
pub enum FeedbackKind {
    /// A plan of head `sha` started: the check run goes `in_progress`.
    Planning { sha: String },
    /// A plan of a head finished: the comment and the check run say so.
    Planned(Box<PlanReport>),
    /// A plan finished after a newer head of the pull request started (or after it closed):
    /// the comment stays the newer head's; only this head's own check run, if one was started,
    /// is completed with its result. Never coalesced with the pull request's other feedback.
    Outdated(Box<PlanReport>),
    /// The pull request was closed or merged: the comment says so and is no longer updated.
    Closed { merged: bool },
}

/// How the plan of one head went, with what the comment needs to link files.
#[derive(Debug, Clone)]
pub struct PlanReport {
    pub sha: String,
    /// The catalog's folder in the repository (`""` at its root).
    pub catalog_dir: String,
    pub from_fork: bool,
    pub result: PlanResult,
    /// The comment's Markdown once rendered, with the repository URL it links under: the
    /// comment and the check run summary use the same text, and retries reuse it.
    markdown: OnceLock<(String, String)>,
}

#[derive(Debug, Clone)]
pub enum PlanResult {
    Planned(Plan),
    Invalid(Vec<Diagnostic>),
    Failed(String),
}

impl PlanReport {
    pub fn new(sha: String, catalog_dir: String, from_fork: bool, result: PlanResult) -> PlanReport {
        PlanReport {
            sha,
            catalog_dir,
            from_fork,
            result,
            markdown: OnceLock::new(),
        }
    }

    /// The comment's Markdown, with links under `repo_url`; rendered once per report.
    pub fn markdown(&self, number: u64, repo_url: &str) -> Cow<'_, str> {
        let (url, text) = self
            .markdown
            .get_or_init(|| (repo_url.to_owned(), self.render(number, repo_url)));
        if url == repo_url {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(self.render(number, repo_url))
        }
    }

    fn render(&self, number: u64, repo_url: &str) -> String {
        let ctx = CommentContext {
            number,
            sha: &self.sha,
            repo_url,
            catalog_dir: &self.catalog_dir,
            from_fork: self.from_fork,
        };
        let outcome = match &self.result {
            PlanResult::Planned(plan) => Outcome::Planned(plan),
            PlanResult::Invalid(findings) => Outcome::Invalid(findings),
            PlanResult::Failed(message) => Outcome::Failed(message),
        };
        comment::render(&ctx, &outcome)
    }

    /// The check run's one-line title, within GitHub's limit.
    pub fn title(&self) -> String {
        let title = match &self.result {
            PlanResult::Planned(plan) => format!("plan: {}", comment::summary_line(&plan.summary)),
            PlanResult::Invalid(findings) => {
                let errors = findings.iter().filter(|d| d.is_error()).count();
                format!("invalid catalog: {errors} errors, {} findings", findings.len())
            }
            PlanResult::Failed(_) => "storesync could not plan this commit".to_owned(),
        };
        checks::plain_title(&title)
    }

    /// Whether the plan may be merged as it is.
    pub fn succeeded(&self) -> bool {
        matches!(&self.result, PlanResult::Planned(plan) if !plan.is_blocked())
    }

    fn conclusion(&self) -> Conclusion {
        if self.succeeded() {
            Conclusion::Success
        } else {
            Conclusion::Failure
        }
    }

    /// The annotations of the check run: at most [`MAX_ANNOTATIONS`], errors first.
    pub fn annotations(&self) -> Vec<checks::Annotation> {
        match &self.result {
            PlanResult::Invalid(findings) => annotations(&self.catalog_dir, findings),
            _ => Vec::new(),
        }
    }

    /// The check run's summary: the comment, after a note on the findings not annotated.
    pub fn check_summary(&self, number: u64, repo_url: &str) -> String {
        let comment = self.markdown(number, repo_url);
        let total = match &self.result {
            PlanResult::Invalid(findings) => findings.len(),
            _ => 0,
        };
        if total <= MAX_ANNOTATIONS {
            return checks::fit_summary(&comment);
        }
        let note = format!(
            "> [!NOTE]\n> {total} findings: the first {MAX_ANNOTATIONS} (errors first) are annotated on \
             their lines, as many as one check run takes; the {} more are listed below with the \
             others, as many as the comment holds, and `storesync validate` shows every one.\n\n",
            total - MAX_ANNOTATIONS
        );
        checks::fit_summary(&format!("{note}{comment}"))
    }
}

/// What a write of feedback changes on the provider; each is retried and counted on its own, so
/// a check run GitHub refuses never costs the comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackPart {
    Comment,
    CheckRun,
}

impl FeedbackPart {
    /// Every part, for metrics.
    pub const ALL: [FeedbackPart; 2] = [FeedbackPart::Comment, FeedbackPart::CheckRun];

    /// The `kind` label of `storesync_pr_feedback_writes_total`.
    pub fn label(self) -> &'static str {
        match self {
            FeedbackPart::Comment => "comment",
            FeedbackPart::CheckRun => "check_run",
        }
    }
}

type Write<'a> = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;

/// Writes [`PrFeedback`] to one provider.
pub trait PrWriter: Send + Sync + 'static {
    /// The parts `feedback` changes, in the order they are written.
    fn parts(&self, feedback: &PrFeedback) -> Vec<FeedbackPart>;

    /// Writes one part of `feedback`.
    fn write(&self, feedback: &PrFeedback, part: FeedbackPart) -> Write<'_>;

    /// After `part` of `feedback` failed for good (`why`, the error's text): a last, smaller
    /// write so nothing is left half done, such as a check run completed with a short summary
    /// instead of left `in_progress`. Nothing by default.
    fn settle(&self, feedback: &PrFeedback, part: FeedbackPart, why: &str) -> Write<'_> {
        let _ = (feedback, part, why);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The comment (and, as an App, the check run) on GitHub.
pub struct GitHubPrWriter {
    conn: Arc<Connection>,
    comments: Comments,
    checks: CheckRuns,
}

impl GitHubPrWriter {
    pub fn new(conn: Arc<Connection>) -> GitHubPrWriter {
        GitHubPrWriter {
            conn,
            comments: Comments::default(),
            checks: CheckRuns::default(),
        }
    }

    /// A writer sharing the notifier's repository and credentials.
    pub fn for_notifier(notifier: &GitHubNotifier) -> GitHubPrWriter {
        GitHubPrWriter::new(notifier.connection())
    }

    /// Writes every part of `feedback`, each tried even when one before it failed, and settles
    /// a part that failed; the first error.
    pub async fn write_all(&self, feedback: &PrFeedback) -> Result<(), NotifyError> {
        let mut result = Ok(());
        for part in self.parts(feedback) {
            let written = self.write_part(feedback, part).await;
            if let Err(why) = &written
                && let Err(e) = self.settle_part(feedback, part, &why.to_string()).await
            {
                tracing::warn!(pr = feedback.number, error = %e, "cannot settle the pull request feedback");
            }
            result = result.and(written);
        }
        result
    }

    async fn write_part(&self, feedback: &PrFeedback, part: FeedbackPart) -> Result<(), NotifyError> {
        let crab = self.conn.client().await?;
        let (conn, number) = (self.conn.as_ref(), feedback.number);
        match (&feedback.kind, part) {
            (FeedbackKind::Planning { sha }, FeedbackPart::CheckRun) => {
                self.checks.start(&crab, conn, sha).await.map(drop)
            }
            (FeedbackKind::Planned(report), FeedbackPart::Comment) => {
                let body = report.markdown(number, &conn.web_url());
                self.comments.upsert(&crab, conn, number, &body).await
            }
            (FeedbackKind::Planned(report), FeedbackPart::CheckRun) => {
                let (title, summary) = (report.title(), report.check_summary(number, &conn.web_url()));
                let notes = report.annotations();
                let done = completion(report, &title, &summary, &notes);
                self.checks.complete(&crab, conn, &done).await
            }
            (FeedbackKind::Outdated(report), FeedbackPart::CheckRun) => {
                let (title, summary) = (report.title(), report.check_summary(number, &conn.web_url()));
                let notes = report.annotations();
                let done = completion(report, &title, &summary, &notes);
                self.checks.complete_known(&crab, conn, &done).await
            }
            (FeedbackKind::Closed { merged }, FeedbackPart::Comment) => {
                let Some(found) = self.comments.find(&crab, conn, number).await? else {
                    return Ok(());
                };
                if comment::is_closed(&found.body) {
                    return Ok(());
                }
                let closed = comment::mark_closed(&found.body, *merged);
                comments::update(&crab, conn, found.id, &closed).await
            }
            // Not a part of this feedback ([`PrWriter::parts`]): nothing to write.
            (FeedbackKind::Planning { .. } | FeedbackKind::Closed { .. }, _)
            | (FeedbackKind::Outdated(_), FeedbackPart::Comment) => Ok(()),
        }
    }

    /// A check run whose completion failed for good is completed all the same, with a short
    /// summary that says why and no annotations: never left `in_progress`.
    async fn settle_part(
        &self,
        feedback: &PrFeedback,
        part: FeedbackPart,
        why: &str,
    ) -> Result<(), NotifyError> {
        let (FeedbackKind::Planned(report) | FeedbackKind::Outdated(report)) = &feedback.kind else {
            return Ok(());
        };
        if part != FeedbackPart::CheckRun {
            return Ok(());
        }
        let crab = self.conn.client().await?;
        let title = report.title();
        let summary = checks::fit_summary(&format!(
            "GitHub did not take storesync's full report for this check run ({}); the pull \
             request's plan comment, the `storesync/plan` status and `storesync plan` have it.",
            comment::escape(why)
        ));
        let done = completion(report, &title, &summary, &[]);
        self.checks.complete_known(&crab, &self.conn, &done).await
    }
}

fn completion<'a>(
    report: &'a PlanReport,
    title: &'a str,
    summary: &'a str,
    notes: &'a [checks::Annotation],
) -> Completion<'a> {
    Completion {
        sha: &report.sha,
        conclusion: report.conclusion(),
        title,
        summary,
        annotations: notes,
    }
}

impl PrWriter for GitHubPrWriter {
    /// The comment always; the check run only as a GitHub App.
    fn parts(&self, feedback: &PrFeedback) -> Vec<FeedbackPart> {
        let app = self.conn.is_app();
        match feedback.kind {
            FeedbackKind::Planning { .. } | FeedbackKind::Outdated(_) if app => vec![FeedbackPart::CheckRun],
            FeedbackKind::Planning { .. } | FeedbackKind::Outdated(_) => Vec::new(),
            FeedbackKind::Planned(_) if app => vec![FeedbackPart::Comment, FeedbackPart::CheckRun],
            FeedbackKind::Planned(_) | FeedbackKind::Closed { .. } => vec![FeedbackPart::Comment],
        }
    }

    fn write(&self, feedback: &PrFeedback, part: FeedbackPart) -> Write<'_> {
        let feedback = feedback.clone();
        Box::pin(async move { self.write_part(&feedback, part).await })
    }

    fn settle(&self, feedback: &PrFeedback, part: FeedbackPart, why: &str) -> Write<'_> {
        let (feedback, why) = (feedback.clone(), why.to_owned());
        Box::pin(async move { self.settle_part(&feedback, part, &why).await })
    }
}

/// Annotations of the findings, paths from the repository's root: at most
/// [`MAX_ANNOTATIONS`], errors first.
pub fn annotations(catalog_dir: &str, findings: &[Diagnostic]) -> Vec<checks::Annotation> {
    checks::annotations_of(findings, |d| comment::repo_path(catalog_dir, &d.file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_is_rendered_once_per_report_and_repository() {
        let report = PlanReport::new(
            "a".repeat(40),
            String::new(),
            false,
            PlanResult::Failed("boom".into()),
        );
        let url = "https://github.com/acme/stores";
        let (first, second) = (report.markdown(7, url), report.markdown(7, url));
        assert!(matches!((&first, &second), (Cow::Borrowed(a), Cow::Borrowed(b)) if std::ptr::eq(*a, *b)));
        assert!(first.contains("boom"));
        let elsewhere = report.markdown(7, "https://ghe.example.com/acme/stores");
        assert!(
            matches!(elsewhere, Cow::Owned(_)),
            "another repository gets its own links"
        );
    }

    #[test]
    fn the_summary_counts_the_findings_not_annotated() {
        let findings: Vec<Diagnostic> = (1..=200)
            .map(|i| Diagnostic::error(format!("stores/s{i:03}.yaml"), (1, 1), "bad"))
            .collect();
        let report = PlanReport::new(
            "b".repeat(40),
            String::new(),
            false,
            PlanResult::Invalid(findings),
        );
        assert_eq!(report.annotations().len(), MAX_ANNOTATIONS);
        let summary = report.check_summary(3, "https://github.com/acme/stores");
        assert!(summary.contains("200 findings: the first 50"), "{summary}");
        assert!(summary.contains("the 150 more are listed below"), "{summary}");
        assert!(summary.chars().count() <= checks::MAX_SUMMARY_CHARS);
        // All 200 fit in the comment: the findings may use its whole budget.
        assert!(summary.contains("stores/s200.yaml:1:1"), "{summary}");
        let few = PlanReport::new(
            "c".repeat(40),
            String::new(),
            false,
            PlanResult::Failed("x".into()),
        );
        assert_eq!(few.check_summary(3, "u"), few.markdown(3, "u"));
    }
}
