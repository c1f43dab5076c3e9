//! Repositories given by URL: cloned once into a cache directory, then fetched incrementally.
use std::path::{Path, PathBuf};

use git2::{Cred, CredentialType, FetchOptions, RemoteCallbacks, Repository};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// How to authenticate to the remote. Its `Debug` shows no secret.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// An HTTPS token (GitHub: a fine-grained or installation token).
    pub https_token: Option<Secret>,
    /// A private key file for SSH remotes.
    pub ssh_key: Option<PathBuf>,
    /// An OpenSSH `known_hosts` file: SSH remotes must present a key listed there.
    pub known_hosts: Option<PathBuf>,
}

/// A user and password taken out of a URL, percent-decoded.
struct UrlLogin {
    user: String,
    password: Secret,
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
    /// tags as they are, pruned so that deleted branches disappear. A user and password in
    /// `url` are used to authenticate and never written to the cache's Git config.
    pub fn fetch(&self, url: &str) -> Result<Repository> {
        let (clean, login) = split_login(url);
        let path = self.dir.join(cache_name(url));
        let repo = match Repository::open_bare(&path) {
            Ok(repo) => repo,
            Err(_) => {
                create_private_dir(&path)?;
                let repo = Repository::init_bare(&path)
                    .map_err(Error::git(format!("cannot create cache {}", path.display())))?;
                repo.remote("origin", &clean)
                    .map_err(Error::git("cannot configure the remote"))?;
                repo
            }
        };
        // The remote's host may have changed, and a cache written by an older storesync may
        // still hold credentials in its URL: keep it current and clean.
        repo.remote_set_url("origin", &clean)
            .map_err(Error::git("cannot configure the remote"))?;
        let mut remote = repo
            .find_remote("origin")
            .map_err(Error::git("cannot configure the remote"))?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks(&self.credentials, login));
        options.prune(git2::FetchPrune::On);
        options.download_tags(git2::AutotagOption::All);
        remote
            .fetch(&["+refs/heads/*:refs/remotes/origin/*"], Some(&mut options), None)
            .map_err(Error::git(format!("cannot fetch {}", redact(url))))?;
        drop(remote);
        Ok(repo)
    }

    /// Fetches one extra ref (such as `refs/pull/7/head`) of `url` into its cache.
    pub fn fetch_ref(&self, repo: &Repository, url: &str, reference: &str) -> Result<()> {
        let (_, login) = split_login(url);
        let mut remote = repo
            .find_remote("origin")
            .map_err(Error::git("cannot find the remote"))?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks(&self.credentials, login));
        let refspec = format!(
            "+{reference}:refs/storesync/{}",
            reference.trim_start_matches("refs/")
        );
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(Error::git(format!("cannot fetch {reference}")))
    }
}

