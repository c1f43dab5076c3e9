//! The pull-request side of the fake GitHub: issue comments (list with real pagination and
//! absolute `Link` URLs, create, update; what GitHub would link in them recorded, by
//! [`render`]'s rules), check runs ([`checks`]: GitHub's limits refused), rate limits and
//! scripted refusals ([`limits`]), and GitHub App authentication (`GET /repos/{o}/{r}/installation` and
//! `POST /app/installations/{id}/access_tokens` check the RS256 JWT with the App's public key,
//! its `iss`, `iat` and `exp`; `GET /app` answers the App's slug). Comment and check-run requests
//! need an `Authorization` header; with an App configured, a live installation token. Each
//! comment records its author as GitHub shows it: the App's bot `storesync-acme[bot]` performed
//! via the App, the token's user [`TOKEN_USER`] (also `GET /user`), or with
//! [`PrInner::actions_token`] GitHub Actions' bot, whose token may not read `GET /user`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use octocrab::jsonwebtoken::{self, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub mod checks;
pub mod limits;
pub mod render;

/// GitHub's limit on a comment's body.
pub const MAX_COMMENT_CHARS: usize = 65_536;

/// The slug of the fake's GitHub App: its bot user is `storesync-acme[bot]`.
pub const APP_SLUG: &str = "storesync-acme";
/// The user a plain token writes as.
pub const TOKEN_USER: &str = "storesync-ci";
/// GitHub Actions' App, whose `GITHUB_TOKEN` writes as `github-actions[bot]`.
pub const ACTIONS_APP_ID: u64 = 15368;

/// Who wrote a comment: `user.login`, `user.type` and `performed_via_github_app` (id, slug).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub login: String,
    pub kind: &'static str,
    pub app: Option<(u64, String)>,
}

impl Author {
    /// A person's account.
    pub fn person(login: &str) -> Author {
        Author {
            login: login.into(),
            kind: "User",
            app: None,
        }
    }

    /// A bot account, performed via `app` when given.
    pub fn bot(login: &str, app: Option<(u64, &str)>) -> Author {
        Author {
            login: login.into(),
            kind: "Bot",
            app: app.map(|(id, slug)| (id, slug.into())),
        }
    }

    /// The fake App `app_id`'s bot, as its installation token writes.
    pub fn app(app_id: u64) -> Author {
        Author::bot(&format!("{APP_SLUG}[bot]"), Some((app_id, APP_SLUG)))
    }
}

/// An issue comment as the fake keeps it.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub author: Author,
    /// Every body it had, the first one first.
    pub bodies: Vec<String>,
}

impl Comment {
    pub fn body(&self) -> &str {
        self.bodies.last().map_or("", String::as_str)
    }

    /// Edits after it was created.
    pub fn edits(&self) -> usize {
        self.bodies.len() - 1
    }
}

#[derive(Debug, Clone, Default)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub annotations: Vec<Value>,
    /// Annotations sent per request (create and updates), in order.
    pub batches: Vec<usize>,
    /// Requests that changed it (its create and its updates).
    pub writes: usize,
}

/// A GitHub App the fake knows: its id, public key (PKCS#1 DER) and installation.
#[derive(Clone)]
pub struct AppConfig {
    pub app_id: u64,
    pub public_key_der: Vec<u8>,
    pub installation_id: u64,
    /// Lifetime of the installation tokens it hands out.
    pub token_ttl: Duration,
}

#[derive(Default)]
pub struct PrInner {
    pub comments: Vec<Comment>,
    pub check_runs: Vec<CheckRun>,
    next_id: u64,
    app: Option<AppConfig>,
    /// Installation tokens handed out, and whether each still works.
    tokens: HashMap<String, bool>,
    pub token_exchanges: usize,
    /// An App installed without the Checks permission: check-run writes get 403.
    pub checks_forbidden: bool,
    pub installation_lookups: usize,
    /// Requests refused for their credentials (`METHOD path`).
    pub unauthorized: Vec<String>,
    /// Every comment, check-run or `GET /user` request (`METHOD path?query`).
    pub requests: Vec<String>,
    /// Plain tokens behave as GitHub Actions' `GITHUB_TOKEN`: `GET /user` is refused (403) and
    /// comments are by `github-actions[bot]`.
    pub actions_token: bool,
    /// `GET /app` requests.
    pub app_lookups: usize,
    /// What GitHub would link in comments as written (by issue), a reference to the comment's
    /// own pull request left out: mentions notify, references cross-link ([`render`]).
    pub linked: Vec<(u64, render::Linked)>,
}

