//! A catalog read from a commit: the trees and blobs of the object database, no checkout.
use std::path::Path;

use git2::{ObjectType, Oid, Repository, Tree, TreeEntry};

use super::{Revision, Snapshot, StoresDir, join};
use crate::desired::{MAX_FILE_BYTES, PLATFORM_FILE, RawCatalog, RawContent, RawEntry, rules, stores_dir_of};
use crate::error::{Error, Result};

const MODE_LINK: i32 = 0o120000;
const MODE_SUBMODULE: i32 = 0o160000;

/// Reads the catalog rooted at `subdir` of the commit `rev` names.
pub fn read_commit(repo: &Repository, rev: &str, subdir: &Path) -> Result<Snapshot> {
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(Error::git(format!("cannot resolve revision `{rev}`")))?;
    let sha = commit.id().to_string();
    let root_tree = commit
        .tree()
        .map_err(Error::git(format!("cannot read the tree of {sha}")))?;
    let tree = if subdir.as_os_str().is_empty() {
        root_tree
    } else {
        let entry = root_tree.get_path(subdir).map_err(|_| {
            Error::Repository(format!("{} does not exist at {}", subdir.display(), &sha[..12]))
        })?;
        entry
            .to_object(repo)
            .and_then(|o| o.peel_to_tree())
            .map_err(Error::git(format!(
                "{} is not a directory at {}",
                subdir.display(),
                &sha[..12]
            )))?
    };

    let platform = match tree.get_name(PLATFORM_FILE) {
        Some(entry) => Some(content(repo, &entry)?),
        None => None,
    };
    let stores_dir = stores_dir_of(platform.as_ref().and_then(RawContent::file));
    let entries = locate(repo, tree, &stores_dir, &sha)?.entries(|dir| {
        let mut entries = Vec::with_capacity(dir.len());
        for e in dir.iter() {
            let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
            entries.push(RawEntry {
                path: join(&stores_dir, &name),
                content: content(repo, &e)?,
                name,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    })?;
    let label = if sha.starts_with(rev) {
        sha[..12].to_string()
    } else {
        format!(
            "{} ({})",
            &sha[..12],
            rev.trim_start_matches("refs/remotes/origin/")
                .trim_start_matches("refs/heads/")
        )
    };
    Ok(Snapshot {
        raw: RawCatalog {
            platform,
            stores_dir,
            entries,
        },
        revision: Revision {
            commit: Some(sha),
            label,
        },
    })
}

/// Walks `stores_dir` through the tree one component at a time; a link is never resolved.
fn locate<'r>(
    repo: &'r Repository,
    mut tree: Tree<'r>,
    stores_dir: &str,
    sha: &str,
) -> Result<StoresDir<Tree<'r>>> {
    if !rules::is_catalog_dir(stores_dir) {
        return Ok(StoresDir::Outside);
    }
    let mut rel = String::new();
    for component in stores_dir.split('/') {
        rel = join(&rel, component);
        let Some(entry) = tree.get_name(component) else {
            return Ok(StoresDir::Missing);
        };
        if entry.filemode() == MODE_LINK {
            return Ok(StoresDir::Link(rel));
        }
        if entry.kind() != Some(ObjectType::Tree) {
            return Ok(StoresDir::Missing);
        }
        let next = entry
            .to_object(repo)
            .and_then(|o| o.peel_to_tree())
            .map_err(Error::git(format!("cannot read {rel} at {}", &sha[..12])))?;
        drop(entry);
        tree = next;
    }
    Ok(StoresDir::Found(tree))
}

fn content(repo: &Repository, entry: &TreeEntry<'_>) -> Result<RawContent> {
    Ok(match (entry.filemode(), entry.kind()) {
        (MODE_LINK, _) => RawContent::Symlink,
        (MODE_SUBMODULE, _) => RawContent::Other,
        (_, Some(ObjectType::Tree)) => RawContent::Directory,
        (_, Some(ObjectType::Blob)) => blob(repo, entry.id())?,
        _ => RawContent::Other,
    })
}

fn blob(repo: &Repository, id: Oid) -> Result<RawContent> {
    // The header gives the size without inflating a large blob.
    let odb = repo
        .odb()
        .map_err(Error::git("cannot open the object database"))?;
    let (size, _) = odb
        .read_header(id)
        .map_err(Error::git(format!("cannot read object {id}")))?;
    if size as u64 > MAX_FILE_BYTES {
        return Ok(RawContent::TooLarge(size as u64));
    }
    let blob = repo
        .find_blob(id)
        .map_err(Error::git(format!("cannot read object {id}")))?;
    Ok(RawContent::File(blob.content().to_vec()))
}
