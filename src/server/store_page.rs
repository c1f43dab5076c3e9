//! `/stores/<name>`: one store's whole story on one page — its health and each judged object's,
//! its recent Events, the syncs that touched it, its release revisions and its Git history.
//! Each section reads its own source and says so when that source fails: one failed read never
//! turns the page into an error.
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use tokio::sync::Semaphore;

use super::ServerState;
use super::pages::{commit_link, esc, health_cell, page, state_class};
use crate::daemon::StoreSync;
use crate::desired::namespace_of;
use crate::desired::rules::is_store_name;
use crate::live::health::StoreHealth;
use crate::live::{HELM_RELEASE_SELECTOR, store_client};
use crate::report::StoreView;
use crate::source::history::{HistoryEntry, store_history};
use crate::source::tracked::TrackedRepo;
use crate::text::rfc3339;
use crate::untrusted::printable;

/// Rows shown per section.
const KEEP: usize = 20;
/// How long one cluster read of a page view may take.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the Git history may take; the walk goes on in the background past it, holding its
/// slot, so a slow repository never piles up walks.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(10);
/// A store's history is read again at most this often: a page refreshes every 15 seconds, and a
/// remote repository is fetched to read it.
const HISTORY_FRESH: Duration = Duration::from_secs(60);
/// Objects listed by one LIST of a page view; the newest [`KEEP`] are shown.
const LIST_LIMIT: u32 = 500;

/// A section's rows, or why its source could not be read.
type Section<T> = Result<Vec<T>, String>;

/// Everything the page shows of one store.
struct Story {
    view: StoreView,
    health: Option<StoreHealth>,
    syncs: Vec<StoreSync>,
    events: Section<EventRow>,
    releases: Section<ReleaseRow>,
    history: Section<HistoryEntry>,
}

struct EventRow {
    /// Unix seconds of the last occurrence.
    time: Option<i64>,
    type_: String,
    reason: String,
    regarding: String,
    note: String,
    count: i32,
}

struct ReleaseRow {
    revision: u32,
    status: String,
    /// Unix seconds (Helm's `modifiedAt` label, else `createdAt`).
    modified: Option<i64>,
}

pub(super) async fn store_page(State(s): State<Arc<ServerState>>, Path(name): Path<String>) -> Response {
    if !is_store_name(&name) {
        return (
            StatusCode::BAD_REQUEST,
            "not a store name (3 to 40 characters of a-z, 0-9 and '-')\n",
        )
            .into_response();
    }
    let Some(view) = s.ctx.state.stores().into_iter().find(|v| v.name == name) else {
        return (StatusCode::NOT_FOUND, Html(unknown_store(&name))).into_response();
    };
    let client = &s.ctx.applier.client;
    let (events, releases, history) = tokio::join!(
        events(client, &name),
        releases(client, &name),
        history(&s.ctx.settings.tracked, &name),
    );
    let story = Story {
        view,
        health: s.ctx.state.store_health(&name),
        syncs: s.ctx.state.store_syncs(&name, KEEP),
        events,
        releases,
        history,
    };
    Html(render(&story)).into_response()
}

/// The newest Events in the store's namespace, as storesync's own identity (one LIST).
async fn events(client: &kube::Client, store: &str) -> Section<EventRow> {
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace_of(store));
    let listed = tokio::time::timeout(
        CLUSTER_TIMEOUT,
        api.list(&ListParams::default().limit(LIST_LIMIT)),
    )
    .await
    .map_err(|_| {
        format!(
            "the API server did not answer within {}s",
            CLUSTER_TIMEOUT.as_secs()
        )
    })?
    .map_err(|e| format!("cannot list Events: {e}"))?;
    let mut rows: Vec<EventRow> = listed.items.into_iter().map(event_row).collect();
    rows.sort_by_key(|e| std::cmp::Reverse(e.time));
    rows.truncate(KEEP);
    Ok(rows)
}