#[derive(Default)]
pub struct PrShared {
    pub inner: Mutex<PrInner>,
    pub changed: Notify,
    /// Rate limits and scripted refusals in front of every route ([`limits`]).
    pub limits: Arc<limits::Limits>,
}

impl PrShared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, PrInner> {
        self.inner.lock().expect("fake GitHub pull-request state")
    }

    pub fn set_app(&self, app: AppConfig) {
        self.lock().app = Some(app);
    }

    /// Makes every installation token handed out so far stop working (a rotation).
    pub fn revoke_tokens(&self) {
        for valid in self.lock().tokens.values_mut() {
            *valid = false;
        }
    }

    /// Adds a comment by the person `user`.
    pub fn add_comment(&self, issue: u64, user: &str, body: &str) -> u64 {
        self.add_comment_by(issue, Author::person(user), body)
    }

    /// Adds a comment by `author`.
    pub fn add_comment_by(&self, issue: u64, author: Author, body: &str) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.comments.push(Comment {
            id,
            issue,
            author,
            bodies: vec![body.into()],
        });
        id
    }
}

/// The routes, under `prefix` (`""`, or `/api/v3` as GitHub Enterprise Server serves them).
pub fn routes(prefix: &str) -> Router<Arc<PrShared>> {
    Router::new()
        .route(
            &format!("{prefix}/repos/{{owner}}/{{repo}}/issues/{{number}}/comments"),
            get(list_comments).post(create_comment),
        )
        .route(
            &format!("{prefix}/repos/{{owner}}/{{repo}}/issues/comments/{{id}}"),
            patch(update_comment),
        )
        .route(
            &format!("{prefix}/repos/{{owner}}/{{repo}}/check-runs"),
            post(checks::create_check_run),
        )
        .route(
            &format!("{prefix}/repos/{{owner}}/{{repo}}/check-runs/{{id}}"),
            patch(checks::update_check_run),
        )
        .route(
            &format!("{prefix}/repos/{{owner}}/{{repo}}/installation"),
            get(installation),
        )
        .route(
            &format!("{prefix}/app/installations/{{id}}/access_tokens"),
            post(access_token),
        )
        .route(&format!("{prefix}/user"), get(user))
        .route(&format!("{prefix}/app"), get(app))
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "message": message, "documentation_url": "https://docs.github.com/rest",
                       "status": status.as_u16().to_string() });
    (status, Json(body)).into_response()
}

