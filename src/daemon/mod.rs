//! The daemon: triggers (startup, poll, webhook, file watch, retry) feed one queue; one sync
//! runs at a time; pull-request plans run beside it, read-only and bounded; every result is
//! recorded for the HTTP surface and reported as a commit status.
//!
//! Git is the truth: a sync always takes the tracked branch's head as fetched when it starts;
//! the commits webhooks name are triggers, and are answered with the result of the sync that
//! covered them.
//!
//! Replicas (`--leader-elect`): only the holder of the Lease syncs; every replica takes webhooks
//! and serves the records the leader shares through the cluster (`replicas.rs`).
pub mod leader;
mod persist;
mod plan_job;
mod queue;
mod replicas;
mod state;
mod sync_job;
mod watch;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch as signal;
use tracing::{info, warn};

use crate::apply::Applier;
use crate::error::{Error, Result};
use crate::live;
use crate::metrics::Metrics;
use crate::report::{CommitStatus, StatusReporter, StatusState};
use crate::source::tracked::TrackedRepo;

pub use crate::report::{StoreState, StoreView, store_views};
pub use persist::{REQUESTED_AT_ANNOTATION, REQUESTS_CONFIGMAP, STATE_CONFIGMAP, Shared};
pub use queue::{PlanQueue, PlanTrigger, Reason, SyncQueue, SyncTrigger};
pub use replicas::Replicas;
pub use state::{
    CommitKind, CommitRecord, DaemonState, LastResult, Records, ResultState, StoreSync, SyncRecord,
};
pub use sync_job::{Verdict, verdict};

#[derive(Debug, Clone)]
pub struct Settings {
    pub tracked: TrackedRepo,
    pub interval: Duration,
    /// Public URL of this daemon, for `target_url` of commit statuses.
    pub external_url: Option<String>,
    /// Pull-request plans run at once.
    pub plan_workers: usize,
}

/// Pending-plan slots: a newer head of a pull request replaces its older one.
const PLAN_QUEUE: usize = 64;

/// Everything the daemon's tasks share.
pub struct Context {
    pub applier: Applier,
    pub metrics: Arc<Metrics>,
    pub statuses: Option<StatusReporter>,
    pub state: DaemonState,
    pub settings: Settings,
    pub syncs: SyncQueue,
    pub plans: PlanQueue,
    /// Whether this replica leads; always, without election.
    pub leader: Arc<leader::Leadership>,
    /// Other replicas and the records shared with them; `None`: memory only.
    pub replicas: Option<Replicas>,
    pushes: Mutex<sync_job::Pushes>,
    /// Commits covered by a head whose rollout is in flight: their final state comes with its.
    rollout_covered: Mutex<Vec<String>>,
    /// Syncs in a row that ended in `error`, for the retry backoff.
    errors_in_a_row: AtomicU32,
    /// The first retry's delay after a sync ended in `error`; it doubles up to [`RETRY_MAX`].
    retry_first: Duration,
    /// How soon a rollout in flight is looked at again.
    rollout_check: Duration,
}

/// The first retry of a sync that ended in `error` (the cluster unreachable, a store failed for
/// a reason outside the catalog), by default.
pub const RETRY_FIRST: Duration = Duration::from_secs(10);
/// How often a rollout in flight is looked at: its wave's health judged, the next wave started
/// once it ended. Each look is one observation of the cluster and one health pass; no helm.
pub const ROLLOUT_CHECK: Duration = Duration::from_secs(15);
/// The longest wait between retries.
pub const RETRY_MAX: Duration = Duration::from_secs(600);

fn now() -> u64 {
    u64::try_from(crate::text::unix_now()).unwrap_or(0)
}

impl Context {
    /// The one way a daemon is wired, by `serve` and by tests alike.
    pub fn new(
        applier: Applier,
        metrics: Arc<Metrics>,
        statuses: Option<StatusReporter>,
        settings: Settings,
    ) -> Context {
        Context {
            applier,
            metrics,
            statuses,
            state: DaemonState::default(),
            settings,
            syncs: SyncQueue::default(),
            plans: PlanQueue::new(PLAN_QUEUE),
            leader: Arc::new(leader::Leadership::single(leader::identity())),
            replicas: None,
            pushes: Mutex::default(),
            rollout_covered: Mutex::default(),
            errors_in_a_row: AtomicU32::new(0),
            retry_first: RETRY_FIRST,
            rollout_check: ROLLOUT_CHECK,
        }
    }

    /// A rollout in flight is checked every `every` instead of [`ROLLOUT_CHECK`].
    pub fn with_rollout_check(mut self, every: Duration) -> Context {
        self.rollout_check = every;
        self
    }

