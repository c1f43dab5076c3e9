//! The HTTP listener: HTTP/1.1 with bounds that hold against clients that never finish —
//! request headers must arrive within a timeout (which also closes idle keep-alive
//! connections), headers are capped in size, and connections are capped in number. The
//! webhook bounds its own body read and its concurrency (see the handler).
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

/// The bounds of the HTTP surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers, and the most a keep-alive connection
    /// stays idle between requests.
    pub header_read: Duration,
    /// Time a client has to send a webhook's body once its headers were accepted.
    pub body_read: Duration,
    /// Connections open at once; past it new ones are closed at once.
    pub max_connections: usize,
    /// Webhook requests handled at once; past it they get 503 (GitHub retries).
    pub max_webhooks: usize,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            max_connections: 1024,
            max_webhooks: 32,
            max_header_bytes: 64 * 1024,
        }
    }
}

/// Time the connections in flight get to finish after shutdown was asked.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` turns true, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // The guard `wait_for` returns is not Send: drop it inside, so this future can be spawned.
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(limits.max_header_bytes.max(8192));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopping => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            debug!(%peer, "too many connections: closing a new one");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        warn!("some HTTP connections did not finish within {DRAIN:?}; closing them");
    }
    Ok(())
}
