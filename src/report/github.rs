//! Commit statuses on GitHub (or GitHub Enterprise): `POST /repos/{owner}/{repo}/statuses/{sha}`.
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;

use super::{CommitStatus, Notifier, NotifyError, StatusState};
use crate::secret::{RotatingSecret, Secret};

/// The public API, when no `--github-api-url` is given.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// Longest provider message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// Posts commit statuses with a token (a fine-grained token or a GitHub App installation token
/// with "Commit statuses: write"). A token from a file is read again before each post, and the
/// client is rebuilt when it changed. Retries are the [`super::StatusReporter`]'s job, so
/// octocrab's own are off.
pub struct GitHubNotifier {
    token: RotatingSecret,
    /// The client and the token it was built with.
    client: Mutex<(Secret, Octocrab)>,
    owner: String,
    repo: String,
    api_url: String,
}

impl std::fmt::Debug for GitHubNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubNotifier")
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .field("api_url", &self.api_url)
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
        for (what, name) in [("owner", owner), ("repository", repo)] {
            if !is_github_name(name) {
                return Err(NotifyError::Config(format!(
                    "the GitHub {what} {name:?} is not a valid name"
                )));
            }
        }
        let api_url = api_url
            .unwrap_or(DEFAULT_API_URL)
            .trim_end_matches('/')
            .to_owned();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(invalid_url(&api_url));
        }
        let first = token.current();
        let crab = build_client(&api_url, &first)?;
        Ok(GitHubNotifier {
            token,
            client: Mutex::new((first, crab)),
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            api_url,
        })
    }

    /// The client for the token as it is now: rebuilt when the token changed since the last post.
    fn client(&self) -> Result<Octocrab, NotifyError> {
        let token = self.token.current();
        let mut client = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if client.0.expose() != token.expose() {
            let crab = build_client(&self.api_url, &token)?;
            *client = (token, crab);
            tracing::info!("the GitHub token changed: using the new one");
        }
        Ok(client.1.clone())
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
        let crab = self.client()?;
        let repos = crab.repos(&self.owner, &self.repo);
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

/// A client sending `token`. Must be called inside a tokio runtime.
fn build_client(api_url: &str, token: &Secret) -> Result<Octocrab, NotifyError> {
    let token = token.expose().trim();
    // Never quote the token; a line break in it would also make an invalid header.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(NotifyError::Config(
            "the GitHub token is empty or has characters a token cannot have".into(),
        ));
    }
    // octocrab starts its client on the current runtime and would panic without one.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(NotifyError::Config(
            "the GitHub client must be created inside a tokio runtime".into(),
        ));
    }
    Octocrab::builder()
        .base_uri(api_url)
        .map_err(|_| invalid_url(api_url))?
        .personal_token(token.to_owned())
        .add_retry_config(RetryConfig::None)
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(Duration::from_secs(30)))
        .set_write_timeout(Some(Duration::from_secs(30)))
        .build()
        .map_err(|e| NotifyError::Config(format!("cannot build the GitHub client: {e}")))
}

fn invalid_url(api_url: &str) -> NotifyError {
    NotifyError::Config(format!("the GitHub API URL {api_url:?} is not valid"))
}

/// Owner and repository names: letters, digits, `-`, `_`, `.`; they go into the URL path.
fn is_github_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_hex(sha: &str) -> bool {
    (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// 5xx, 429 and rate-limit 403s are worth retrying; other answers are final.
fn classify(err: octocrab::Error) -> NotifyError {
    match err {
        octocrab::Error::GitHub { source, .. } => classify_answer(&source),
        octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => NotifyError::Response {
            source: Box::new(err),
        },
        octocrab::Error::Uri { .. }
        | octocrab::Error::UriParse { .. }
        | octocrab::Error::InvalidHeaderValue { .. } => {
            NotifyError::Config(format!("invalid request: {err}"))
        }
        // Hyper, Service (connect, timeouts), Http, Other and whatever comes next.
        _ => NotifyError::Transport {
            source: Box::new(err),
        },
    }
}

fn classify_answer(answer: &octocrab::GitHubError) -> NotifyError {
    let status = answer.status_code.as_u16();
    let message = message(answer);
    let header = |name: &str| {
        answer
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after = header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    let until_reset = || {
        let reset = header("x-ratelimit-reset")?.parse::<u64>().ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some(Duration::from_secs(reset.saturating_sub(now).max(1)))
    };
    let says_rate_limit = message.to_ascii_lowercase().contains("rate limit");
    match status {
        429 => NotifyError::RateLimited {
            status,
            message,
            retry_after: retry_after.or_else(until_reset),
        },
        // A 403 is a rate limit only when GitHub says so; otherwise a missing permission.
        403 if retry_after.is_some() || exhausted || says_rate_limit => NotifyError::RateLimited {
            status,
            message,
            retry_after: retry_after.or_else(|| if exhausted { until_reset() } else { None }),
        },
        500.. => NotifyError::Server {
            status,
            message,
            retry_after,
        },
        _ => NotifyError::Rejected { status, message },
    }
}

/// GitHub's message and, for a validation error, the first details.
fn message(answer: &octocrab::GitHubError) -> String {
    let mut text = answer.message.trim().to_owned();
    let details: Vec<&str> = answer
        .errors
        .iter()
        .flatten()
        .filter_map(|e| e.get("message").and_then(|m| m.as_str()))
        .take(3)
        .collect();
    if !details.is_empty() {
        text = format!("{text}: {}", details.join("; "));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        text = text.chars().take(MAX_MESSAGE_CHARS - 1).chain(['…']).collect();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["acme-platform", "stores", "my.repo", "a_b", "A1"] {
            assert!(is_github_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a?b", "ä"] {
            assert!(!is_github_name(bad), "{bad}");
        }
    }

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
