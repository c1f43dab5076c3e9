//! Repositories given by URL: cloned once into a cache directory, then fetched incrementally.
//! One fetch at a time per cache; a cache found unusable is cloned again and swapped in.
use std::path::{Path, PathBuf};

use git2::{
    Cred, CredentialType, Direction, ErrorClass, ErrorCode, FetchOptions, RemoteCallbacks, Repository,
};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::cache_lock::{self, CacheLock};
use super::dirs::{create_private_dir, remove_all};
use super::scratch;
use super::url::{UrlLogin, redact, split_login};
use crate::error::{Error, Result};
use crate::secret::RotatingSecret;

/// How to authenticate to the remote. Its `Debug` shows no secret.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// An HTTPS token (GitHub: a fine-grained or installation token); one from a file is read
    /// again each time the remote asks for credentials.
    pub https_token: Option<RotatingSecret>,
    /// A private key file for SSH remotes.
    pub ssh_key: Option<PathBuf>,
    /// An OpenSSH `known_hosts` file: SSH remotes must present a key listed there.
    pub known_hosts: Option<PathBuf>,
}

pub struct RemoteCache {
    dir: PathBuf,
    credentials: Credentials,
}

/// A cache just fetched. It holds the cache's lock until dropped: no other fetch (of this
/// process or another) runs, and no re-clone swaps the repository, while it is read.
pub struct Fetched {
    pub repo: Repository,
    /// Why the cache was found unusable and cloned again, when it was.
    pub recloned: Option<String>,
    pub lock: CacheLock,
}

/// Why a fetch failed: the remote (never worth a new clone) or the cache itself.
enum Failure {
    Remote(Error),
    Local(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Remote(e) | Failure::Local(e) => e,
        }
    }
}

impl RemoteCache {
    pub fn new(dir: Option<PathBuf>, credentials: Credentials) -> RemoteCache {
        let dir = dir.unwrap_or_else(default_cache_dir);
        RemoteCache { dir, credentials }
    }

    /// The bare repository caching `url`, fetched now: branches under `refs/remotes/origin/`,
    /// tags as they are, pruned so that deleted branches disappear. A user and password in
    /// `url` are used to authenticate and never written to the cache's Git config.
    ///
    /// Waits for any other fetch of the same cache. Lock files an interrupted fetch left are
    /// removed first. A cache that still cannot be opened or fetched for a reason that is not
    /// the remote's, or whose `branch` head cannot be read after the fetch, is cloned again next
    /// to it and swapped in; [`Fetched::recloned`] says why.
    /// The cache of `url` as the last fetch left it, locked while it is read, without fetching:
    /// for readers that must not make the remote work (a page view). An error when there is no
    /// cache yet.
    pub fn cached(&self, url: &str) -> Result<Fetched> {
        let dir = self.dir.canonicalize().map_err(Error::io(&self.dir))?;
        let path = dir.join(cache_name(url));
        if !path.exists() {
            return Err(Error::Repository(
                "the repository has not been fetched yet".into(),
            ));
        }
        let lock = CacheLock::acquire(&path)?;
        let repo = Repository::open_bare(&path).map_err(Error::git(format!(
            "cannot open the Git cache {}",
            path.display()
        )))?;
        Ok(Fetched {
            repo,
            recloned: None,
            lock,
        })
    }

    pub fn fetch(&self, url: &str, branch: &str) -> Result<Fetched> {
        create_private_dir(&self.dir)?;
        let dir = self.dir.canonicalize().map_err(Error::io(&self.dir))?;
        // What a pull-request fetch of a process that died left; never under the cache's lock.
        scratch::sweep(&dir);
        let path = dir.join(cache_name(url));
        let lock = CacheLock::acquire(&path)?;
        // What an interrupted re-clone left behind.
        for leftover in [
            cache_lock::sibling(&path, "new"),
            cache_lock::sibling(&path, "old"),
        ] {
            remove_all(&leftover)?;
        }
        for file in cache_lock::remove_stale_locks(&path) {
            warn!(file = %file.display(), "removed a lock file left by an interrupted fetch");
        }
        let existed = path.exists();
        let reason = match self.fetch_into(&path, url, branch, !existed) {
            Ok(repo) => {
                return Ok(Fetched {
                    repo,
                    recloned: None,
                    lock,
                });
            }
            Err(Failure::Local(e)) if existed => e.to_string(),
            Err(failure) => return Err(failure.into_error()),
        };
        warn!(cache = %path.display(), %reason, "the Git cache is unusable: cloning it again");
        let fresh = cache_lock::sibling(&path, "new");
        let cloned = self.fetch_into(&fresh, url, branch, true).map(drop);
        if let Err(failure) = cloned {
            let _ = remove_all(&fresh);
            return Err(Error::Repository(format!(
                "the Git cache {} is unusable ({reason}) and cloning it again failed: {}",
                path.display(),
                failure.into_error()
            )));
        }
        swap(&fresh, &path)?;
        let repo = Repository::open_bare(&path)
            .map_err(Error::git(format!("cannot open the cache {}", path.display())))?;
        Ok(Fetched {
            repo,
            recloned: Some(reason),
            lock,
        })
    }

