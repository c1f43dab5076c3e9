//! The daemon's HTTP surface: the GitHub webhook, health, metrics, the stores API and pages for
//! people. Handlers do no work themselves: the webhook verifies, filters, enqueues and answers.
mod listen;
mod pages;
mod store_page;
pub mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tracing::{debug, info, warn};

pub use listen::{HttpLimits, serve};

use crate::daemon::{Context, PlanTrigger};
use crate::secret::Secret;
use webhook::{Deliveries, WebhookAction};

/// Largest webhook body accepted; GitHub caps payloads at 25 MB, but pushes and pull requests
/// of a stores repository are far smaller.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

pub struct ServerState {
    pub ctx: Arc<Context>,
    /// The GitHub webhook secret (HMAC-SHA256 key); `None` refuses every delivery.
    pub webhook_secret: Option<Secret>,
    /// `owner/name`, to tell pull requests from forks.
    pub github_repo: Option<String>,
    pub deliveries: Deliveries,
    pub limits: HttpLimits,
    /// Webhook requests in flight, bounded by `limits.max_webhooks`.
    webhooks: tokio::sync::Semaphore,
}

/// Delivery ids remembered to drop replays.
const DELIVERIES: usize = 4096;

impl ServerState {
    pub fn new(
        ctx: Arc<Context>,
        webhook_secret: Option<Secret>,
        github_repo: Option<String>,
        limits: HttpLimits,
    ) -> ServerState {
        ServerState {
            ctx,
            webhook_secret,
            github_repo,
            deliveries: Deliveries::new(DELIVERIES),
            webhooks: tokio::sync::Semaphore::new(limits.max_webhooks),
            limits,
        }
    }
}

/// The daemon's settings and the webhook's; secrets show as `***`.
impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("settings", &self.ctx.settings)
            .field("statuses", &self.ctx.statuses)
            .field("webhook_secret", &self.webhook_secret)
            .field("github_repo", &self.github_repo)
            .field("deliveries", &self.deliveries)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/webhooks/github", post(github_webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/stores", get(api_stores))
        .route("/commits/{sha}", get(commit_page))
        .route("/stores/{name}", get(store_page::store_page))
        .route("/", get(status_page))
        .with_state(state)
}

async fn readyz(State(s): State<Arc<ServerState>>) -> Response {
    if s.ctx.state.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the cluster has not been observed yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(s): State<Arc<ServerState>>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        s.ctx.metrics.render(),
    )
        .into_response()
}

/// The store table, each store with `url`: its page.
async fn api_stores(State(s): State<Arc<ServerState>>) -> Response {
    let stores: Vec<serde_json::Value> = (s.ctx.state.stores().iter())
        .map(|view| {
            let mut json = serde_json::to_value(view).unwrap_or_default();
            if let Some(fields) = json.as_object_mut()
                && crate::desired::rules::is_store_name(&view.name)
            {
                fields.insert("url".into(), format!("/stores/{}", view.name).into());
            }
            json
        })
        .collect();
    axum::Json(stores).into_response()
}

async fn status_page(State(s): State<Arc<ServerState>>) -> Html<String> {
    Html(pages::status(&s.ctx))
}

async fn commit_page(State(s): State<Arc<ServerState>>, Path(sha): Path<String>) -> Response {
    if sha.len() < 7 || sha.len() > 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (StatusCode::BAD_REQUEST, "not a commit id\n").into_response();
    }
    // Commit ids are recorded in lowercase; `/commits/ABC…` names the same commit.
    let sha = sha.to_ascii_lowercase();
    match s.ctx.state.commit(&sha) {
        Some(record) => Html(pages::commit(&s.ctx, &record)).into_response(),
        None => (StatusCode::NOT_FOUND, Html(pages::unknown_commit(&sha))).into_response(),
    }
}

fn event_label(event: &str) -> &'static str {
    match event {
        "ping" => "ping",
        "push" => "push",
        "pull_request" => "pull_request",
        _ => "other",
    }
}

