//! The cache directory's file system: directories only their owner may read, and removal.
use std::path::Path;

use crate::error::{Error, Result};

/// Removes `path`, a directory or not, if it exists.
pub(super) fn remove_all(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(Error::io(path)),
        Ok(_) => std::fs::remove_file(path).map_err(Error::io(path)),
        Err(_) => Ok(()),
    }
}

/// The cache holds the catalog's history (and, in older caches, may have held credentials):
/// only its owner may read it.
pub(super) fn create_private_dir(path: &Path) -> Result<()> {
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
