//! Turns the raw files of a catalog into typed, validated stores. No I/O: the bytes come from
//! [`crate::source`].
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::de::DeserializeOwned;

use super::diagnostics::{Diagnostic, Findings, Omitted};
use super::model::{
    Catalog, MAX_FILE_BYTES, PLATFORM_FILE, Parsed, PlatformConfig, RawCatalog, RawContent, RawEntry, Store,
    StoreFile,
};
use super::position::Positions;
use super::scan;
use super::validate;

/// Largest store or platform file read, in bytes.
/// The files besides store files that a stores directory may hold.
const ALLOWED_OTHER_FILES: &[&str] = &["README.md", ".gitkeep"];

/// A file above this size keeps the positions its scan found, since finding them again costs as
/// much as the scan; a smaller one is scanned again when a finding needs them, so that a valid
/// catalog of many small files holds no positions.
const KEEP_POSITIONS_ABOVE: usize = 4 * 1024;

/// The stores directory named by a platform file, read before the rest of the catalog. An
/// unreadable file yields the default; its errors are reported by [`load`].
pub fn stores_dir_of(platform: Option<&[u8]>) -> String {
    platform
        .and_then(|b| std::str::from_utf8(b).ok())
        .filter(|t| !is_blank(t))
        .filter(|t| scan::scan(PLATFORM_FILE, t).is_clean())
        .and_then(|t| serde_yaml_ng::from_str::<PlatformConfig>(t).ok())
        .map(|p| p.stores_dir)
        .unwrap_or_else(|| PlatformConfig::default().stores_dir)
}

/// Validates a whole catalog. Either every file is valid and a [`Catalog`] comes back, or the
/// list of findings does (sorted by file and position; past 50 in a file, their count).
pub fn load(raw: &RawCatalog) -> Result<Catalog, Vec<Diagnostic>> {
    let mut findings = Findings::default();
    let platform = load_platform(raw.platform.as_ref(), &mut findings);

    let entries = match &raw.entries {
        Some(entries) => entries.as_slice(),
        None => {
            findings.push(
                Diagnostic::error(raw.stores_dir.clone(), (0, 0), "the stores directory does not exist")
                    .hint("create it (keep an empty catalog with a `.gitkeep` file) or set `storesDir` in storesync.yaml"),
            );
            &[]
        }
    };

    let results: Vec<Result<Option<Parsed>, Rejected>> = entries.par_iter().map(parse_entry).collect();
    let mut parsed = Vec::with_capacity(results.len());
    let mut store_files = 0usize;
    for result in results {
        match result {
            Ok(Some(p)) => {
                store_files += 1;
                parsed.push(p);
            }
            Ok(None) => {}
            Err(Rejected { file, kept, omitted }) => {
                store_files += 1;
                findings.add(&file, kept, omitted);
            }
        }
    }

    if let Some(platform) = &platform {
        let allowlists = validate::Allowlists::of(platform);
        let per_store: Vec<(Vec<Diagnostic>, Option<Omitted>)> = parsed
            .par_iter()
            .map(|p| validate::store(p, platform, &allowlists))
            .collect();
        for (p, (kept, omitted)) in parsed.iter().zip(per_store) {
            findings.add(&p.path, kept, omitted);
        }
        findings.extend(validate::across_stores(&parsed, platform, store_files, raw));
    }

    let findings = findings.finish();
    match platform {
        Some(platform) if !findings.iter().any(Diagnostic::is_error) => {
            let mut stores: Vec<Store> = parsed
                .into_iter()
                .map(|p| validate::finish(p, &platform))
                .collect();
            stores.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(Catalog {
                platform,
                stores,
                warnings: findings,
            })
        }
        _ => Err(findings),
    }
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    })
}

fn load_platform(raw: Option<&RawContent>, findings: &mut Findings) -> Option<PlatformConfig> {
    let bytes = match raw {
        None => return Some(PlatformConfig::default()),
        Some(RawContent::File(bytes)) => bytes,
        Some(other) => {
            findings.push(unreadable(PLATFORM_FILE, other));
            return None;
        }
    };
    let text = match utf8(PLATFORM_FILE, bytes) {
        Ok(text) => text,
        Err(d) => {
            findings.push(d);
            return None;
        }
    };
    if is_blank(text) {
        return Some(PlatformConfig::default());
    }
    let positions = match check(PLATFORM_FILE, text) {
        Ok(positions) => positions,
        Err(Rejected { file, kept, omitted }) => {
            findings.add(&file, kept, omitted);
            return None;
        }
    };
    let platform: PlatformConfig = match parse_yaml(PLATFORM_FILE, text) {
        Ok(p) => p,
        Err(d) => {
            findings.push(d);
            return None;
        }
    };
    let errors = validate::platform(&platform, &positions);
    let valid = errors.is_empty();
    findings.extend(errors);
    valid.then_some(platform)
}

