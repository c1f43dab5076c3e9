//! The sticky plan comment of a pull request, as Markdown: pure, no I/O. One comment per pull
//! request, found again by [`MARKER`], edited on every new head and marked when the pull request
//! closes. Everything from the catalog or the cluster goes through [`escape`] (or [`html`] inside
//! HTML): a store's owner or a finding's message can neither break the layout nor mention,
//! reference or link anything ([`super::inert`]).
use std::fmt::Write;

use super::inert::{inert, is_bidi_control};
use crate::desired::Diagnostic;
use crate::plan::{Action, Plan, StorePlan, Summary};

/// Hidden first line of the comment; how storesync finds its own comment among the others.
pub const MARKER: &str = "<!-- storesync:plan -->";
/// Present once the pull request is closed: the comment is no longer updated.
pub const CLOSED_MARKER: &str = "<!-- storesync:closed -->";
/// GitHub refuses a longer comment body with a 422 (the Checks API's summary allows one less).
pub const MAX_COMMENT_CHARS: usize = 65_536;
/// What a rendered comment may use: room is left for the closed banner.
pub const BUDGET_CHARS: usize = 65_000;
/// Room kept for the note that says what was cut.
const NOTE_RESERVE: usize = 400;

/// What the comment is about.
#[derive(Debug, Clone, Copy)]
pub struct CommentContext<'a> {
    pub number: u64,
    /// The head commit planned.
    pub sha: &'a str,
    /// The repository's web address, `https://github.com/OWNER/NAME`: findings link to blobs.
    pub repo_url: &'a str,
    /// The catalog's folder in the repository, `""` at its root.
    pub catalog_dir: &'a str,
    pub from_fork: bool,
}

