//! The library's error type: a variant per failure site, its cause kept as the source.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Git {
        context: String,
        #[source]
        source: git2::Error,
    },
    /// The stores repository is not where or what it was said to be: not a directory, a bare
    /// repository, a path outside it, a commit it does not have, a cache that cannot be rebuilt.
    #[error("{0}")]
    Repository(String),
    /// An object in the cluster that storesync reads for itself (a Helm release Secret, its own
    /// breaker record) does not hold what it must.
    #[error("{0}")]
    Unreadable(String),
    /// What a store namespace holds would make storesync act outside it, or on a lie (a release
    /// manifest naming another namespace, release labels that contradict the release): refused.
    #[error("{0}")]
    Refused(String),
    /// storesync itself failed: a task that panicked, a system facility that is not there.
    #[error("{0}")]
    Internal(String),
    #[error("cannot render output: {source}")]
    Output {
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{message}")]
    Helm {
        operation: &'static str,
        message: String,
    },
    #[error("{context}: {source}")]
    Kube {
        context: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot connect to the cluster: {source}")]
    Connect {
        #[source]
        source: kube::Error,
    },
    /// An object storesync would write exists and is not storesync's: it is never touched.
    #[error("{0}")]
    NotOwned(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The API server did not answer (refused, reset, timed out): as opposed to an answer that
    /// refuses (403, 409, 422), which means it is reachable.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Kube { source, .. } => matches!(
                source,
                kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_)
            ),
            _ => false,
        }
    }

    /// A failure a retry may fix without a new commit: the API server unreachable or timing out,
    /// an answer of 5xx, a conflict (409) or a rate limit (429). Decided by the error's type and
    /// status code, never by its text.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube {
                source: kube::Error::Api(status),
                ..
            } => status.code >= 500 || status.code == 409 || status.code == 429,
            other => other.is_unreachable(),
        }
    }

    pub(crate) fn git(context: impl Into<String>) -> impl FnOnce(git2::Error) -> Error {
        let context = context.into();
        move |source| Error::Git { context, source }
    }

    pub(crate) fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let context = context.into();
        move |source| Error::Kube { context, source }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