fn event_row(e: Event) -> EventRow {
    let time = (e.series.as_ref().map(|s| s.last_observed_time.0))
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .map(|t| t.as_second());
    let count = (e.series.as_ref().map(|s| s.count))
        .or(e.deprecated_count)
        .unwrap_or(1);
    let regarding = e.regarding.map_or_else(String::new, |r| {
        format!("{} {}", r.kind.unwrap_or_default(), r.name.unwrap_or_default())
    });
    EventRow {
        time,
        type_: e.type_.unwrap_or_default(),
        reason: e.reason.unwrap_or_default(),
        regarding,
        note: e.note.unwrap_or_default(),
        count,
    }
}

/// Helm's release revisions from its release Secrets' labels, read as the store's own identity
/// (metadata only: a release's payload is never read here).
async fn releases(client: &kube::Client, store: &str) -> Section<ReleaseRow> {
    let namespace = namespace_of(store);
    let api: Api<Secret> = Api::namespaced(store_client(client, store), &namespace);
    let params = ListParams::default()
        .labels(HELM_RELEASE_SELECTOR)
        .limit(LIST_LIMIT);
    let listed = tokio::time::timeout(CLUSTER_TIMEOUT, api.list_metadata(&params))
        .await
        .map_err(|_| {
            format!(
                "the API server did not answer within {}s",
                CLUSTER_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot list Helm's release Secrets: {e}"))?;
    let mut rows: Vec<ReleaseRow> = (listed.items.iter())
        .filter(|s| s.metadata.namespace.as_deref().is_none_or(|ns| ns == namespace))
        .filter_map(|s| {
            let labels = s.metadata.labels.as_ref()?;
            let seconds = |key: &str| labels.get(key).and_then(|v| v.parse::<i64>().ok());
            Some(ReleaseRow {
                revision: labels.get("version")?.parse().ok()?,
                status: labels.get("status").cloned().unwrap_or_default(),
                modified: seconds("modifiedAt").or_else(|| seconds("createdAt")),
            })
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.revision));
    rows.truncate(KEEP);
    Ok(rows)
}

/// Recent history reads per repository and store, and the one slot walks take in turn.
struct HistoryReads {
    recent: Mutex<HashMap<String, (Instant, Section<HistoryEntry>)>>,
    slot: Arc<Semaphore>,
}

/// Stores remembered; past it, the memory starts over.
const HISTORY_REMEMBERED: usize = 1000;

static HISTORY: LazyLock<HistoryReads> = LazyLock::new(|| HistoryReads {
    recent: Mutex::new(HashMap::new()),
    slot: Arc::new(Semaphore::new(1)),
});

/// The `history` command's data for the store, its newest [`KEEP`] entries, read on a blocking
/// thread, one walk at a time, at most once per [`HISTORY_FRESH`] per store.
async fn history(tracked: &TrackedRepo, store: &str) -> Section<HistoryEntry> {
    let key = format!("{:?}\n{}\n{store}", tracked.location, tracked.branch);
    if let Ok(recent) = HISTORY.recent.lock()
        && let Some((at, found)) = recent.get(&key)
        && at.elapsed() < HISTORY_FRESH
    {
        return found.clone();
    }
    let read = async {
        let slot = HISTORY
            .slot
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (tracked, store) = (tracked.clone(), store.to_string());
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            read_history(&tracked, &store)
        })
        .await
        .map_err(|e| format!("the history walk stopped: {e}"))?
    };
    let found = match tokio::time::timeout(HISTORY_TIMEOUT, read).await {
        Ok(found) => found,
        Err(_) => Err(format!(
            "reading the Git history took over {}s",
            HISTORY_TIMEOUT.as_secs()
        )),
    };
    if let Ok(mut recent) = HISTORY.recent.lock() {
        if recent.len() >= HISTORY_REMEMBERED {
            recent.clear();
        }
        recent.insert(key, (Instant::now(), found.clone()));
    }
    found
}

fn read_history(tracked: &TrackedRepo, store: &str) -> Section<HistoryEntry> {
    // As last fetched: a page view never makes the remote work.
    let opened = tracked.open_cached().map_err(|e| e.to_string())?;
    let head = tracked.head(&opened).map_err(|e| e.to_string())?;
    // The stores directory is the one configured at the head, as `history` reads it.
    let snapshot = tracked.snapshot(&opened, &head).map_err(|e| e.to_string())?;
    let mut entries = store_history(
        &opened.repo,
        &head,
        &opened.subdir,
        &snapshot.raw.stores_dir,
        store,
    )
    .map_err(|e| e.to_string())?;
    entries.truncate(KEEP);
    Ok(entries)
}

fn unavailable(why: &str) -> String {
    format!(
        "<p class=\"warn unavailable\">unavailable: {}</p>",
        esc(&printable(why))
    )
}

fn when(seconds: Option<i64>) -> String {
    seconds.map_or_else(|| "–".into(), |s| esc(&rfc3339(s)))
}

fn render(story: &Story) -> String {
    let v = &story.view;
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"/\">← all stores</a></p><h1>Store <code>{}</code></h1>\
         <p class=\"muted\">This page refreshes every 15 seconds.</p>",
        esc(&v.name)
    );
    let opt = |o: &Option<String>| o.as_deref().map(esc).unwrap_or_else(|| "–".into());
    let _ = write!(
        body,
        "<table id=\"summary\"><tbody><tr><th>State</th><td class=\"state {}\">{}</td></tr>\
         <tr><th>Health</th><td id=\"health\" class=\"state {}\">{}</td></tr>\
         <tr><th>Owner</th><td>{}</td></tr><tr><th>Engine</th><td>{}</td></tr><tr><th>Plan</th><td>{}</td></tr>\
         <tr><th>Applied commit</th><td>{}</td></tr><tr><th>Release</th><td>{}</td></tr>\
         <tr><th>Last error</th><td>{}</td></tr></tbody></table>",
        state_class(v.state.as_str()),
        esc(v.state.as_str()),
        state_class(v.health.map_or("", |h| h.as_str())),
        health_cell(v.health, v.health_reason.as_deref()),
        opt(&v.owner),
        opt(&v.engine),
        opt(&v.plan),
        commit_link(v.commit.as_deref()),
        opt(&v.release),
        opt(&v.last_error),
    );
    if let Some(at) = &v.retired_at {
        let purge = v.purge_at.as_deref().map_or_else(
            || "after the retention".to_string(),
            |p| format!("after <time>{}</time>", esc(p)),
        );
        let _ = write!(
            body,
            "<p id=\"retired\" class=\"warn\">Retired at <time>{}</time>: its file is gone, nothing of it runs or \
             serves, and its claims, credentials and release history are kept. It is purged {purge}, unless its \
             file comes back with the same engine.</p>",
            esc(at)
        );
    }
    render_objects(&mut body, story.health.as_ref());
    render_events(&mut body, &story.events);
    render_syncs(&mut body, &story.syncs);
    render_releases(&mut body, &story.releases);
    render_history(&mut body, &story.history);
    page(&format!("storesync: {}", v.name), true, &body)
}

