//! Scratch repositories under `<cache>/scratch/`, one per pull-request fetch, removed when their
//! guard drops. Each holds an advisory lock on a file inside it while in use, so what a process
//! that died left behind (nobody holds its lock) is told apart from scratch space in use by this
//! process or another, and swept.
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::cache_lock;
use super::dirs::{create_private_dir, remove_all};
use crate::error::{Error, Result};

/// The directory of scratch repositories inside a cache directory.
pub(super) const ROOT: &str = "scratch";
/// Held while the root is swept or a scratch repository created in it, so a sweep never sees a
/// repository between its creation and its owner's lock.
const ROOT_LOCK: &str = ".lock";
/// Locked by the owner of a scratch repository as long as it lives.
const OWNER: &str = "storesync.owner";

/// A scratch directory in use; removed (with all it holds) on drop.
pub(super) struct Scratch {
    dir: PathBuf,
    /// Released after the removal, so a concurrent sweep never takes the directory for a leftover.
    _owner: File,
}

impl Scratch {
    /// A new empty directory `<cache_dir>/scratch/<prefix><random>`, only its owner may read it.
    /// Leftovers of dead processes are swept first.
    pub(super) fn create(cache_dir: &Path, prefix: &str) -> Result<Scratch> {
        let root = cache_dir.join(ROOT);
        create_private_dir(&root)?;
        let _root = lock_root(&root)?;
        sweep_locked(&root);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&root)
            .map_err(Error::io(&root))?
            .keep();
        let owner = create_private_dir(&dir).and_then(|()| own(&dir));
        match owner {
            Ok(owner) => Ok(Scratch { dir, _owner: owner }),
            Err(e) => {
                let _ = remove_all(&dir);
                Err(e)
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = remove_all(&self.dir) {
            warn!(error = %e, "cannot remove a pull request's scratch repository; the next fetch sweeps it");
        }
    }
}

/// Removes what fetches of dead processes left in `<cache_dir>/scratch/`. Scratch space in use
/// is kept. Returns how many entries went. Creates nothing when there is no scratch directory.
pub(super) fn sweep(cache_dir: &Path) -> usize {
    let root = cache_dir.join(ROOT);
    if !root.is_dir() {
        return 0;
    }
    match lock_root(&root) {
        Ok(_root) => sweep_locked(&root),
        Err(e) => {
            warn!(error = %e, "cannot lock the scratch directory to sweep it");
            0
        }
    }
}

fn sweep_locked(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == ROOT_LOCK || in_use(&path) {
            continue;
        }
        match remove_all(&path) {
            Ok(()) => {
                removed += 1;
                warn!(path = %path.display(), "removed scratch space an interrupted pull-request fetch left");
            }
            Err(e) => warn!(error = %e, "cannot remove scratch space an interrupted fetch left"),
        }
    }
    removed
}

fn lock_root(root: &Path) -> Result<File> {
    let path = root.join(ROOT_LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    cache_lock::lock_exclusive(&file).map_err(Error::io(&path))?;
    Ok(file)
}

/// Takes the owner's lock of the new scratch directory `dir`.
fn own(dir: &Path) -> Result<File> {
    let path = dir.join(OWNER);
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    cache_lock::lock_exclusive(&file).map_err(Error::io(&path))?;
    Ok(file)
}

/// Whether a live owner (of any process) holds the lock of the scratch directory `dir`.
#[cfg(unix)]
fn in_use(dir: &Path) -> bool {
    use rustix::fs::{FlockOperation, flock};
    let Ok(file) = File::open(dir.join(OWNER)) else {
        // No owner file: not a scratch repository, or one whose owner died creating it.
        return false;
    };
    // Another open file of the lock, so a holder of this process counts as well.
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => false,
        Err(rustix::io::Errno::WOULDBLOCK) => true,
        // Cannot tell: keep it.
        Err(_) => true,
    }
}

/// Elsewhere a live owner cannot be told from a dead one: nothing is swept.
#[cfg(not(unix))]
fn in_use(_dir: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ROOT_LOCK)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_scratch_directory_is_private_and_removed_on_drop() {
        let cache = tempfile::tempdir().unwrap();
        let scratch = Scratch::create(cache.path(), "pr-7-").unwrap();
        let dir = scratch.path().to_path_buf();
        assert!(dir.starts_with(cache.path().join(ROOT)), "{}", dir.display());
        assert!(dir.file_name().unwrap().to_string_lossy().starts_with("pr-7-"));
        std::fs::create_dir_all(dir.join("objects/pack")).unwrap();
        std::fs::write(dir.join("objects/pack/pack-1.pack"), b"PACK").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for d in [cache.path().join(ROOT), dir.clone()] {
                let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o700, "{}", d.display());
            }
        }
        drop(scratch);
        assert!(!dir.exists());
        assert!(entries(&cache.path().join(ROOT)).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_sweep_removes_leftovers_and_keeps_scratch_space_in_use() {
        let cache = tempfile::tempdir().unwrap();
        assert_eq!(sweep(cache.path()), 0);
        assert!(!cache.path().join(ROOT).exists(), "a sweep creates nothing");

        let live = Scratch::create(cache.path(), "pr-1-").unwrap();
        let root = cache.path().join(ROOT);
        // A process that died mid-fetch: its owner file is there, nobody holds its lock.
        let dead = root.join("pr-2-dead");
        std::fs::create_dir_all(dead.join("objects/pack")).unwrap();
        std::fs::write(dead.join(OWNER), "").unwrap();
        std::fs::write(dead.join("objects/pack/tmp_pack_x"), vec![0u8; 4096]).unwrap();
        // One that died before it took its lock, and a stray file.
        std::fs::create_dir_all(root.join("pr-3-early")).unwrap();
        std::fs::write(root.join("stray"), "").unwrap();

        assert_eq!(sweep(cache.path()), 3);
        let name = live.path().file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(entries(&root), [name], "the live one stays");

        // Creating another sweeps as well, and never takes the live one.
        std::fs::create_dir_all(root.join("pr-4-dead")).unwrap();
        let second = Scratch::create(cache.path(), "pr-5-").unwrap();
        assert!(live.path().is_dir() && second.path().is_dir());
        assert!(!root.join("pr-4-dead").exists());
        drop((live, second));
        assert!(entries(&root).is_empty());
    }
}
