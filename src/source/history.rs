//! The audit trail of one store: every commit that touched its file, newest first, with the
//! change to the file at each step. Renames are followed.
use std::path::Path;

use git2::{Delta, DiffFindOptions, DiffOptions, Repository, Sort};
use serde::Serialize;
use similar::TextDiff;

use crate::error::{Error, Result};
use crate::text::rfc3339;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Renamed,
    Deleted,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub commit: String,
    pub author: String,
    pub email: String,
    /// Author time, RFC 3339 in UTC.
    pub date: String,
    pub subject: String,
    pub change: ChangeKind,
    /// Path before the commit (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// Path after the commit (absent when deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_path: Option<String>,
    /// Unified diff of the file.
    pub diff: String,
}

/// History of store `name` in the catalog at `subdir` (with stores in `stores_dir`), walking
/// back from `rev`. Merge commits are compared with their first parent, which is what was
/// merged into the tracked branch.
pub fn store_history(
    repo: &Repository,
    rev: &str,
    subdir: &Path,
    stores_dir: &str,
    name: &str,
) -> Result<Vec<HistoryEntry>> {
    let start = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(Error::git(format!("cannot resolve revision `{rev}`")))?;
    let base = {
        let p = subdir.join(stores_dir);
        let s = p.to_string_lossy().replace('\\', "/");
        s.trim_start_matches("./").trim_end_matches('/').to_string()
    };
    let candidates = [format!("{base}/{name}.yaml"), format!("{base}/{name}.yml")];
    // The paths the store's file has had, newest first; a rename adds the older name.
    let mut tracked: Vec<String> = candidates.to_vec();

    let mut walk = repo.revwalk().map_err(Error::git("cannot walk history"))?;
    walk.push(start.id()).map_err(Error::git("cannot walk history"))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
        .map_err(Error::git("cannot walk history"))?;
    walk.simplify_first_parent()
        .map_err(Error::git("cannot walk history"))?;

    let mut entries = Vec::new();
    for oid in walk {
        let oid = oid.map_err(Error::git("cannot walk history"))?;
        let commit = repo
            .find_commit(oid)
            .map_err(Error::git(format!("cannot read commit {oid}")))?;
        let tree = commit
            .tree()
            .map_err(Error::git(format!("cannot read commit {oid}")))?;
        let parent_tree = match commit.parent(0) {
            Ok(parent) => Some(
                parent
                    .tree()
                    .map_err(Error::git(format!("cannot read commit {}", parent.id())))?,
            ),
            Err(_) => None,
        };
        let mut options = DiffOptions::new();
        options.pathspec(&base);
        let mut diff = repo
            .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), Some(&mut options))
            .map_err(Error::git(format!("cannot diff commit {oid}")))?;
        let mut find = DiffFindOptions::new();
        find.renames(true);
        diff.find_similar(Some(&mut find))
            .map_err(Error::git(format!("cannot diff commit {oid}")))?;

        for delta in diff.deltas() {
            let old_path = delta
                .old_file()
                .path()
                .map(|p| p.to_string_lossy().replace('\\', "/"));
            let new_path = delta
                .new_file()
                .path()
                .map(|p| p.to_string_lossy().replace('\\', "/"));
            let kind = match delta.status() {
                Delta::Added => ChangeKind::Added,
                Delta::Modified => ChangeKind::Modified,
                Delta::Renamed => ChangeKind::Renamed,
                Delta::Deleted => ChangeKind::Deleted,
                _ => continue,
            };
            let path_after = if kind == ChangeKind::Deleted {
                &old_path
            } else {
                &new_path
            };
            let Some(path_after) = path_after.clone().filter(|p| tracked.contains(p)) else {
                continue;
            };
            if kind == ChangeKind::Renamed
                && let Some(old) = &old_path
                && !tracked.contains(old)
            {
                tracked.push(old.clone());
            }
            let text = |id: git2::Oid| -> Result<String> {
                if id.is_zero() {
                    return Ok(String::new());
                }
                let blob = repo
                    .find_blob(id)
                    .map_err(Error::git(format!("cannot read object {id}")))?;
                Ok(String::from_utf8_lossy(blob.content()).into_owned())
            };
            let before = text(delta.old_file().id())?;
            let after = text(delta.new_file().id())?;
            let a = old_path
                .as_deref()
                .filter(|_| kind != ChangeKind::Added)
                .map_or("/dev/null".into(), |p| format!("a/{p}"));
            let b = new_path
                .as_deref()
                .filter(|_| kind != ChangeKind::Deleted)
                .map_or("/dev/null".into(), |p| format!("b/{p}"));
            let unified = TextDiff::from_lines(&before, &after)
                .unified_diff()
                .context_radius(3)
                .header(&a, &b)
                .to_string();
            let author = commit.author();
            entries.push(HistoryEntry {
                commit: oid.to_string(),
                author: author.name().unwrap_or("").to_string(),
                email: author.email().unwrap_or("").to_string(),
                date: rfc3339(author.when().seconds()),
                subject: commit.summary().ok().flatten().unwrap_or("").to_string(),
                change: kind.clone(),
                old_path: old_path.filter(|_| kind != ChangeKind::Added),
                new_path: if kind == ChangeKind::Deleted {
                    None
                } else {
                    Some(path_after)
                },
                diff: unified,
            });
        }
    }
    Ok(entries)
}