    /// Opens (or, with `create`, creates) the cache at `path`, fetches `url` into it and checks
    /// that the head of `branch` can be read.
    fn fetch_into(&self, path: &Path, url: &str, branch: &str, create: bool) -> Result<Repository, Failure> {
        let (clean, login) = split_login(url);
        let local = |context: String| move |e| Failure::Local(Error::Git { context, source: e });
        let repo = if create {
            create_private_dir(path).map_err(Failure::Local)?;
            let repo = Repository::init_bare(path)
                .map_err(local(format!("cannot create cache {}", path.display())))?;
            repo.remote("origin", &clean)
                .map_err(local("cannot configure the remote".into()))?;
            repo
        } else {
            Repository::open_bare(path).map_err(local(format!("cannot open the cache {}", path.display())))?
        };
        // The remote's host may have changed, and a cache written by an older storesync may
        // still hold credentials in its URL: keep it current and clean.
        repo.remote_set_url("origin", &clean)
            .map_err(local("cannot configure the remote".into()))?;
        let mut remote = repo
            .find_remote("origin")
            .map_err(local("cannot configure the remote".into()))?;
        let context = format!("cannot fetch {}", redact(url));
        // Connected first, so that a remote that is down or refuses is told from a broken cache.
        let mut connection = remote
            .connect_auth(
                Direction::Fetch,
                Some(callbacks(&self.credentials, login.clone())),
                None,
            )
            .map_err(|source| {
                Failure::Remote(Error::Git {
                    context: context.clone(),
                    source,
                })
            })?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks(&self.credentials, login));
        options.prune(git2::FetchPrune::On);
        options.download_tags(git2::AutotagOption::All);
        connection
            .remote()
            .fetch(&["+refs/heads/*:refs/remotes/origin/*"], Some(&mut options), None)
            .map_err(|source| {
                let remote_side = is_transport_error(&source);
                let error = Error::Git { context, source };
                if remote_side {
                    Failure::Remote(error)
                } else {
                    Failure::Local(error)
                }
            })?;
        drop(connection);
        drop(remote);
        check_head(&repo, branch).map_err(Failure::Local)?;
        Ok(repo)
    }
}

/// Errors of the transport once the remote answered: the network, HTTP, SSH, TLS, and
/// credentials. Anything else during a fetch (locking refs, reading or writing objects)
/// happened in the cache.
fn is_transport_error(e: &git2::Error) -> bool {
    matches!(
        e.class(),
        ErrorClass::Net | ErrorClass::Http | ErrorClass::Ssh | ErrorClass::Ssl | ErrorClass::Callback
    ) || matches!(e.code(), ErrorCode::Auth | ErrorCode::Certificate)
}

/// Corrupt objects often show only when read: the head commit of `branch` (when the remote has
/// that branch) and every tree and blob of it must be readable.
fn check_head(repo: &Repository, branch: &str) -> Result<()> {
    let name = format!("refs/remotes/origin/{branch}");
    let fail = |source| Error::Git {
        context: format!("cannot read the head of `{branch}` in the cache"),
        source,
    };
    let reference = match repo.find_reference(&name) {
        Ok(r) => r,
        // The remote has no such branch: reading it says so later, in its own words.
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    let tree = reference.peel_to_commit().and_then(|c| c.tree()).map_err(fail)?;
    let mut unreadable = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |_, entry| {
        let read = match entry.kind() {
            Some(git2::ObjectType::Blob) => repo.find_blob(entry.id()).map(drop),
            Some(git2::ObjectType::Tree) => repo.find_tree(entry.id()).map(drop),
            _ => Ok(()),
        };
        match read {
            Ok(()) => git2::TreeWalkResult::Ok,
            Err(e) => {
                unreadable = Some(e);
                git2::TreeWalkResult::Abort
            }
        }
    })
    .map_err(fail)
    .and(unreadable.map_or(Ok(()), |e| Err(fail(e))))
}

/// Puts the freshly cloned repository `fresh` in the place of `path`; the old one is removed.
/// Two renames on one file system, under the cache's lock: no reader sees a half of either.
fn swap(fresh: &Path, path: &Path) -> Result<()> {
    let old = cache_lock::sibling(path, "old");
    if path.exists() {
        std::fs::rename(path, &old).map_err(Error::io(path))?;
    }
    std::fs::rename(fresh, path).map_err(Error::io(fresh))?;
    if let Err(e) = remove_all(&old) {
        warn!(error = %e, "cannot remove the replaced Git cache; it goes at the next fetch");
    }
    Ok(())
}

