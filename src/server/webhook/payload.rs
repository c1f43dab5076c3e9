//! Payload parsing: a verified delivery's event and body turned into a [`WebhookAction`].
use serde::Deserialize;

/// What a verified delivery asks storesync to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAction {
    Ping,
    /// Push to the tracked branch: sync this commit (the `after` sha).
    Sync {
        sha: String,
    },
    /// `pull_request` opened/synchronize/reopened: plan this head commit. Only `reopened`
    /// plans a pull request storesync saw closed; a late `opened` or `synchronize` does not.
    Plan {
        number: u64,
        sha: String,
        head_ref: String,
        from_fork: bool,
        reopened: bool,
    },
    /// `pull_request` closed (merged or not): its plan comment says so and stops changing.
    Closed {
        number: u64,
        merged: bool,
    },
    /// Accepted but nothing to do; the reason is for logs.
    Ignore(&'static str),
}

/// A delivery that is signed but cannot be understood. Messages never quote the payload.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{event} payload is not JSON: {source}")]
    Json {
        event: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{event} payload lacks a field or has one of the wrong type: {source}")]
    Payload {
        event: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{event} payload has a {field} that is not a commit id")]
    InvalidSha {
        event: &'static str,
        field: &'static str,
    },
}

impl WebhookError {
    /// A fixed, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            WebhookError::Json { .. } => "invalid_json",
            WebhookError::Payload { .. } => "invalid_payload",
            WebhookError::InvalidSha { .. } => "invalid_sha",
        }
    }

    fn from_serde(event: &'static str) -> impl Fn(serde_json::Error) -> WebhookError {
        move |source| match source.classify() {
            serde_json::error::Category::Data => WebhookError::Payload { event, source },
            _ => WebhookError::Json { event, source },
        }
    }
}

/// Only the fields storesync reads; GitHub's many others are ignored.
#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct PullRequestAction {
    action: String,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    number: u64,
    pull_request: PullRequest,
    #[serde(default)]
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct PullRequest {
    head: GitRef,
    base: GitRef,
}

