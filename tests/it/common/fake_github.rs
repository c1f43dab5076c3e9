//! A local stand-in for GitHub's commit status API (and, in [`super::fake_github_pr`], its
//! comments, check runs and App authentication): records every
//! `POST /repos/{owner}/{repo}/statuses/{sha}` (also under `/api/v3`, as GitHub Enterprise
//! Server serves it), validates like GitHub does (state, 140-character description), and can
//! be told to fail the next requests. Every route but the App's sits behind GitHub's rate limits
//! (`github.pr.limits`). Use as `--github-api-url` / `GitHubNotifier`'s `api_url`.
//!
//! ```ignore
//! use crate::common::fake_github;
//! let github = fake_github::FakeGitHub::start().await;
//! let notifier = GitHubNotifier::new("acme-platform", "stores", "token".into(), Some(&github.url()))?;
//! github.fail_next(1, 500);
//! let statuses = github.wait_for(2, Duration::from_secs(5)).await;
//! ```
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::fake_github_pr::{self, PrShared};

/// One status GitHub accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedStatus {
    pub owner: String,
    pub repo: String,
    pub sha: String,
    pub context: Option<String>,
    pub state: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
    /// The `Authorization` header as sent (tests check the scheme and token).
    pub authorization: Option<String>,
}

/// A scripted failure for the next requests.
#[derive(Debug, Clone)]
struct Failure {
    status: u16,
    headers: Vec<(String, String)>,
    message: String,
}

#[derive(Default)]
struct Inner {
    accepted: Vec<RecordedStatus>,
    /// Every status request, accepted or not.
    requests: usize,
    failures: VecDeque<Failure>,
    /// Requests to anything but the status endpoint.
    unexpected: Vec<String>,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
}

pub struct FakeGitHub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Comments, check runs and App authentication: [`super::fake_github_pr`].
    pub pr: Arc<PrShared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGitHub {
    /// Listens on 127.0.0.1 on a free port.
    pub async fn start() -> FakeGitHub {
        let shared = Arc::new(Shared::default());
        let pr = Arc::new(PrShared::default());
        let statuses = post(record_status);
        let app = Router::new()
            .route("/repos/{owner}/{repo}/statuses/{sha}", statuses.clone())
            .route("/api/v3/repos/{owner}/{repo}/statuses/{sha}", statuses)
            .fallback(unexpected)
            .with_state(shared.clone())
            .merge(
                fake_github_pr::routes("")
                    .merge(fake_github_pr::routes("/api/v3"))
                    .with_state(pr.clone()),
            )
            .layer(axum::middleware::from_fn_with_state(
                pr.limits.clone(),
                fake_github_pr::limits::enforce,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake GitHub");
        let addr = listener.local_addr().expect("fake GitHub address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake GitHub server");
        });
        FakeGitHub {
            addr,
            shared,
            pr,
            server,
        }
    }

    /// The API root, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Statuses accepted so far, in arrival order.
    pub fn statuses(&self) -> Vec<RecordedStatus> {
        self.lock().accepted.clone()
    }

    /// Status requests received so far, failed ones included.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Requests to anything but the status endpoint (`METHOD path`).
    pub fn unexpected(&self) -> Vec<String> {
        self.lock().unexpected.clone()
    }

    /// Answers the next `n` status requests with `status` and a GitHub-shaped error body
    /// (422 carries a validation error, 403 a permission error).
    pub fn fail_next(&self, n: usize, status: u16) {
        let message = match status {
            403 => "Resource not accessible by personal access token",
            404 => "Not Found",
            422 => "Validation Failed",
            429 => "API rate limit exceeded",
            500.. => "Server Error",
            _ => "Error",
        };
        self.fail_next_with(n, status, &[], message);
    }

    /// Answers the next `n` status requests with 429 and `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        let retry_after = retry_after_secs.to_string();
        self.fail_next_with(
            n,
            429,
            &[("retry-after", &retry_after)],
            "API rate limit exceeded",
        );
    }

    /// Answers the next `n` status requests as a primary rate limit does: 403 with
    /// `x-ratelimit-remaining: 0` and `x-ratelimit-reset` `reset_in_secs` from now.
    pub fn exhaust_rate_limit_next(&self, n: usize, reset_in_secs: u64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let reset = (now + reset_in_secs).to_string();
        let headers = [
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-used", "5000"),
            ("x-ratelimit-reset", reset.as_str()),
        ];
        self.fail_next_with(n, 403, &headers, "API rate limit exceeded for user ID 1.");
    }

    /// Answers the next `n` status requests with `status`, `headers` and `message`.
    pub fn fail_next_with(&self, n: usize, status: u16, headers: &[(&str, &str)], message: &str) {
        let failure = Failure {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            message: message.to_string(),
        };
        self.lock().failures.extend(std::iter::repeat_n(failure, n));
    }

    /// Waits until at least `count` statuses were accepted and returns them all; panics with
    /// what did arrive after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<RecordedStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            let accepted = self.statuses();
            if accepted.len() >= count {
                return accepted;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "fake GitHub: waited {timeout:?} for {count} statuses, got {}: {accepted:#?}",
                    accepted.len()
                );
            }
        }
    }

    /// Waits until `done` holds for the pull-request side; panics after `timeout`.
    pub async fn wait_pr(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&fake_github_pr::PrInner) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.pr.changed.notified();
            if done(&self.pr.lock()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let inner = self.pr.lock();
                panic!(
                    "fake GitHub: waited {timeout:?} for {what}; requests {:#?}, refused {:#?}",
                    inner.requests, inner.unauthorized
                );
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().expect("fake GitHub state")
    }
}

