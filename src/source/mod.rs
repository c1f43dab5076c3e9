//! Reading a catalog: from a work tree as it is on disk, or from a commit of a local or remote
//! Git repository (libgit2; never the `git` program).
mod cache_lock;
mod commit;
mod dirs;
pub mod history;
mod pull;
mod remote;
mod scratch;
pub mod tracked;
mod url;
mod worktree;

use std::path::{Path, PathBuf};

use crate::desired::{RawCatalog, RawContent, RawEntry};
use crate::error::{Error, Result};

pub use cache_lock::CacheLock;
pub use commit::read_commit;
pub use pull::{PullFetchLimits, PullRequestHead, parse_byte_size};
pub use remote::{Credentials, Fetched, RemoteCache};
pub use url::redact;

/// Where the stores repository is.
#[derive(Clone, PartialEq, Eq)]
pub enum RepoLocation {
    Local(PathBuf),
    /// An `https://`, `ssh://`, `file://` or `user@host:path` address.
    Url(String),
}

/// A URL is shown without the user and password it may carry.
impl std::fmt::Debug for RepoLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepoLocation::Local(p) => f.debug_tuple("Local").field(p).finish(),
            RepoLocation::Url(u) => f.debug_tuple("Url").field(&redact(u)).finish(),
        }
    }
}

impl RepoLocation {
    pub fn parse(s: &str) -> RepoLocation {
        let scp_like = s.split_once(':').is_some_and(|(head, _)| {
            head.contains('@') && !head.contains('/') && head.len() > 2 && !Path::new(s).exists()
        });
        if s.contains("://") || scp_like {
            RepoLocation::Url(s.to_string())
        } else {
            RepoLocation::Local(s.into())
        }
    }
}

/// The revision a catalog was read at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Revision {
    /// Full commit id; `None` for a work tree read as it is on disk.
    pub commit: Option<String>,
    /// For people: `work tree` or the short commit id with what was asked for.
    pub label: String,
}

/// A catalog's files at one revision.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub raw: RawCatalog,
    pub revision: Revision,
}

/// Options for reading a repository given by URL.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub cache_dir: Option<PathBuf>,
    /// Branch read when no revision is given (default `main`).
    pub branch: Option<String>,
    pub credentials: Credentials,
    /// Bounds on fetching a pull request's head (the daemon's plans).
    pub pull_fetch: PullFetchLimits,
}

/// Reads the catalog at `location`: a local directory as on disk when `rev` is `None`, else
/// the commit `rev` names.
pub fn read(location: &RepoLocation, rev: Option<&str>, options: &SourceOptions) -> Result<Snapshot> {
    if let (RepoLocation::Local(dir), None) = (location, rev) {
        return worktree::read(dir);
    }
    let opened = open(location, options)?;
    let rev = revision(location, &opened, rev, options);
    read_commit(&opened.repo, &rev, &opened.subdir)
}

/// An opened repository and where the catalog sits in it.
pub struct Opened {
    pub repo: git2::Repository,
    pub subdir: PathBuf,
    /// Why the cache of a URL was found unusable and cloned again by this open, when it was.
    pub recloned: Option<String>,
    /// A URL's cache stays locked while it is read: no fetch or re-clone changes it meanwhile.
    pub cache_lock: Option<CacheLock>,
}

/// Opens the repository at `location`: the one around a local directory, or the cache of a
/// URL, fetched now (healed first when it was unusable: see [`RemoteCache::fetch`]). Drop the
/// result before opening the same URL again on this thread: it holds the cache's lock.
pub fn open(location: &RepoLocation, options: &SourceOptions) -> Result<Opened> {
    match location {
        RepoLocation::Local(dir) => {
            let repo = git2::Repository::discover(dir).map_err(Error::git(format!(
                "{} is not inside a Git repository",
                dir.display()
            )))?;
            let subdir = subdir_of(&repo, dir)?;
            Ok(Opened {
                repo,
                subdir,
                recloned: None,
                cache_lock: None,
            })
        }
        RepoLocation::Url(url) => {
            let cache = RemoteCache::new(options.cache_dir.clone(), options.credentials.clone());
            let fetched = cache.fetch(url, options.branch.as_deref().unwrap_or("main"))?;
            Ok(Opened {
                repo: fetched.repo,
                subdir: PathBuf::new(),
                recloned: fetched.recloned,
                cache_lock: Some(fetched.lock),
            })
        }
    }
}

