//! A catalog read from a directory as it is on disk, uncommitted edits included.
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Revision, Snapshot, StoresDir, join};
use crate::desired::{MAX_FILE_BYTES, PLATFORM_FILE, RawCatalog, RawContent, RawEntry, rules, stores_dir_of};
use crate::error::{Error, Result};

pub(super) fn read(root: &Path) -> Result<Snapshot> {
    let meta = fs::metadata(root).map_err(Error::io(root))?;
    if !meta.is_dir() {
        return Err(Error::Repository(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let platform = read_entry(&root.join(PLATFORM_FILE))?;
    let stores_dir = stores_dir_of(platform.as_ref().and_then(RawContent::file));
    let entries = locate(root, &stores_dir)?.entries(|dir| {
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let entry = entry.map_err(Error::io(&dir))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        names
            .into_par_iter()
            .map(|name| {
                let content = read_entry(&dir.join(&name))?.unwrap_or(RawContent::Other);
                Ok(RawEntry {
                    path: join(&stores_dir, &name),
                    name,
                    content,
                })
            })
            .collect()
    })?;
    Ok(Snapshot {
        raw: RawCatalog {
            platform,
            stores_dir,
            entries,
        },
        revision: Revision {
            commit: None,
            label: "work tree".into(),
        },
    })
}

/// Walks `stores_dir` one component at a time without following a link, so that nothing
/// outside the catalog is ever listed or read.
fn locate(root: &Path, stores_dir: &str) -> Result<StoresDir<PathBuf>> {
    if !rules::is_catalog_dir(stores_dir) {
        return Ok(StoresDir::Outside);
    }
    let mut dir = root.to_path_buf();
    let mut rel = String::new();
    for component in stores_dir.split('/') {
        dir.push(component);
        rel = join(&rel, component);
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StoresDir::Missing),
            Err(e) => return Err(Error::Io { path: dir, source: e }),
            Ok(m) if m.file_type().is_symlink() => return Ok(StoresDir::Link(rel)),
            Ok(m) if !m.is_dir() => return Ok(StoresDir::Missing),
            Ok(_) => {}
        }
    }
    Ok(StoresDir::Found(dir))
}

/// Reads one entry without following links; `None` when it does not exist.
fn read_entry(path: &Path) -> Result<Option<RawContent>> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                path: path.into(),
                source: e,
            });
        }
        Ok(m) => m,
    };
    let ft = meta.file_type();
    Ok(Some(if ft.is_symlink() {
        RawContent::Symlink
    } else if ft.is_dir() {
        RawContent::Directory
    } else if !ft.is_file() {
        RawContent::Other
    } else if meta.len() > MAX_FILE_BYTES {
        RawContent::TooLarge(meta.len())
    } else {
        RawContent::File(fs::read(path).map_err(Error::io(path))?)
    }))
}
