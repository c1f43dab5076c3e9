//! Credentials held in memory (GitHub token, webhook secret, Git token). They come only from
//! the environment or from files, never from flag values (which `ps` shows to every user), and
//! their `Debug` and `Display` print `***`, so no log line, error or dump can carry one.
use std::path::Path;

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
}
