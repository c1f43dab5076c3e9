//! Server-rendered pages: readable without JavaScript, refreshing themselves.
use std::fmt::Write;

use crate::daemon::{CommitRecord, Context};
use crate::text::rfc3339;

/// Escapes text for HTML element content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d1d1f}\
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{text-align:left;padding:.35rem .6rem;\
border-bottom:1px solid #ddd;vertical-align:top}th{background:#f4f4f6}code,pre{font:12px ui-monospace,monospace}\
pre{background:#f6f8fa;padding:1rem;overflow:auto}.state{font-weight:600}.ok{color:#1a7f37}\
.bad{color:#cf222e}.warn{color:#9a6700}.muted{color:#6e7781}";

pub(super) fn page(title: &str, refresh: bool, body: &str) -> String {
    let refresh = if refresh {
        "<meta http-equiv=\"refresh\" content=\"15\">"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

pub(super) fn state_class(state: &str) -> &'static str {
    match state {
        "in-sync" | "applied" | "success" | "pruned" | "purged" => "ok",
        "failed" | "failure" | "error" | "Degraded" | "Missing" | "held" => "bad",
        "blocked" | "pending" | "terminating" | "suspended" | "skipped" | "Progressing" | "Suspended"
        | "Retired" | "retired" | "waiting" => "warn",
        "Healthy" => "ok",
        _ => "muted",
    }
}

/// A store's health, and why when it is not Healthy (escaped: object names come from the
/// cluster).
pub(super) fn health_cell(health: Option<crate::live::health::Health>, reason: Option<&str>) -> String {
    match (health, reason) {
        (None, _) => "–".into(),
        (Some(h), None) => esc(h.as_str()),
        (Some(h), Some(why)) => format!("{}<br><span class=\"muted\">{}</span>", esc(h.as_str()), esc(why)),
    }
}

/// A commit id as a link to its page. The id may come from a namespace annotation anyone with
/// access to the cluster can edit: anything but a full hex id is shown as text, at most 40
/// characters of it.
pub(super) fn commit_link(sha: Option<&str>) -> String {
    match sha {
        Some(sha) if matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!(
                "<a href=\"/commits/{0}\"><code>{1}</code></a>",
                esc(&sha.to_ascii_lowercase()),
                esc(&sha[..12])
            )
        }
        Some(sha) => {
            let shown: String = sha.chars().take(40).collect();
            let more = if shown.len() < sha.len() { "…" } else { "" };
            format!("<code>{}{more}</code>", esc(&shown))
        }
        None => "<span class=\"muted\">–</span>".into(),
    }
}

/// A store's name as a link to its page; a name that is not a store name (it came from the
/// cluster) is shown as text.
pub(super) fn store_link(name: &str) -> String {
    if crate::desired::rules::is_store_name(name) {
        format!("<a href=\"/stores/{0}\">{0}</a>", esc(name))
    } else {
        esc(name)
    }
}

/// Which replica leads, when replicas elect one.
fn leader_line(ctx: &Context) -> String {
    if !ctx.leader.is_elected() {
        return String::new();
    }
    let view = ctx.leader.view();
    let me = esc(ctx.leader.identity());
    match (view.leading, view.holder) {
        (true, _) => format!("<p id=\"leader\">Leader: <code>{me}</code> (this replica).</p>"),
        (false, Some(holder)) => format!(
            "<p id=\"leader\">Leader: <code>{}</code>. This replica, <code>{me}</code>, takes webhooks and \
             hands pushes to it.</p>",
            esc(&holder)
        ),
        (false, None) => format!(
            "<p id=\"leader\">Leader: <span class=\"warn\">none yet</span>. This replica: <code>{me}</code>.</p>"
        ),
    }
}

/// `/`: every store and the last syncs.
pub(super) fn status(ctx: &Context) -> String {
    let stores = ctx.state.stores();
    let syncs = ctx.state.syncs();
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>storesync</h1><p>Tracking branch <code>{}</code>. {} stores. Cluster: {}. \
         <span class=\"muted\">This page refreshes every 15 seconds.</span></p>",
        esc(&ctx.settings.tracked.branch),
        stores.len(),
        if ctx.state.is_ready() {
            "<span class=\"ok\">observed</span>"
        } else {
            "<span class=\"warn\">not observed yet</span>"
        }
    );
    body.push_str(&leader_line(ctx));
    // A rollout in flight or halted, as the last sync of the branch said it.
    if let Some(last) = ctx.state.last_result()
        && last.description.starts_with("rollout ")
    {
        let rollout = last.description.split("; ").next().unwrap_or_default();
        let _ = write!(
            body,
            "<p id=\"rollout\" class=\"state {}\">{} <span class=\"muted\">(commit {})</span></p>",
            state_class(last.state.as_str()),
            esc(rollout),
            commit_link(Some(&last.sha)),
        );
    }
    body.push_str(
        "<h2>Stores</h2><table id=\"stores\"><thead><tr><th>Store</th><th>Owner</th><th>Engine</th><th>Plan</th>\
         <th>State</th><th>Health</th><th>Applied commit</th><th>Ready</th><th>Release</th><th>Last error</th></tr>\
         </thead><tbody>",
    );
    for s in &stores {
        let opt = |v: &Option<String>| v.as_deref().map(esc).unwrap_or_else(|| "–".into());
        let name = match &s.domain {
            Some(d) => format!(
                "{}<br><span class=\"muted\">{}</span>",
                store_link(&s.name),
                esc(d)
            ),
            None => store_link(&s.name),
        };
        let _ = write!(
            body,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"state {}\">{}</td>\
             <td class=\"state {}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            opt(&s.owner),
            opt(&s.engine),
            opt(&s.plan),
            state_class(s.state.as_str()),
            match &s.rollout {
                Some(r) => format!(
                    "{}<br><span class=\"muted\">{}</span>",
                    esc(s.state.as_str()),
                    esc(r)
                ),
                None => esc(s.state.as_str()),
            },
            state_class(s.health.map_or("", |h| h.as_str())),
            health_cell(s.health, s.health_reason.as_deref()),
            commit_link(s.commit.as_deref()),
            opt(&s.ready),
            opt(&s.release),
            opt(&s.last_error),
        );
    }
    if stores.is_empty() {
        body.push_str("<tr><td colspan=\"10\" class=\"muted\">No stores yet.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(
        "<h2>Last syncs</h2><table id=\"syncs\"><thead><tr><th>Started (UTC)</th><th>Commit</th><th>Trigger</th>\
         <th>Result</th><th>Seconds</th><th>Description</th></tr></thead><tbody>",
    );
    for s in syncs.iter().take(20) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"state {}\">{}</td><td>{:.1}</td><td>{}</td></tr>",
            esc(&rfc3339(s.started as i64)),
            commit_link(s.sha.as_deref()),
            esc(s.reason.label()),
            state_class(s.state.as_str()),
            esc(s.state.as_str()),
            s.seconds,
            esc(&s.description),
        );
    }
    if syncs.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No sync yet.</td></tr>");
    }
    body.push_str("</tbody></table><p class=\"muted\"><a href=\"/api/stores\">/api/stores</a> · <a href=\"/metrics\">/metrics</a></p>");
    page("storesync", true, &body)
}