    /// Retries after `error` start after `first` instead of [`RETRY_FIRST`].
    pub fn with_retry_backoff(mut self, first: Duration) -> Context {
        self.retry_first = first;
        self
    }

    /// Shares the records through the cluster and, with an election, syncs only while leading.
    pub fn with_replicas(mut self, replicas: Replicas) -> Context {
        if let Some(election) = &replicas.election {
            self.leader = Arc::new(leader::Leadership::elected(election.identity.clone()));
            self.applier.gate = self.leader.gate();
        }
        self.replicas = Some(replicas);
        self
    }

    pub fn target_url(&self, sha: &str) -> Option<String> {
        self.settings
            .external_url
            .as_ref()
            .map(|u| format!("{}/commits/{sha}", u.trim_end_matches('/')))
    }

    fn post(&self, sha: &str, context: &'static str, state: StatusState, description: &str) {
        // Sync statuses come from the leader alone; plans are posted where they ran.
        if context == crate::report::SYNC_CONTEXT && !self.leader.is_leader() {
            return;
        }
        if let Some(statuses) = &self.statuses {
            statuses.send(CommitStatus::new(
                sha,
                context,
                state,
                description,
                self.target_url(sha),
            ));
        }
    }

    /// A push to the tracked branch announced `sha`: it hears `pending` at once, and the
    /// final state of the sync that covers it later.
    pub fn push_received(&self, sha: String) {
        if !self.leader.is_leader() {
            if let Some(replicas) = &self.replicas {
                replicas.forward(sha);
            }
            return;
        }
        sync_job::announce(self, &sha);
        self.syncs.push(SyncTrigger {
            reason: Reason::Webhook,
            sha: Some(sha),
        });
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a Git task ended abnormally: {e}")))?
}

/// Runs until `shutdown` turns true: the in-flight sync finishes, then everything stops.
pub async fn run(ctx: Arc<Context>, mut shutdown: signal::Receiver<bool>) {
    ctx.metrics.set_leader(ctx.leader.is_leader());
    if let Some(replicas) = &ctx.replicas
        && let Err(e) = replicas.load(&ctx).await
    {
        warn!(error = %e, namespace = %replicas.namespace, "cannot read the shared history; starting without it");
    }
    let (stop_election, election) = signal::channel(false);
    let elector = replicas::elect(&ctx, election);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(replicas::coordinate(ctx.clone(), shutdown.clone()));
    tasks.spawn(observe_until_ready(ctx.clone(), shutdown.clone()));
    tasks.spawn(poll(ctx.clone(), shutdown.clone()));
    tasks.spawn(drift_schedule(ctx.clone(), shutdown.clone()));
    for _ in 0..ctx.settings.plan_workers.max(1) {
        tasks.spawn(plan_job::worker(ctx.clone()));
    }
    if let Some(git_dir) = ctx.settings.tracked.git_dir() {
        let watched = ctx.clone();
        match watch::spawn(&git_dir, move || {
            watched.syncs.push(SyncTrigger {
                reason: Reason::FileWatch,
                sha: None,
            })
        }) {
            Ok(w) => tasks.spawn(async move { w.run().await }),
            Err(e) => {
                warn!(error = %e, dir = %git_dir.display(), "cannot watch the repository; relying on polling");
                tasks.spawn(async {})
            }
        };
    }
    ctx.syncs.push(SyncTrigger {
        reason: Reason::Startup,
        sha: None,
    });
    loop {
        let trigger = tokio::select! {
            t = ctx.syncs.next() => t,
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let Some(trigger) = trigger else { break };
        // Only the leader syncs; a replica that becomes leader is asked to sync then.
        if !ctx.leader.is_leader() {
            continue;
        }
        // Not raced against shutdown: an in-flight sync always finishes.
        let ended = sync_job::run(&ctx, trigger).await;
        if let Some(replicas) = &ctx.replicas {
            replicas.records_changed();
        }
        if *shutdown.borrow() {
            break;
        }
        schedule_retry(&ctx, ended == ResultState::Error, &mut tasks, shutdown.clone());
        if ended == ResultState::Pending {
            schedule_rollout_check(&ctx, &mut tasks, shutdown.clone());
        }
    }
    info!("shutting down: no more syncs");
    ctx.syncs.close();
    ctx.plans.close();
    tasks.abort_all();
    if let Some(replicas) = &ctx.replicas {
        replicas.save(&ctx).await;
    }
    // The Lease goes only now, with no sync in flight: a successor never overlaps this one.
    let _ = stop_election.send(true);
    elector.finish(Duration::from_secs(10)).await;
    if let Some(statuses) = &ctx.statuses
        && !statuses.flush(Duration::from_secs(10)).await
    {
        warn!("some commit statuses were not posted before shutdown");
    }
}

/// Backoff before the next retry of a sync that ended in `error`: `first`, doubling, never more
/// than [`RETRY_MAX`] (10 s, 20 s, 40 s, … 10 min by default). A poll may come sooner.
pub fn retry_delay(errors_in_a_row: u32, first: Duration) -> Duration {
    let exp = errors_in_a_row.saturating_sub(1).min(16);
    first.saturating_mul(1 << exp).min(RETRY_MAX)
}

/// A sync that could not finish is retried with backoff, not only at the next poll.
fn schedule_retry(
    ctx: &Arc<Context>,
    errored: bool,
    tasks: &mut tokio::task::JoinSet<()>,
    mut shutdown: signal::Receiver<bool>,
) {
    if !errored {
        ctx.errors_in_a_row.store(0, Ordering::Relaxed);
        return;
    }
    let n = ctx.errors_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
    let delay = retry_delay(n, ctx.retry_first);
    info!(attempt = n, delay = ?delay, "sync could not finish; retrying");
    let ctx = ctx.clone();
    tasks.spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => ctx.syncs.push(SyncTrigger { reason: Reason::Retry, sha: None }),
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    });
}

