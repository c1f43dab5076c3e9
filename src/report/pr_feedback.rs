//! Feedback on a pull request besides its `storesync/plan` status: the sticky plan comment
//! (always) and the `storesync/plan` check run with line annotations (GitHub App only). Writes
//! go through the [`super::StatusReporter`]'s queue, coalesced per pull request, so a pull
//! request pushed ten times in a minute gets its one comment edited to the latest head.
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::json;

use super::checks::{self, CheckRuns, Finished};
use super::comment::{self, CLOSED_MARKER, CommentContext, MARKER, Outcome};
use super::connection::{Connection, classify};
use super::identity::CommentAuthor;
use super::{NotifyError, github::GitHubNotifier};
use crate::desired::Diagnostic;
use crate::plan::Plan;
use crate::untrusted::printable;

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
    /// A plan of a head finished.
    Planned(Box<PlanReport>),
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

    /// The check run's one-line title.
    pub fn title(&self) -> String {
        match &self.result {
            PlanResult::Planned(plan) => format!("plan: {}", comment::summary_line(&plan.summary)),
            PlanResult::Invalid(findings) => {
                let errors = findings.iter().filter(|d| d.is_error()).count();
                format!("invalid catalog: {errors} errors, {} findings", findings.len())
            }
            PlanResult::Failed(_) => "storesync could not plan this commit".to_owned(),
        }
    }

    /// Whether the plan may be merged as it is.
    pub fn succeeded(&self) -> bool {
        matches!(&self.result, PlanResult::Planned(plan) if !plan.is_blocked())
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

/// Writes [`PrFeedback`] to one provider.
pub trait PrWriter: Send + Sync + 'static {
    /// The parts `feedback` changes, in the order they are written.
    fn parts(&self, feedback: &PrFeedback) -> Vec<FeedbackPart>;

    /// Writes one part of `feedback`.
    fn write(
        &self,
        feedback: &PrFeedback,
        part: FeedbackPart,
    ) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>>;
}

/// The comment (and, as an App, the check run) on GitHub.
pub struct GitHubPrWriter {
    conn: Arc<Connection>,
    /// The comment id of each pull request, once found or made (else found again by listing).
    comments: Mutex<HashMap<u64, u64>>,
    checks: CheckRuns,
}

impl GitHubPrWriter {
    pub fn new(conn: Arc<Connection>) -> GitHubPrWriter {
        GitHubPrWriter {
            conn,
            comments: Mutex::default(),
            checks: CheckRuns::default(),
        }
    }

    /// A writer sharing the notifier's repository and credentials.
    pub fn for_notifier(notifier: &GitHubNotifier) -> GitHubPrWriter {
        GitHubPrWriter::new(notifier.connection())
    }

    /// Writes every part of `feedback`, each tried even when one before it failed; the first
    /// error.
    pub async fn write_all(&self, feedback: &PrFeedback) -> Result<(), NotifyError> {
        let mut result = Ok(());
        for part in self.parts(feedback) {
            let written = self.write_part(feedback, part).await;
            result = result.and(written);
        }
        result
    }

    async fn write_part(&self, feedback: &PrFeedback, part: FeedbackPart) -> Result<(), NotifyError> {
        let crab = self.conn.client().await?;
        let number = feedback.number;
        match (&feedback.kind, part) {
            (FeedbackKind::Planning { sha }, FeedbackPart::CheckRun) => {
                self.checks.start(&crab, &self.conn, sha).await.map(drop)
            }
            (FeedbackKind::Planned(report), FeedbackPart::Comment) => {
                let body = report.markdown(number, &self.conn.web_url());
                self.upsert(&crab, number, &body).await
            }
            // A retry sends only the batches of annotations not yet sent.
            (FeedbackKind::Planned(report), FeedbackPart::CheckRun) => {
                let body = report.markdown(number, &self.conn.web_url());
                let notes = match &report.result {
                    PlanResult::Invalid(findings) => annotations(&report.catalog_dir, findings),
                    _ => Vec::new(),
                };
                let finished = Finished {
                    sha: &report.sha,
                    success: report.succeeded(),
                    title: &report.title(),
                    summary: &body,
                    annotations: &notes,
                };
                self.checks.finish(&crab, &self.conn, &finished).await
            }
            (FeedbackKind::Closed { merged }, FeedbackPart::Comment) => {
                let Some(found) = self.find(&crab, number).await? else {
                    return Ok(());
                };
                if found.body.contains(CLOSED_MARKER) {
                    return Ok(());
                }
                self.update(&crab, found.id, &comment::mark_closed(&found.body, *merged))
                    .await
                    .map(drop)
            }
            // Not a part of this feedback ([`PrWriter::parts`]): nothing to write.
            (FeedbackKind::Planning { .. } | FeedbackKind::Closed { .. }, _) => Ok(()),
        }
    }

