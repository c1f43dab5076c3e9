//! promtool (Debian's `prometheus` package): found as $STORESYNC_PROMTOOL or on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

use crate::charts::helm::repo_root;

/// promtool, if installed.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STORESYNC_PROMTOOL").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

/// Runs promtool in the repository root; its output, or the output of a failure.
pub fn run(promtool: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() { Ok(text) } else { Err(text) }
}

/// `groups` written as a rules file in `dir`.
pub fn rules_file(dir: &Path, name: &str, groups: &Json) -> String {
    let path = dir.join(name);
    let text = serde_yaml_ng::to_string(&serde_json::json!({ "groups": groups })).expect("YAML");
    std::fs::write(&path, text).expect("write rules");
    path.display().to_string()
}
