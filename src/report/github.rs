//! Commit statuses on GitHub (or GitHub Enterprise): `POST /repos/{owner}/{repo}/statuses/{sha}`.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::app_auth::AppCredentials;
use super::connection::{Connection, GitHubAuth, classify};
use super::{CommitStatus, Notifier, NotifyError, StatusState};
use crate::secret::{RotatingSecret, Secret};

pub use super::connection::DEFAULT_API_URL;

/// Posts commit statuses with a token (a fine-grained token or a GitHub App installation token
/// with "Commit statuses: write") or as a GitHub App. A token from a file is read again before
/// each post, and the client is rebuilt when it changed. Retries are the
/// [`super::StatusReporter`]'s job, so octocrab's own are off.
pub struct GitHubNotifier {
    conn: Arc<Connection>,
}

impl std::fmt::Debug for GitHubNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubNotifier")
            .field("owner", &self.conn.owner())
            .field("repo", &self.conn.repo())
            .field("api_url", &self.conn.api_url())
            .field("token", &"***")
            .finish()
    }
}

impl GitHubNotifier {
    /// `api_url` is the API root: `None` for github.com, `https://HOST/api/v3` for GitHub
    /// Enterprise Server, a local fake in tests. Must be called inside a tokio runtime.
    pub fn new(owner: &str, repo: &str, token: Secret, api_url: Option<&str>) -> Result<Self, NotifyError> {
        Self::with_rotating_token(owner, repo, RotatingSecret::fixed(token), api_url)
    }

    /// Like [`GitHubNotifier::new`], with a token that may change (read from a file).
    pub fn with_rotating_token(
        owner: &str,
        repo: &str,
        token: RotatingSecret,
        api_url: Option<&str>,
    ) -> Result<Self, NotifyError> {
        Self::with_auth(owner, repo, GitHubAuth::Token(token), api_url)
    }

    /// Like [`GitHubNotifier::new`], authenticated as a GitHub App's installation on the
    /// repository.
    pub fn with_app(
        owner: &str,
        repo: &str,
        app: AppCredentials,
        api_url: Option<&str>,
    ) -> Result<Self, NotifyError> {
        Self::with_auth(owner, repo, GitHubAuth::App(app), api_url)
    }

    pub fn with_auth(
        owner: &str,
        repo: &str,
        auth: GitHubAuth,
        api_url: Option<&str>,
    ) -> Result<Self, NotifyError> {
        Ok(GitHubNotifier {
            conn: Arc::new(Connection::new(owner, repo, auth, api_url)?),
        })
    }

    /// The repository and credentials, shared with the pull-request feedback.
    pub fn connection(&self) -> Arc<Connection> {
        self.conn.clone()
    }

    async fn create_status(&self, status: &CommitStatus) -> Result<(), NotifyError> {
        if !is_hex(&status.sha) {
            return Err(NotifyError::Config(format!(
                "{:?} is not a commit id",
                status.sha
            )));
        }
        let state = match status.state {
            StatusState::Pending => octocrab::models::StatusState::Pending,
            StatusState::Success => octocrab::models::StatusState::Success,
            StatusState::Failure => octocrab::models::StatusState::Failure,
            StatusState::Error => octocrab::models::StatusState::Error,
        };
        let crab = self.conn.client().await?;
        let repos = crab.repos(self.conn.owner(), self.conn.repo());
        let mut request = repos
            .create_status(status.sha.clone(), state)
            .context(status.context.to_owned())
            .description(status.description.clone());
        if let Some(url) = &status.target_url {
            request = request.target(url.clone());
        }
        request.send().await.map(drop).map_err(classify)
    }
}

impl Notifier for GitHubNotifier {
    fn post(
        &self,
        status: &CommitStatus,
    ) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>> {
        let status = status.clone();
        Box::pin(async move { self.create_status(&status).await })
    }
}

fn is_hex(sha: &str) -> bool {
    (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_config_errors_without_the_token() {
        let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let cases = [
            GitHubNotifier::new("acme/platform", "stores", token.into(), None),
            GitHubNotifier::new("acme", "", token.into(), None),
            GitHubNotifier::new("acme", "stores", "  ".into(), None),
            GitHubNotifier::new("acme", "stores", format!("{token}\nX-Evil: 1").into(), None),
            GitHubNotifier::new("acme", "stores", token.into(), Some("not a url")),
            GitHubNotifier::new("acme", "stores", token.into(), Some("ftp://example.com")),
        ];
        for result in cases {
            let err = result.unwrap_err();
            assert_eq!(err.metric_label(), "config");
            assert!(!err.to_string().contains("ghp_"), "{err}");
            assert!(!format!("{err:?}").contains("ghp_"), "{err:?}");
        }
        let notifier = GitHubNotifier::new("acme", "stores", format!(" {token}\n").into(), None).unwrap();
        let debug = format!("{notifier:?}");
        assert!(!debug.contains("ghp_"), "{debug}");
        assert!(debug.contains("https://api.github.com"), "{debug}");
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let err = GitHubNotifier::new("acme", "stores", "token".into(), None).unwrap_err();
        assert_eq!(err.metric_label(), "config");
    }
}
