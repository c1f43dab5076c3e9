//! The CLI commands, as library functions that write to the given streams and return the exit
//! code: 0 success, 1 invalid catalog or blocked plan, 2 usage error, 3 some stores failed.
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::{OutputFormat, SourceArgs};
use crate::desired::{self, Diagnostic};
use crate::error::{Error, Result};
use crate::live::LiveState;
use crate::plan::{self, PlanOptions};
use crate::source::{self, Snapshot};

pub const EXIT_OK: u8 = 0;
pub const EXIT_INVALID: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_FAILED: u8 = 3;

fn write_err(e: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from("<stdout>"),
        source: e,
    }
}

/// The catalog `args` name, at its revision.
fn read(args: &SourceArgs) -> Result<Snapshot> {
    source::read(&args.location(), args.rev.as_deref(), &args.options()?)
}

/// An invalid catalog: findings on stderr, and with `--output json` a machine-readable verdict on
/// stdout, so scripts tell it from a blocked plan without reading stderr.
fn report_invalid(
    output: OutputFormat,
    findings: &[Diagnostic],
    summary: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    print_diagnostics(err, findings)?;
    writeln!(err, "{summary}").map_err(write_err)?;
    if output == OutputFormat::Json {
        let json = serde_json::json!({ "valid": false, "diagnostics": findings });
        let text = serde_json::to_string_pretty(&json).map_err(|source| Error::Output { source })?;
        writeln!(out, "{text}").map_err(write_err)?;
    }
    Ok(EXIT_INVALID)
}

/// A plan in the chosen form, after the catalog's warnings; exit 1 when it is blocked.
fn print_plan(
    plan: &plan::Plan,
    warnings: &[Diagnostic],
    args: &SourceArgs,
    output: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    print_diagnostics(err, warnings)?;
    let text = match output {
        // The plan quotes the catalog (owners, domains, values): escaped like findings.
        OutputFormat::Text => {
            crate::untrusted::printable_lines(&plan::render_text(plan, &args.display())).into_owned()
        }
        OutputFormat::Json => plan::render_json(plan)?,
    };
    out.write_all(text.as_bytes()).map_err(write_err)?;
    Ok(if plan.is_blocked() { EXIT_INVALID } else { EXIT_OK })
}

