//! The daemon's HTTP surface: the GitHub webhook, health, metrics, the stores API and pages for
//! people. Handlers do no work themselves: the webhook verifies, filters, enqueues and answers.
mod pages;
pub mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tracing::{debug, info, warn};

use crate::daemon::{Context, PlanTrigger};
use webhook::{Deliveries, WebhookAction};

/// Largest webhook body accepted; GitHub caps payloads at 25 MB, but pushes and pull requests
/// of a stores repository are far smaller.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// The webhook secret; never printed.
pub struct WebhookSecret(pub Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

pub struct ServerState {
    pub ctx: Arc<Context>,
    pub webhook_secret: Option<WebhookSecret>,
    /// `owner/name`, to tell pull requests from forks.
    pub github_repo: Option<String>,
    pub deliveries: Deliveries,
}

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route(
            "/webhooks/github",
            post(github_webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/stores", get(api_stores))
        .route("/commits/{sha}", get(commit_page))
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

async fn api_stores(State(s): State<Arc<ServerState>>) -> Response {
    axum::Json(s.ctx.state.stores()).into_response()
}

async fn status_page(State(s): State<Arc<ServerState>>) -> Html<String> {
    Html(pages::status(&s.ctx))
}

async fn commit_page(State(s): State<Arc<ServerState>>, Path(sha): Path<String>) -> Response {
    if sha.len() < 7 || sha.len() > 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return (StatusCode::BAD_REQUEST, "not a commit id\n").into_response();
    }
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

async fn github_webhook(State(s): State<Arc<ServerState>>, headers: HeaderMap, body: Bytes) -> Response {
    let metrics = &s.ctx.metrics;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(event) = header("x-github-event") else {
        metrics.webhook("other", "bad_request");
        return (StatusCode::BAD_REQUEST, "missing X-GitHub-Event\n").into_response();
    };
    let label = event_label(event);
    let Some(secret) = &s.webhook_secret else {
        metrics.webhook(label, "unauthorized");
        return (
            StatusCode::UNAUTHORIZED,
            "webhooks are not configured: no secret\n",
        )
            .into_response();
    };
    if !webhook::verify_signature(&secret.0, &body, header("x-hub-signature-256")) {
        metrics.webhook(label, "unauthorized");
        warn!(event, "webhook with a missing or wrong signature");
        return (StatusCode::UNAUTHORIZED, "bad signature\n").into_response();
    }
    if let Some(id) = header("x-github-delivery")
        && !s.deliveries.first_time(id)
    {
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
            ..
        }) => {
            info!(pr = number, %sha, from_fork, "pull request: plan queued");
            s.ctx.plans.push(PlanTrigger {
                number,
                sha,
                from_fork,
            });
            metrics.webhook(label, "accepted");
            (StatusCode::ACCEPTED, "plan queued\n").into_response()
        }
        Ok(WebhookAction::Ignore(reason)) => {
            debug!(event, reason, "webhook ignored");
            metrics.webhook(label, "ignored");
            StatusCode::NO_CONTENT.into_response()
        }
    }
}
