//! The repository the daemon tracks: a branch of a local repository or of a remote one kept in
//! the cache. The daemon always reads commits, never a work tree. Blocking (libgit2): call it
//! from `spawn_blocking`.
use std::path::PathBuf;

use git2::Repository;

pub use super::Opened;
use super::{RemoteCache, RepoLocation, Snapshot, SourceOptions, read_commit};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct TrackedRepo {
    pub location: RepoLocation,
    pub branch: String,
    pub options: SourceOptions,
}

impl TrackedRepo {
    /// Opens the repository, fetching first when it is remote; [`Opened::recloned`] says
    /// whether its cache had to be cloned again.
    pub fn open(&self) -> Result<Opened> {
        super::open(&self.location, &self.options)
    }

    fn branch_ref(&self) -> String {
        match self.location {
            RepoLocation::Local(_) => format!("refs/heads/{}", self.branch),
            RepoLocation::Url(_) => format!("refs/remotes/origin/{}", self.branch),
        }
    }

    /// The commit at the head of the tracked branch.
    pub fn head(&self, opened: &Opened) -> Result<String> {
        let reference = self.branch_ref();
        let commit = opened
            .repo
            .revparse_single(&reference)
            .and_then(|o| o.peel_to_commit())
            .map_err(Error::git(format!("cannot resolve branch `{}`", self.branch)))?;
        Ok(commit.id().to_string())
    }

    pub fn snapshot(&self, opened: &Opened, sha: &str) -> Result<Snapshot> {
        read_commit(&opened.repo, sha, &opened.subdir)
    }

    /// Makes the head of pull request `number` available: remote repositories fetch
    /// `refs/pull/<n>/head`, which also carries pull requests from forks.
    pub fn fetch_pull(&self, opened: &Opened, number: u64, sha: &str) -> Result<()> {
        if opened
            .repo
            .find_commit(git2::Oid::from_str(sha).map_err(Error::git("bad commit id"))?)
            .is_ok()
        {
            return Ok(());
        }
        match &self.location {
            RepoLocation::Url(url) => {
                let cache =
                    RemoteCache::new(self.options.cache_dir.clone(), self.options.credentials.clone());
                cache.fetch_ref(&opened.repo, url, &format!("refs/pull/{number}/head"))
            }
            RepoLocation::Local(_) => Err(Error::Repository(format!(
                "commit {sha} of pull request #{number} is not in the local repository"
            ))),
        }
    }

    /// The Git directory to watch for new commits (local repositories only).
    pub fn git_dir(&self) -> Option<PathBuf> {
        match &self.location {
            RepoLocation::Local(dir) => Repository::discover(dir).ok().map(|r| r.path().to_path_buf()),
            RepoLocation::Url(_) => None,
        }
    }
}

/// Whether `older` is a strict ancestor of `newer`.
pub fn is_strict_ancestor(repo: &Repository, older: &str, newer: &str) -> bool {
    let (Ok(older), Ok(newer)) = (git2::Oid::from_str(older), git2::Oid::from_str(newer)) else {
        return false;
    };
    older != newer && repo.graph_descendant_of(newer, older).unwrap_or(false)
}