/// What a `closed` delivery needs: less than a plan, so a deleted fork's head does not matter.
#[derive(Deserialize)]
struct ClosedEvent {
    number: u64,
    pull_request: ClosedPullRequest,
    #[serde(default)]
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct ClosedPullRequest {
    #[serde(default)]
    merged: bool,
    base: BaseRef,
}

#[derive(Deserialize)]
struct BaseRef {
    #[serde(rename = "ref")]
    git_ref: String,
}

#[derive(Deserialize)]
struct GitRef {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    /// `null` when the head repository (a fork) was deleted.
    #[serde(default)]
    repo: Option<Repository>,
}

/// Turns a verified delivery into an action. `event` is the `X-GitHub-Event` header,
/// `tracked_branch` e.g. `main`, `repository` is `owner/name` when configured: deliveries for
/// another repository (an organization-wide hook) are ignored, and a pull request whose head
/// repository differs is `from_fork`.
pub fn parse(
    event: &str,
    body: &[u8],
    tracked_branch: &str,
    repository: Option<&str>,
) -> Result<WebhookAction, WebhookError> {
    let tracked_branch = tracked_branch
        .strip_prefix("refs/heads/")
        .unwrap_or(tracked_branch);
    match event {
        "ping" => Ok(WebhookAction::Ping),
        "push" => parse_push(body, tracked_branch, repository),
        "pull_request" => parse_pull_request(body, tracked_branch, repository),
        _ => Ok(WebhookAction::Ignore("event not handled")),
    }
}

fn parse_push(
    body: &[u8],
    tracked_branch: &str,
    repository: Option<&str>,
) -> Result<WebhookAction, WebhookError> {
    let push: PushEvent = serde_json::from_slice(body).map_err(WebhookError::from_serde("push"))?;
    if !same_repository(repository, push.repository.as_ref()) {
        return Ok(WebhookAction::Ignore("event for another repository"));
    }
    if push.git_ref.starts_with("refs/tags/") {
        return Ok(WebhookAction::Ignore("tag push"));
    }
    if push.deleted || is_zero_sha(&push.after) {
        return Ok(WebhookAction::Ignore("branch deleted"));
    }
    if push.git_ref.strip_prefix("refs/heads/") != Some(tracked_branch) {
        return Ok(WebhookAction::Ignore("push to another branch"));
    }
    if !is_commit_id(&push.after) {
        return Err(WebhookError::InvalidSha {
            event: "push",
            field: "after",
        });
    }
    Ok(WebhookAction::Sync { sha: push.after })
}

fn parse_pull_request(
    body: &[u8],
    tracked_branch: &str,
    repository: Option<&str>,
) -> Result<WebhookAction, WebhookError> {
    let from_serde = WebhookError::from_serde("pull_request");
    // The action first, so an action storesync ignores need not carry a well-formed PR.
    let action: PullRequestAction = serde_json::from_slice(body).map_err(&from_serde)?;
    match action.action.as_str() {
        "opened" | "synchronize" | "reopened" => {}
        "closed" => return parse_closed(body, tracked_branch, repository),
        _ => return Ok(WebhookAction::Ignore("pull_request action not handled")),
    }
    let event: PullRequestEvent = serde_json::from_slice(body).map_err(&from_serde)?;
    let pr = event.pull_request;
    if !same_repository(repository, event.repository.as_ref()) {
        return Ok(WebhookAction::Ignore("event for another repository"));
    }
    // A pull request into another branch would not be synced when merged: its plan against
    // the cluster would mislead.
    if pr.base.git_ref != tracked_branch {
        return Ok(WebhookAction::Ignore("pull request to another branch"));
    }
    if !is_commit_id(&pr.head.sha) {
        return Err(WebhookError::InvalidSha {
            event: "pull_request",
            field: "pull_request.head.sha",
        });
    }
    // Compared with the configured repository, else with the pull request's own base.
    let home = repository
        .map(str::to_owned)
        .or_else(|| pr.base.repo.as_ref().map(|r| r.full_name.clone()))
        .or_else(|| event.repository.as_ref().map(|r| r.full_name.clone()));
    let from_fork = match (&pr.head.repo, home) {
        (Some(head), Some(home)) => !head.full_name.eq_ignore_ascii_case(&home),
        // A deleted fork, or nothing to compare with: treat as untrusted.
        _ => true,
    };
    Ok(WebhookAction::Plan {
        number: event.number,
        sha: pr.head.sha,
        head_ref: pr.head.git_ref,
        from_fork,
        reopened: action.action == "reopened",
    })
}

fn parse_closed(
    body: &[u8],
    tracked_branch: &str,
    repository: Option<&str>,
) -> Result<WebhookAction, WebhookError> {
    let event: ClosedEvent =
        serde_json::from_slice(body).map_err(WebhookError::from_serde("pull_request"))?;
    if !same_repository(repository, event.repository.as_ref()) {
        return Ok(WebhookAction::Ignore("event for another repository"));
    }
    if event.pull_request.base.git_ref != tracked_branch {
        return Ok(WebhookAction::Ignore("pull request to another branch"));
    }
    Ok(WebhookAction::Closed {
        number: event.number,
        merged: event.pull_request.merged,
    })
}

/// GitHub names are case-insensitive. A payload without a repository is not rejected here.
fn same_repository(configured: Option<&str>, payload: Option<&Repository>) -> bool {
    match (configured, payload) {
        (Some(configured), Some(payload)) => configured.eq_ignore_ascii_case(&payload.full_name),
        _ => true,
    }
}

fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// A full SHA-1 or SHA-256 object id in lowercase hex: it goes into API paths and git calls.
fn is_commit_id(sha: &str) -> bool {
    matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
    const SHA2: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
    const REPO: &str = "acme-platform/stores";

    fn push(git_ref: &str, after: &str, deleted: bool) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "ref": git_ref,
            "before": SHA2,
            "after": after,
            "created": false,
            "deleted": deleted,
            "forced": false,
            "commits": [],
            "repository": {"full_name": REPO, "name": "stores"},
            "pusher": {"name": "octocat"},
        }))
        .unwrap()
    }

    fn parse_main(event: &str, body: &[u8]) -> Result<WebhookAction, WebhookError> {
        parse(event, body, "main", Some(REPO))
    }

    #[test]
    fn push_to_tracked_branch_syncs_after() {
        let action = parse_main("push", &push("refs/heads/main", SHA, false)).unwrap();
        assert_eq!(action, WebhookAction::Sync { sha: SHA.into() });
        // Without a configured repository, and with a tracked branch given as a full ref.
        let body = push("refs/heads/main", SHA, false);
        assert_eq!(
            parse("push", &body, "refs/heads/main", None).unwrap(),
            WebhookAction::Sync { sha: SHA.into() }
        );
    }

    #[test]
    fn push_rules_ignore() {
        let cases = [
            (
                push("refs/heads/main", "0".repeat(40).as_str(), true),
                "branch deleted",
            ),
            (
                push("refs/heads/feature", "0".repeat(40).as_str(), true),
                "branch deleted",
            ),
            (
                push("refs/heads/main", "0".repeat(40).as_str(), false),
                "branch deleted",
            ),
            (push("refs/tags/v1.0.0", SHA, false), "tag push"),
            (
                push("refs/tags/v1.0.0", "0".repeat(40).as_str(), true),
                "tag push",
            ),
            (push("refs/heads/feature/x", SHA, false), "push to another branch"),
            (push("refs/heads/mainline", SHA, false), "push to another branch"),
            (push("refs/heads/Main", SHA, false), "push to another branch"),
        ];
        for (body, reason) in cases {
            let action = parse_main("push", &body).unwrap();
            assert_eq!(
                action,
                WebhookAction::Ignore(reason),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn push_for_another_repository_is_ignored() {
        let body = push("refs/heads/main", SHA, false);
        let action = parse("push", &body, "main", Some("acme-platform/other")).unwrap();
        assert_eq!(action, WebhookAction::Ignore("event for another repository"));
        // Case-insensitive, as GitHub names are.
        let action = parse("push", &body, "main", Some("Acme-Platform/Stores")).unwrap();
        assert_eq!(action, WebhookAction::Sync { sha: SHA.into() });
    }

    #[test]
    fn push_errors() {
        let err = parse_main("push", b"{not json").unwrap_err();
        assert_eq!(err.metric_label(), "invalid_json");
        let err = parse_main("push", br#"{"after": "abc"}"#).unwrap_err();
        assert_eq!(err.metric_label(), "invalid_payload");
        assert!(err.to_string().contains("`ref`"), "{err}");
        let err = parse_main("push", br#"{"ref": 1, "after": "abc"}"#).unwrap_err();
        assert_eq!(err.metric_label(), "invalid_payload");
        for bad in ["abc", "../../../etc", &SHA.to_uppercase(), &format!("{SHA}0")] {
            let err = parse_main("push", &push("refs/heads/main", bad, false)).unwrap_err();
            assert_eq!(err.metric_label(), "invalid_sha", "{bad}");
        }
        // A SHA-256 repository's object ids are accepted.
        let sha256 = "a".repeat(64);
        assert_eq!(
            parse_main("push", &push("refs/heads/main", &sha256, false)).unwrap(),
            WebhookAction::Sync { sha: sha256 }
        );
    }

    fn pull_request(action: &str, head_repo: Value, base_ref: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "action": action,
            "number": 42,
            "pull_request": {
                "number": 42,
                "state": "open",
                "head": {"label": "x:add-store", "ref": "add-store", "sha": SHA, "repo": head_repo},
                "base": {"label": "acme-platform:main", "ref": base_ref, "sha": SHA2,
                         "repo": {"full_name": REPO}},
            },
            "repository": {"full_name": REPO},
        }))
        .unwrap()
    }

    #[test]
    fn pull_request_actions_that_plan() {
        for action in ["opened", "synchronize", "reopened"] {
            let body = pull_request(action, json!({"full_name": REPO}), "main");
            assert_eq!(
                parse_main("pull_request", &body).unwrap(),
                WebhookAction::Plan {
                    number: 42,
                    sha: SHA.into(),
                    head_ref: "add-store".into(),
                    from_fork: false,
                    reopened: action == "reopened",
                },
                "{action}"
            );
        }
    }

    #[test]
    fn pull_request_from_fork() {
        let body = pull_request("opened", json!({"full_name": "mallory/stores"}), "main");
        let Ok(WebhookAction::Plan { from_fork, .. }) = parse_main("pull_request", &body) else {
            panic!("expected a plan");
        };
        assert!(from_fork);
        // Without a configured repository: compared with the base repository.
        let Ok(WebhookAction::Plan { from_fork, .. }) = parse("pull_request", &body, "main", None) else {
            panic!("expected a plan");
        };
        assert!(from_fork);
        let same = pull_request("opened", json!({"full_name": REPO}), "main");
        let Ok(WebhookAction::Plan { from_fork, .. }) = parse("pull_request", &same, "main", None) else {
            panic!("expected a plan");
        };
        assert!(!from_fork);
        // A deleted fork has a null head repository.
        let body = pull_request("synchronize", Value::Null, "main");
        let Ok(WebhookAction::Plan { from_fork, .. }) = parse_main("pull_request", &body) else {
            panic!("expected a plan");
        };
        assert!(from_fork);
    }

    #[test]
    fn pull_request_rules_ignore() {
        let repo = json!({"full_name": REPO});
        let cases = [
            ("closed", "release", "pull request to another branch"),
            ("labeled", "main", "pull_request action not handled"),
            ("edited", "main", "pull_request action not handled"),
            ("opened", "release", "pull request to another branch"),
        ];
        for (action, base, reason) in cases {
            let body = pull_request(action, repo.clone(), base);
            assert_eq!(
                parse_main("pull_request", &body).unwrap(),
                WebhookAction::Ignore(reason)
            );
        }
        let body = pull_request("opened", repo, "main");
        assert_eq!(
            parse("pull_request", &body, "main", Some("acme-platform/other")).unwrap(),
            WebhookAction::Ignore("event for another repository")
        );
        // An ignored action needs nothing but its name.
        assert_eq!(
            parse_main("pull_request", br#"{"action": "labeled"}"#).unwrap(),
            WebhookAction::Ignore("pull_request action not handled")
        );
    }

    #[test]
    fn closed_pull_requests_mark_their_comment() {
        let mut body: Value = serde_json::from_slice(&pull_request("closed", Value::Null, "main")).unwrap();
        assert_eq!(
            parse_main("pull_request", &serde_json::to_vec(&body).unwrap()).unwrap(),
            WebhookAction::Closed {
                number: 42,
                merged: false
            }
        );
        body["pull_request"]["merged"] = json!(true);
        assert_eq!(
            parse_main("pull_request", &serde_json::to_vec(&body).unwrap()).unwrap(),
            WebhookAction::Closed {
                number: 42,
                merged: true
            }
        );
        // GitHub's own sample: pull request 2 of Codertocat/Hello-World into master, not merged.
        let sample = include_bytes!("../../../webhooks/payloads/octokit-pull_request-closed.json");
        assert_eq!(
            parse("pull_request", sample, "master", Some("Codertocat/Hello-World")).unwrap(),
            WebhookAction::Closed {
                number: 2,
                merged: false
            }
        );
        let err = parse_main("pull_request", br#"{"action": "closed"}"#).unwrap_err();
        assert_eq!(err.metric_label(), "invalid_payload");
    }

    #[test]
    fn pull_request_errors() {
        let err = parse_main("pull_request", br#"{"action": "opened", "number": 1}"#).unwrap_err();
        assert_eq!(err.metric_label(), "invalid_payload");
        assert!(err.to_string().contains("pull_request"), "{err}");
        let err = parse_main("pull_request", b"[").unwrap_err();
        assert_eq!(err.metric_label(), "invalid_json");
        let mut body: Value = serde_json::from_slice(&pull_request("opened", Value::Null, "main")).unwrap();
        body["pull_request"]["head"]["sha"] = json!("main");
        let err = parse_main("pull_request", &serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert_eq!(err.metric_label(), "invalid_sha");
    }

    #[test]
    fn ping_and_other_events() {
        assert_eq!(parse_main("ping", b"{}").unwrap(), WebhookAction::Ping);
        for event in ["issues", "check_run", "workflow_run", ""] {
            assert_eq!(
                parse_main(event, b"{}").unwrap(),
                WebhookAction::Ignore("event not handled")
            );
        }
    }
}
