//! Check runs as GitHub takes them: create and update, annotations appended, and GitHub's
//! limits refused with a 422 (at most 50 annotations per request, an annotation title of at
//! most 255 characters, a message or raw details of at most 64 KB, a summary or text of at most
//! 65,535 characters, the levels and conclusions GitHub knows). A refused request changes
//! nothing.
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{CheckRun, PrShared, error, refused, validation_failed};

pub const MAX_SUMMARY_CHARS: usize = 65_535;
pub const MAX_ANNOTATIONS_PER_REQUEST: usize = 50;
pub const MAX_ANNOTATION_TITLE_CHARS: usize = 255;
/// "The maximum size is 64 KB" for an annotation's message and raw details.
pub const MAX_ANNOTATION_MESSAGE_BYTES: usize = 65_535;
const CONCLUSIONS: [&str; 7] = [
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "timed_out",
];

/// GitHub's checks of one annotation.
fn check_annotation(a: &Value) -> Result<(), &'static str> {
    let has = |k: &str| a.get(k).is_some();
    if !(has("path") && has("start_line") && has("end_line") && has("annotation_level") && has("message")) {
        return Err("an annotation lacks a required field");
    }
    let text = |k: &str| a.get(k).and_then(Value::as_str);
    if !["notice", "warning", "failure"].contains(&text("annotation_level").unwrap_or("")) {
        return Err("annotation_level is not included in the list");
    }
    if text("title").is_some_and(|t| t.chars().count() > MAX_ANNOTATION_TITLE_CHARS) {
        return Err("annotation title is too long (maximum is 255 characters)");
    }
    for field in ["message", "raw_details"] {
        if text(field).is_some_and(|t| t.len() > MAX_ANNOTATION_MESSAGE_BYTES) {
            return Err("annotation message or raw_details is too long (maximum is 64 KB)");
        }
    }
    let line = |k: &str| a.get(k).and_then(Value::as_u64);
    if has("start_column") && line("start_line") != line("end_line") {
        return Err("start_column and end_column are only allowed on one line");
    }
    Ok(())
}

/// Applies a create or update body to `run` as GitHub does; GitHub's message when invalid.
fn apply_check_run(run: &mut CheckRun, body: &Value) -> Result<(), &'static str> {
    if let Some(status) = body.get("status").and_then(Value::as_str) {
        if !["queued", "in_progress", "completed"].contains(&status) {
            return Err("status is not included in the list");
        }
        run.status = status.into();
    }
    if let Some(conclusion) = body.get("conclusion").and_then(Value::as_str) {
        if !CONCLUSIONS.contains(&conclusion) {
            return Err("conclusion is not included in the list");
        }
        run.conclusion = Some(conclusion.into());
        run.status = "completed".into();
    }
    if run.status == "completed" && run.conclusion.is_none() {
        return Err("conclusion is required when completed");
    }
    if let Some(output) = body.get("output") {
        let text = |k: &str| output.get(k).and_then(Value::as_str).map(String::from);
        let (Some(title), Some(summary)) = (text("title"), text("summary")) else {
            return Err("output needs a title and a summary");
        };
        if summary.chars().count() > MAX_SUMMARY_CHARS {
            return Err("summary is too long (maximum is 65535 characters)");
        }
        if text("text").is_some_and(|t| t.chars().count() > MAX_SUMMARY_CHARS) {
            return Err("text is too long (maximum is 65535 characters)");
        }
        let notes = output
            .get("annotations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if notes.len() > MAX_ANNOTATIONS_PER_REQUEST {
            return Err("only 50 annotations are allowed per request");
        }
        for a in &notes {
            check_annotation(a)?;
        }
        run.title = Some(title);
        run.summary = Some(summary);
        run.batches.push(notes.len());
        run.annotations.extend(notes);
    }
    Ok(())
}

pub(super) async fn create_check_run(
    State(shared): State<Arc<PrShared>>,
    headers: HeaderMap,
    uri: Uri,
    Json(body): Json<Value>,
) -> Response {
    let response = {
        let mut inner = shared.lock();
        if let Some(refused) = refused(&mut inner, "POST", &uri, &headers) {
            return refused;
        }
        // Only Apps with the Checks permission may write check runs.
        if inner.checks_forbidden {
            return error(StatusCode::FORBIDDEN, "Resource not accessible by integration");
        }
        if inner.app.is_none() {
            return error(StatusCode::FORBIDDEN, "You must authenticate via a GitHub App.");
        }
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
        let (Some(name), Some(head_sha)) = (text("name"), text("head_sha")) else {
            return validation_failed("CheckRun", "name and head_sha are required");
        };
        inner.next_id += 1;
        let mut run = CheckRun {
            id: inner.next_id,
            name,
            head_sha,
            status: "queued".into(),
            ..CheckRun::default()
        };
        if let Err(message) = apply_check_run(&mut run, &body) {
            return validation_failed("CheckRun", message);
        }
        run.writes = 1;
        let answer = json!({ "id": run.id, "status": run.status, "head_sha": run.head_sha });
        inner.check_runs.push(run);
        (StatusCode::CREATED, Json(answer)).into_response()
    };
    shared.changed.notify_waiters();
    response
}

pub(super) async fn update_check_run(
    State(shared): State<Arc<PrShared>>,
    Path((_, _, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    uri: Uri,
    Json(body): Json<Value>,
) -> Response {
    let response = {
        let mut inner = shared.lock();
        if let Some(refused) = refused(&mut inner, "PATCH", &uri, &headers) {
            return refused;
        }
        let Some(run) = inner.check_runs.iter_mut().find(|r| r.id == id) else {
            return error(StatusCode::NOT_FOUND, "Not Found");
        };
        // Validated on a copy: a refused request changes nothing.
        let mut updated = run.clone();
        if let Err(message) = apply_check_run(&mut updated, &body) {
            return validation_failed("CheckRun", message);
        }
        updated.writes += 1;
        *run = updated;
        Json(json!({ "id": run.id, "status": run.status })).into_response()
    };
    shared.changed.notify_waiters();
    response
}
