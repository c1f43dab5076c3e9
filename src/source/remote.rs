//! Repositories given by URL: cloned once into a cache directory, then fetched incrementally.
use std::path::{Path, PathBuf};

use git2::{Cred, CredentialType, FetchOptions, RemoteCallbacks, Repository};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How to authenticate to the remote. Never logged.
#[derive(Clone, Default)]
pub struct Credentials {
    /// An HTTPS token (GitHub: a fine-grained or installation token).
    pub https_token: Option<String>,
    /// A private key file for SSH remotes.
    pub ssh_key: Option<PathBuf>,
    /// An OpenSSH `known_hosts` file: SSH remotes must present a key listed there.
    pub known_hosts: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("https_token", &self.https_token.as_ref().map(|_| "<redacted>"))
            .field("ssh_key", &self.ssh_key)
            .field("known_hosts", &self.known_hosts)
            .finish()
    }
}

pub struct RemoteCache {
    dir: PathBuf,
    credentials: Credentials,
}

impl RemoteCache {
    pub fn new(dir: Option<PathBuf>, credentials: Credentials) -> RemoteCache {
        let dir = dir.unwrap_or_else(default_cache_dir);
        RemoteCache { dir, credentials }
    }

    /// The bare repository caching `url`, fetched now: branches under `refs/remotes/origin/`,
    /// tags as they are, pruned so that deleted branches disappear.
    pub fn fetch(&self, url: &str) -> Result<Repository> {
        let path = self.dir.join(cache_name(url));
        let repo = match Repository::open_bare(&path) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(&path).map_err(Error::io(&path))?;
                let repo = Repository::init_bare(&path)
                    .map_err(Error::git(format!("cannot create cache {}", path.display())))?;
                repo.remote("origin", url)
                    .map_err(Error::git("cannot configure the remote"))?;
                repo
            }
        };
        // The remote URL may have changed credentials or host; keep it current.
        repo.remote_set_url("origin", url)
            .map_err(Error::git("cannot configure the remote"))?;
        let mut remote = repo
            .find_remote("origin")
            .map_err(Error::git("cannot configure the remote"))?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks(&self.credentials));
        options.prune(git2::FetchPrune::On);
        options.download_tags(git2::AutotagOption::All);
        remote
            .fetch(&["+refs/heads/*:refs/remotes/origin/*"], Some(&mut options), None)
            .map_err(Error::git(format!("cannot fetch {}", redact(url))))?;
        drop(remote);
        Ok(repo)
    }

    /// Fetches one extra ref (such as `refs/pull/7/head`) into the cache.
    pub fn fetch_ref(&self, repo: &Repository, reference: &str) -> Result<()> {
        let mut remote = repo
            .find_remote("origin")
            .map_err(Error::git("cannot find the remote"))?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks(&self.credentials));
        let refspec = format!(
            "+{reference}:refs/storesync/{}",
            reference.trim_start_matches("refs/")
        );
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(Error::git(format!("cannot fetch {reference}")))
    }
}

/// A revision as a user names it, resolved in a cache: branches live under `origin/`.
pub fn resolve_name(repo: &Repository, rev: &str) -> String {
    let branch = format!("refs/remotes/origin/{}", rev.trim_start_matches("refs/heads/"));
    if repo.find_reference(&branch).is_ok() {
        branch
    } else {
        rev.to_string()
    }
}

fn callbacks(credentials: &Credentials) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    let mut attempts = 0;
    callbacks.credentials(move |_url, username, allowed| {
        // libgit2 asks again after a rejected credential; give up instead of looping.
        attempts += 1;
        if attempts > 3 {
            return Err(git2::Error::from_str("authentication failed"));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Some(token) = &credentials.https_token
        {
            return Cred::userpass_plaintext("x-access-token", token);
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
pub fn known_host_key(known_hosts: &str, host: &str, key: &[u8]) -> bool {
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

fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Path::new(&dir).join("storesync");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return Path::new(&home).join(".cache/storesync");
    }
    std::env::temp_dir().join("storesync-cache")
}

/// A URL without any user or password it carries.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) if !userinfo.contains('/') => format!("{scheme}://{host}"),
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
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

    #[test]
    fn redacts_userinfo() {
        assert_eq!(
            redact("https://user:secret@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(redact("https://github.com/a/b.git"), "https://github.com/a/b.git");
        assert_eq!(redact("git@github.com:a/b.git"), "git@github.com:a/b.git");
    }

    #[test]
    fn cache_names_ignore_credentials() {
        let a = cache_name("https://x:token@github.com/acme/stores.git");
        assert_eq!(a, cache_name("https://github.com/acme/stores.git"));
        assert!(a.starts_with("stores-"), "{a}");
        assert_ne!(a, cache_name("https://github.com/other/stores.git"));
    }
}