/// A revision as a user names it, resolved in a cache: branches live under `origin/`.
pub(super) fn resolve_name(repo: &Repository, rev: &str) -> String {
    let branch = format!("refs/remotes/origin/{}", rev.trim_start_matches("refs/heads/"));
    if repo.find_reference(&branch).is_ok() {
        branch
    } else {
        rev.to_string()
    }
}

pub(super) fn callbacks(credentials: &Credentials, login: Option<UrlLogin>) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    let mut attempts = 0;
    callbacks.credentials(move |_url, username, allowed| {
        // libgit2 asks again after a rejected credential; give up instead of looping.
        attempts += 1;
        if attempts > 3 {
            return Err(git2::Error::from_str("authentication failed"));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            // The URL's own login is the more specific one.
            if let Some(login) = &login {
                return Cred::userpass_plaintext(&login.user, login.password.expose());
            }
            if let Some(token) = &credentials.https_token {
                return Cred::userpass_plaintext("x-access-token", token.current().expose());
            }
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = username.unwrap_or("git");
            return match &credentials.ssh_key {
                Some(key) => Cred::ssh_key(user, None, key, None),
                None => Cred::ssh_key_from_agent(user),
            };
        }
        Err(git2::Error::from_str(
            "the remote needs credentials: set STORESYNC_GIT_TOKEN(_FILE) or STORESYNC_GIT_SSH_KEY_FILE",
        ))
    });
    if let Some(path) = credentials.known_hosts.clone() {
        callbacks.certificate_check(move |cert, host| {
            let Some(key) = cert.as_hostkey().and_then(|k| k.hostkey()) else {
                // TLS certificates are checked by libgit2 against the system roots.
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| git2::Error::from_str(&format!("cannot read {}: {e}", path.display())))?;
            if known_host_key(&text, host, key) {
                Ok(git2::CertificateCheckStatus::CertificateOk)
            } else {
                Err(git2::Error::from_str(&format!(
                    "the SSH host key of {host} is not in {}; add the output of `ssh-keyscan {host}` to it",
                    path.display()
                )))
            }
        });
    }
    callbacks
}

/// Whether `known_hosts` (OpenSSH format, plain host names) lists `key` for `host`. Hashed
/// entries (`ssh-keyscan -H`) are not supported: keep host names in clear.
pub(super) fn known_host_key(known_hosts: &str, host: &str, key: &[u8]) -> bool {
    use base64::Engine;
    known_hosts
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|line| {
            let mut fields = line.split_whitespace();
            let (Some(hosts), Some(_kind), Some(encoded)) = (fields.next(), fields.next(), fields.next())
            else {
                return false;
            };
            let host_matches = hosts.split(',').any(|pattern| {
                let pattern = pattern
                    .strip_prefix('[')
                    .and_then(|p| p.split_once("]:"))
                    .map_or(pattern, |(h, _)| h);
                pattern.eq_ignore_ascii_case(host)
            });
            host_matches
                && base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .is_ok_and(|k| k == key)
        })
}

pub(super) fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Path::new(&dir).join("storesync");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return Path::new(&home).join(".cache/storesync");
    }
    std::env::temp_dir().join("storesync-cache")
}