/// How the plan of the head went.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Planned(&'a Plan),
    /// An invalid catalog: every finding.
    Invalid(&'a [Diagnostic]),
    /// storesync itself could not plan (Git or the cluster did not answer).
    Failed(&'a str),
}

/// The comment for `outcome`, at most [`BUDGET_CHARS`] characters.
pub fn render(ctx: &CommentContext<'_>, outcome: &Outcome<'_>) -> String {
    render_within(ctx, outcome, BUDGET_CHARS)
}

/// Like [`render`] with a smaller budget; diffs come last and are what is cut first.
pub fn render_within(ctx: &CommentContext<'_>, outcome: &Outcome<'_>, budget: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{MARKER}");
    let short = ctx.sha.get(..12).unwrap_or(ctx.sha);
    let _ = writeln!(out, "### storesync plan for #{} at `{short}`\n", ctx.number);
    let _ = writeln!(out, "Head commit: `{}`", escape(ctx.sha));
    if ctx.from_fork {
        out.push_str("\nFrom a fork: planned read-only, like every pull request; only the tracked branch is ever applied.\n");
    }
    let footer = "\n---\n<sub>Planned read-only by storesync, against the cluster as it is now; this comment \
                  is updated on every push to the pull request.</sub>\n";
    // Everything but the diffs may use half the budget; the diffs get what is left. Findings
    // come without diffs: they may use it all, so the comment lists as many as it can.
    let whole = budget.saturating_sub(footer.len());
    let diffs = match outcome {
        Outcome::Planned(plan) => {
            planned(&mut out, plan, whole / 2);
            plan.stores
                .iter()
                .filter(|s| s.action == Action::Update)
                .collect()
        }
        Outcome::Invalid(findings) => {
            invalid(&mut out, ctx, findings, whole);
            Vec::new()
        }
        Outcome::Failed(message) => {
            let _ = writeln!(
                out,
                "\n**storesync could not plan this commit:** {}\n\nIt is tried again on the next push.",
                escape(message)
            );
            Vec::new()
        }
    };
    let room = budget.saturating_sub(chars(&out) + chars(footer));
    append_diffs(&mut out, &diffs, room, ctx.sha);
    out.push_str(footer);
    out
}

/// Whether the comment was marked closed: its second line is [`CLOSED_MARKER`] (text further
/// down, such as a diff, may hold anything).
pub fn is_closed(body: &str) -> bool {
    body.strip_prefix(MARKER)
        .and_then(|rest| rest.strip_prefix('\n'))
        .is_some_and(|rest| rest.starts_with(CLOSED_MARKER))
}

/// The comment as it stays once the pull request is closed or merged.
pub fn mark_closed(body: &str, merged: bool) -> String {
    if is_closed(body) {
        return body.to_owned();
    }
    let what = if merged { "merged" } else { "closed" };
    let banner = format!(
        "{CLOSED_MARKER}\n> [!NOTE]\n> This pull request was {what}: this plan is no longer updated.\n\n"
    );
    let rest = body.strip_prefix(MARKER).unwrap_or(body).trim_start_matches('\n');
    let mut out = format!("{MARKER}\n{banner}{rest}");
    if chars(&out) > MAX_COMMENT_CHARS {
        out = out.chars().take(MAX_COMMENT_CHARS - 1).chain(['…']).collect();
    }
    out
}

/// `2 to create, 1 to prune, 40 unchanged`: counts that are not zero, and the unchanged.
pub fn summary_line(summary: &Summary) -> String {
    let mut parts: Vec<String> = [
        (summary.create, "to create"),
        (summary.update, "to update"),
        (summary.restore, "to restore"),
        (summary.retire, "to retire"),
        (summary.purge, "to purge"),
        (summary.prune, "to prune"),
        (summary.skip, "skipped"),
        (summary.blocked, "blocked"),
        (summary.retired, "retired"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    parts.push(format!("{} unchanged", summary.unchanged));
    parts.join(", ")
}

/// A catalog file's path in the repository.
pub fn repo_path(catalog_dir: &str, file: &str) -> String {
    let dir = catalog_dir.trim_matches('/');
    if dir.is_empty() {
        file.to_owned()
    } else {
        format!("{dir}/{file}")
    }
}

/// The web address of `file` at `sha`, at `line` when known.
pub fn blob_url(repo_url: &str, sha: &str, path: &str, line: usize) -> String {
    let mut url = format!(
        "{}/blob/{sha}/{}",
        repo_url.trim_end_matches('/'),
        encode_path(path)
    );
    if line > 0 {
        let _ = write!(url, "#L{line}");
    }
    url
}

fn planned(out: &mut String, plan: &Plan, budget: usize) {
    let _ = writeln!(out, "\n**Plan:** {}", summary_line(&plan.summary));
    // Stores left as they are, and retired stores waiting for their purge, are only counted.
    let changing: Vec<&StorePlan> = plan
        .stores
        .iter()
        .filter(|s| !matches!(s.action, Action::Unchanged | Action::Retired))
        .collect();
    // A rollout's waves are fixed before merge: the reviewer sees which stores go first.
    let waved = changing.iter().any(|s| s.wave.is_some());
    if !changing.is_empty() {
        if waved {
            out.push_str("\n| store | action | wave | engine | plan | owner |\n|---|---|---|---|---|---|\n");
        } else {
            out.push_str("\n| store | action | engine | plan | owner |\n|---|---|---|---|---|\n");
        }
        for (i, s) in changing.iter().enumerate() {
            let wave = match (waved, &s.wave) {
                (false, _) => String::new(),
                (true, Some(w)) => format!(" {w} |"),
                (true, None) => " – |".to_string(),
            };
            let row = format!(
                "| {} | {} |{wave} {} | {} | {} |\n",
                escape(&s.store),
                s.action.as_str(),
                cell(s.engine.as_deref()),
                cell(s.plan.as_deref()),
                cell(s.owner.as_deref()),
            );
            if chars(out) + chars(&row) > budget {
                let _ = writeln!(
                    out,
                    "\n… and {} more stores: run `storesync plan` to see them all.",
                    changing.len() - i
                );
                break;
            }
            out.push_str(&row);
        }
    }
    // Where a store's data is kept or deleted, and when: a reviewer reads this before merging.
    let lifecycle: Vec<String> = plan
        .stores
        .iter()
        .filter(|s| matches!(s.action, Action::Retire | Action::Restore | Action::Purge | Action::Prune))
        .map(|s| {
            format!(
                "{} {}: {}",
                code(&s.store),
                s.action.as_str(),
                escape(s.reason.as_deref().unwrap_or(match s.action {
                    Action::Prune => "its file is gone: its release is uninstalled and its namespace deleted, data included",
                    _ => "",
                }))
            )
        })
        .collect();
    bullets(out, "Retired, restored and purged stores", &lifecycle, budget);
    let held: Vec<String> = plan
        .blocked
        .iter()
        .map(|r| escape(r))
        .chain(
            plan.stores
                .iter()
                .filter(|s| s.action == Action::Blocked)
                .map(|s| {
                    format!(
                        "{}: {}",
                        code(&s.store),
                        escape(s.reason.as_deref().unwrap_or("blocked"))
                    )
                }),
        )
        .collect();
    bullets(out, "Blocked", &held, budget);
}

/// A titled list of escaped lines, while they fit in `budget`; the rest are counted.
fn bullets(out: &mut String, title: &str, items: &[String], budget: usize) {
    if items.is_empty() {
        return;
    }
    let _ = write!(out, "\n**{title}:**\n\n");
    for (i, item) in items.iter().enumerate() {
        let line = format!("- {item}\n");
        if chars(out) + chars(&line) > budget {
            let _ = writeln!(out, "- … and {} more", items.len() - i);
            break;
        }
        out.push_str(&line);
    }
}

fn invalid(out: &mut String, ctx: &CommentContext<'_>, findings: &[Diagnostic], budget: usize) {
    let errors = findings.iter().filter(|d| d.is_error()).count();
    let warnings = findings.len() - errors;
    let _ = writeln!(
        out,
        "\n**Invalid catalog:** {errors} {}, {warnings} {}; nothing can be applied until the errors are fixed.\n",
        plural(errors, "error", "errors"),
        plural(warnings, "warning", "warnings"),
    );
    for (i, d) in findings.iter().enumerate() {
        let path = repo_path(ctx.catalog_dir, &d.file);
        let location = if d.line == 0 {
            path.clone()
        } else {
            format!("{path}:{}:{}", d.line, d.column)
        };
        let severity = if d.is_error() { "error" } else { "warning" };
        let mut line = format!(
            "- [{}]({}) {severity}: {}",
            escape(&location),
            blob_url(ctx.repo_url, ctx.sha, &path, d.line),
            escape(&d.message)
        );
        if let Some(hint) = &d.hint {
            let _ = write!(line, " (hint: {})", escape(hint));
        }
        line.push('\n');
        if chars(out) + chars(&line) > budget {
            let _ = writeln!(
                out,
                "- … and {} more: run `storesync validate` to see them all",
                findings.len() - i
            );
            break;
        }
        out.push_str(&line);
    }
}

/// One collapsed block per updated store, while they fit in `room`; the one that does not fit
/// is cut at a line, the rest are only counted, and the comment says so.
fn append_diffs(out: &mut String, stores: &[&StorePlan], room: usize, sha: &str) {
    let blocks: Vec<String> = stores.iter().map(|s| diff_block(s, None)).collect();
    if blocks.is_empty() {
        return;
    }
    let mut left = room.saturating_sub(NOTE_RESERVE + "\n**Diffs:**\n\n".len());
    out.push_str("\n**Diffs:**\n\n");
    let mut cut = 0;
    for (i, (store, block)) in stores.iter().zip(&blocks).enumerate() {
        if chars(block) <= left {
            left -= chars(block);
            out.push_str(block);
            continue;
        }
        // The first store that does not fit gets what is left, cut at a line.
        if left > 500 {
            let partial = diff_block(store, Some(left - 400));
            if chars(&partial) <= left {
                out.push_str(&partial);
                cut += 1;
            }
        }
        let omitted = stores.len() - i - cut;
        let _ = writeln!(
            out,
            "\nDiffs cut to stay under GitHub's {MAX_COMMENT_CHARS}-character comment limit: {} of {} \
             shown in full, {omitted} left out. `storesync plan --rev {sha}` shows them all.",
            i,
            stores.len()
        );
        return;
    }
}

/// The `<details>` block of one store; with `max`, its diffs are cut to about that many
/// characters at a line boundary.
fn diff_block(store: &StorePlan, max: Option<usize>) -> String {
    let changed: Vec<_> = store
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged && c.diff.is_some())
        .collect();
    let mut text = String::new();
    for c in &changed {
        let _ = writeln!(text, "# {}", c.object());
        for line in c.diff.iter().flat_map(|d| d.lines()) {
            let _ = writeln!(text, "{line}");
        }
    }
    let mut note = "";
    if let Some(max) = max
        && chars(&text) > max
    {
        let (mut kept, mut used) = (String::new(), 0);
        for line in text.lines() {
            used += chars(line) + 1;
            if used > max {
                break;
            }
            kept.push_str(line);
            kept.push('\n');
        }
        text = kept;
        note = "\n(diff cut here: the comment is at its size limit)\n";
    }
    let fence = fence_for(&text);
    format!(
        "<details><summary><code>{}</code>: {} {}</summary>\n\n{fence}diff\n{text}{fence}\n{note}</details>\n\n",
        html(&store.store),
        changed.len(),
        plural(changed.len(), "object changes", "objects change"),
    )
}

/// A code fence longer than any run of backticks in `text`, so the text cannot close it.
fn fence_for(text: &str) -> String {
    "`".repeat((longest_backtick_run(text) + 1).max(3))
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

fn cell(value: Option<&str>) -> String {
    value.map_or_else(|| "".to_owned(), escape)
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Catalog or cluster text as inert Markdown on one line: its markup characters escaped (so it
/// keeps the layout: no emphasis, link, HTML, table cell or heading), line breaks and other
/// control or bidirectional characters made spaces, and no mention, reference or autolink
/// ([`inert`]: GitHub decodes escapes before it links, so escaping alone would not do).
pub fn escape(text: &str) -> String {
    let flat: String = text.chars().map(one_line).collect();
    let mut out = String::with_capacity(flat.len() + 8);
    for c in inert(&flat).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '#' | '!' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Like [`escape`], for text inside raw HTML (where Markdown escapes would show): entities only.
pub fn html(text: &str) -> String {
    let flat: String = text.chars().map(one_line).collect();
    let mut out = String::with_capacity(flat.len() + 8);
    for c in inert(&flat).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Text as a code span on one line: GitHub links nothing inside it; the fence is longer than
/// any run of backticks in the text, padded when the text starts or ends with one.
pub fn code(text: &str) -> String {
    let flat: String = text.chars().map(one_line).collect();
    let fence = "`".repeat(longest_backtick_run(&flat) + 1);
    let pad = if flat.starts_with('`') || flat.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{flat}{pad}{fence}")
}

fn one_line(c: char) -> char {
    if c.is_control() || is_bidi_control(c) {
        ' '
    } else {
        c
    }
}

/// Percent-encodes a repository path for a URL, keeping its `/`.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{MARKER, code, escape, fence_for, html, is_closed, mark_closed};

    #[test]
    fn a_fence_is_longer_than_any_backtick_run_inside() {
        assert_eq!(fence_for("a ```` b"), "`````");
        assert_eq!(fence_for("plain"), "```");
    }

    #[test]
    fn code_spans_hold_any_text() {
        assert_eq!(code("acme"), "`acme`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x\ny"), "`` `x y ``");
    }

    #[test]
    fn markdown_and_html_escapes_keep_text_inert() {
        let j = super::super::inert::WORD_JOINER;
        assert_eq!(escape("@a #1\u{202e}"), format!("@{j}a \\#{j}1 "));
        assert_eq!(html("<b>\"@x\""), format!("&lt;b&gt;&quot;@{j}x&quot;"));
    }

    #[test]
    fn only_the_banner_marks_a_comment_closed() {
        let body = format!("{MARKER}\nplan\n```diff\n+<!-- storesync:closed -->\n```\n");
        assert!(!is_closed(&body), "a diff may quote the marker");
        let closed = mark_closed(&body, false);
        assert!(is_closed(&closed));
        assert_eq!(mark_closed(&closed, true), closed);
    }
}
