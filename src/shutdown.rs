//! Shutdown on signals, on kubert's model: the first SIGTERM or SIGINT asks everything to
//! drain (the sync in flight finishes, servers stop accepting), a second one aborts, which the
//! caller sees as [`Aborted`] instead of the process exiting from deep inside.
use std::future::Future;

use tokio::sync::watch;
use tracing::info;

/// A second signal arrived while draining.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("aborted by a second signal while draining")]
pub struct Aborted;

/// The drain flag (`true` once a first signal arrived) and a future that completes with
/// [`Aborted`] on a second one. Starts listening at once.
pub fn on_signals() -> (watch::Receiver<bool>, impl Future<Output = Aborted> + Send) {
    let (drain, draining) = watch::channel(false);
    let (abort, aborted) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("signal received: finishing the sync in flight, then stopping (again to abort)");
        let _ = drain.send(true);
        wait_for_signal().await;
        let _ = abort.send(());
    });
    (draining, async move {
        // A dropped sender means the listener is gone: never abort on that.
        match aborted.await {
            Ok(()) => Aborted,
            Err(_) => std::future::pending().await,
        }
    })
}

/// Runs `work` (which drains when `draining` turns true) until it ends, or until a second
/// signal aborts it.
pub async fn drain_or_abort<T>(
    work: impl Future<Output = T>,
    aborted: impl Future<Output = Aborted>,
) -> Result<T, Aborted> {
    tokio::select! {
        done = work => Ok(done),
        aborted = aborted => Err(aborted),
    }
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_that_ends_is_not_aborted() {
        let r = drain_or_abort(async { 7 }, std::future::pending()).await;
        assert_eq!(r, Ok(7));
    }

    #[tokio::test]
    async fn a_second_signal_aborts_work_that_does_not_end() {
        let r: Result<(), Aborted> = drain_or_abort(std::future::pending(), async { Aborted }).await;
        assert_eq!(r, Err(Aborted));
    }
}
