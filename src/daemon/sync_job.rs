//! One sync of the tracked branch's head, and what it tells GitHub: every commit a push
//! announced hears `pending` at once and a final state later — its own, or that of the sync
//! that covered it (`superseded by <sha>: …`). A poll that finds the same head and reaches the
//! same verdict posts nothing.
use std::time::Instant;

use tracing::{error, info, instrument, warn};

use super::state::{CommitKind, ResultState};
use super::{CommitRecord, Context, LastResult, SyncRecord, SyncTrigger, blocking, now, store_views};
use crate::desired;
use crate::error::{Error, Result};
use crate::live;
use crate::plan::{self, PlanOptions};
use crate::report::{SYNC_CONTEXT, StatusState};
use crate::source::Snapshot;
use crate::source::tracked::is_strict_ancestor;
use crate::sync::{self, SyncOutcome};
use crate::text::truncate;
use crate::untrusted::printable;

/// Commits announced by pushes and not answered yet.
#[derive(Default)]
pub(super) struct Pushes {
    /// Announced since the running sync started, oldest first.
    waiting: Vec<String>,
    /// The head whose sync runs now.
    running: Option<String>,
}

/// Most announced commits kept waiting; past it the oldest is answered at once.
const MAX_WAITING: usize = 256;

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Posts `pending` for a commit a push announced, unless it is already waiting or syncing.
pub(super) fn announce(ctx: &Context, sha: &str) {
    let (description, dropped) = {
        let Ok(mut p) = ctx.pushes.lock() else { return };
        if p.running.as_deref() == Some(sha) || p.waiting.iter().any(|w| w == sha) {
            return;
        }
        let dropped = (p.waiting.len() >= MAX_WAITING).then(|| p.waiting.remove(0));
        p.waiting.push(sha.to_string());
        let description = match &p.running {
            Some(running) => format!("queued behind {}", short(running)),
            None => "queued".to_string(),
        };
        (description, dropped)
    };
    if let Some(old) = dropped {
        ctx.post(
            &old,
            SYNC_CONTEXT,
            StatusState::Error,
            "too many pushes waiting; this commit is covered by the sync of a newer head",
        );
    }
    ctx.post(sha, SYNC_CONTEXT, StatusState::Pending, &description);
}

/// What a finished sync tells GitHub, the metrics and the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: ResultState,
    pub description: String,
}

/// The verdict of a sync of a branch head, a pure function of its outcome. `non_fast_forward`
/// names the head synced before, when this one is not its descendant.
pub fn verdict(outcome: &Result<SyncOutcome>, non_fast_forward: Option<&str>) -> Verdict {
    let (state, description) = match outcome {
        Err(e) => (ResultState::Error, format!("storesync could not finish: {e}")),
        Ok(SyncOutcome::Invalid(findings)) => (ResultState::Failure, first_errors(findings)),
        Ok(SyncOutcome::Done(synced)) if synced.report.cluster_error.is_some() => (
            ResultState::Error,
            format!(
                "the cluster stopped answering mid-sync, nothing pruned: {}",
                synced.report.cluster_error.as_deref().unwrap_or_default()
            ),
        ),
        // Only stores that failed for reasons outside the catalog: storesync retries them, no
        // commit is at fault.
        Ok(SyncOutcome::Done(synced)) if synced.report.failed_transiently() && !synced.plan.is_blocked() => (
            ResultState::Error,
            format!("retrying: {}", synced.report.description()),
        ),
        Ok(SyncOutcome::Done(synced)) if synced.report.failed() || synced.plan.is_blocked() => {
            (ResultState::Failure, synced.report.description())
        }
        Ok(SyncOutcome::Done(synced)) => (ResultState::Success, synced.report.description()),
    };
    let description = match non_fast_forward {
        Some(previous) => format!("non-fast-forward from {}: {description}", short(previous)),
        None => description,
    };
    Verdict { state, description }
}