async fn record_status(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    let response = {
        let mut inner = shared.inner.lock().expect("fake GitHub state");
        inner.requests += 1;
        match inner.failures.pop_front() {
            Some(failure) => failure_response(failure),
            None => accept(&mut inner, owner, repo, sha, &headers, &body),
        }
    };
    shared.changed.notify_waiters();
    response
}

fn accept(
    inner: &mut Inner,
    owner: String,
    repo: String,
    sha: String,
    headers: &HeaderMap,
    body: &Value,
) -> Response {
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let state = text("state").unwrap_or_default();
    let description = text("description");
    // GitHub's own validation of the fields storesync sends.
    if !["pending", "success", "failure", "error"].contains(&state.as_str()) {
        return validation_failed("state", "state is not included in the list");
    }
    if description.as_ref().is_some_and(|d| d.chars().count() > 140) {
        return validation_failed(
            "description",
            "description is too long (maximum is 140 characters)",
        );
    }
    let status = RecordedStatus {
        owner: owner.clone(),
        repo: repo.clone(),
        sha: sha.clone(),
        context: text("context"),
        state: state.clone(),
        description: description.clone(),
        target_url: text("target_url"),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    inner.accepted.push(status.clone());
    let id = inner.accepted.len();
    let answer = json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/statuses/{sha}"),
        "id": id,
        "node_id": "SC_kwDOAAAAAAAAAAE",
        "state": state,
        "description": description,
        "target_url": status.target_url,
        "context": status.context.unwrap_or_else(|| "default".into()),
        "created_at": "2024-05-01T12:00:00Z",
        "updated_at": "2024-05-01T12:00:00Z",
    });
    (StatusCode::CREATED, Json(answer)).into_response()
}

fn validation_failed(field: &str, message: &str) -> Response {
    let body = json!({
        "message": "Validation Failed",
        "errors": [{"resource": "Status", "code": "custom", "field": field, "message": message}],
        "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status",
        "status": "422",
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

fn failure_response(failure: Failure) -> Response {
    let status = StatusCode::from_u16(failure.status).expect("an HTTP status");
    let body = json!({
        "message": failure.message,
        "documentation_url": "https://docs.github.com/rest",
        "status": failure.status.to_string(),
    });
    let mut response = (status, Json(body)).into_response();
    for (name, value) in failure.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::try_from(name).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    response
}

async fn unexpected(State(shared): State<Arc<Shared>>, method: axum::http::Method, uri: Uri) -> StatusCode {
    shared
        .inner
        .lock()
        .expect("fake GitHub state")
        .unexpected
        .push(format!("{method} {uri}"));
    shared.changed.notify_waiters();
    StatusCode::NOT_FOUND
}
