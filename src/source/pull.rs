//! The head of a pull request, forks included, is untrusted: it is fetched into a scratch
//! repository of its own (never the shared cache, never under the cache's lock, so syncs do
//! not wait for it), shallow, within a byte cap and a deadline, and removed once its catalog is
//! read. Credentials are handled as the shared cache handles them: the remote is anonymous, so
//! nothing, not even its URL, is written to a Git config.
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use git2::{AutotagOption, FetchOptions, Oid, Repository};
use tracing::debug;

use super::remote::callbacks;
use super::scratch::Scratch;
use super::url::{UrlLogin, redact, split_login};
use super::{Credentials, Snapshot, read_commit};
use crate::error::{Error, Result};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Bounds on fetching one pull request's head (`--pr-fetch-max-bytes`, `--pr-fetch-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullFetchLimits {
    /// Most bytes the remote may send for the head (the pack as received).
    pub max_bytes: u64,
    /// Longest the fetch may take, from connecting to the last byte.
    pub timeout: Duration,
}

impl Default for PullFetchLimits {
    fn default() -> PullFetchLimits {
        PullFetchLimits {
            max_bytes: 100 * MIB,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The catalog at the head of a pull request, read; nothing of it stays on disk.
#[derive(Debug, Clone)]
pub struct PullRequestHead {
    pub snapshot: Snapshot,
    /// Where the catalog sits in the repository, `/`-separated (empty: at its root).
    pub catalog_dir: String,
    /// What the remote sent for it (0 for a local repository).
    pub fetched_bytes: u64,
}

/// Which bound a fetch ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exceeded {
    Bytes,
    Time,
}

/// Fetches the head `sha` of pull request `number` of `url` into a scratch repository under
/// `cache_dir` and reads its catalog (at the repository's root). Blocking, for at most
/// `limits.timeout` even when the remote stops answering: the fetch runs on a thread of its
/// own, abandoned (and told to stop at its next byte) when the time is up.
pub(super) fn fetch_head(
    cache_dir: &Path,
    url: &str,
    credentials: &Credentials,
    number: u64,
    sha: &str,
    limits: PullFetchLimits,
) -> Result<PullRequestHead> {
    let oid = Oid::from_str(sha)
        .ok()
        .filter(|_| sha.len() == 40)
        .ok_or_else(|| Error::Repository(format!("`{sha}` is not a full commit id")))?;
    let started = Instant::now();
    let scratch = Scratch::create(cache_dir, &format!("pr-{number}-"))?;
    let job = Job {
        dir: scratch.path().to_path_buf(),
        url: url.to_string(),
        credentials: credentials.clone(),
        number,
        oid,
        limits,
        deadline: started + limits.timeout,
        cancel: Arc::new(AtomicBool::new(false)),
    };
    let cancel = job.cancel.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(format!("pr-{number}-fetch"))
        .spawn(move || {
            let _ = tx.send(job.run());
        })
        .map_err(|e| Error::Internal(format!("cannot start fetching pull request #{number}: {e}")))?;
    let result = match rx.recv_timeout(limits.timeout) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => {
            // A remote that went silent: libgit2 waits on its socket. The thread stops at the
            // next byte it gets; its directory goes now, with the guard.
            cancel.store(true, Ordering::SeqCst);
            Err(exceeded(Exceeded::Time, number, limits))
        }
        Err(RecvTimeoutError::Disconnected) => Err(Error::Internal(format!(
            "fetching pull request #{number} stopped without a result"
        ))),
    };
    drop(scratch);
    let (snapshot, fetched_bytes) = result?;
    debug!(pr = number, bytes = fetched_bytes, elapsed = ?started.elapsed(), "fetched the pull request's head");
    Ok(PullRequestHead {
        snapshot,
        catalog_dir: String::new(),
        fetched_bytes,
    })
}

/// One fetch, on its own thread, into the scratch repository `dir`.
struct Job {
    dir: PathBuf,
    url: String,
    credentials: Credentials,
    number: u64,
    oid: Oid,
    limits: PullFetchLimits,
    deadline: Instant,
    /// Set when the caller gave up waiting.
    cancel: Arc<AtomicBool>,
}

impl Job {
    fn run(self) -> Result<(Snapshot, u64)> {
        let repo = Repository::init_bare(&self.dir)
            .map_err(Error::git(format!("cannot create {}", self.dir.display())))?;
        let (clean, login) = split_login(&self.url);
        let number = self.number;
        let mut received = 0;
        let pull = format!("refs/pull/{number}/head");
        self.fetch(
            &repo,
            &clean,
            login.clone(),
            &pull,
            "refs/storesync/pull",
            &mut received,
        )?;
        if repo.find_commit(self.oid).is_err() {
            // The pull request moved on since this head was pushed: fetch the commit itself
            // (GitHub serves any commit reachable from its refs), within what is left.
            let now = repo
                .refname_to_id("refs/storesync/pull")
                .map(|id| id.to_string()[..12].to_string())
                .unwrap_or_default();
            let sha = self.oid.to_string();
            self.fetch(&repo, &clean, login, &sha, "refs/storesync/head", &mut received)
                .map_err(|e| match e {
                    Error::Git { source, .. } => Error::Repository(format!(
                        "pull request #{number} moved on to {now}; its former head {} cannot be \
                         fetched: {}",
                        &sha[..12],
                        source.message()
                    )),
                    e => e,
                })?;
        }
        let snapshot = read_commit(&repo, &self.oid.to_string(), Path::new(""))?;
        Ok((snapshot, received))
    }

