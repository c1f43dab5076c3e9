//! What storesync tells people. Commit statuses: one [`Notifier`] per provider ([`github`]), and
//! a [`StatusReporter`] that posts them in the background, in order, so a slow or down provider
//! never blocks a sync. Pull requests also get a sticky plan comment and, as a GitHub App, a
//! check run ([`pr_feedback`]), on a worker of their own so they never delay a status; catalog
//! text in them is made inert ([`inert`]). The store table ([`stores`]).
pub mod app_auth;
pub mod checks;
pub mod comment;
pub mod comments;
pub mod connection;
pub mod github;
pub mod identity;
pub mod inert;
pub mod pr_feedback;
mod reporter;
pub mod stores;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tracing::info;

pub use connection::GitHubAuth;
pub use github::GitHubNotifier;
pub use pr_feedback::{
    FeedbackKind, FeedbackPart, GitHubPrWriter, PlanReport, PlanResult, PrFeedback, PrWriter,
};
pub use reporter::{
    RESULT_DROPPED, RESULT_FAILED, RESULT_RETRIED_SUCCESS, RESULT_SUCCESS, ReporterOptions, StatusReporter,
};
pub use stores::{StoreState, StoreView, store_views};

/// Every `result` of `storesync_status_posts_total`.
pub const STATUS_POST_RESULTS: [&str; 4] = [
    RESULT_SUCCESS,
    RESULT_RETRIED_SUCCESS,
    RESULT_FAILED,
    RESULT_DROPPED,
];

/// The `storesync/sync` status: commits of the tracked branch.
pub const SYNC_CONTEXT: &str = "storesync/sync";
/// The `storesync/plan` status: head commits of pull requests.
pub const PLAN_CONTEXT: &str = "storesync/plan";
/// GitHub refuses longer descriptions with a 422.
pub const MAX_DESCRIPTION_CHARS: usize = 140;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

impl std::fmt::Display for StatusState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One status of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub sha: String,
    pub context: &'static str,
    pub state: StatusState,
    /// One line of at most [`MAX_DESCRIPTION_CHARS`] characters.
    pub description: String,
    pub target_url: Option<String>,
}

impl CommitStatus {
    /// The description is made one line (line breaks become spaces) and cut to 140 characters
    /// with a trailing `…`.
    pub fn new(
        sha: impl Into<String>,
        context: &'static str,
        state: StatusState,
        description: impl Into<String>,
        target_url: Option<String>,
    ) -> Self {
        CommitStatus {
            sha: sha.into(),
            context,
            state,
            description: one_line(&description.into(), MAX_DESCRIPTION_CHARS),
            target_url,
        }
    }
}

fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::text::truncate(&flat, max_chars)
}

/// A failed post. Messages come from the provider's answer, never from the request's headers.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// 429, or a 403 that says it is a rate limit: retryable, after `retry_after` when given.
    #[error("rate limited (HTTP {status}): {message}")]
    RateLimited {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// 5xx: retryable.
    #[error("server error (HTTP {status}): {message}")]
    Server {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx (bad token, missing permission, unknown commit, validation): permanent.
    #[error("rejected (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// No answer: connection refused, reset, TLS. Retryable.
    #[error("cannot reach the API: {source}")]
    Transport {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer in time. Retryable.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An answer that cannot be understood. Permanent.
    #[error("unexpected answer: {source}")]
    Response {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Settings that cannot work (owner, repository, token, URL). Permanent.
    #[error("{0}")]
    Config(String),
}

impl NotifyError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            NotifyError::RateLimited { .. }
                | NotifyError::Server { .. }
                | NotifyError::Transport { .. }
                | NotifyError::Timeout(_)
        )
    }

    /// How long the provider asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NotifyError::RateLimited { retry_after, .. } | NotifyError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// A fixed, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            NotifyError::RateLimited { .. } => "rate_limited",
            NotifyError::Server { .. } => "server",
            NotifyError::Rejected { .. } => "rejected",
            NotifyError::Transport { .. } => "transport",
            NotifyError::Timeout(_) => "timeout",
            NotifyError::Response { .. } => "response",
            NotifyError::Config(_) => "config",
        }
    }
}

/// Posts a commit status to one provider. One implementation per provider.
pub trait Notifier: Send + Sync + 'static {
    fn post(
        &self,
        status: &CommitStatus,
    ) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>>;
}

/// A [`Notifier`] that only logs: no provider is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn post(
        &self,
        status: &CommitStatus,
    ) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>> {
        info!(
            sha = %status.sha,
            context = status.context,
            state = %status.state,
            description = %status.description,
            "commit status (no GitHub repository configured, not posted)"
        );
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

    #[test]
    fn description_is_one_line_of_at_most_140_chars() {
        let exact = "x".repeat(140);
        assert_eq!(
            CommitStatus::new(SHA, SYNC_CONTEXT, StatusState::Success, exact.clone(), None).description,
            exact
        );

        let long = "y".repeat(141);
        let d = CommitStatus::new(SHA, SYNC_CONTEXT, StatusState::Success, long, None).description;
        assert_eq!(d.chars().count(), 140);
        assert!(d.ends_with("y…"), "{d}");

        // Characters, not bytes: a multi-byte character is never split.
        let wide = "ü".repeat(200);
        let d = CommitStatus::new(SHA, PLAN_CONTEXT, StatusState::Failure, wide, None).description;
        assert_eq!(d.chars().count(), 140);
        assert_eq!(d.chars().filter(|c| *c == 'ü').count(), 139);

        let d =
            CommitStatus::new(SHA, PLAN_CONTEXT, StatusState::Failure, "a\nb\r\n\tc \n", None).description;
        assert_eq!(d, "a b   c");
    }

    #[test]
    fn state_serializes_lowercase() {
        let states = [
            StatusState::Pending,
            StatusState::Success,
            StatusState::Failure,
            StatusState::Error,
        ];
        for state in states {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert_eq!(StatusState::Failure.to_string(), "failure");
    }

    #[test]
    fn error_classes() {
        let server = NotifyError::Server {
            status: 502,
            message: "Bad Gateway".into(),
            retry_after: None,
        };
        assert!(server.is_retryable());
        assert_eq!(server.metric_label(), "server");
        let limited = NotifyError::RateLimited {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(limited.is_retryable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        let rejected = NotifyError::Rejected {
            status: 422,
            message: "Validation Failed".into(),
        };
        assert!(!rejected.is_retryable());
        assert_eq!(rejected.to_string(), "rejected (HTTP 422): Validation Failed");
        assert!(NotifyError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!NotifyError::Config("no".into()).is_retryable());
    }
}
