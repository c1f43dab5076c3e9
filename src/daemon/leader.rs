//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's leaderelection
//! semantics: the holder renews every retry period and steps down when it could not renew for
//! the renew deadline, counted from when its last successful renewal was *sent* (a write the
//! API server answered late may have landed, and been seen by others, long before the answer);
//! a candidate takes the Lease when it is free or when its record has not changed for the
//! record's own `leaseDurationSeconds` (the holder's promise, not the candidate's setting), as
//! observed on this replica's own monotonic clock (so clock skew between nodes does not
//! matter); every write is a replace guarded by the `resourceVersion` read, so two candidates
//! never both win; `leaseTransitions` counts holder changes; a graceful stop releases the Lease
//! so a successor takes over at once.
//!
//! Written here rather than taken from a crate: the maintained kube-rs lease crates judge
//! expiry by wall-clock time (no injectable clock, so no deterministic tests) and lock through
//! server-side-apply conflicts, without a renew deadline.
//!
//! Time comes from `tokio::time`, so tests drive elections with paused time.
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::apply::WriteGate;
use crate::desired::{MANAGED_BY, MANAGER};
use crate::metrics::Metrics;

/// The Lease every replica competes for, in the daemon's namespace.
pub const LEASE_NAME: &str = "storesync";

/// How the election runs (`--lease-duration`, `--renew-deadline`, `--retry-period`).
#[derive(Debug, Clone)]
pub struct ElectionSettings {
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl ElectionSettings {
    /// client-go's rule: a leader must give up before anyone may consider its Lease expired,
    /// and must get several tries in before it gives up.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_duration <= self.renew_deadline {
            return Err(format!(
                "--lease-duration ({:?}) must be longer than --renew-deadline ({:?})",
                self.lease_duration, self.renew_deadline
            ));
        }
        if self.renew_deadline <= self.retry_period.mul_f64(JITTER) {
            return Err(format!(
                "--renew-deadline ({:?}) must be longer than {JITTER} × --retry-period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.lease_duration < Duration::from_secs(1) {
            return Err("--lease-duration must be at least 1s".into());
        }
        Ok(())
    }
}

/// client-go's jitter factor on the retry period of candidates.
const JITTER: f64 = 1.2;

/// The holder identity of this process: the pod name (hostname) and a random suffix, so a
/// restarted pod with the same name is a new candidate.
pub fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "storesync".into());
    let mut suffix = [0u8; 4];
    // Without randomness the suffix is the process id: still unique on one node.
    let suffix = match getrandom::fill(&mut suffix) {
        Ok(()) => hex::encode(suffix),
        Err(_) => format!("{:08x}", std::process::id()),
    };
    format!("{host}_{suffix}")
}

/// Who leads, as this replica knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderView {
    /// This replica holds the Lease and may write.
    pub leading: bool,
    /// The holder last observed (this replica's identity while it leads).
    pub holder: Option<String>,
}

/// This replica's leadership, shared by the elector (which changes it) and the work it gates.
#[derive(Debug)]
pub struct Leadership {
    identity: String,
    elected: bool,
    view: watch::Sender<LeaderView>,
    /// `view.leading`, for the write gate of the applier.
    writes: watch::Sender<bool>,
}

impl Leadership {
    /// No election: this process is the only one and always leads (a local `serve`).
    pub fn single(identity: String) -> Leadership {
        let view = LeaderView {
            leading: true,
            holder: Some(identity.clone()),
        };
        Leadership {
            identity,
            elected: false,
            view: watch::Sender::new(view),
            writes: watch::Sender::new(true),
        }
    }