    /// Edits the pull request's comment, or posts it when there is none.
    async fn upsert(&self, crab: &Octocrab, number: u64, body: &str) -> Result<(), NotifyError> {
        let known = self.lock().get(&number).copied();
        let id = match known {
            Some(id) => Some(id),
            None => self.find(crab, number).await?.map(|c| c.id),
        };
        if let Some(id) = id {
            match self.update(crab, id, body).await {
                Ok(()) => {
                    self.lock().insert(number, id);
                    return Ok(());
                }
                // Deleted by someone: post a new one.
                Err(NotifyError::Rejected { status: 404, .. }) => {
                    self.lock().remove(&number);
                }
                Err(e) => return Err(e),
            }
        }
        let route = format!(
            "/repos/{}/{}/issues/{number}/comments",
            self.conn.owner(),
            self.conn.repo()
        );
        let created: IssueComment = crab
            .post(route, Some(&json!({ "body": body })))
            .await
            .map_err(classify)?;
        self.lock().insert(number, created.id);
        Ok(())
    }

    async fn update(&self, crab: &Octocrab, id: u64, body: &str) -> Result<(), NotifyError> {
        let route = format!(
            "/repos/{}/{}/issues/comments/{id}",
            self.conn.owner(),
            self.conn.repo()
        );
        crab.patch::<IssueComment, _, _>(route, Some(&json!({ "body": body })))
            .await
            .map(drop)
            .map_err(classify)
    }

    /// storesync's comment on the pull request: the oldest one that starts with [`MARKER`] and
    /// is by storesync's own identity, read through every page of comments. Anyone can copy the
    /// marker; such a comment is skipped, never edited.
    async fn find(&self, crab: &Octocrab, number: u64) -> Result<Option<IssueComment>, NotifyError> {
        let identity = self.conn.identity().await?;
        let mut next = Some(format!(
            "/repos/{}/{}/issues/{number}/comments?per_page=100",
            self.conn.owner(),
            self.conn.repo()
        ));
        let mut pages = 0;
        while let Some(route) = next.take() {
            pages += 1;
            let response = crab._get(route.as_str()).await.map_err(classify)?;
            let response = octocrab::map_github_error(response).await.map_err(classify)?;
            next = next_link(response.headers()).and_then(|url| {
                let relative = self.conn.relative(&url);
                if relative.is_none() {
                    tracing::warn!("a comment page link points away from the GitHub API; not followed");
                }
                relative
            });
            let body = crab.body_to_string(response).await.map_err(classify)?;
            let comments: Vec<IssueComment> =
                serde_json::from_str(&body).map_err(|e| NotifyError::Response { source: Box::new(e) })?;
            for found in comments.into_iter().filter(|c| c.body.starts_with(MARKER)) {
                if identity.wrote(&found.author) {
                    self.lock().insert(number, found.id);
                    return Ok(Some(found));
                }
                let login = found.author.user.as_ref().map_or("", |u| u.login.as_str());
                tracing::warn!(
                    pr = number,
                    comment = found.id,
                    author = %printable(login),
                    "a comment carries storesync's plan marker but is not by storesync: left alone"
                );
            }
            // GitHub pages never end; a fake or a proxy that loops must not hold the queue.
            if pages >= 100 {
                break;
            }
        }
        Ok(None)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.comments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl PrWriter for GitHubPrWriter {
    /// The comment always; the check run only as a GitHub App.
    fn parts(&self, feedback: &PrFeedback) -> Vec<FeedbackPart> {
        let app = self.conn.is_app();
        match feedback.kind {
            FeedbackKind::Planning { .. } if app => vec![FeedbackPart::CheckRun],
            FeedbackKind::Planning { .. } => Vec::new(),
            FeedbackKind::Planned(_) if app => vec![FeedbackPart::Comment, FeedbackPart::CheckRun],
            FeedbackKind::Planned(_) | FeedbackKind::Closed { .. } => vec![FeedbackPart::Comment],
        }
    }

    fn write(
        &self,
        feedback: &PrFeedback,
        part: FeedbackPart,
    ) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>> {
        let feedback = feedback.clone();
        Box::pin(async move { self.write_part(&feedback, part).await })
    }
}

#[derive(Debug, Deserialize)]
struct IssueComment {
    id: u64,
    #[serde(default)]
    body: String,
    #[serde(flatten)]
    author: CommentAuthor,
}

/// The `rel="next"` address of a `Link` header.
fn next_link(headers: &axum::http::HeaderMap) -> Option<String> {
    let link = headers.get(axum::http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.split(';').any(|p| p.trim() == "rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// Annotations of the findings, paths from the repository's root.
pub fn annotations(catalog_dir: &str, findings: &[Diagnostic]) -> Vec<checks::Annotation> {
    findings
        .iter()
        .map(|d| checks::Annotation::of(&comment::repo_path(catalog_dir, &d.file), d))
        .collect()
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
    fn the_next_page_is_read_from_the_link_header() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::LINK,
            "<https://api.github.com/repositories/1/issues/2/comments?page=3>; rel=\"next\", \
             <https://api.github.com/repositories/1/issues/2/comments?page=9>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?page=3")
        );
        headers.insert(
            axum::http::header::LINK,
            "<https://x/?page=1>; rel=\"prev\", <https://x/?page=1>; rel=\"first\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&headers), None);
        assert_eq!(next_link(&axum::http::HeaderMap::new()), None);
    }
}
