//! The repository the daemon tracks: a branch of a local repository or of a remote one kept in
//! the cache. The daemon always reads commits, never a work tree. Blocking (libgit2): call it
//! from `spawn_blocking`.
use std::path::PathBuf;

use git2::Repository;

pub use super::Opened;
use super::remote::default_cache_dir;
use super::{PullRequestHead, RepoLocation, Snapshot, SourceOptions, pull, read_commit};
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
    /// The repository as last fetched, without fetching: what a page view may read. A local
    /// repository is opened as it is.
    pub fn open_cached(&self) -> Result<Opened> {
        match &self.location {
            RepoLocation::Url(url) => {
                let cache =
                    super::RemoteCache::new(self.options.cache_dir.clone(), self.options.credentials.clone());
                let fetched = cache.cached(url)?;
                Ok(Opened {
                    repo: fetched.repo,
                    subdir: std::path::PathBuf::new(),
                    recloned: None,
                    cache_lock: Some(fetched.lock),
                })
            }
            RepoLocation::Local(_) => self.open(),
        }
    }

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

    /// Reads the catalog at `sha`, the head of pull request `number` (forks included).
    ///
    /// A repository given by URL fetches `refs/pull/<number>/head` into a scratch repository of
    /// its own under the cache directory, depth 1, within `options.pull_fetch` (a byte cap and
    /// a timeout, each a clear error naming its flag), never into the shared cache and without
    /// its lock, so syncs never wait for it; the scratch repository is gone when this returns,
    /// whatever the outcome. A local repository must hold the commit already.
    pub fn read_pull_request(&self, number: u64, sha: &str) -> Result<PullRequestHead> {
        match &self.location {
            RepoLocation::Url(url) => {
                let cache_dir = self.options.cache_dir.clone().unwrap_or_else(default_cache_dir);
                pull::fetch_head(
                    &cache_dir,
                    url,
                    &self.options.credentials,
                    number,
                    sha,
                    self.options.pull_fetch,
                )
            }
            RepoLocation::Local(_) => {
                let opened = self.open()?;
                let oid = git2::Oid::from_str(sha).map_err(Error::git("bad commit id"))?;
                if opened.repo.find_commit(oid).is_err() {
                    return Err(Error::Repository(format!(
                        "commit {sha} of pull request #{number} is not in the local repository"
                    )));
                }
                Ok(PullRequestHead {
                    snapshot: read_commit(&opened.repo, sha, &opened.subdir)?,
                    catalog_dir: opened.subdir.to_string_lossy().replace('\\', "/"),
                    fetched_bytes: 0,
                })
            }
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
