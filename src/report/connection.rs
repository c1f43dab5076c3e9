//! One repository's GitHub API: owner, name, API root and credentials (a token, read again
//! from its file before each use, or a GitHub App installation), handing out a client that
//! authenticates as they say. Shared by commit statuses, the plan comment and check runs.
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use octocrab::service::middleware::retry::RetryConfig;
use tokio::sync::OnceCell;

use super::NotifyError;
use super::app_auth::AppCredentials;
use super::identity::Identity;
use crate::secret::{RotatingSecret, Secret};

/// The public API, when no `--github-api-url` is given.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// Longest provider message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

type Builder = octocrab::OctocrabBuilder<
    octocrab::NoSvc,
    octocrab::DefaultOctocrabBuilderConfig,
    octocrab::NoAuth,
    octocrab::NotLayerReady,
>;

/// How storesync authenticates to GitHub.
#[derive(Clone, Debug)]
pub enum GitHubAuth {
    /// A token (`GITHUB_TOKEN` or `--github-token-file`): statuses and comments, no check runs.
    Token(RotatingSecret),
    /// A GitHub App (`--github-app-id`, `--github-app-key-file`): check runs too.
    App(AppCredentials),
}

enum Clients {
    /// The client and the token it was built with, rebuilt when the token changes.
    Token(RotatingSecret, Mutex<TokenClient>),
    /// The installation's client and the App's identity, made on first use (finding the
    /// installation needs GitHub). One client for every request: a clone of it would not share
    /// its cached installation token, and would mint its own.
    App(AppCredentials, OnceCell<(Arc<Octocrab>, Identity)>),
}

struct TokenClient {
    token: Secret,
    crab: Arc<Octocrab>,
    /// Who the token writes as, once learnt; forgotten when the token changes.
    identity: Option<Identity>,
}

/// One repository on one GitHub, with its credentials.
pub struct Connection {
    owner: String,
    repo: String,
    api_url: String,
    clients: Clients,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .field("api_url", &self.api_url)
            .field("app", &self.is_app())
            .field("token", &"***")
            .finish()
    }
}

