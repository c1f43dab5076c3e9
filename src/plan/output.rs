//! Plans for people (text a pull-request reviewer reads) and for machines (stable JSON).
use std::fmt::Write;

use super::{Action, Plan};
use crate::error::{Error, Result};

fn sign(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Unchanged => "=",
        Action::Prune => "-",
        Action::Skip => "#",
        Action::Blocked => "!",
        Action::Retire => "v",
        Action::Restore => "^",
        Action::Purge => "-",
        Action::Retired => "_",
    }
}

/// The plan as text: one block per store that changes, objects indented under it, diffs under
/// their object; unchanged stores are counted, not listed.
pub fn render_text(plan: &Plan, source: &str) -> String {
    let mut out = String::new();
    let against = if plan.offline {
        " (offline: against an empty cluster)"
    } else {
        ""
    };
    let _ = writeln!(out, "Plan for {source} at {}{against}", plan.revision.label);
    for s in plan.stores.iter().filter(|s| s.action != Action::Unchanged) {
        let mut about: Vec<String> = [&s.engine, &s.plan].into_iter().flatten().cloned().collect();
        if let Some(owner) = &s.owner {
            about.push(format!("owner {owner}"));
        }
        if let Some(domain) = &s.domain {
            about.push(domain.clone());
        }
        let _ = write!(out, "\n{} {} {}", sign(s.action), s.store, s.action.as_str());
        if let Some(wave) = &s.wave {
            let _ = write!(out, " [rollout {wave}]");
        }
        if !about.is_empty() {
            let _ = write!(out, " ({})", about.join(", "));
        }
        if let Some(reason) = &s.reason {
            let _ = write!(out, ": {reason}");
        }
        out.push('\n');
        for c in s.changes.iter().filter(|c| c.action != Action::Unchanged) {
            let _ = write!(out, "    {} {}", sign(c.action), c.object());
            if let Some(reason) = &c.reason {
                let _ = write!(out, " ({reason})");
            }
            out.push('\n');
            for line in c.diff.iter().flat_map(|d| d.lines()) {
                let _ = writeln!(out, "        {line}");
            }
        }
    }
    for reason in &plan.blocked {
        let _ = writeln!(out, "\nBlocked: {reason}");
    }
    let _ = writeln!(out, "\nPlan: {}.", plan.summary.line());
    out
}

/// The plan as pretty JSON with a trailing newline; field order is fixed by the types.
pub fn render_json(plan: &Plan) -> Result<String> {
    let mut s = serde_json::to_string_pretty(plan).map_err(|source| Error::Output { source })?;
    s.push('\n');
    Ok(s)
}