/// `/commits/<sha>`: the plan or sync result of one commit.
pub(super) fn commit(ctx: &Context, record: &CommitRecord) -> String {
    let mut body = String::new();
    let what = match record.pull_request {
        Some(n) => format!("Plan of pull request #{n}"),
        None => "Sync".to_string(),
    };
    let _ = write!(
        body,
        "<p><a href=\"/\">← all stores</a></p><h1>{} of <code>{}</code></h1>\
         <p class=\"state {}\">{}: {}</p><p class=\"muted\">Finished {} UTC; branch <code>{}</code>.</p>",
        esc(&what),
        esc(&record.sha),
        state_class(record.state.as_str()),
        esc(record.state.as_str()),
        esc(&record.description),
        esc(&rfc3339(record.finished as i64)),
        esc(&ctx.settings.tracked.branch),
    );
    if !record.errors.is_empty() {
        body.push_str("<h2>Validation errors</h2><pre>");
        for e in &record.errors {
            body.push_str(&esc(e));
            body.push('\n');
        }
        body.push_str("</pre>");
    }
    if let Some(report) = &record.report {
        body.push_str("<h2>Result per store</h2><table><thead><tr><th>Store</th><th>Outcome</th><th>Detail</th></tr></thead><tbody>");
        for r in &report.stores {
            let outcome = r.outcome.as_str();
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"state {}\">{}</td><td>{}</td></tr>",
                esc(&r.store),
                state_class(outcome),
                esc(outcome),
                esc(r.detail.as_deref().unwrap_or("")),
            );
        }
        body.push_str("</tbody></table>");
    }
    if !record.plan.is_empty() {
        let _ = write!(body, "<h2>Plan</h2><pre>{}</pre>", esc(&record.plan));
    }
    page(&format!("storesync: {}", &record.sha), false, &body)
}

pub(super) fn unknown_commit(sha: &str) -> String {
    page(
        "storesync: unknown commit",
        false,
        &format!(
            "<p><a href=\"/\">← all stores</a></p><h1>Commit <code>{}</code></h1>\
             <p>This daemon has no plan or sync of that commit (it keeps the most recent ones in memory).</p>",
            esc(sha)
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::esc("<script>alert('x')</script> & \""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;"
        );
    }
}