/// A rollout in flight is looked at again after `rollout_check`: the wave it judges may have
/// ended (Healthy for the soak, or the health timeout passed). A poll or a push may come sooner.
fn schedule_rollout_check(
    ctx: &Arc<Context>,
    tasks: &mut tokio::task::JoinSet<()>,
    mut shutdown: signal::Receiver<bool>,
) {
    let (ctx, delay) = (ctx.clone(), ctx.rollout_check);
    tasks.spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => ctx.syncs.push(SyncTrigger { reason: Reason::Rollout, sha: None }),
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    });
}

/// The store table and the gauges that count it (by state, by health), set together.
fn set_stores(ctx: &Context, stores: Vec<StoreView>) {
    let mut by_state: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for s in &stores {
        *by_state.entry(s.state.as_str()).or_insert(0) += 1;
    }
    ctx.metrics.set_stores(&by_state.into_iter().collect::<Vec<_>>());
    ctx.metrics.set_store_health(stores.iter().map(|s| s.health));
    ctx.state.set_stores(stores);
}

/// Readiness: the first successful observation of the cluster, retried until it succeeds.
async fn observe_until_ready(ctx: Arc<Context>, mut shutdown: signal::Receiver<bool>) {
    let mut delay = Duration::from_secs(1);
    loop {
        match live::observe(&ctx.applier.client).await {
            Ok(observed) => {
                let ready = live::readiness(&ctx.applier.client).await.unwrap_or_default();
                if ctx.state.stores().is_empty() {
                    set_stores(&ctx, store_views(&observed, None, None, &ready, None));
                }
                ctx.state.set_ready();
                info!(stores = observed.stores.len(), "cluster observed; ready");
                return;
            }
            Err(e) => warn!(error = %e, "cannot observe the cluster yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// The drift comparison on its own clock: a `--drift-interval` shorter than `--interval` holds,
/// instead of waiting for a poll. A sync it starts compares only if no sync compared since.
async fn drift_schedule(ctx: Arc<Context>, mut shutdown: signal::Receiver<bool>) {
    let every = ctx.applier.drift.interval();
    if every >= ctx.settings.interval || every.is_zero() {
        return; // every poll's sync compares when due: nothing to add
    }
    // Looked at four times an interval, so a comparison is never a whole interval late.
    let mut ticker = tokio::time::interval((every / 4).max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the startup sync compares
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if ctx.applier.drift.is_due() {
                    ctx.syncs.push(SyncTrigger { reason: Reason::Drift, sha: None });
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn poll(ctx: Arc<Context>, mut shutdown: signal::Receiver<bool>) {
    let mut ticker = tokio::time::interval(ctx.settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; startup already asked for a sync
    loop {
        tokio::select! {
            _ = ticker.tick() => ctx.syncs.push(SyncTrigger { reason: Reason::Poll, sha: None }),
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_ten_minutes() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n, RETRY_FIRST).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(retry_delay(2, Duration::from_secs(2)), Duration::from_secs(4));
        assert_eq!(retry_delay(u32::MAX, RETRY_FIRST), RETRY_MAX);
    }
}