fn unreadable(path: &str, content: &RawContent) -> Diagnostic {
    match content {
        RawContent::TooLarge(size) => Diagnostic::error(
            path,
            (1, 1),
            format!("the file is {size} bytes; files larger than {MAX_FILE_BYTES} bytes are not read"),
        )
        .hint("a store file holds a few fields; keep large content out of the catalog"),
        RawContent::Symlink => {
            Diagnostic::error(path, (1, 1), "symbolic links are not allowed in the catalog")
                .hint("replace the link with a regular file")
        }
        RawContent::LinkToStoresDir => Diagnostic::error(
            path,
            (0, 0),
            "symbolic links are not allowed in the catalog; the stores directory is reached through this one",
        )
        .hint(
            "replace the link with a real directory, or set `storesDir` in storesync.yaml to the directory \
             itself",
        ),
        RawContent::Directory => Diagnostic::error(
            path,
            (0, 0),
            "a directory in the stores directory: store files in it would not be read, and their stores \
             would be pruned",
        )
        .hint("move store files directly into the stores directory, and everything else out of it"),
        RawContent::Other | RawContent::File(_) => {
            Diagnostic::error(path, (1, 1), "not a regular file").hint("replace it with a regular YAML file")
        }
    }
}

fn utf8<'a>(path: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.len() - before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
        Diagnostic::error(path, (line, column), "the file is not valid UTF-8").hint("save the file as UTF-8")
    })
}

/// Parses YAML into `T`, turning a failure into a positioned finding with a hint.
fn parse_yaml<T: DeserializeOwned>(path: &str, text: &str) -> Result<T, Diagnostic> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let position = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let full = e.to_string();
        // serde_yaml_ng appends the position in words; the diagnostic carries it already.
        let message = match full.find(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        let hint = if message.contains("unknown field") {
            "remove or correct the field; unknown fields are rejected so that typos never pass silently"
        } else if message.contains("missing field") {
            "add the field; see stores.example/README.md for the file format"
        } else if message.contains("invalid type") || message.contains("invalid value") {
            "give the field a value of the expected type (quote text that looks like a number or a boolean)"
        } else if message.contains("unknown variant") {
            "use one of the values the message lists"
        } else if message.contains("more than one document") {
            "keep exactly one YAML document per file"
        } else {
            "fix the YAML syntax at this position"
        };
        Diagnostic::error(path, position, message).hint(hint)
    })
}

/// The stem of a store file's name: `acme` for `acme.yaml` or `acme.yml`.
fn store_stem(name: &str) -> Option<&str> {
    name.strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
        .filter(|stem| !stem.is_empty() && !stem.starts_with('.'))
}

/// Why an entry of the stores directory that is not a store file must go: a stores directory
/// holds nothing else that could hide a store, so a rename never silently prunes one.
fn not_a_store_file(entry: &RawEntry) -> Diagnostic {
    let name = entry.name.as_str();
    let lower = name.to_ascii_lowercase();
    let cased = [".yaml", ".yml"]
        .iter()
        .find_map(|ext| lower.strip_suffix(ext).map(|_| &name[..name.len() - ext.len()]));
    let (message, hint) = if let Some(stem) = name.strip_prefix('.') {
        (
            "a hidden file in the stores directory".to_string(),
            format!(
                "rename it to `{}` if it is a store, or move it out of the stores directory",
                store_stem(stem).map_or(stem.to_string(), |s| format!("{s}.yaml"))
            ),
        )
    } else if let Some(stem) = cased {
        (
            "the extension of a store file must be `.yaml` or `.yml`, in lowercase".to_string(),
            format!("rename it to `{stem}.yaml`"),
        )
    } else {
        (
            "not a store file: store files are named `<name>.yaml` or `<name>.yml`".to_string(),
            "move it out of the stores directory; besides store files it may only hold README.md and .gitkeep"
                .to_string(),
        )
    };
    Diagnostic::error(&entry.path, (0, 0), message).hint(hint)
}

/// The findings that reject one file: the first ones, and the count of the rest.
struct Rejected {
    file: String,
    kept: Vec<Diagnostic>,
    omitted: Option<Omitted>,
}