/// Findings for a terminal: what they quote from the catalog (an owner, a value, a file name)
/// has its control characters escaped, so a catalog cannot drive the reader's terminal.
fn print_diagnostics(err: &mut dyn Write, diagnostics: &[Diagnostic]) -> Result<()> {
    for d in diagnostics {
        writeln!(err, "{}", crate::untrusted::printable_lines(&d.to_string())).map_err(write_err)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct ValidateReport<'a> {
    valid: bool,
    revision: &'a source::Revision,
    stores: usize,
    diagnostics: &'a [Diagnostic],
}

/// `validate`: the same verdict `plan` and `apply` give with the same `allowed_chart_prefixes`.
pub fn validate(
    args: &SourceArgs,
    allowed_chart_prefixes: &[String],
    output: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let snapshot = read(args)?;
    let result = desired::load_with_policy(&snapshot.raw, allowed_chart_prefixes);
    let (valid, stores, diagnostics) = match &result {
        Ok(catalog) => (true, catalog.stores.len(), catalog.warnings.as_slice()),
        Err(findings) => (false, 0, findings.as_slice()),
    };
    match output {
        OutputFormat::Json => {
            let report = ValidateReport {
                valid,
                revision: &snapshot.revision,
                stores,
                diagnostics,
            };
            let text = serde_json::to_string_pretty(&report).map_err(|source| Error::Output { source })?;
            writeln!(out, "{text}").map_err(write_err)?;
        }
        OutputFormat::Text => {
            print_diagnostics(err, diagnostics)?;
            let at =
                crate::untrusted::printable(&format!("{} at {}", args.display(), snapshot.revision.label))
                    .into_owned();
            if valid {
                writeln!(out, "valid: {stores} stores in {at}").map_err(write_err)?;
            } else {
                let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                writeln!(
                    err,
                    "invalid: {errors} error(s) in {at}; nothing would be applied"
                )
                .map_err(write_err)?;
            }
        }
    }
    Ok(if valid { EXIT_OK } else { EXIT_INVALID })
}

/// `plan --offline`: the plan against an empty cluster.
pub fn plan_offline(
    args: &SourceArgs,
    allowed_chart_prefixes: &[String],
    output: OutputFormat,
    create_diffs: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let snapshot = read(args)?;
    let catalog = match desired::load_with_policy(&snapshot.raw, allowed_chart_prefixes) {
        Ok(catalog) => catalog,
        Err(findings) => return report_invalid(output, &findings, "invalid catalog: no plan", out, err),
    };
    let options = PlanOptions {
        create_diffs,
        ..PlanOptions::default()
    };
    let plan = plan::plan_catalog(snapshot.revision, &catalog, &LiveState::default(), options, true);
    print_plan(&plan, &catalog.warnings, args, output, out, err)
}

/// `history <store>`: every commit that touched the store's file, newest first.
pub fn history(
    store: &str,
    args: &SourceArgs,
    output: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    if !desired::rules::is_store_name(store) {
        writeln!(
            err,
            "`{store}` is not a store name (3 to 40 characters of a-z, 0-9 and '-')"
        )
        .map_err(write_err)?;
        return Ok(EXIT_USAGE);
    }
    let (location, options) = (args.location(), args.options()?);
    let opened = source::open(&location, &options)?;
    let rev = source::revision(&location, &opened, args.rev.as_deref(), &options);
    let (repo, subdir) = (&opened.repo, &opened.subdir);
    // The stores directory is the one configured at the revision the walk starts from.
    let snapshot = source::read_commit(repo, &rev, subdir)?;
    let entries = source::history::store_history(repo, &rev, subdir, &snapshot.raw.stores_dir, store)?;
    match output {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&entries).map_err(|source| Error::Output { source })?;
            writeln!(out, "{text}").map_err(write_err)?;
        }
        OutputFormat::Text => {
            if entries.is_empty() {
                writeln!(
                    err,
                    "no commit touched store `{store}` (looked in {}/)",
                    snapshot.raw.stores_dir
                )
                .map_err(write_err)?;
                return Ok(EXIT_INVALID);
            }
            for e in &entries {
                out.write_all(history_text(e).as_bytes()).map_err(write_err)?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// One history entry for a terminal: what the repository supplied (names, subject, paths, the
/// file's lines) has its control characters escaped, so it cannot drive the terminal.
fn history_text(e: &source::history::HistoryEntry) -> String {
    use crate::untrusted::{printable, printable_lines};
    use source::history::ChangeKind;
    let what = match (&e.change, &e.old_path, &e.new_path) {
        (ChangeKind::Renamed, Some(old), Some(new)) => {
            format!("renamed {} -> {}", printable(old), printable(new))
        }
        (kind, old, new) => {
            let path = new.as_ref().or(old.as_ref()).map_or("", |s| s);
            format!("{} {}", format!("{kind:?}").to_lowercase(), printable(path))
        }
    };
    format!(
        "commit {}\nAuthor: {} <{}>\nDate:   {}\n\n    {}\n\n{what}\n{}\n",
        e.commit,
        printable(&e.author),
        printable(&e.email),
        e.date,
        printable(&e.subject),
        printable_lines(&e.diff)
    )
}

mod cluster;
mod run;
mod serve;
pub use cluster::{API_TIMEOUT, ApplyRequest, ClusterOptions, apply, connect, plan_live, status};
pub use run::{EXIT_ABORTED, run};
pub use serve::serve;

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SourceArgs {
        SourceArgs {
            repo: "https://deploy:p%40ss@github.com/acme/stores.git".into(),
            rev: None,
            branch: "main".into(),
            cache_dir: None,
            git_token_file: None,
            git_ssh_key: None,
            git_ssh_known_hosts: None,
        }
    }

    #[test]
    fn the_git_token_comes_from_the_environment_or_a_file_and_never_shows() {
        let options = args().options_with(Some("git-canary".into())).unwrap();
        let token = options.credentials.https_token.as_ref().unwrap();
        assert_eq!(token.current().expose(), "git-canary");
        let debug = format!("{options:?} {:?} {:?}", args(), args().location());
        assert!(debug.contains("https_token: Some(***)"), "{debug}");
        for secret in ["git-canary", "p%40ss", "deploy"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert_eq!(args().display(), "https://github.com/acme/stores.git");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let with_file = SourceArgs {
            git_token_file: Some(file.clone()),
            ..args()
        };
        let options = with_file.options_with(None).unwrap();
        let token = options.credentials.https_token.unwrap();
        assert_eq!(token.current().expose(), "from-file");
        std::fs::write(&file, "rotated\n").unwrap();
        assert_eq!(token.current().expose(), "rotated", "the file is read again");
        let both = with_file
            .options_with(Some("git-canary".into()))
            .unwrap_err()
            .to_string();
        assert!(
            both.contains("STORESYNC_GIT_TOKEN") && both.contains("--git-token-file"),
            "{both}"
        );
        let missing = SourceArgs {
            git_token_file: Some(dir.path().join("missing")),
            ..args()
        };
        let err = missing.options_with(None).unwrap_err().to_string();
        assert!(
            err.contains("missing"),
            "an unreadable token file is an error naming it: {err}"
        );
    }
}
