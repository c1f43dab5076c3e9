//! Whether this process may write to the cluster: always, unless it runs as one of several
//! replicas and has stopped leading. Work not started yet is then not started, and a helm in
//! flight is stopped (its release, left pending, is remediated by whoever leads next), so two
//! replicas never run helm for the same store.
use std::future::Future;

use tokio::sync::watch;

use super::HelmOp;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct WriteGate(Option<watch::Receiver<bool>>);

impl WriteGate {
    /// A gate that follows `open` (true: may write).
    pub fn new(open: watch::Receiver<bool>) -> WriteGate {
        WriteGate(Some(open))
    }

    pub fn is_open(&self) -> bool {
        self.0.as_ref().is_none_or(|open| *open.borrow())
    }

    /// Resolves once the gate is closed; never for a gate that is always open.
    pub async fn closed(&self) {
        if let Some(open) = &self.0 {
            let mut open = open.clone();
            if open.wait_for(|o| !*o).await.is_ok() {
                return;
            }
        }
        std::future::pending::<()>().await
    }

    /// Runs a helm operation unless the gate closes first: the helm process is then killed.
    pub async fn guard<T>(&self, op: HelmOp, run: impl Future<Output = Result<T>>) -> Result<T> {
        if !self.is_open() {
            return Err(stopped(op));
        }
        tokio::select! {
            biased;
            _ = self.closed() => Err(stopped(op)),
            done = run => done,
        }
    }
}

fn stopped(op: HelmOp) -> Error {
    Error::Helm {
        operation: op.label(),
        message: format!(
            "helm {} stopped: this replica no longer leads; the next leader finishes the store",
            op.label()
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn closing_the_gate_stops_a_helm_in_flight() {
        let (open, rx) = watch::channel(true);
        let gate = WriteGate::new(rx);
        let slow = async {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(())
        };
        let closer = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            open.send(false).unwrap();
        };
        let (r, ()) = tokio::join!(gate.guard(HelmOp::Upgrade, slow), closer);
        let err = r.unwrap_err().to_string();
        assert!(err.contains("no longer leads"), "{err}");
        assert!(!gate.is_open());
        let never = gate.guard(HelmOp::Uninstall, async { Ok(()) }).await;
        assert!(never.is_err(), "nothing starts behind a closed gate");
    }

    #[tokio::test]
    async fn the_default_gate_is_always_open() {
        let gate = WriteGate::default();
        assert!(gate.is_open());
        gate.guard(HelmOp::Upgrade, async { Ok(()) }).await.unwrap();
    }
}