/// The first findings of an invalid catalog, as one line.
pub(super) fn first_errors(findings: &[desired::Diagnostic]) -> String {
    let errors: Vec<String> = findings
        .iter()
        .filter(|d| d.is_error())
        .take(3)
        .map(|d| format!("{}: {}", d.location(), d.message))
        .collect();
    format!("invalid catalog: {}", errors.join("; "))
}

struct Resolved {
    head: String,
    snapshot: Box<Snapshot>,
    /// The head synced before, when `head` does not descend from it.
    non_fast_forward: Option<String>,
}

async fn resolve(ctx: &Context, previous: Option<String>) -> Result<Resolved> {
    let tracked = ctx.settings.tracked.clone();
    let metrics = ctx.metrics.clone();
    blocking(move || {
        let opened = tracked.open()?;
        if opened.recloned.is_some() {
            metrics.git_cache_recloned();
        }
        let head = tracked.head(&opened)?;
        let non_fast_forward = previous.filter(|p| *p != head && !is_strict_ancestor(&opened.repo, p, &head));
        let snapshot = tracked.snapshot(&opened, &head)?;
        Ok(Resolved {
            head,
            snapshot: Box::new(snapshot),
            non_fast_forward,
        })
    })
    .await
}

/// Runs one sync; true when it ended in `error` (to be retried).
#[instrument(skip_all, fields(reason = trigger.reason.label(), revision))]
pub(super) async fn run(ctx: &Context, trigger: SyncTrigger) -> bool {
    let started = Instant::now();
    let started_at = now();
    // Taken before the fetch: every commit announced so far is at or behind the head fetched.
    let waiting = ctx
        .pushes
        .lock()
        .map(|mut p| std::mem::take(&mut p.waiting))
        .unwrap_or_default();
    let last = ctx.state.last_result();
    let resolved = match resolve(ctx, last.as_ref().map(|l| l.sha.clone())).await {
        Ok(r) => r,
        Err(e) => {
            cannot_read(ctx, &trigger, &waiting, &e, started, started_at);
            return true;
        }
    };
    let head = resolved.head.clone();
    tracing::Span::current().record("revision", head.as_str());
    if let Ok(mut p) = ctx.pushes.lock() {
        p.running = Some(head.clone());
    }
    let repeat = last.as_ref().is_some_and(|l| l.sha == head);
    let announced = waiting.contains(&head);
    if !repeat || announced {
        ctx.post(&head, SYNC_CONTEXT, StatusState::Pending, "syncing");
    }
    if let Some(previous) = &resolved.non_fast_forward {
        warn!(%previous, %head, "the branch head is not a descendant of the head synced before (moved back or rewritten): syncing it");
        ctx.metrics.non_fast_forward_sync();
    }

    let outcome = sync::sync(&ctx.applier, &resolved.snapshot, PlanOptions::default()).await;
    let v = verdict(&outcome, resolved.non_fast_forward.as_deref());
    let seconds = started.elapsed().as_secs_f64();
    // Ready while the cluster answers; an invalid catalog is never observed, so it says nothing.
    match &outcome {
        Err(e) if e.is_unreachable() => ctx.state.set_unready(),
        Ok(SyncOutcome::Done(synced)) if synced.report.cluster_error.is_some() => ctx.state.set_unready(),
        Ok(SyncOutcome::Done(_)) => ctx.state.set_ready(),
        Err(_) | Ok(SyncOutcome::Invalid(_)) => {}
    }
    // Another sync of the same head says something new only when its verdict changed, or when
    // it had to write (drift repaired); a clean re-check of a success stays silent.
    let wrote = matches!(&outcome, Ok(SyncOutcome::Done(s)) if s.report.summary.applied + s.report.summary.pruned > 0);
    let changed = !repeat
        || last.as_ref().is_some_and(|l| {
            l.state != v.state || (v.state != ResultState::Success && l.description != v.description) || wrote
        });
    if changed || announced {
        ctx.post(&head, SYNC_CONTEXT, v.state.status(), &v.description);
    }
    for covered in waiting.iter().filter(|w| **w != head) {
        let description = format!("superseded by {}: {}", short(&head), v.description);
        ctx.post(covered, SYNC_CONTEXT, v.state.status(), &description);
    }
    if changed {
        let (plan, report, errors) = match &outcome {
            Ok(SyncOutcome::Done(synced)) => (
                plan::render_text(&synced.plan, &ctx.settings.tracked.branch),
                Some(synced.report.clone()),
                Vec::new(),
            ),
            Ok(SyncOutcome::Invalid(findings)) => (
                String::new(),
                None,
                findings.iter().map(ToString::to_string).collect(),
            ),
            Err(_) => (String::new(), None, Vec::new()),
        };
        ctx.state.record_commit(CommitRecord {
            sha: head.clone(),
            kind: CommitKind::Sync,
            pull_request: None,
            finished: now(),
            state: v.state,
            description: v.description.clone(),
            plan,
            report,
            errors,
        });
    }
    if let Ok(SyncOutcome::Done(synced)) = &outcome {
        refresh_stores(ctx, synced).await;
    }
    ctx.metrics.sync_finished(v.state.as_str(), seconds, now());
    ctx.state.record_sync(SyncRecord {
        sha: Some(head.clone()),
        reason: trigger.reason,
        started: started_at,
        seconds,
        state: v.state,
        description: v.description.clone(),
        non_fast_forward: resolved.non_fast_forward.is_some(),
    });
    ctx.state.set_last_result(LastResult {
        sha: head,
        state: v.state,
        description: v.description.clone(),
    });
    if let Ok(mut p) = ctx.pushes.lock() {
        p.running = None;
    }
    // The description quotes the catalog (file names, validation findings): escaped for logs.
    info!(state = v.state.as_str(), description = %printable(&v.description), seconds, "sync finished");
    v.state == ResultState::Error
}

