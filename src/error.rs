//! The library's error type: a variant per failure site, its cause kept as the source.
use std::path::PathBuf;

use crate::desired::Diagnostic;

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
    #[error("{0}")]
    Source(String),
    #[error("the catalog is invalid ({} error(s))", .0.iter().filter(|d| d.is_error()).count())]
    InvalidCatalog(Vec<Diagnostic>),
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
    #[error("cannot connect to the cluster: {0}")]
    Connect(String),
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
    /// A fixed, bounded label for metrics: never derived from the error's text.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Git { .. } => "git",
            Error::Source(_) => "source",
            Error::InvalidCatalog(_) => "invalid_catalog",
            Error::Output { .. } => "output",
            Error::Usage(_) => "usage",
            Error::Helm { .. } => "helm",
            Error::Kube { .. } => "kube",
            Error::Connect(_) => "connect",
            Error::NotOwned(_) => "not_owned",
            Error::Listen { .. } => "listen",
        }
    }

    /// The API server did not answer (refused, reset, timed out): as opposed to an answer that
    /// refuses (403, 409, 422), which means it is reachable.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Connect(_) => true,
            Error::Kube { source, .. } => matches!(
                source,
                kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_)
            ),
            _ => false,
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