impl Connection {
    /// `api_url` is the API root: `None` for github.com, `https://HOST/api/v3` for GitHub
    /// Enterprise Server, a local fake in tests. Must be called inside a tokio runtime.
    pub fn new(
        owner: &str,
        repo: &str,
        auth: GitHubAuth,
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
        let clients = match auth {
            GitHubAuth::Token(token) => {
                let first = token.current();
                let crab = Arc::new(build_client(&api_url, &first)?);
                Clients::Token(
                    token,
                    Mutex::new(TokenClient {
                        token: first,
                        crab,
                        identity: None,
                    }),
                )
            }
            GitHubAuth::App(app) => {
                // Checked now, so a bad URL or a missing runtime fails at start.
                base_builder(&api_url)?;
                Clients::App(app, OnceCell::new())
            }
        };
        Ok(Connection {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            api_url,
            clients,
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The API root, without a trailing `/`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// Check runs need a GitHub App.
    pub fn is_app(&self) -> bool {
        matches!(self.clients, Clients::App(..))
    }

    /// The repository's web address: `https://github.com/OWNER/NAME`, or on GitHub Enterprise
    /// Server the API's host without `/api/v3`.
    pub fn web_url(&self) -> String {
        let root = if self.api_url == DEFAULT_API_URL {
            "https://github.com"
        } else {
            self.api_url.strip_suffix("/api/v3").unwrap_or(&self.api_url)
        };
        format!("{root}/{}/{}", self.owner, self.repo)
    }

    /// A client authenticated as configured, now: a token file is read again (and the client
    /// rebuilt when it changed); an App's installation is found on first use.
    pub async fn client(&self) -> Result<Arc<Octocrab>, NotifyError> {
        match &self.clients {
            Clients::Token(token, client) => {
                let token = token.current();
                let mut client = client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if client.token.expose() != token.expose() {
                    let crab = Arc::new(build_client(&self.api_url, &token)?);
                    *client = TokenClient {
                        token,
                        crab,
                        identity: None,
                    };
                    tracing::info!("the GitHub token changed: using the new one");
                }
                Ok(client.crab.clone())
            }
            Clients::App(..) => self.installation().await.map(|(crab, _)| crab.clone()),
        }
    }

    /// Who comments written with these credentials are by: the App, or the token's user
    /// (`GET /user`, asked once per token).
    pub async fn identity(&self) -> Result<Identity, NotifyError> {
        let Clients::Token(_, client) = &self.clients else {
            return self.installation().await.map(|(_, identity)| identity.clone());
        };
        let crab = self.client().await?;
        let lock = || client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (token, known) = {
            let client = lock();
            (client.token.clone(), client.identity.clone())
        };
        if let Some(identity) = known {
            return Ok(identity);
        }
        let identity = token_identity(&crab).await?;
        let mut client = lock();
        if client.token.expose() == token.expose() {
            client.identity = Some(identity.clone());
        }
        Ok(identity)
    }

    async fn installation(&self) -> Result<&(Arc<Octocrab>, Identity), NotifyError> {
        let Clients::App(app, installation) = &self.clients else {
            return Err(NotifyError::Config("not a GitHub App".into()));
        };
        installation
            .get_or_try_init(|| installation_client(app, &self.api_url, &self.owner, &self.repo))
            .await
    }

    /// The part of an absolute `url` (a `Link` header's) below the API root, for octocrab to
    /// send with credentials: it adds them only to relative URLs (or `api.github.com`). `None`
    /// for a URL elsewhere, which is never followed.
    pub fn relative(&self, url: &str) -> Option<String> {
        let rest = url.strip_prefix(&self.api_url)?;
        rest.starts_with('/').then(|| rest.to_owned())
    }
}

/// The token's user (`GET /user`); a token GitHub does not let read it (an installation
/// token: 403) falls back to [`Identity::AnyBot`], said once in the log.
async fn token_identity(crab: &Octocrab) -> Result<Identity, NotifyError> {
    #[derive(serde::Deserialize)]
    struct User {
        login: String,
    }
    match crab.get::<User, _, ()>("/user", None).await.map_err(classify) {
        Ok(User { login }) => {
            tracing::info!(login = %login, "the GitHub token writes as this user: only its plan comment is edited");
            Ok(Identity::User { login })
        }
        Err(NotifyError::Rejected {
            status: status @ (403 | 404),
            message,
        }) => {
            tracing::warn!(
                status,
                message = %message,
                "the GitHub token may not read its own user (GET /user), as an installation token \
                 like GitHub Actions' cannot: a plan comment by any bot account is taken as storesync's; \
                 a GitHub App or a machine user's token pins it to storesync's own"
            );
            Ok(Identity::AnyBot)
        }
        Err(e) => Err(e),
    }
}

/// A client of the App's installation on `owner/repo`, and the App's identity: finds the
/// installation (`GET /repos/{owner}/{repo}/installation`, authenticated with the App's JWT)
/// and the App's slug (`GET /app`), then lets octocrab mint installation tokens, and mint a new
/// one 30 s before the last expires or when GitHub answers 401.
async fn installation_client(
    app: &AppCredentials,
    api_url: &str,
    owner: &str,
    repo: &str,
) -> Result<(Arc<Octocrab>, Identity), NotifyError> {
    #[derive(serde::Deserialize)]
    struct Installation {
        id: u64,
    }
    #[derive(serde::Deserialize)]
    struct App {
        slug: String,
    }
    let as_app = base_builder(api_url)?
        .app(AppId(app.app_id), app.encoding_key()?)
        .build()
        .map_err(|e| NotifyError::Config(format!("cannot build the GitHub client: {e}")))?;
    let installation: Installation = as_app
        .get(format!("/repos/{owner}/{repo}/installation"), None::<&()>)
        .await
        .map_err(|e| match classify(e) {
            NotifyError::Rejected { status: 404, .. } => NotifyError::Rejected {
                status: 404,
                message: format!(
                    "the GitHub App {} is not installed on {owner}/{repo}: install it there",
                    app.app_id
                ),
            },
            other => other,
        })?;
    // Without the slug, only comments GitHub marks as performed via the App are storesync's.
    let slug = match as_app.get::<App, _, ()>("/app", None).await {
        Ok(App { slug }) if is_github_name(&slug) => Some(slug),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %classify(e), "cannot read the GitHub App's slug (GET /app)");
            None
        }
    };
    tracing::info!(
        app = app.app_id,
        slug = slug.as_deref().unwrap_or("?"),
        installation = installation.id,
        "authenticating as the GitHub App"
    );
    let crab = as_app
        .installation(InstallationId(installation.id))
        .map_err(|e| NotifyError::Config(format!("cannot authenticate as the installation: {e}")))?;
    Ok((Arc::new(crab), Identity::App { id: app.app_id, slug }))
}

/// octocrab's builder with storesync's settings: the API root, no retries of its own (the
/// reporter retries), timeouts. Must be called inside a tokio runtime.
fn base_builder(api_url: &str) -> Result<Builder, NotifyError> {
    // octocrab starts its client on the current runtime and would panic without one.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(NotifyError::Config(
            "the GitHub client must be created inside a tokio runtime".into(),
        ));
    }
    Ok(Octocrab::builder()
        .base_uri(api_url)
        .map_err(|_| invalid_url(api_url))?
        .add_retry_config(RetryConfig::None)
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(Duration::from_secs(30)))
        .set_write_timeout(Some(Duration::from_secs(30))))
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
    base_builder(api_url)?
        .personal_token(token.to_owned())
        .build()
        .map_err(|e| NotifyError::Config(format!("cannot build the GitHub client: {e}")))
}

fn invalid_url(api_url: &str) -> NotifyError {
    NotifyError::Config(format!("the GitHub API URL {api_url:?} is not valid"))
}

/// Owner and repository names: letters, digits, `-`, `_`, `.`; they go into the URL path.
pub(super) fn is_github_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// 5xx, 429 and rate-limit 403s are worth retrying; other answers are final.
pub(super) fn classify(err: octocrab::Error) -> NotifyError {
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

    #[tokio::test]
    async fn web_addresses_and_relative_links() {
        let conn = |url: Option<&str>| {
            Connection::new("acme", "stores", GitHubAuth::Token("t".into()), url).unwrap()
        };
        assert_eq!(conn(None).web_url(), "https://github.com/acme/stores");
        let ghes = conn(Some("https://git.example.com/api/v3/"));
        assert_eq!(ghes.web_url(), "https://git.example.com/acme/stores");
        assert_eq!(
            ghes.relative("https://git.example.com/api/v3/repositories/1/issues/2/comments?page=2"),
            Some("/repositories/1/issues/2/comments?page=2".into())
        );
        assert_eq!(ghes.relative("https://evil.example.com/api/v3/x"), None);
        assert_eq!(ghes.relative("https://git.example.com/api/v3x/y"), None);
    }
}