impl From<Diagnostic> for Rejected {
    fn from(d: Diagnostic) -> Rejected {
        Rejected {
            file: d.file.clone(),
            kept: vec![d],
            omitted: None,
        }
    }
}

fn parse_entry(entry: &RawEntry) -> Result<Option<Parsed>, Rejected> {
    let stem = store_stem(&entry.name);
    let bytes = match (&entry.content, stem) {
        (RawContent::File(_) | RawContent::TooLarge(_), _)
            if ALLOWED_OTHER_FILES.contains(&entry.name.as_str()) =>
        {
            return Ok(None);
        }
        (RawContent::File(bytes), Some(_)) => bytes,
        (RawContent::File(_) | RawContent::TooLarge(_), None) => return Err(not_a_store_file(entry).into()),
        (other, _) => return Err(unreadable(&entry.path, other).into()),
    };
    let text = utf8(&entry.path, bytes)?;
    if is_blank(text) {
        return Err(Diagnostic::error(&entry.path, (1, 1), "the file is empty")
            .hint("fill in name, engine, plan and owner, or delete the file to remove the store")
            .into());
    }
    let positions = check(&entry.path, text)?;
    let store: StoreFile = parse_yaml(&entry.path, text)?;
    Ok(Some(Parsed {
        path: entry.path.clone(),
        stem: stem.unwrap_or_default().to_string(),
        text: text.to_string(),
        positions: if text.len() > KEEP_POSITIONS_ABOVE {
            OnceLock::from(positions)
        } else {
            OnceLock::new()
        },
        store,
    }))
}

/// Scans a file before serde reads it: any finding rejects the file; else its positions.
fn check(path: &str, text: &str) -> Result<Positions, Rejected> {
    let scan = scan::scan(path, text);
    let mut kept = scan.findings;
    let Some(mut error) = scan.syntax else {
        if kept.is_empty() {
            return Ok(scan.positions);
        }
        return Err(Rejected {
            file: path.to_string(),
            kept,
            omitted: scan.omitted,
        });
    };
    // libyaml words syntax errors as serde does for every other file. Ask it for the message
    // only where it is cheap: no alias to expand, and flow nesting (`[`, `{`) too shallow for
    // its simple-key bookkeeping to turn quadratic.
    let brackets = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if !text.contains(['&', '*'])
        && brackets <= 2 * scan::MAX_DEPTH
        && let Err(libyaml) = parse_yaml::<serde::de::IgnoredAny>(path, text)
    {
        error = libyaml;
    }
    kept.push(error);
    Err(Rejected {
        file: path.to_string(),
        kept,
        omitted: scan.omitted,
    })
}

#[cfg(test)]
mod tests {
    use super::load;
    use crate::desired::model::{DriftPolicy, RawCatalog, RawContent};