fn validation_failed(resource: &str, message: &str) -> Response {
    let body = json!({
        "message": "Validation Failed",
        "errors": [{ "resource": resource, "code": "custom", "message": message }],
        "status": "422",
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")))
}

/// Who a request's credentials write as.
fn author_of(inner: &PrInner, headers: &HeaderMap) -> Author {
    let installation = bearer(headers).is_some_and(|t| inner.tokens.contains_key(t));
    match &inner.app {
        Some(app) if installation => Author::app(app.app_id),
        _ if inner.actions_token => {
            Author::bot("github-actions[bot]", Some((ACTIONS_APP_ID, "github-actions")))
        }
        _ => Author::person(TOKEN_USER),
    }
}

/// `None` for an installation token that works (or any token when no App is configured), else
/// the refusal.
fn refused(inner: &mut PrInner, method: &str, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    inner.requests.push(format!("{method} {uri}"));
    let token = bearer(headers);
    let ok = match (&inner.app, token) {
        (_, None) => false,
        (None, Some(t)) => !t.is_empty(),
        (Some(_), Some(t)) => inner.tokens.get(t).copied().unwrap_or(false),
    };
    if ok {
        None
    } else {
        inner.unauthorized.push(format!("{method} {uri}"));
        Some(error(StatusCode::UNAUTHORIZED, "Bad credentials"))
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<usize>,
    per_page: Option<usize>,
}

fn comment_json(c: &Comment) -> Value {
    let app = c.author.app.as_ref().map(
        |(id, slug)| json!({ "id": id, "slug": slug, "name": slug, "owner": { "login": "acme-platform" } }),
    );
    json!({ "id": c.id, "body": c.body(),
            "user": { "login": c.author.login, "id": 1000 + c.id, "type": c.author.kind },
            "performed_via_github_app": app, "author_association": "NONE",
            "created_at": "2024-05-01T12:00:00Z", "updated_at": "2024-05-01T12:00:00Z" })
}

async fn list_comments(
    State(shared): State<Arc<PrShared>>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let mut inner = shared.lock();
    if let Some(refused) = refused(&mut inner, "GET", &uri, &headers) {
        return refused;
    }
    let per_page = q.per_page.unwrap_or(30).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let all: Vec<&Comment> = inner.comments.iter().filter(|c| c.issue == number).collect();
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|c| comment_json(c))
        .collect();
    let last = all.len().div_ceil(per_page).max(1);
    let mut response = Json(Value::Array(items)).into_response();
    if page < last {
        // Absolute, as GitHub sends them: the host from the request, the prefix kept.
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let prefix = if uri.path().starts_with("/api/v3/") {
            "/api/v3"
        } else {
            ""
        };
        let at = |p: usize| {
            format!(
                "http://{host}{prefix}/repos/{owner}/{repo}/issues/{number}/comments?per_page={per_page}&page={p}"
            )
        };
        let link = format!("<{}>; rel=\"next\", <{}>; rel=\"last\"", at(page + 1), at(last));
        response
            .headers_mut()
            .insert("link", link.parse().expect("link header"));
    }
    response
}

#[derive(Deserialize)]
struct CommentBody {
    body: String,
}

async fn create_comment(
    State(shared): State<Arc<PrShared>>,
    Path((_, _, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    uri: Uri,
    Json(body): Json<CommentBody>,
) -> Response {
    let response = {
        let mut inner = shared.lock();
        if let Some(refused) = refused(&mut inner, "POST", &uri, &headers) {
            return refused;
        }
        if body.body.chars().count() > MAX_COMMENT_CHARS {
            return validation_failed("IssueComment", "body is too long (maximum is 65536 characters)");
        }
        inner.next_id += 1;
        record_links(&mut inner, number, &body.body);
        let comment = Comment {
            id: inner.next_id,
            issue: number,
            author: author_of(&inner, &headers),
            bodies: vec![body.body],
        };
        let answer = comment_json(&comment);
        inner.comments.push(comment);
        (StatusCode::CREATED, Json(answer)).into_response()
    };
    shared.changed.notify_waiters();
    response
}

async fn update_comment(
    State(shared): State<Arc<PrShared>>,
    Path((_, _, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    uri: Uri,
    Json(body): Json<CommentBody>,
) -> Response {
    let response = {
        let mut inner = shared.lock();
        if let Some(refused) = refused(&mut inner, "PATCH", &uri, &headers) {
            return refused;
        }
        if body.body.chars().count() > MAX_COMMENT_CHARS {
            return validation_failed("IssueComment", "body is too long (maximum is 65536 characters)");
        }
        let editor = author_of(&inner, &headers);
        let Some(issue) = inner.comments.iter().find(|c| c.id == id).map(|c| c.issue) else {
            return error(StatusCode::NOT_FOUND, "Not Found");
        };
        record_links(&mut inner, issue, &body.body);
        let Some(comment) = inner.comments.iter_mut().find(|c| c.id == id) else {
            return error(StatusCode::NOT_FOUND, "Not Found");
        };
        // Only its author may edit a comment (storesync has no admin rights on the repository).
        if (comment.author.login.as_str(), comment.author.kind) != (editor.login.as_str(), editor.kind) {
            return error(StatusCode::FORBIDDEN, "Resource not accessible by integration");
        }
        comment.bodies.push(body.body);
        Json(comment_json(comment)).into_response()
    };
    shared.changed.notify_waiters();
    response
}

/// Records what GitHub would link in a comment body on `issue`.
fn record_links(inner: &mut PrInner, issue: u64, body: &str) {
    let own = format!("#{issue}");
    let linked = render::links(body)
        .into_iter()
        .filter(|l| *l != render::Linked::Reference(own.clone()));
    inner.linked.extend(linked.map(|l| (issue, l)));
}

/// The App's JWT from `headers`, checked: RS256 with the App's key, `iss` the App id, `exp`
/// in the future and at most 10 minutes after `iat`, `iat` not in the future.
fn check_jwt(app: &AppConfig, headers: &HeaderMap) -> Result<(), String> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("no bearer token")?;
    let key = DecodingKey::from_rsa_der(&app.public_key_der);
    let mut validation = Validation::new(Algorithm::RS256);
    // GitHub Apps send `iss` as a number, which jsonwebtoken only checks as a string: checked below.
    validation.set_required_spec_claims(&["exp", "iat"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| e.to_string())?;
    let claims = data.claims;
    let iss = claims["iss"]
        .as_u64()
        .or_else(|| claims["iss"].as_str().and_then(|s| s.parse().ok()));
    if iss != Some(app.app_id) {
        return Err(format!("iss {} is not the App", claims["iss"]));
    }
    let (iat, exp) = (
        claims["iat"].as_u64().ok_or("iat")?,
        claims["exp"].as_u64().ok_or("exp")?,
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    if exp <= iat || exp - iat > 600 {
        return Err(format!(
            "exp is {} s after iat; at most 600",
            exp.saturating_sub(iat)
        ));
    }
    if iat > now + 60 {
        return Err("iat is in the future".into());
    }
    Ok(())
}

async fn installation(
    State(shared): State<Arc<PrShared>>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock();
    inner.installation_lookups += 1;
    let Some(app) = inner.app.clone() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Err(why) = check_jwt(&app, &headers) {
        inner.unauthorized.push(format!("GET installation: {why}"));
        return error(StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded");
    }
    Json(json!({ "id": app.installation_id, "app_id": app.app_id,
                 "account": { "login": owner }, "repository_selection": "selected",
                 "repo": repo }))
    .into_response()
}

/// `GET /user`: the token's user; refused to an installation token, as GitHub does.
async fn user(State(shared): State<Arc<PrShared>>, headers: HeaderMap, uri: Uri) -> Response {
    let mut inner = shared.lock();
    if let Some(refused) = refused(&mut inner, "GET", &uri, &headers) {
        return refused;
    }
    let author = author_of(&inner, &headers);
    if author.kind == "Bot" {
        return error(StatusCode::FORBIDDEN, "Resource not accessible by integration");
    }
    Json(json!({ "login": author.login, "id": 501, "type": author.kind })).into_response()
}

/// `GET /app`: the App the JWT is signed for.
async fn app(State(shared): State<Arc<PrShared>>, headers: HeaderMap) -> Response {
    let mut inner = shared.lock();
    inner.app_lookups += 1;
    let Some(app) = inner.app.clone() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Err(why) = check_jwt(&app, &headers) {
        inner.unauthorized.push(format!("GET app: {why}"));
        return error(StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded");
    }
    Json(
        json!({ "id": app.app_id, "slug": APP_SLUG, "name": "storesync (acme)",
                 "owner": { "login": "acme-platform", "type": "Organization" } }),
    )
    .into_response()
}

async fn access_token(
    State(shared): State<Arc<PrShared>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let mut inner = shared.lock();
    let Some(app) = inner.app.clone() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Err(why) = check_jwt(&app, &headers) {
        inner.unauthorized.push(format!("POST access_tokens: {why}"));
        return error(StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded");
    }
    if id != app.installation_id {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    inner.token_exchanges += 1;
    let token = format!("ghs_fake{:04}", inner.token_exchanges);
    inner.tokens.insert(token.clone(), true);
    let expires = SystemTime::now() + app.token_ttl;
    let expires_at = rfc3339(expires.duration_since(UNIX_EPOCH).expect("clock").as_secs());
    (
        StatusCode::CREATED,
        Json(json!({ "token": token, "expires_at": expires_at, "permissions": {} })),
    )
        .into_response()
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (civil-from-days, proleptic Gregorian).
fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn rfc3339_of_known_times() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
}

/// A GitHub App made for a test: a fresh 2048-bit RSA key, test-only, never stored.
pub struct TestApp {
    pub app_id: u64,
    /// The private key as the App's settings page hands it out (PEM).
    pub pem: String,
    pub public_key_der: Vec<u8>,
}

impl TestApp {
    pub fn generate(app_id: u64) -> TestApp {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair as _;
        use base64::Engine;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
        let der = pair.as_der().expect("PKCS#8");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64"))
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        TestApp {
            app_id,
            pem,
            public_key_der: pair.public_key().as_ref().to_vec(),
        }
    }
}
