//! GitHub's rate limits, as the fake plays them in front of every API route but the App's
//! JWT-authenticated ones (as GitHub's REST API documents them):
//! - Every answer carries the primary limit's headers: `x-ratelimit-limit`, `-remaining`,
//!   `-used`, `-reset` (Unix seconds) and `-resource: core`. Once spent, requests get 403 with
//!   `x-ratelimit-remaining: 0` and "API rate limit exceeded …" until the reset.
//! - A secondary limit (too many content-creating requests at once) answers 403 or 429 with
//!   "You have exceeded a secondary rate limit" and, when GitHub says how long, `retry-after`.
//!
//! Tests also script refusals of one kind of request (a 422, a 502) to see what storesync does
//! with a final error.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The kinds of request a refusal can be scripted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Status,
    /// Listing, creating or editing issue comments.
    Comment,
    CheckRunCreate,
    CheckRunUpdate,
    /// `GET /user` and anything else under the rate limit.
    Other,
}

impl Endpoint {
    /// The kind of `method path`; `None` for the App's JWT routes, outside the rate limit.
    fn of(method: &Method, path: &str) -> Option<Endpoint> {
        let path = path.strip_prefix("/api/v3").unwrap_or(path);
        if path == "/app" || path.ends_with("/installation") || path.ends_with("/access_tokens") {
            return None;
        }
        Some(if path.contains("/statuses/") {
            Endpoint::Status
        } else if path.contains("/comments") {
            Endpoint::Comment
        } else if path.ends_with("/check-runs") {
            Endpoint::CheckRunCreate
        } else if path.contains("/check-runs/") && method == Method::PATCH {
            Endpoint::CheckRunUpdate
        } else {
            Endpoint::Other
        })
    }
}

#[derive(Debug, Clone)]
struct Scripted {
    endpoint: Endpoint,
    status: u16,
    headers: Vec<(String, String)>,
    message: String,
}

#[derive(Debug)]
struct Inner {
    limit: u64,
    used: u64,
    window: Duration,
    /// Unix seconds when `used` starts over.
    reset: u64,
    scripted: VecDeque<Scripted>,
    /// `METHOD path` of every request refused here.
    refused: Vec<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The fake's rate limits and scripted refusals; 5,000 requests an hour by default, as for a
/// token.
#[derive(Debug)]
pub struct Limits {
    inner: Mutex<Inner>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            inner: Mutex::new(Inner {
                limit: 5000,
                used: 0,
                window: Duration::from_secs(3600),
                reset: now() + 3600,
                scripted: VecDeque::new(),
                refused: Vec::new(),
            }),
        }
    }
}

impl Limits {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake GitHub limits")
    }

    /// From now on, `limit` requests per `window` (the window starts now).
    pub fn set_primary(&self, limit: u64, window: Duration) {
        let mut inner = self.lock();
        inner.limit = limit;
        inner.used = 0;
        inner.window = window;
        inner.reset = now() + window.as_secs().max(1);
    }

    /// The next `n` requests to `endpoint` meet a secondary rate limit: `status` (403 or 429),
    /// with `retry-after` when given.
    pub fn secondary_next(&self, endpoint: Endpoint, n: usize, status: u16, retry_after: Option<u64>) {
        let headers = retry_after
            .map(|s| vec![("retry-after".to_string(), s.to_string())])
            .unwrap_or_default();
        let message =
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
        self.script(endpoint, n, status, headers, message);
    }

    /// The next `n` requests to `endpoint` are answered `status` with GitHub's error body.
    pub fn fail_next(&self, endpoint: Endpoint, n: usize, status: u16) {
        let message = match status {
            422 => "Validation Failed",
            403 => "Resource not accessible by integration",
            500.. => "Server Error",
            _ => "Error",
        };
        self.script(endpoint, n, status, Vec::new(), message);
    }

    fn script(
        &self,
        endpoint: Endpoint,
        n: usize,
        status: u16,
        headers: Vec<(String, String)>,
        message: &str,
    ) {
        let scripted = Scripted {
            endpoint,
            status,
            headers,
            message: message.into(),
        };
        self.lock().scripted.extend(std::iter::repeat_n(scripted, n));
    }

    /// Requests refused by a limit or a script (`METHOD path`).
    pub fn refused(&self) -> Vec<String> {
        self.lock().refused.clone()
    }

    /// The refusal for a request to `endpoint`, if any, and the primary limit's headers.
    fn admit(&self, endpoint: Endpoint, what: String) -> (Option<Response>, Vec<(String, String)>) {
        let mut inner = self.lock();
        if now() >= inner.reset {
            inner.used = 0;
            inner.reset = now() + inner.window.as_secs().max(1);
        }
        let spent = inner.used >= inner.limit;
        if !spent {
            inner.used += 1;
        }
        let headers = vec![
            ("x-ratelimit-limit".to_string(), inner.limit.to_string()),
            (
                "x-ratelimit-remaining".to_string(),
                inner.limit.saturating_sub(inner.used).to_string(),
            ),
            ("x-ratelimit-used".to_string(), inner.used.to_string()),
            ("x-ratelimit-reset".to_string(), inner.reset.to_string()),
            ("x-ratelimit-resource".to_string(), "core".to_string()),
        ];
        if spent {
            inner.refused.push(what);
            let refusal = error_body(403, "API rate limit exceeded for installation ID 77.");
            return (Some(refusal), headers);
        }
        let at = inner.scripted.iter().position(|s| s.endpoint == endpoint);
        let Some(scripted) = at.and_then(|i| inner.scripted.remove(i)) else {
            return (None, headers);
        };
        inner.refused.push(what);
        let mut refusal = error_body(scripted.status, &scripted.message);
        add_headers(&mut refusal, &scripted.headers);
        (Some(refusal), headers)
    }
}

fn error_body(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).expect("an HTTP status");
    let body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api",
        "status": status.to_string(),
    });
    (code, Json(body)).into_response()
}

fn add_headers(response: &mut Response, headers: &[(String, String)]) {
    for (name, value) in headers {
        response.headers_mut().insert(
            HeaderName::try_from(name.as_str()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
}

/// The middleware in front of the fake's routes.
pub async fn enforce(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let Some(endpoint) = Endpoint::of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let what = format!("{} {}", request.method(), request.uri().path());
    let (refusal, headers) = limits.admit(endpoint, what);
    let mut response = match refusal {
        Some(refusal) => refusal,
        None => next.run(request).await,
    };
    // A handler's own rate-limit headers (a scripted exhaustion) stand.
    for (name, value) in headers {
        let name = HeaderName::try_from(name).expect("header name");
        if !response.headers().contains_key(&name) {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_str(&value).expect("header value"));
        }
    }
    response
}
