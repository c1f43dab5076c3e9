//! The daemon: triggers (startup, poll, webhook, file watch) feed one queue; one sync runs at a
//! time; pull-request plans run beside it, read-only and bounded; every result is recorded for
//! the HTTP surface and reported as a commit status.
mod queue;
mod state;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch as signal;
use tracing::{error, info, instrument, warn};

use crate::apply::{Applier, truncate};
use crate::desired;
use crate::error::{Error, Result};
use crate::live;
use crate::metrics::Metrics;
use crate::plan::{self, PlanOptions};
use crate::report::{CommitStatus, PLAN_CONTEXT, SYNC_CONTEXT, StatusReporter, StatusState};
use crate::source::Snapshot;
use crate::source::tracked::{TrackedRepo, is_strict_ancestor};
use crate::sync::{self, SyncOutcome};
use crate::untrusted::printable;

pub use queue::{PlanQueue, PlanTrigger, Reason, SyncQueue, SyncTrigger};
pub use state::{CommitRecord, DaemonState, StoreView, SyncRecord, store_views};

#[derive(Debug, Clone)]
pub struct Settings {
    pub tracked: TrackedRepo,
    pub interval: Duration,
    /// Public URL of this daemon, for `target_url` of commit statuses.
    pub external_url: Option<String>,
    /// Pull-request plans run at once.
    pub plan_workers: usize,
}