    /// Elected: leads only once the elector has taken the Lease.
    pub fn elected(identity: String) -> Leadership {
        Leadership {
            identity,
            elected: true,
            view: watch::Sender::new(LeaderView::default()),
            writes: watch::Sender::new(false),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether leader election runs (`--leader-elect`).
    pub fn is_elected(&self) -> bool {
        self.elected
    }

    /// Whether this replica may start work that writes: checked where each piece of work starts.
    pub fn is_leader(&self) -> bool {
        self.view.borrow().leading
    }

    pub fn view(&self) -> LeaderView {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<LeaderView> {
        self.view.subscribe()
    }

    /// Closed while this replica does not lead.
    pub fn gate(&self) -> WriteGate {
        WriteGate::new(self.writes.subscribe())
    }

    fn set(&self, view: LeaderView) {
        self.writes.send_if_modified(|w| {
            let changed = *w != view.leading;
            *w = view.leading;
            changed
        });
        self.view.send_if_modified(|v| {
            let changed = *v != view;
            *v = view;
            changed
        });
    }
}

/// The Lease record as last observed, and when (on this replica's clock).
struct Observed {
    holder: String,
    resource_version: String,
    transitions: i32,
    acquire_time: Option<MicroTime>,
    /// How long the holder promised to keep the record fresh (`leaseDurationSeconds`).
    lease_duration: Duration,
    at: Instant,
}

impl Observed {
    /// client-go's rule: expired once the record has not changed for the duration it states.
    fn expired(&self, now: Instant) -> bool {
        self.at + self.lease_duration <= now
    }
}

/// The lease duration a record states; a record without one is judged by this candidate's own
/// setting (no holder promised anything shorter), a negative one as none at all.
fn stated_duration(spec: &LeaseSpec, own: Duration) -> Duration {
    match spec.lease_duration_seconds {
        Some(seconds) => Duration::from_secs(u64::try_from(seconds).unwrap_or(0)),
        None => own,
    }
}

/// What one attempt to take or keep the Lease found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// This replica holds it now.
    Held,
    /// Someone else holds it and it has not expired.
    Other(String),
    /// The write lost a race or the API server did not answer.
    Failed,
}

struct Elector {
    api: Api<Lease>,
    settings: ElectionSettings,
    observed: Option<Observed>,
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    fn record(&self, transitions: i32, acquire_time: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time,
            renew_time: Some(now_micro()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn observe(&mut self, lease: &Lease) {
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().is_some_and(|o| o.resource_version == rv) {
            return;
        }
        let spec = lease.spec.clone().unwrap_or_default();
        self.observed = Some(Observed {
            lease_duration: stated_duration(&spec, self.settings.lease_duration),
            holder: spec.holder_identity.unwrap_or_default(),
            resource_version: rv,
            transitions: spec.lease_transitions.unwrap_or(0),
            acquire_time: spec.acquire_time,
            at: Instant::now(),
        });
    }

    /// client-go's `tryAcquireOrRenew`: read, judge, then replace guarded by the version read.
    async fn try_acquire_or_renew(&mut self) -> Attempt {
        let me = self.settings.identity.clone();
        let lease = match self.api.get_opt(LEASE_NAME).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return self.create().await,
            Err(e) => {
                warn!(error = %e, "cannot read the leader Lease");
                return Attempt::Failed;
            }
        };
        self.observe(&lease);
        let Some(observed) = &self.observed else {
            return Attempt::Failed;
        };
        let expired = observed.expired(Instant::now());
        if !observed.holder.is_empty() && observed.holder != me && !expired {
            return Attempt::Other(observed.holder.clone());
        }
        let spec = if observed.holder == me {
            self.record(observed.transitions, observed.acquire_time.clone())
        } else {
            self.record(observed.transitions + 1, Some(now_micro()))
        };
        let mut next = lease;
        next.spec = Some(spec);
        match self.api.replace(LEASE_NAME, &PostParams::default(), &next).await {
            Ok(written) => {
                self.observed = None;
                self.observe(&written);
                Attempt::Held
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Attempt::Failed,
            Err(e) => {
                warn!(error = %e, "cannot write the leader Lease");
                Attempt::Failed
            }
        }
    }

    async fn create(&mut self) -> Attempt {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                namespace: Some(self.settings.namespace.clone()),
                labels: Some([(MANAGED_BY.to_string(), MANAGER.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(self.record(0, Some(now_micro()))),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.observe(&created);
                Attempt::Held
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Attempt::Failed,
            Err(e) => {
                warn!(error = %e, "cannot create the leader Lease");
                Attempt::Failed
            }
        }
    }

    /// Gives the Lease up (holder cleared, duration 1 s) so a successor need not wait it out.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(LEASE_NAME).await else {
            return;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now_micro()),
            renew_time: Some(now_micro()),
            lease_transitions: spec.lease_transitions,
            ..LeaseSpec::default()
        });
        match self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(_) => info!("leader Lease released"),
            Err(e) => {
                warn!(error = %e, "cannot release the leader Lease; a successor waits for it to expire")
            }
        }
    }
}

fn jittered(period: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let fraction = match getrandom::fill(&mut byte) {
        Ok(()) => f64::from(byte[0]) / 255.0,
        Err(_) => 0.5,
    };
    period + period.mul_f64((JITTER - 1.0) * fraction)
}

/// Runs the election until `shutdown` turns true, publishing who leads into `leadership`; a
/// leader releases the Lease on the way out.
pub async fn run(
    client: Client,
    settings: ElectionSettings,
    leadership: Arc<Leadership>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let me = settings.identity.clone();
    let mut elector = Elector {
        api: Api::namespaced(client, &settings.namespace),
        settings,
        observed: None,
    };
    let retry = elector.settings.retry_period;
    info!(identity = %me, lease = LEASE_NAME, namespace = %elector.settings.namespace, "leader election: candidate");
    loop {
        // Candidate: try every retry period (jittered) until the Lease is ours.
        let mut renewed = loop {
            if *shutdown.borrow() {
                return;
            }
            let sent = Instant::now();
            // An API server that does not answer holds no shutdown.
            let attempt = tokio::select! {
                attempt = elector.try_acquire_or_renew() => attempt,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match attempt {
                Attempt::Held => break sent,
                Attempt::Other(holder) => leadership.set(LeaderView {
                    leading: false,
                    holder: Some(holder),
                }),
                Attempt::Failed => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(jittered(retry)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        };
        info!(identity = %me, "leading");
        leadership.set(LeaderView {
            leading: true,
            holder: Some(me.clone()),
        });
        metrics.set_leader(true);
        // Leader: renew every retry period; give up when no renewal succeeded for the deadline,
        // counted from when the last good one was sent: others saw its write no earlier.
        let reason = loop {
            let stop = tokio::select! {
                _ = tokio::time::sleep(retry) => false,
                _ = shutdown.wait_for(|stop| *stop) => true,
            };
            if stop {
                // Stop leading first: nothing new starts while the Lease is given up.
                leadership.set(LeaderView {
                    leading: false,
                    holder: None,
                });
                metrics.set_leader(false);
                elector.release().await;
                return;
            }
            let deadline = renewed + elector.settings.renew_deadline;
            let sent = Instant::now();
            match tokio::time::timeout_at(deadline, elector.try_acquire_or_renew()).await {
                Ok(Attempt::Held) => renewed = sent,
                Ok(Attempt::Other(holder)) => break format!("the Lease is held by {holder}"),
                Ok(Attempt::Failed) | Err(_) => {}
            }
            if Instant::now() >= deadline {
                break format!("no renewal for {:?}", elector.settings.renew_deadline);
            }
        };
        warn!(identity = %me, %reason, "leadership lost: no new work starts here");
        let holder = elector
            .observed
            .as_ref()
            .map(|o| o.holder.clone())
            .filter(|h| *h != me && !h.is_empty());
        leadership.set(LeaderView {
            leading: false,
            holder,
        });
        metrics.set_leader(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lease: u64, renew: u64, retry: u64) -> ElectionSettings {
        ElectionSettings {
            namespace: "storesync".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn timings_follow_client_go_rules() {
        assert!(settings(15, 10, 2).check().is_ok());
        let err = settings(10, 10, 2).check().unwrap_err();
        assert!(err.contains("--lease-duration"), "{err}");
        let err = settings(15, 2, 2).check().unwrap_err();
        assert!(err.contains("--renew-deadline"), "{err}");
    }

    #[test]
    fn identities_are_unique_per_process_start() {
        let (a, b) = (identity(), identity());
        assert_ne!(a, b);
        assert!(a.contains('_'), "{a}");
    }

    #[test]
    fn expiry_is_judged_by_the_duration_the_record_states() {
        let own = Duration::from_secs(15);
        let spec = |seconds| LeaseSpec {
            lease_duration_seconds: seconds,
            ..LeaseSpec::default()
        };
        assert_eq!(stated_duration(&spec(Some(60)), own), Duration::from_secs(60));
        assert_eq!(stated_duration(&spec(Some(5)), own), Duration::from_secs(5));
        assert_eq!(stated_duration(&spec(Some(-5)), own), Duration::ZERO);
        assert_eq!(stated_duration(&spec(None), own), own);
    }

    #[test]
    fn a_single_process_always_leads() {
        let l = Leadership::single("me".into());
        assert!(l.is_leader() && !l.is_elected());
        let e = Leadership::elected("me".into());
        assert!(!e.is_leader() && e.is_elected());
    }
}