fn render_objects(body: &mut String, health: Option<&StoreHealth>) {
    body.push_str("<h2>Objects</h2>");
    let Some(health) = health else {
        body.push_str(&unavailable(
            "not judged yet by this replica (health is judged after each sync and drift check)",
        ));
        return;
    };
    body.push_str(
        "<table id=\"objects\"><thead><tr><th>Kind</th><th>Name</th><th>Health</th><th>Reason</th></tr>\
         </thead><tbody>",
    );
    for o in &health.objects {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"state {}\">{}</td><td>{}</td></tr>",
            esc(&o.kind),
            esc(&o.name),
            state_class(o.health.as_str()),
            esc(o.health.as_str()),
            esc(o.reason.as_deref().unwrap_or("")),
        );
    }
    if health.objects.is_empty() {
        let _ = write!(
            body,
            "<tr><td colspan=\"4\" class=\"muted\">No object judged: {}</td></tr>",
            esc(health.reason.as_deref().unwrap_or(health.health.as_str()))
        );
    }
    body.push_str("</tbody></table>");
}

fn render_events(body: &mut String, events: &Section<EventRow>) {
    body.push_str("<h2>Events</h2>");
    let events = match events {
        Ok(events) => events,
        Err(why) => return body.push_str(&unavailable(why)),
    };
    body.push_str(
        "<table id=\"events\"><thead><tr><th>Last seen (UTC)</th><th>Type</th><th>Reason</th><th>Object</th>\
         <th>Note</th><th>Count</th></tr></thead><tbody>",
    );
    for e in events {
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(e.time),
            if e.type_ == "Warning" { "warn" } else { "muted" },
            esc(&e.type_),
            esc(&e.reason),
            esc(&e.regarding),
            esc(&e.note),
            e.count,
        );
    }
    if events.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No recent Events.</td></tr>");
    }
    body.push_str("</tbody></table>");
}