/// The cache holds the catalog's history (and, in older caches, may have held credentials):
/// only its owner may read it.
fn create_private_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(Error::io(path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(Error::io(path))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(path).map_err(Error::io(path))
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

fn callbacks(credentials: &Credentials, login: Option<UrlLogin>) -> RemoteCallbacks<'_> {
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
                return Cred::userpass_plaintext("x-access-token", token.expose());
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

/// `scheme`, userinfo and the rest (host, port, path) of `scheme://[userinfo@]host/path`.
/// The userinfo ends at the last `@` of the authority (a password may hold an unencoded `@`);
/// the authority ends at the first `/`, `?` or `#`. `None` for an scp-like `git@host:path`.
fn split_url(url: &str) -> Option<(&str, Option<&str>, &str)> {
    let (scheme, after) = url.split_once("://")?;
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some(match after[..authority_end].rfind('@') {
        Some(at) => (scheme, Some(&after[..at]), &after[at + 1..]),
        None => (scheme, None, after),
    })
}

/// The URL to store in the cache's Git config, and the login it carried. An SSH user name
/// (`ssh://git@host/…`) stays: SSH needs it and it is not a secret. Over HTTPS the whole
/// userinfo goes, since a lone user name is often a token (`https://<token>@github.com/…`).
fn split_login(url: &str) -> (String, Option<UrlLogin>) {
    let Some((scheme, Some(userinfo), rest)) = split_url(url) else {
        return (url.to_string(), None);
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let login = UrlLogin {
        user: percent_decode(user),
        password: Secret::new(percent_decode(password)),
    };
    let keep_user = scheme.eq_ignore_ascii_case("ssh") || scheme.eq_ignore_ascii_case("git+ssh");
    let clean = if keep_user && !user.is_empty() {
        format!("{scheme}://{user}@{rest}")
    } else {
        format!("{scheme}://{rest}")
    };
    (clean, Some(login))
}

/// `%XX` escapes decoded; anything malformed is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL without any user or password it carries, for output and logs. An scp-like
/// `git@host:path` is shown as it is: its user is not a secret.
pub fn redact(url: &str) -> String {
    match split_url(url) {
        Some((scheme, Some(_), rest)) => format!("{scheme}://{rest}"),
        _ => url.to_string(),
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
        let cases = [
            (
                "https://user:secret@github.com/a/b.git",
                "https://github.com/a/b.git",
            ),
            ("https://github.com/a/b.git", "https://github.com/a/b.git"),
            ("git@github.com:a/b.git", "git@github.com:a/b.git"),
            // A password with an unencoded `@`: the userinfo ends at the last one.
            (
                "https://user:p@ss@github.com/a/b.git",
                "https://github.com/a/b.git",
            ),
            (
                "https://user:p@ss@w@rd@host:8443/x.git",
                "https://host:8443/x.git",
            ),
            (
                "https://user:p%40ss@127.0.0.1:9/x.git",
                "https://127.0.0.1:9/x.git",
            ),
            (
                "https://ghp_token@github.com/a/b.git",
                "https://github.com/a/b.git",
            ),
            ("ssh://git:pw@host/a/b.git", "ssh://host/a/b.git"),
            ("ssh://git@host:2222/a/b.git", "ssh://host:2222/a/b.git"),
            // An `@` in the path is not userinfo.
            ("https://host/~user@x/b.git", "https://host/~user@x/b.git"),
            ("https://host?q=a@b", "https://host?q=a@b"),
            ("file:///srv/stores", "file:///srv/stores"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn the_login_leaves_the_url_decoded() {
        let (clean, login) = split_login("https://user:p%40ss@github.com/a/b.git");
        let login = login.unwrap();
        assert_eq!(clean, "https://github.com/a/b.git");
        assert_eq!((login.user.as_str(), login.password.expose()), ("user", "p@ss"));
        let (clean, login) = split_login("https://us%65r:p@ss:w%3Ard@host/x.git");
        let login = login.unwrap();
        assert_eq!(clean, "https://host/x.git");
        assert_eq!(
            (login.user.as_str(), login.password.expose()),
            ("user", "p@ss:w:rd")
        );
        // A lone user name over HTTPS (often a token) goes too; over SSH the user stays.
        let (clean, login) = split_login("https://ghp_abc@github.com/a/b.git");
        assert_eq!(clean, "https://github.com/a/b.git");
        assert_eq!(login.unwrap().user, "ghp_abc");
        assert_eq!(split_login("ssh://git:pw@host/a.git").0, "ssh://git@host/a.git");
        assert_eq!(split_login("ssh://git@host/a.git").0, "ssh://git@host/a.git");
        assert!(split_login("git@github.com:a/b.git").1.is_none());
        assert!(split_login("https://github.com/a/b.git").1.is_none());
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%+1"), "%+1");
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
            https_token: Some(Secret::from("ghp_tokentokentoken")),
            ..Credentials::default()
        };
        let remote = RemoteCache::new(Some(cache.path().join("storesync")), credentials);
        // Nothing listens on port 9: the fetch fails after the cache is set up.
        let err = remote
            .fetch("https://user:p%40ss@127.0.0.1:9/x.git")
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
        assert!(remote.fetch(url).is_err());
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
            https_token: Some(Secret::from("ghp_token")),
            ..Credentials::default()
        };
        let timeout = std::time::Duration::from_secs(20);

        let (port, auth) = basic_auth_server();
        let remote = RemoteCache::new(Some(cache.path().to_path_buf()), token.clone());
        assert!(
            remote
                .fetch(&format!("http://user:p%40ss@127.0.0.1:{port}/x.git"))
                .is_err()
        );
        assert_eq!(auth.recv_timeout(timeout).unwrap(), basic("user", "p@ss"));

        let (port, auth) = basic_auth_server();
        assert!(remote.fetch(&format!("http://127.0.0.1:{port}/x.git")).is_err());
        assert_eq!(
            auth.recv_timeout(timeout).unwrap(),
            basic("x-access-token", "ghp_token")
        );
    }

    #[test]
    fn cache_names_ignore_credentials() {
        let a = cache_name("https://x:token@github.com/acme/stores.git");
        assert_eq!(a, cache_name("https://github.com/acme/stores.git"));
        assert!(a.starts_with("stores-"), "{a}");
        assert_ne!(a, cache_name("https://github.com/other/stores.git"));
    }
}
