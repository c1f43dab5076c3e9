//! One fetch at a time per cache: threads of this process wait on a lock keyed by the cache's
//! path, other processes (a CLI run beside the daemon) on an advisory file lock next to it. The
//! file sits outside the repository so that a re-cloned repository can be swapped in under it.
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use crate::error::{Error, Result};

/// Held while a cache is fetched and read; released on drop.
pub struct CacheLock {
    /// Dropped first: the file lock is released before the next thread of this process is let in.
    _file: File,
    _in_process: InProcess,
}

impl std::fmt::Debug for CacheLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CacheLock").field(&self._in_process.0).finish()
    }
}

/// The repositories whose lock a thread of this process holds.
fn held() -> &'static (Mutex<HashSet<PathBuf>>, Condvar) {
    static HELD: OnceLock<(Mutex<HashSet<PathBuf>>, Condvar)> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

struct InProcess(PathBuf);

impl Drop for InProcess {
    fn drop(&mut self) {
        let (set, freed) = held();
        set.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.0);
        freed.notify_all();
    }
}

impl CacheLock {
    /// Waits until no other thread or process holds the lock of the repository at `repo` (a
    /// canonical path, so that two spellings of one cache share a lock), then takes it.
    pub fn acquire(repo: &Path) -> Result<CacheLock> {
        let (set, freed) = held();
        let mut holders = set.lock().unwrap_or_else(PoisonError::into_inner);
        while holders.contains(repo) {
            holders = freed.wait(holders).unwrap_or_else(PoisonError::into_inner);
        }
        holders.insert(repo.to_path_buf());
        drop(holders);
        let in_process = InProcess(repo.to_path_buf());
        let path = lock_file(repo);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        lock_exclusive(&file).map_err(Error::io(&path))?;
        Ok(CacheLock {
            _file: file,
            _in_process: in_process,
        })
    }
}

/// Waits for the advisory lock on `file`; released when the file is closed.
#[cfg(unix)]
pub(super) fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use rustix::fs::{FlockOperation, flock};
    loop {
        match flock(file, FlockOperation::LockExclusive) {
            Err(rustix::io::Errno::INTR) => continue,
            result => return result.map_err(std::io::Error::from),
        }
    }
}

/// Elsewhere only the threads of one process are kept apart.
#[cfg(not(unix))]
pub(super) fn lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

/// `<cache>/<name>.git.lock` for the repository `<cache>/<name>.git`.
fn lock_file(repo: &Path) -> PathBuf {
    let mut name = repo.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    repo.with_file_name(name)
}

/// Where a repository is cloned again before it replaces `repo`, and where the replaced one
/// goes until it is removed: next to it, on the same file system, so renames are atomic.
pub(super) fn sibling(repo: &Path, suffix: &str) -> PathBuf {
    let mut name = repo.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    repo.with_file_name(name)
}

/// Removes the lock files an interrupted fetch leaves in `repo` (in `refs/`, and `index.lock`,
/// `shallow.lock`, `packed-refs.lock`, `config.lock`, `HEAD.lock` at its top), which make every
/// later fetch fail. Only call it holding the [`CacheLock`]: then no fetch is running. Returns
/// the files removed.
pub(super) fn remove_stale_locks(repo: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    lock_files(&repo.join("refs"), true, &mut found);
    lock_files(repo, false, &mut found);
    found.retain(|f| std::fs::remove_file(f).is_ok());
    found
}

fn lock_files(dir: &Path, recurse: bool, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() && recurse => lock_files(&path, true, found),
            Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "lock") => found.push(path),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_holder_at_a_time_within_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("stores-abc.git");
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (repo, inside, most) = (repo.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let _lock = CacheLock::acquire(&repo).unwrap();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(dir.path().join("stores-abc.git.lock").is_file());
    }

    #[cfg(unix)]
    #[test]
    fn another_open_file_waits_for_the_file_lock() {
        use rustix::fs::{FlockOperation, flock};
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("stores-abc.git");
        let lock = CacheLock::acquire(&repo).unwrap();
        // What another process does: its own open file on the same lock file.
        let other = File::open(lock_file(&repo)).unwrap();
        let try_lock = || flock(&other, FlockOperation::NonBlockingLockExclusive);
        assert_eq!(
            try_lock(),
            Err(rustix::io::Errno::WOULDBLOCK),
            "held while the CacheLock lives"
        );
        drop(lock);
        assert_eq!(try_lock(), Ok(()), "released with the CacheLock");
    }

    #[test]
    fn stale_locks_are_found_in_refs_and_at_the_top_only() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        std::fs::create_dir_all(repo.join("refs/remotes/origin")).unwrap();
        std::fs::create_dir_all(repo.join("objects/pack")).unwrap();
        for file in [
            "refs/remotes/origin/main.lock",
            "shallow.lock",
            "packed-refs.lock",
            "refs/remotes/origin/main",
            "objects/pack/keep.lock",
        ] {
            std::fs::write(repo.join(file), "").unwrap();
        }
        let mut removed = remove_stale_locks(repo);
        removed.sort();
        assert_eq!(
            removed,
            [
                repo.join("packed-refs.lock"),
                repo.join("refs/remotes/origin/main.lock"),
                repo.join("shallow.lock"),
            ]
        );
        assert!(repo.join("refs/remotes/origin/main").exists());
        assert!(repo.join("objects/pack/keep.lock").exists());
    }
}