/// The revision to read in an opened repository: `rev` as a user names it (a URL's branches
/// live under `origin/`), else `HEAD` of a local repository or the tracked branch of a URL.
pub fn revision(
    location: &RepoLocation,
    opened: &Opened,
    rev: Option<&str>,
    options: &SourceOptions,
) -> String {
    match (location, rev) {
        (RepoLocation::Local(_), rev) => rev.unwrap_or("HEAD").to_string(),
        (RepoLocation::Url(_), Some(rev)) => remote::resolve_name(&opened.repo, rev),
        (RepoLocation::Url(_), None) => {
            format!(
                "refs/remotes/origin/{}",
                options.branch.as_deref().unwrap_or("main")
            )
        }
    }
}

/// The path of `dir` inside the repository's work tree, `/`-separated.
fn subdir_of(repo: &git2::Repository, dir: &Path) -> Result<PathBuf> {
    let workdir = repo.workdir().ok_or_else(|| {
        Error::Repository(format!(
            "{} is a bare repository; pass a work tree",
            repo.path().display()
        ))
    })?;
    let workdir = workdir.canonicalize().map_err(Error::io(workdir))?;
    let dir = dir.canonicalize().map_err(Error::io(dir))?;
    dir.strip_prefix(&workdir).map(Path::to_path_buf).map_err(|_| {
        Error::Repository(format!(
            "{} is outside the repository at {}",
            dir.display(),
            workdir.display()
        ))
    })
}

/// Where a catalog's `storesDir` led, for either reader (`D`: a directory on disk or a tree).
pub(crate) enum StoresDir<D> {
    Found(D),
    /// A component does not exist or is not a directory.
    Missing,
    /// A component is a symbolic link: its path relative to the catalog root.
    Link(String),
    /// `storesDir` is not a relative path inside the catalog; nothing is read.
    Outside,
}

impl<D> StoresDir<D> {
    /// The entries of the stores directory as the catalog sees them: none when it is missing,
    /// nothing when it lies outside the catalog, the link itself when one is on the way (a
    /// finding of its own), else what `list` reads from the directory.
    pub(crate) fn entries(
        self,
        list: impl FnOnce(D) -> Result<Vec<RawEntry>>,
    ) -> Result<Option<Vec<RawEntry>>> {
        Ok(match self {
            StoresDir::Missing => None,
            StoresDir::Outside => Some(Vec::new()),
            StoresDir::Link(path) => Some(vec![RawEntry {
                name: path.clone(),
                path,
                content: RawContent::LinkToStoresDir,
            }]),
            StoresDir::Found(dir) => Some(list(dir)?),
        })
    }
}

/// Joins catalog-relative path segments with `/`.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            RepoLocation::parse("https://github.com/a/b.git"),
            RepoLocation::Url("https://github.com/a/b.git".into())
        );
        assert_eq!(
            RepoLocation::parse("git@github.com:a/b.git"),
            RepoLocation::Url("git@github.com:a/b.git".into())
        );
        assert_eq!(
            RepoLocation::parse("file:///tmp/x"),
            RepoLocation::Url("file:///tmp/x".into())
        );
        assert_eq!(
            RepoLocation::parse("stores.example"),
            RepoLocation::Local("stores.example".into())
        );
        assert_eq!(RepoLocation::parse("./a/b"), RepoLocation::Local("./a/b".into()));
    }
}
