//! Turns the raw files of a catalog into typed, validated stores. No I/O: the bytes come from
//! [`crate::source`].
use rayon::prelude::*;
use serde::de::DeserializeOwned;

use super::diagnostics::{self, Diagnostic};
use super::model::{PlatformConfig, StoreFile};
use super::position::Positions;
use super::validate;

/// Largest store or platform file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
pub const PLATFORM_FILE: &str = "storesync.yaml";

/// What one directory entry under the stores directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawContent {
    File(Vec<u8>),
    /// A file over [`MAX_FILE_BYTES`], not read; holds its size.
    TooLarge(u64),
    Symlink,
    Directory,
    /// Anything else Git or the file system can hold (a submodule, a socket).
    Other,
}

impl RawContent {
    /// The bytes of a regular file that was read.
    pub fn file(&self) -> Option<&[u8]> {
        match self {
            RawContent::File(bytes) => Some(bytes),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// Path relative to the catalog root, `/`-separated: `stores/acme.yaml`.
    pub path: String,
    /// File name within the stores directory: `acme.yaml`.
    pub name: String,
    pub content: RawContent,
}

/// The files of a catalog as read from a work tree or a commit.
#[derive(Debug, Clone, Default)]
pub struct RawCatalog {
    /// `storesync.yaml`, when present.
    pub platform: Option<RawContent>,
    /// The stores directory, as configured (or defaulted) when the source was read.
    pub stores_dir: String,
    /// `None` when the stores directory does not exist.
    pub entries: Option<Vec<RawEntry>>,
}

/// A store that passed validation, with its effective domain.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Store {
    /// Path of the store's file relative to the catalog root.
    pub file: String,
    pub name: String,
    pub engine: String,
    pub plan: String,
    pub owner: String,
    pub domain: String,
    pub protected: bool,
    pub suspend: bool,
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// A fully valid catalog: every file parsed and passed every rule.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub platform: PlatformConfig,
    /// Sorted by name.
    pub stores: Vec<Store>,
    /// Findings that do not invalidate the catalog (ignored files).
    pub warnings: Vec<Diagnostic>,
}

/// A parsed store file, kept with its text so that later rules can locate their findings.
pub(crate) struct Parsed {
    pub path: String,
    pub stem: String,
    pub text: String,
    pub store: StoreFile,
}

impl Parsed {
    pub fn positions(&self) -> Positions {
        Positions::of(&self.text)
    }
}

/// The stores directory named by a platform file, read before the rest of the catalog. An
/// unreadable file yields the default; its errors are reported by [`load`].
pub fn stores_dir_of(platform: Option<&[u8]>) -> String {
    platform
        .and_then(|b| std::str::from_utf8(b).ok())
        .filter(|t| !is_blank(t))
        .and_then(|t| serde_yaml_ng::from_str::<PlatformConfig>(t).ok())
        .map(|p| p.stores_dir)
        .unwrap_or_else(|| PlatformConfig::default().stores_dir)
}

/// Validates a whole catalog. Either every file is valid and a [`Catalog`] comes back, or the
/// complete list of findings does (errors and warnings, sorted by file and position).
pub fn load(raw: &RawCatalog) -> Result<Catalog, Vec<Diagnostic>> {
    let mut findings = Vec::new();
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

    let results: Vec<Result<Option<Parsed>, Diagnostic>> = entries.par_iter().map(parse_entry).collect();
    let mut parsed = Vec::with_capacity(results.len());
    let mut store_files = 0usize;
    for result in results {
        match result {
            Ok(Some(p)) => {
                store_files += 1;
                parsed.push(p);
            }
            Ok(None) => {}
            Err(d) => {
                store_files += usize::from(d.is_error());
                findings.push(d);
            }
        }
    }

    if let Some(platform) = &platform {
        findings.extend(
            parsed
                .par_iter()
                .flat_map_iter(|p| validate::store(p, platform))
                .collect::<Vec<_>>(),
        );
        findings.extend(validate::across_stores(&parsed, platform, store_files, raw));
    }

    diagnostics::sort(&mut findings);
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

fn load_platform(raw: Option<&RawContent>, findings: &mut Vec<Diagnostic>) -> Option<PlatformConfig> {
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
    let platform: PlatformConfig = match parse_yaml(PLATFORM_FILE, text) {
        Ok(p) => p,
        Err(d) => {
            findings.push(d);
            return None;
        }
    };
    let errors = validate::platform(&platform, &Positions::of(text));
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
        RawContent::Directory | RawContent::Other | RawContent::File(_) => {
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

fn parse_entry(entry: &RawEntry) -> Result<Option<Parsed>, Diagnostic> {
    if entry.name.starts_with('.') {
        return Ok(None);
    }
    let stem = entry
        .name
        .strip_suffix(".yaml")
        .or_else(|| entry.name.strip_suffix(".yml"));
    let bytes = match (&entry.content, stem) {
        (RawContent::Directory, _) => {
            return Err(Diagnostic::warning(
                &entry.path,
                (1, 1),
                "ignored: subdirectories of the stores directory are not read",
            )
            .hint("keep every store file directly in the stores directory"));
        }
        (_, None) => {
            return Err(
                Diagnostic::warning(&entry.path, (1, 1), "ignored: not a .yaml or .yml file")
                    .hint("store files end in .yaml or .yml; move other files out of the stores directory"),
            );
        }
        (RawContent::File(bytes), Some(_)) => bytes,
        (other, Some(_)) => return Err(unreadable(&entry.path, other)),
    };
    let text = utf8(&entry.path, bytes)?;
    if is_blank(text) {
        return Err(Diagnostic::error(&entry.path, (1, 1), "the file is empty")
            .hint("fill in name, engine, plan and owner, or delete the file to remove the store"));
    }
    let store: StoreFile = parse_yaml(&entry.path, text)?;
    Ok(Some(Parsed {
        path: entry.path.clone(),
        stem: stem.unwrap_or_default().to_string(),
        text: text.to_string(),
        store,
    }))
}