/// Everything the daemon's tasks share.
pub struct Context {
    pub applier: Applier,
    pub metrics: Arc<Metrics>,
    pub statuses: Option<StatusReporter>,
    pub state: DaemonState,
    pub settings: Settings,
    pub syncs: SyncQueue,
    pub plans: PlanQueue,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Context {
    pub fn target_url(&self, sha: &str) -> Option<String> {
        self.settings
            .external_url
            .as_ref()
            .map(|u| format!("{}/commits/{sha}", u.trim_end_matches('/')))
    }

    fn post(&self, sha: &str, context: &'static str, state: StatusState, description: &str) {
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
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Source(format!("a Git task ended abnormally: {e}")))?
}

/// Runs until `shutdown` turns true: the in-flight sync finishes, then everything stops.
pub async fn run(ctx: Arc<Context>, mut shutdown: signal::Receiver<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(observe_until_ready(ctx.clone(), shutdown.clone()));
    tasks.spawn(poll(ctx.clone(), shutdown.clone()));
    for _ in 0..ctx.settings.plan_workers.max(1) {
        tasks.spawn(plan_worker(ctx.clone()));
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
        // Not raced against shutdown: an in-flight sync always finishes.
        run_sync(&ctx, trigger).await;
        if *shutdown.borrow() {
            break;
        }
    }
    info!("shutting down: no more syncs");
    ctx.syncs.close();
    ctx.plans.close();
    tasks.abort_all();
    if let Some(statuses) = &ctx.statuses
        && !statuses.flush(Duration::from_secs(10)).await
    {
        warn!("some commit statuses were not posted before shutdown");
    }
}

/// Readiness: the first successful observation of the cluster, retried until it succeeds.
async fn observe_until_ready(ctx: Arc<Context>, mut shutdown: signal::Receiver<bool>) {
    let mut delay = Duration::from_secs(1);
    loop {
        match live::observe(&ctx.applier.client).await {
            Ok(observed) => {
                let ready = live::readiness(&ctx.applier.client).await.unwrap_or_default();
                if ctx.state.stores().is_empty() {
                    ctx.state.set_stores(store_views(&observed, None, None, &ready));
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

enum Resolved {
    Commit(String, Box<Snapshot>),
    /// The branch head is older than the commit last synced (a delivery out of order, or the
    /// branch was moved back): never sync backwards.
    Older(String),
}

async fn resolve(ctx: &Context) -> Result<Resolved> {
    let tracked = ctx.settings.tracked.clone();
    let last = ctx.state.last_synced();
    blocking(move || {
        let opened = tracked.open()?;
        let head = tracked.head(&opened)?;
        if let Some(last) = &last
            && is_strict_ancestor(&opened.repo, &head, last)
        {
            return Ok(Resolved::Older(head));
        }
        let snapshot = tracked.snapshot(&opened, &head)?;
        Ok(Resolved::Commit(head, Box::new(snapshot)))
    })
    .await
}

/// The first findings of an invalid catalog, as one line.
fn first_errors(findings: &[desired::Diagnostic]) -> String {
    let errors: Vec<String> = findings
        .iter()
        .filter(|d| d.is_error())
        .take(3)
        .map(|d| format!("{}: {}", d.location(), d.message))
        .collect();
    format!("invalid catalog: {}", errors.join("; "))
}

#[instrument(skip_all, fields(reason = trigger.reason.label(), revision))]
async fn run_sync(ctx: &Context, trigger: SyncTrigger) {
    let started = Instant::now();
    let started_at = now();
    let (sha, snapshot) = match resolve(ctx).await {
        Ok(Resolved::Commit(sha, snapshot)) => (sha, snapshot),
        Ok(Resolved::Older(head)) => {
            warn!(head = %head, last = ?ctx.state.last_synced(), "branch head is older than the last synced commit; not syncing");
            return;
        }
        Err(e) => {
            error!(error = %printable(&e.to_string()), "cannot read the tracked branch");
            ctx.metrics
                .sync_finished("error", started.elapsed().as_secs_f64(), now());
            ctx.state.record_sync(SyncRecord {
                sha: trigger.sha.clone(),
                reason: trigger.reason.label(),
                started: started_at,
                seconds: started.elapsed().as_secs_f64(),
                state: "error",
                description: truncate(&format!("cannot read the tracked branch: {e}"), 300),
            });
            if let Some(sha) = &trigger.sha {
                ctx.post(
                    sha,
                    SYNC_CONTEXT,
                    StatusState::Error,
                    &format!("storesync could not read the commit: {e}"),
                );
            }
            return;
        }
    };
    tracing::Span::current().record("revision", sha.as_str());
    // A poll of a commit already synced is a drift check: it reports only when something changes.
    let repeat = ctx.state.last_synced().as_deref() == Some(sha.as_str());
    if !repeat {
        ctx.post(&sha, SYNC_CONTEXT, StatusState::Pending, "sync started");
    }
    let outcome = sync::sync(&ctx.applier, &snapshot, PlanOptions::default()).await;
    let seconds = started.elapsed().as_secs_f64();
    let (state, label, description, record) = match outcome {
        Err(e) => {
            let description = format!("storesync could not finish: {e}");
            let record = sync_record(&sha, "error", &description, String::new(), None, Vec::new());
            (StatusState::Error, "error", description, record)
        }
        Ok(SyncOutcome::Invalid(findings)) => {
            let description = first_errors(&findings);
            let errors = findings.iter().map(ToString::to_string).collect();
            let record = sync_record(&sha, "failure", &description, String::new(), None, errors);
            (StatusState::Failure, "failure", description, record)
        }
        Ok(SyncOutcome::Done(synced)) => {
            ctx.state.set_ready();
            ctx.state.set_last_synced(&sha);
            let (state, label) = if synced.report.failed() || synced.plan.is_blocked() {
                (StatusState::Failure, "failure")
            } else {
                (StatusState::Success, "success")
            };
            refresh_stores(ctx, &synced).await;
            let description = synced.report.description();
            let text = plan::render_text(&synced.plan, &ctx.settings.tracked.branch);
            let record = sync_record(&sha, label, &description, text, Some(synced.report), Vec::new());
            (state, label, description, record)
        }
    };
    let changed = ctx
        .state
        .commit(&sha)
        .is_none_or(|c| c.kind != "sync" || c.state != label || c.description != description);
    if !repeat || changed {
        ctx.post(&sha, SYNC_CONTEXT, state, &description);
    }
    ctx.metrics.sync_finished(label, seconds, now());
    ctx.state.record_sync(SyncRecord {
        sha: Some(sha.clone()),
        reason: trigger.reason.label(),
        started: started_at,
        seconds,
        state: label,
        description: description.clone(),
    });
    if !repeat || changed {
        ctx.state.record_commit(record);
    }
    // The description quotes the catalog (file names, validation findings): escaped for logs.
    info!(state = label, description = %printable(&description), seconds, "sync finished");
}

fn sync_record(
    sha: &str,
    state: &'static str,
    description: &str,
    plan: String,
    report: Option<crate::apply::SyncReport>,
    errors: Vec<String>,
) -> CommitRecord {
    CommitRecord {
        sha: sha.to_string(),
        kind: "sync",
        pull_request: None,
        finished: now(),
        state,
        description: description.to_string(),
        plan,
        report,
        errors,
    }
}

/// The store table and its gauge after a sync: the cluster is observed again only when the
/// sync changed it.
async fn refresh_stores(ctx: &Context, synced: &crate::sync::Synced) {
    let wrote = synced.report.summary.applied + synced.report.summary.pruned > 0;
    let observed = if wrote {
        live::observe(&ctx.applier.client).await.ok()
    } else {
        None
    };
    let live = observed.as_ref().unwrap_or(&synced.live);
    let ready = live::readiness(&ctx.applier.client).await.unwrap_or_default();
    ctx.state.set_stores(store_views(
        live,
        Some(&synced.catalog),
        Some(&synced.report),
        &ready,
    ));
    let mut counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for s in ctx.state.stores() {
        *counts.entry(s.state).or_insert(0) += 1;
    }
    ctx.metrics.set_stores(&counts.into_iter().collect::<Vec<_>>());
}

async fn plan_worker(ctx: Arc<Context>) {
    while let Some(trigger) = ctx.plans.next().await {
        run_plan(&ctx, trigger).await;
    }
}

#[instrument(skip_all, fields(pr = trigger.number, revision = %trigger.sha))]
async fn run_plan(ctx: &Context, trigger: PlanTrigger) {
    let tracked = ctx.settings.tracked.clone();
    let (number, sha) = (trigger.number, trigger.sha.clone());
    let read = blocking(move || {
        let opened = tracked.open()?;
        tracked.fetch_pull(&opened, number, &sha)?;
        tracked.snapshot(&opened, &sha)
    })
    .await;
    let record = |state: &'static str, description: String, plan: String, errors: Vec<String>| CommitRecord {
        sha: trigger.sha.clone(),
        kind: "plan",
        pull_request: Some(trigger.number),
        finished: now(),
        state,
        description,
        plan,
        report: None,
        errors,
    };
    let snapshot = match read {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %printable(&e.to_string()), "cannot read the pull request's commit");
            let description = format!("storesync could not read the commit: {e}");
            ctx.post(&trigger.sha, PLAN_CONTEXT, StatusState::Error, &description);
            ctx.state
                .record_commit(record("error", description, String::new(), Vec::new()));
            ctx.metrics.plan_finished("error");
            return;
        }
    };
    let catalog = match desired::load(&snapshot.raw) {
        Ok(c) => c,
        Err(findings) => {
            let description = first_errors(&findings);
            ctx.post(&trigger.sha, PLAN_CONTEXT, StatusState::Failure, &description);
            let errors = findings.iter().map(ToString::to_string).collect();
            ctx.state
                .record_commit(record("failure", description, String::new(), errors));
            ctx.metrics.plan_finished("failure");
            return;
        }
    };
    let observed = match live::observe(&ctx.applier.client).await {
        Ok(l) => l,
        Err(e) => {
            let description = format!("storesync could not observe the cluster: {e}");
            ctx.post(&trigger.sha, PLAN_CONTEXT, StatusState::Error, &description);
            ctx.state
                .record_commit(record("error", description, String::new(), Vec::new()));
            ctx.metrics.plan_finished("error");
            return;
        }
    };
    let plan = plan::plan_catalog(
        snapshot.revision.clone(),
        &catalog,
        &observed,
        PlanOptions::default(),
        false,
    );
    let (state, label, description) = match plan.blocked.first() {
        Some(reason) => (
            StatusState::Failure,
            "failure",
            format!("plan: {}; blocked: {reason}", plan.summary.line()),
        ),
        None => (
            StatusState::Success,
            "success",
            format!("plan: {}", plan.summary.line()),
        ),
    };
    ctx.post(&trigger.sha, PLAN_CONTEXT, state, &description);
    let text = plan::render_text(&plan, &format!("pull request #{}", trigger.number));
    ctx.state
        .record_commit(record(label, description, text, Vec::new()));
    ctx.metrics.plan_finished(label);
}