/// A readable, collision-free directory name for a URL.
fn cache_name(url: &str) -> String {
    let clean = redact(url);
    let readable: String = clean
        .rsplit(['/', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = Sha256::digest(clean.as_bytes());
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{readable}-{short}.git")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_match_host_and_key() {
        use base64::Engine;
        let key = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20abcdefghijklmnopqrstuvwxyz012345";
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        let file =
            format!("# comment\ngitlab.com ssh-rsa AAAA\ngithub.com,140.82.121.4 ssh-ed25519 {encoded}\n");
        assert!(known_host_key(&file, "github.com", key));
        assert!(known_host_key(&file, "GitHub.com", key));
        assert!(!known_host_key(&file, "gitlab.com", key), "another host's entry");
        assert!(
            !known_host_key(&file, "github.com", b"other key"),
            "a different key"
        );
        let bracketed = format!("[git.example.com]:2222 ssh-ed25519 {encoded}\n");
        assert!(known_host_key(&bracketed, "git.example.com", key));
    }

    fn cache_config(cache: &Path) -> (PathBuf, String) {
        let entry = std::fs::read_dir(cache).unwrap().next().unwrap().unwrap().path();
        let config = std::fs::read_to_string(entry.join("config")).unwrap();
        (entry, config)
    }

    #[test]
    fn credentials_never_reach_the_cache_config() {
        let cache = tempfile::tempdir().unwrap();
        let credentials = Credentials {
            https_token: Some("ghp_tokentokentoken".into()),
            ..Credentials::default()
        };
        let remote = RemoteCache::new(Some(cache.path().join("storesync")), credentials);
        // Nothing listens on port 9: the fetch fails after the cache is set up.
        let err = remote
            .fetch("https://user:p%40ss@127.0.0.1:9/x.git", "main")
            .err()
            .expect("nothing listens on port 9");
        let message = format!("{err} {err:?}");
        assert!(
            !message.contains("p%40ss") && !message.contains("p@ss"),
            "{message}"
        );
        let (entry, config) = cache_config(&cache.path().join("storesync"));
        assert!(config.contains("url = https://127.0.0.1:9/x.git"), "{config}");
        for secret in ["p%40ss", "p@ss", "user", "ghp_"] {
            assert!(!config.contains(secret), "{secret} in {config}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for dir in [cache.path().join("storesync"), entry] {
                let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o700, "{}", dir.display());
            }
        }
    }

    #[test]
    fn an_old_cache_with_credentials_in_its_config_is_cleaned() {
        let cache = tempfile::tempdir().unwrap();
        let url = "https://user:s3cret@127.0.0.1:9/x.git";
        let path = cache.path().join(cache_name(url));
        Repository::init_bare(&path)
            .unwrap()
            .remote("origin", url)
            .unwrap();
        let remote = RemoteCache::new(Some(cache.path().to_path_buf()), Credentials::default());
        assert!(remote.fetch(url, "main").is_err());
        let (_, config) = cache_config(cache.path());
        assert!(!config.contains("s3cret"), "{config}");
    }

    /// A Git HTTP server that asks for Basic authentication and records what it gets back.
    fn basic_auth_server() -> (u16, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut auth = None;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some(v) = line.strip_prefix("Authorization: ") {
                        auth = Some(v.trim().to_string());
                    }
                    line.clear();
                }
                let answer = match auth {
                    Some(auth) => {
                        let _ = tx.send(auth);
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    }
                    None => {
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n"
                    }
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (port, rx)
    }

    fn basic(user: &str, password: &str) -> String {
        use base64::Engine;
        let pair = format!("{user}:{password}");
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }

    #[test]
    fn the_url_login_and_the_token_are_sent_as_credentials() {
        let cache = tempfile::tempdir().unwrap();
        let token = Credentials {
            https_token: Some("ghp_token".into()),
            ..Credentials::default()
        };
        let timeout = std::time::Duration::from_secs(20);

        let (port, auth) = basic_auth_server();
        let remote = RemoteCache::new(Some(cache.path().to_path_buf()), token.clone());
        assert!(
            remote
                .fetch(&format!("http://user:p%40ss@127.0.0.1:{port}/x.git"), "main")
                .is_err()
        );
        assert_eq!(auth.recv_timeout(timeout).unwrap(), basic("user", "p@ss"));

        let (port, auth) = basic_auth_server();
        assert!(
            remote
                .fetch(&format!("http://127.0.0.1:{port}/x.git"), "main")
                .is_err()
        );
        assert_eq!(
            auth.recv_timeout(timeout).unwrap(),
            basic("x-access-token", "ghp_token")
        );
    }

    #[test]
    fn a_rotated_token_file_is_sent_at_the_next_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("git-token");
        std::fs::write(&file, "ghs_first\n").unwrap();
        let https_token =
            RotatingSecret::from_env_or_file("STORESYNC_GIT_TOKEN", None, "--git-token-file", Some(&file))
                .unwrap();
        let credentials = Credentials {
            https_token,
            ..Credentials::default()
        };
        let remote = RemoteCache::new(Some(dir.path().join("cache")), credentials);
        let timeout = std::time::Duration::from_secs(20);
        let (port, auth) = basic_auth_server();
        let url = format!("http://127.0.0.1:{port}/x.git");

        assert!(remote.fetch(&url, "main").is_err());
        assert_eq!(
            auth.recv_timeout(timeout).unwrap(),
            basic("x-access-token", "ghs_first")
        );
        std::fs::write(&file, "ghs_second\n").unwrap();
        let err = remote.fetch(&url, "main").err().expect("the server answers 404");
        assert_eq!(
            auth.recv_timeout(timeout).unwrap(),
            basic("x-access-token", "ghs_second")
        );
        assert!(!format!("{err} {err:?}").contains("ghs_"), "{err}");
    }

    #[test]
    fn cache_names_ignore_credentials() {
        let a = cache_name("https://x:token@github.com/acme/stores.git");
        assert_eq!(a, cache_name("https://github.com/acme/stores.git"));
        assert!(a.starts_with("stores-"), "{a}");
        assert_ne!(a, cache_name("https://github.com/other/stores.git"));
    }
}