fn render_syncs(body: &mut String, syncs: &[StoreSync]) {
    body.push_str(
        "<h2>Last syncs</h2><table id=\"syncs\"><thead><tr><th>Finished (UTC)</th><th>Commit</th>\
         <th>Outcome</th><th>Detail</th><th>Sync</th></tr></thead><tbody>",
    );
    for s in syncs {
        let outcome = s.outcome.as_str();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"state {}\">{}</td><td>{}</td><td class=\"state {}\">{}: {}</td></tr>",
            esc(&rfc3339(s.finished as i64)),
            commit_link(Some(&s.sha)),
            state_class(outcome),
            esc(outcome),
            esc(s.detail.as_deref().unwrap_or("")),
            state_class(s.state.as_str()),
            esc(s.state.as_str()),
            esc(&s.description),
        );
    }
    if syncs.is_empty() {
        body.push_str(
            "<tr><td colspan=\"5\" class=\"muted\">No sync this daemon remembers touched this store.</td></tr>",
        );
    }
    body.push_str("</tbody></table>");
}

fn render_releases(body: &mut String, releases: &Section<ReleaseRow>) {
    body.push_str("<h2>Release revisions</h2>");
    let releases = match releases {
        Ok(releases) => releases,
        Err(why) => return body.push_str(&unavailable(why)),
    };
    body.push_str(
        "<table id=\"releases\"><thead><tr><th>Revision</th><th>Status</th><th>Updated (UTC)</th></tr></thead><tbody>",
    );
    for r in releases {
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"state {}\">{}</td><td>{}</td></tr>",
            r.revision,
            if r.status == "deployed" {
                "ok"
            } else {
                state_class(&r.status)
            },
            esc(&r.status),
            when(r.modified),
        );
    }
    if releases.is_empty() {
        body.push_str("<tr><td colspan=\"3\" class=\"muted\">No release.</td></tr>");
    }
    body.push_str("</tbody></table>");
}

fn render_history(body: &mut String, history: &Section<HistoryEntry>) {
    body.push_str("<h2>Git history</h2>");
    let history = match history {
        Ok(history) => history,
        Err(why) => return body.push_str(&unavailable(why)),
    };
    body.push_str(
        "<table id=\"history\"><thead><tr><th>Date (UTC)</th><th>Commit</th><th>Author</th><th>Subject</th>\
         <th>Change</th></tr></thead><tbody>",
    );
    for e in history {
        let path = e.new_path.as_ref().or(e.old_path.as_ref()).map_or("", |p| p);
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} <code>{}</code></td></tr>",
            esc(&e.date),
            commit_link(Some(&e.commit)),
            esc(&printable(&e.author)),
            esc(&printable(&e.subject)),
            esc(&format!("{:?}", e.change).to_lowercase()),
            esc(&printable(path)),
        );
    }
    if history.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">No commit touched this store's file.</td></tr>");
    }
    body.push_str("</tbody></table>");
}

fn unknown_store(name: &str) -> String {
    page(
        "storesync: unknown store",
        false,
        &format!(
            "<p><a href=\"/\">← all stores</a></p><h1>Store <code>{}</code></h1>\
             <p>This daemon knows no store of that name.</p>",
            esc(name)
        ),
    )
}
