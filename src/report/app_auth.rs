//! GitHub App credentials: the App's id and private key, which signs the JWTs (RS256, `iss` =
//! the App id, valid at most 10 minutes) exchanged for installation tokens
//! ([`super::connection`] finds the installation; octocrab mints and refreshes the tokens).
use std::path::Path;

use super::NotifyError;
use crate::secret::Secret;

/// An App's id and private key (PEM). The key is a [`Secret`]: never printed.
#[derive(Clone)]
pub struct AppCredentials {
    pub app_id: u64,
    key: Secret,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("key", &"***")
            .finish()
    }
}

impl AppCredentials {
    /// The App `app_id` with the PEM private key in `key`; a key that is not an RSA private key
    /// is a configuration error (the message never quotes it).
    pub fn new(app_id: u64, key: Secret) -> Result<AppCredentials, NotifyError> {
        if app_id == 0 {
            return Err(NotifyError::Config(
                "the GitHub App id must be a positive number".into(),
            ));
        }
        octocrab::jsonwebtoken::EncodingKey::from_rsa_pem(key.expose().as_bytes()).map_err(|_| {
            NotifyError::Config(
                "the GitHub App key is not an RSA private key in PEM format (download it from the App's \
                 settings: Private keys → Generate a private key)"
                    .into(),
            )
        })?;
        Ok(AppCredentials { app_id, key })
    }

    /// Reads the key from `path` (`--github-app-key-file`); the error names the file.
    pub fn from_file(app_id: u64, path: &Path) -> Result<AppCredentials, NotifyError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            NotifyError::Config(format!("cannot read the GitHub App key {}: {e}", path.display()))
        })?;
        AppCredentials::new(app_id, Secret::new(text)).map_err(|e| match e {
            NotifyError::Config(message) => NotifyError::Config(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    /// The key for signing the App's JWTs.
    pub(super) fn encoding_key(&self) -> Result<octocrab::jsonwebtoken::EncodingKey, NotifyError> {
        octocrab::jsonwebtoken::EncodingKey::from_rsa_pem(self.key.expose().as_bytes())
            .map_err(|_| NotifyError::Config("the GitHub App key cannot be used".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_is_a_config_error_that_does_not_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.pem");
        let key = "-----BEGIN RSA PRIVATE KEY-----\nnot-a-key-s3cret\n-----END RSA PRIVATE KEY-----\n";
        std::fs::write(&file, key).unwrap();
        let err = AppCredentials::from_file(7, &file).unwrap_err();
        assert_eq!(err.metric_label(), "config");
        let text = format!("{err} {err:?}");
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        let missing = AppCredentials::from_file(7, &dir.path().join("missing.pem")).unwrap_err();
        assert!(missing.to_string().contains("missing.pem"), "{missing}");
        assert_eq!(
            AppCredentials::new(0, key.into()).unwrap_err().metric_label(),
            "config"
        );
    }
}