    /// Fetches `source` (a ref or a commit id) of the remote into `target`, depth 1 where the
    /// transport allows it, counting the bytes received into `received` against the cap.
    fn fetch(
        &self,
        repo: &Repository,
        clean_url: &str,
        login: Option<UrlLogin>,
        source: &str,
        target: &str,
        received: &mut u64,
    ) -> Result<()> {
        let mut remote = repo
            .remote_anonymous(clean_url)
            .map_err(Error::git("cannot set up the remote"))?;
        let base = *received;
        let (exceeded_by, seen) = (Cell::new(None), Cell::new(base));
        let check = |bytes: u64| {
            let why = if bytes > self.limits.max_bytes {
                Some(Exceeded::Bytes)
            } else if self.cancel.load(Ordering::SeqCst) || Instant::now() >= self.deadline {
                Some(Exceeded::Time)
            } else {
                None
            };
            if why.is_some() && exceeded_by.get().is_none() {
                exceeded_by.set(why);
            }
            // Returning false aborts the transfer.
            why.is_none()
        };
        let mut callbacks = callbacks(&self.credentials, login);
        callbacks.transfer_progress(|progress| {
            seen.set(base + progress.received_bytes() as u64);
            check(seen.get())
        });
        callbacks.sideband_progress(|_| check(seen.get()));
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks)
            .download_tags(AutotagOption::None)
            .update_fetchhead(false);
        if shallow_capable(clean_url) {
            options.depth(1);
        }
        let refspec = format!("+{source}:{target}");
        let fetched = remote.fetch(&[refspec.as_str()], Some(&mut options), None);
        *received = base + remote.stats().received_bytes() as u64;
        *received = (*received).max(seen.get());
        match (exceeded_by.get(), fetched) {
            (Some(why), _) => Err(exceeded(why, self.number, self.limits)),
            (None, Err(e)) => Err(Error::Git {
                context: format!(
                    "cannot fetch {} of {}",
                    source.trim_start_matches("refs/"),
                    redact(clean_url)
                ),
                source: e,
            }),
            (None, Ok(())) => Ok(()),
        }
    }
}

/// libgit2 fetches `file://` URLs with its local transport, which refuses shallow fetches:
/// those are fetched whole (their objects are on this machine already), the cap and the
/// deadline apply all the same. Every network transport fetches depth 1.
fn shallow_capable(url: &str) -> bool {
    !url.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("file://"))
}