    fn platform(text: &str) -> Result<DriftPolicy, Vec<String>> {
        let raw = RawCatalog {
            platform: Some(RawContent::File(text.as_bytes().to_vec())),
            stores_dir: "stores".into(),
            entries: Some(Vec::new()),
        };
        load(&raw)
            .map(|c| c.platform.drift_policy)
            .map_err(|findings| findings.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn drift_policy_defaults_to_repair_and_rejects_other_values_where_they_are() {
        assert_eq!(
            platform("baseDomain: shop.example.com\n"),
            Ok(DriftPolicy::Repair)
        );
        assert_eq!(platform("driftPolicy: report\n"), Ok(DriftPolicy::Report));
        assert_eq!(
            platform("baseDomain: shop.example.com\ndriftPolicy: sometimes\n"),
            Err(vec![
                "storesync.yaml:2:14: error: driftPolicy: unknown variant `sometimes`, expected `repair` or `report`\n  hint: use one of the values the message lists"
                    .to_string()
            ])
        );
    }

    fn retention(text: &str) -> Result<std::time::Duration, Vec<String>> {
        let raw = RawCatalog {
            platform: Some(RawContent::File(text.as_bytes().to_vec())),
            stores_dir: "stores".into(),
            entries: Some(Vec::new()),
        };
        load(&raw)
            .map(|c| c.platform.prune.retention())
            .map_err(|findings| findings.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn retention_defaults_to_a_week_and_is_checked_where_it_is_written() {
        let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
        assert_eq!(retention("baseDomain: shop.example.com\n"), Ok(hours(168)));
        assert_eq!(retention("prune:\n  retention: 0s\n"), Ok(hours(0)));
        assert_eq!(retention("prune:\n  retention: 30d\n"), Ok(hours(720)));
        assert_eq!(
            retention("prune: {retention: 90m}\n"),
            Ok(std::time::Duration::from_secs(5400))
        );
        let finding = |text: &str| retention(text).expect_err("refused").join("\n");
        let soon = finding("baseDomain: shop.example.com\nprune:\n  retention: soon\n");
        assert!(
            soon.starts_with("storesync.yaml:3:14: error: `soon` is not a retention: ")
                && soon.contains("hint: give a duration such as 168h"),
            "{soon}"
        );
        assert!(finding("prune:\n  retention: 400d\n").contains("longer than 366 days"));
        assert!(finding("prune:\n  retention: 1500ms\n").contains("whole number of seconds"));
        assert!(finding("prune:\n  keep: 1d\n").contains("unknown field `keep`, expected `retention`"));
        assert!(finding("prune:\n  retention: 7\n").starts_with("storesync.yaml:2:14: error"));
    }

    fn rollout_findings(platform: &str, stores: &[&str]) -> Vec<String> {
        use crate::desired::model::RawEntry;
        let raw = RawCatalog {
            platform: Some(RawContent::File(platform.as_bytes().to_vec())),
            stores_dir: "stores".into(),
            entries: Some(
                stores
                    .iter()
                    .map(|n| RawEntry {
                        path: format!("stores/{n}.yaml"),
                        name: format!("{n}.yaml"),
                        content: RawContent::File(
                            format!("name: {n}\nengine: woocommerce\nplan: small\nowner: team-a\n")
                                .into_bytes(),
                        ),
                    })
                    .collect(),
            ),
        };
        match load(&raw) {
            Ok(_) => Vec::new(),
            Err(findings) => findings.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn rollout_is_checked_where_it_is_written() {
        let ok = "rollout:\n  canaries: [acme]\n  waves: [10%, 50%, 100%]\n  maxUnhealthy: 10%\n  healthTimeout: 10m\n  soak: 0s\n  onFailure: rollback\n";
        assert_eq!(rollout_findings(ok, &["acme", "bobs"]), Vec::<String>::new());
        assert_eq!(
            rollout_findings("rollout: {}\n", &["acme"]),
            Vec::<String>::new(),
            "every field has a default"
        );
        let cases: &[(&str, &str)] = &[
            (
                "rollout:\n  canaries: [acme, zed]\n",
                "storesync.yaml:2:20: error: canary `zed` is not a store of the catalog",
            ),
            (
                "rollout:\n  canaries: [acme, acme]\n",
                "storesync.yaml:2:20: error: canary `acme` is listed twice",
            ),
            (
                "rollout:\n  waves: [50%, 25%, 100%]\n",
                "storesync.yaml:2:16: error: `25%` does not grow",
            ),
            (
                "rollout:\n  waves: [25%, 50%]\n",
                "storesync.yaml:2:16: error: the last wave is not 100%",
            ),
            (
                "rollout:\n  waves: [25, 100%]\n",
                "storesync.yaml:2:11: error: `25` is not a share of stores",
            ),
            (
                "rollout:\n  waves: []\n",
                "storesync.yaml:2:10: error: rollout.waves is empty",
            ),
            (
                "rollout:\n  maxUnhealthy: lots\n",
                "storesync.yaml:2:17: error: `lots` is not a number of stores or a share",
            ),
            (
                "rollout:\n  maxUnhealthy: -1\n",
                "storesync.yaml:2:17: error: `-1` is not a number of stores or a share",
            ),
            (
                "rollout:\n  healthTimeout: 0s\n",
                "storesync.yaml:2:18: error: rollout.healthTimeout must be longer than 0s",
            ),
            (
                "rollout:\n  soak: 2 days\n",
                "storesync.yaml:2:9: error: `2 days` is not a duration: it is longer than 24 hours",
            ),
            (
                "rollout:\n  onFailure: panic\n",
                "storesync.yaml:2:14: error: rollout.onFailure: unknown variant `panic`",
            ),
            (
                "rollout:\n  canary: [acme]\n",
                "storesync.yaml:2:3: error: rollout: unknown field `canary`",
            ),
        ];
        for (text, expected) in cases {
            let found = rollout_findings(text, &["acme"]);
            assert!(
                found.iter().any(|f| f.starts_with(expected)),
                "{text}: expected {expected}, got {found:?}"
            );
        }
    }
}