/// Checks what the headers alone can tell — event, delivery id, a well-formed signature, a
/// free slot — before reading a byte of the body, then reads it with a size cap and a timeout.
async fn github_webhook(State(s): State<Arc<ServerState>>, headers: HeaderMap, body: Body) -> Response {
    let metrics = &s.ctx.metrics;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(event) = header(webhook::EVENT_HEADER) else {
        metrics.webhook("other", "bad_request");
        return (StatusCode::BAD_REQUEST, "missing X-GitHub-Event\n").into_response();
    };
    let label = event_label(event);
    // Required and of GitHub's shape: without an id a replay could not be told apart.
    let delivery = match webhook::delivery_id(&headers) {
        Ok(id) => id,
        Err(refusal) => {
            metrics.webhook(label, "bad_request");
            return (StatusCode::BAD_REQUEST, refusal.message()).into_response();
        }
    };
    let Some(secret) = &s.webhook_secret else {
        metrics.webhook(label, "unauthorized");
        return (
            StatusCode::UNAUTHORIZED,
            "webhooks are not configured: no secret\n",
        )
            .into_response();
    };
    let signature = header(webhook::SIGNATURE_HEADER);
    if !signature.is_some_and(webhook::is_signature_header) {
        metrics.webhook(label, "unauthorized");
        warn!(
            event = label,
            "webhook with a missing or wrong signature: refused before its body"
        );
        return (
            StatusCode::UNAUTHORIZED,
            "missing or malformed X-Hub-Signature-256\n",
        )
            .into_response();
    }
    let Ok(_slot) = s.webhooks.try_acquire() else {
        metrics.webhook(label, "busy");
        return (
            [(header::RETRY_AFTER, "5")],
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many webhook requests at once; retry\n",
            ),
        )
            .into_response();
    };
    let read = tokio::time::timeout(s.limits.body_read, axum::body::to_bytes(body, MAX_WEBHOOK_BYTES));
    let body = match read.await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            metrics.webhook(label, "too_large");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {MAX_WEBHOOK_BYTES} bytes, or was cut off\n"),
            )
                .into_response();
        }
        Err(_) => {
            metrics.webhook(label, "timeout");
            return (StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time\n").into_response();
        }
    };
    if !webhook::verify_signature(secret.expose().as_bytes(), &body, signature) {
        metrics.webhook(label, "unauthorized");
        // Only the bounded label: header values are the sender's, of any length.
        warn!(event = label, "webhook with a missing or wrong signature");
        return (StatusCode::UNAUTHORIZED, "bad signature\n").into_response();
    }
    if !s.deliveries.first_time(delivery) {
        metrics.webhook(label, "duplicate");
        return (StatusCode::OK, "duplicate delivery: ignored\n").into_response();
    }
    let branch = &s.ctx.settings.tracked.branch;
    match webhook::parse(event, &body, branch, s.github_repo.as_deref()) {
        Err(e) => {
            metrics.webhook(label, "bad_request");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Ok(WebhookAction::Ping) => {
            metrics.webhook(label, "accepted");
            (StatusCode::OK, "pong\n").into_response()
        }
        Ok(WebhookAction::Sync { sha }) => {
            info!(%sha, "push to the tracked branch: sync queued");
            s.ctx.push_received(sha);
            metrics.webhook(label, "accepted");
            (StatusCode::ACCEPTED, "sync queued\n").into_response()
        }
        Ok(WebhookAction::Plan {
            number,
            sha,
            from_fork,
            reopened,
            ..
        }) => {
            info!(pr = number, %sha, from_fork, "pull request: plan queued");
            s.ctx.plans.push(PlanTrigger {
                number,
                sha,
                from_fork,
                reopened,
            });
            metrics.webhook(label, "accepted");
            (StatusCode::ACCEPTED, "plan queued\n").into_response()
        }
        Ok(WebhookAction::Closed { number, merged }) => {
            info!(
                pr = number,
                merged, "pull request closed: its plan comment is marked"
            );
            s.ctx.pull_request_closed(number, merged);
            metrics.webhook(label, "accepted");
            (StatusCode::ACCEPTED, "pull request closed\n").into_response()
        }
        Ok(WebhookAction::Ignore(reason)) => {
            debug!(event = label, reason, "webhook ignored");
            metrics.webhook(label, "ignored");
            StatusCode::NO_CONTENT.into_response()
        }
    }
}
