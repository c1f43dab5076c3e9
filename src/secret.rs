//! Credentials held in memory (GitHub token, webhook secret, Git token). They come only from
//! the environment or from files, never from flag values (which `ps` shows to every user), and
//! their `Debug` and `Display` print `***`, so no log line, error or dump can carry one.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// A secret value. Read it with [`Secret::expose`] only where it is handed to its consumer.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: for the HTTP header, HMAC key or credential it is meant for, never
    /// for output.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret in environment variable `var` (its value given as `from_env`, so callers and
    /// tests choose where it comes from) or in the file `file` (a mounted Kubernetes Secret),
    /// trimmed. An empty variable counts as unset; an empty or unreadable file, or both
    /// sources at once, is a usage error naming them.
    pub fn from_env_or_file(
        var: &str,
        from_env: Option<String>,
        file_flag: &str,
        file: Option<&Path>,
    ) -> Result<Option<Secret>> {
        let from_env = from_env.filter(|v| !v.trim().is_empty());
        match (from_env, file) {
            (Some(_), Some(path)) => Err(Error::Usage(format!(
                "both {var} and {file_flag} {} are set; keep one",
                path.display()
            ))),
            (Some(value), None) => Ok(Some(Secret::new(value.trim()))),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
                let text = text.trim();
                if text.is_empty() {
                    return Err(Error::Usage(format!("{file_flag} {} is empty", path.display())));
                }
                Ok(Some(Secret::new(text)))
            }
            (None, None) => Ok(None),
        }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A secret that may change while the process runs. One from the environment stays as it was
/// at start; one from a file is read again on every use, so a rotated Kubernetes Secret or a
/// GitHub App installation token refreshed every hour is picked up without a restart.
#[derive(Clone)]
pub struct RotatingSecret {
    file: Option<PathBuf>,
    /// The value read last: kept when a re-read fails (a file rewritten in place may be empty
    /// for a moment).
    last: Arc<Mutex<Secret>>,
}

impl RotatingSecret {
    /// A value that never changes.
    pub fn fixed(value: Secret) -> RotatingSecret {
        RotatingSecret {
            file: None,
            last: Arc::new(Mutex::new(value)),
        }
    }

    /// Like [`Secret::from_env_or_file`] (the file is read now, so a missing or empty one is a
    /// usage error at start), and a file is read again on every [`RotatingSecret::current`].
    pub fn from_env_or_file(
        var: &str,
        from_env: Option<String>,
        file_flag: &str,
        file: Option<&Path>,
    ) -> Result<Option<RotatingSecret>> {
        let first = Secret::from_env_or_file(var, from_env.clone(), file_flag, file)?;
        let from_file = from_env.is_none_or(|v| v.trim().is_empty());
        Ok(first.map(|value| RotatingSecret {
            file: file.filter(|_| from_file).map(Path::to_path_buf),
            last: Arc::new(Mutex::new(value)),
        }))
    }

    /// The value now: the file's content as it is, or the last value read when the file
    /// cannot be read or is empty (with a warning naming the file, never the value).
    pub fn current(&self) -> Secret {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(path) = &self.file {
            match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => *last = Secret::new(text.trim()),
                Ok(_) => {
                    tracing::warn!(file = %path.display(), "the secret file is empty; using the value read before")
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read the secret file; using the value read before")
                }
            }
        }
        last.clone()
    }
}

impl From<Secret> for RotatingSecret {
    fn from(value: Secret) -> RotatingSecret {
        RotatingSecret::fixed(value)
    }
}

impl From<&str> for RotatingSecret {
    fn from(value: &str) -> RotatingSecret {
        RotatingSecret::fixed(Secret::new(value))
    }
}

impl std::fmt::Debug for RotatingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::from("hunter2");
        assert_eq!(
            format!("{s:?} {s} {s:#?} {:?}", Some(&s)),
            "*** *** *** Some(***)"
        );
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn from_the_environment_or_a_file_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  from-file\n").unwrap();
        let load = |env: Option<&str>, file: Option<&Path>| {
            Secret::from_env_or_file("GITHUB_TOKEN", env.map(String::from), "--github-token-file", file)
        };
        assert_eq!(
            load(Some(" from-env\n"), None).unwrap().unwrap().expose(),
            "from-env"
        );
        assert_eq!(load(None, Some(&file)).unwrap().unwrap().expose(), "from-file");
        assert_eq!(
            load(Some(""), Some(&file)).unwrap().unwrap().expose(),
            "from-file"
        );
        assert!(load(None, None).unwrap().is_none());
        assert!(
            load(Some("  "), None).unwrap().is_none(),
            "an empty variable is unset"
        );

        let both = load(Some("from-env"), Some(&file)).unwrap_err().to_string();
        assert!(
            both.contains("GITHUB_TOKEN") && both.contains("--github-token-file"),
            "{both}"
        );
        assert!(
            !both.contains("from-env") && !both.contains("from-file"),
            "{both}"
        );

        std::fs::write(&file, "\n").unwrap();
        let empty = load(None, Some(&file)).unwrap_err().to_string();
        assert!(
            empty.contains(&file.display().to_string()) && empty.contains("empty"),
            "{empty}"
        );
        let missing = dir.path().join("missing");
        let err = load(None, Some(&missing)).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    #[test]
    fn a_file_is_read_again_on_each_use_and_the_environment_stays() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let load = |env: Option<&str>, file: Option<&Path>| {
            RotatingSecret::from_env_or_file("GIT_TOKEN", env.map(String::from), "--token-file", file)
                .unwrap()
                .unwrap()
        };
        let from_file = load(None, Some(&file));
        let from_env = load(Some("from-env"), None);
        assert_eq!(from_file.current().expose(), "first");
        std::fs::write(&file, "second\n").unwrap();
        assert_eq!(from_file.current().expose(), "second");
        assert_eq!(from_file.clone().current().expose(), "second");
        // A file emptied or removed for a moment: the value read before is kept.
        std::fs::write(&file, "").unwrap();
        assert_eq!(from_file.current().expose(), "second");
        std::fs::remove_file(&file).unwrap();
        assert_eq!(from_file.current().expose(), "second");
        std::fs::write(&file, "third").unwrap();
        assert_eq!(from_file.current().expose(), "third");
        assert_eq!(from_env.current().expose(), "from-env");
        assert_eq!(format!("{from_file:?} {from_env:?}"), "*** ***");
    }
}