/// The error a plan reports for a head over a bound: says which, and which flag sets it.
fn exceeded(why: Exceeded, number: u64, limits: PullFetchLimits) -> Error {
    Error::Repository(match why {
        Exceeded::Bytes => format!(
            "the head of pull request #{number} is larger than {} (--pr-fetch-max-bytes); not planned",
            show_bytes(limits.max_bytes)
        ),
        Exceeded::Time => format!(
            "fetching the head of pull request #{number} took longer than {} (--pr-fetch-timeout); \
             not planned",
            humantime::format_duration(limits.timeout)
        ),
    })
}

/// A byte count for people: `100 MiB`, `9.5 MiB`, `512 bytes`.
fn show_bytes(n: u64) -> String {
    match n {
        n if n >= GIB && n % GIB == 0 => format!("{} GiB", n / GIB),
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= MIB => format!("{:.1} MiB", n as f64 / MIB as f64),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// Parses a byte size as the command line gives it: `104857600`, `100MiB`, `100MB` (10^6),
/// `512KiB`, `1GiB`; units are case-insensitive, a space before them is allowed.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let unit = unit.trim_start().to_ascii_lowercase();
    let factor = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "kb" => 1000,
        "m" | "mib" => MIB,
        "mb" => 1000 * 1000,
        "g" | "gib" => GIB,
        "gb" => 1000 * 1000 * 1000,
        _ => {
            return Err(format!(
                "`{s}` is not a size: use bytes or KiB, MiB, GiB (KB, MB, GB)"
            ));
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size: use bytes or KiB, MiB, GiB (KB, MB, GB)"))?;
    number
        .checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        for (text, bytes) in [
            ("104857600", 100 * MIB),
            ("100MiB", 100 * MIB),
            ("100 mib", 100 * MIB),
            ("100M", 100 * MIB),
            ("10MB", 10_000_000),
            ("512KiB", 512 * KIB),
            ("2GiB", 2 * GIB),
            ("1gb", 1_000_000_000),
            ("77b", 77),
        ] {
            assert_eq!(parse_byte_size(text), Ok(bytes), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "ten",
            "10 TiB",
            "-5",
            "0",
            "1.5MiB",
            "99999999999999GiB",
        ] {
            assert!(parse_byte_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_show_in_the_largest_exact_unit() {
        assert_eq!(show_bytes(100 * MIB), "100 MiB");
        assert_eq!(show_bytes(2 * GIB), "2 GiB");
        assert_eq!(show_bytes(10_000_000), "9.5 MiB");
        assert_eq!(show_bytes(512 * KIB), "512 KiB");
        assert_eq!(show_bytes(1000), "1000 bytes");
    }

    #[test]
    fn the_errors_say_which_bound_and_which_flag() {
        let limits = PullFetchLimits {
            max_bytes: 10 * MIB,
            timeout: Duration::from_secs(60),
        };
        assert_eq!(
            exceeded(Exceeded::Bytes, 7, limits).to_string(),
            "the head of pull request #7 is larger than 10 MiB (--pr-fetch-max-bytes); not planned"
        );
        assert_eq!(
            exceeded(Exceeded::Time, 7, limits).to_string(),
            "fetching the head of pull request #7 took longer than 1m (--pr-fetch-timeout); not planned"
        );
    }

    #[test]
    fn only_file_urls_are_fetched_whole() {
        assert!(!shallow_capable("file:///srv/stores.git"));
        assert!(!shallow_capable("FILE:///srv/stores.git"));
        for url in [
            "https://github.com/acme/stores.git",
            "ssh://git@github.com/acme/stores.git",
            "git@github.com:acme/stores.git",
            "http://127.0.0.1:9/x.git",
        ] {
            assert!(shallow_capable(url), "{url}");
        }
    }

    #[test]
    fn a_bad_commit_id_is_refused_before_anything_is_created() {
        let cache = tempfile::tempdir().unwrap();
        let err = fetch_head(
            cache.path(),
            "https://127.0.0.1:9/x.git",
            &Credentials::default(),
            7,
            "abc123",
            PullFetchLimits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a full commit id"), "{err}");
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    }
}