/// The tracked branch could not be read: the sync ends in `error`, and so does every commit
/// waiting for it (the retry answers again).
fn cannot_read(
    ctx: &Context,
    trigger: &SyncTrigger,
    waiting: &[String],
    e: &Error,
    started: Instant,
    started_at: u64,
) {
    error!(error = %printable(&e.to_string()), "cannot read the tracked branch");
    let description = truncate(&format!("storesync could not read the tracked branch: {e}"), 300);
    for sha in waiting {
        ctx.post(sha, SYNC_CONTEXT, StatusState::Error, &description);
    }
    ctx.metrics.sync_finished(
        ResultState::Error.as_str(),
        started.elapsed().as_secs_f64(),
        now(),
    );
    ctx.state.record_sync(SyncRecord {
        sha: trigger.sha.clone(),
        reason: trigger.reason,
        started: started_at,
        seconds: started.elapsed().as_secs_f64(),
        state: ResultState::Error,
        description,
        non_fast_forward: false,
    });
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
        *counts.entry(s.state.as_str()).or_insert(0) += 1;
    }
    ctx.metrics.set_stores(&counts.into_iter().collect::<Vec<_>>());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Outcome, ResultSummary, StoreResult, SyncReport};
    use crate::desired::{Catalog, Diagnostic, PlatformConfig};
    use crate::plan::{Plan, Summary};
    use crate::source::Revision;
    use crate::sync::Synced;

    fn done(
        summary: ResultSummary,
        failed: Option<&str>,
        blocked: &[&str],
        cluster_error: Option<&str>,
    ) -> Result<SyncOutcome> {
        done_with(summary, failed, false, blocked, cluster_error)
    }

    fn done_with(
        summary: ResultSummary,
        failed: Option<&str>,
        transient: bool,
        blocked: &[&str],
        cluster_error: Option<&str>,
    ) -> Result<SyncOutcome> {
        let revision = Revision {
            commit: Some("a".repeat(40)),
            label: "test".into(),
        };
        let stores = failed
            .map(|detail| StoreResult {
                store: "acme".into(),
                outcome: Outcome::Failed,
                detail: Some(detail.into()),
                transient,
            })
            .into_iter()
            .collect();
        let blocked: Vec<String> = blocked.iter().map(|b| b.to_string()).collect();
        Ok(SyncOutcome::Done(Box::new(Synced {
            catalog: Catalog {
                platform: PlatformConfig::default(),
                stores: Vec::new(),
                warnings: Vec::new(),
            },
            plan: Plan {
                revision: revision.clone(),
                offline: false,
                summary: Summary::default(),
                stores: Vec::new(),
                blocked: blocked.clone(),
            },
            report: SyncReport {
                revision,
                summary,
                stores,
                blocked,
                cluster_error: cluster_error.map(String::from),
            },
            live: Default::default(),
        })))
    }

    fn v(state: ResultState, description: &str) -> Verdict {
        Verdict {
            state,
            description: description.into(),
        }
    }

    #[test]
    fn a_result_state_is_one_status_and_one_label() {
        for (state, status, label) in [
            (ResultState::Success, StatusState::Success, "success"),
            (ResultState::Failure, StatusState::Failure, "failure"),
            (ResultState::Error, StatusState::Error, "error"),
        ] {
            assert_eq!((state.status(), state.as_str()), (status, label));
            assert_eq!(serde_json::to_value(state).unwrap(), label);
        }
    }

    #[test]
    fn the_verdict_is_a_function_of_the_outcome() {
        let applied = ResultSummary {
            applied: 2,
            unchanged: 40,
            ..Default::default()
        };
        assert_eq!(
            verdict(&done(applied.clone(), None, &[], None), None),
            v(ResultState::Success, "applied 2, pruned 0, unchanged 40")
        );
        let failed = ResultSummary {
            failed: 1,
            ..applied.clone()
        };
        assert_eq!(
            verdict(&done(failed, Some("helm upgrade failed"), &[], None), None),
            v(
                ResultState::Failure,
                "1 failed; applied 2, pruned 0, unchanged 40; acme: helm upgrade failed"
            )
        );
        assert_eq!(
            verdict(&done(applied.clone(), None, &["too many prunes"], None), None),
            v(
                ResultState::Failure,
                "applied 2, pruned 0, unchanged 40; blocked: too many prunes"
            )
        );
        assert_eq!(
            verdict(
                &done(applied.clone(), None, &[], Some("connection refused")),
                None
            )
            .state,
            ResultState::Error,
            "a cluster that went away mid-sync is storesync not finishing, not a failed store"
        );
        let conflicted = ResultSummary {
            failed: 1,
            ..applied.clone()
        };
        assert_eq!(
            verdict(
                &done_with(conflicted.clone(), Some("409 Conflict"), true, &[], None),
                None
            ),
            v(
                ResultState::Error,
                "retrying: 1 failed; applied 2, pruned 0, unchanged 40; acme: 409 Conflict"
            ),
            "a store failed for a reason outside the catalog: no commit is at fault"
        );
        assert_eq!(
            verdict(
                &done_with(conflicted, Some("409 Conflict"), true, &["too many prunes"], None),
                None
            )
            .state,
            ResultState::Failure,
            "a blocked plan is the commit's to fix, whatever else happened"
        );
        let invalid = Ok(SyncOutcome::Invalid(vec![
            Diagnostic::error("stores/a.yaml", (2, 9), "unknown engine `x`"),
            Diagnostic::warning("stores/b.txt", (1, 1), "ignored"),
        ]));
        assert_eq!(
            verdict(&invalid, None),
            v(
                ResultState::Failure,
                "invalid catalog: stores/a.yaml:2:9: unknown engine `x`"
            )
        );
        let err = Err(Error::Internal("boom".into()));
        assert_eq!(
            verdict(&err, None),
            v(ResultState::Error, "storesync could not finish: boom")
        );
        assert_eq!(
            verdict(&done(applied, None, &[], None), Some(&"b".repeat(40))).description,
            "non-fast-forward from bbbbbbbbbbbb: applied 2, pruned 0, unchanged 40"
        );
    }
}
