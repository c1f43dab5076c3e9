//! One sync of the tracked branch's head, and what it tells GitHub: every commit a push
//! announced hears `pending` at once and a final state later — its own, or that of the sync
//! that covered it (`superseded by <sha>: …`). A poll that finds the same head and reaches the
//! same verdict posts nothing.
use std::time::Instant;

use tracing::{error, info, instrument, warn};

use super::state::{CommitKind, ResultState};
use super::{CommitRecord, Context, LastResult, SyncRecord, SyncTrigger, blocking, now, store_views};
use crate::apply::Outcome;
use crate::desired;
use crate::error::{Error, Result};
use crate::live;
use crate::live::health::Health;
use crate::plan::{self, PlanOptions};
use crate::report::{MAX_DESCRIPTION_CHARS, SYNC_CONTEXT, StatusState};
use crate::rollout::Progress;
use crate::source::Snapshot;
use crate::source::tracked::is_strict_ancestor;
use crate::sync::{self, SyncOutcome, Synced};
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
    // A rollout's state comes first: halted is a failure, in flight is pending.
    let (state, description) = match (outcome, state) {
        (Ok(SyncOutcome::Done(synced)), ResultState::Success | ResultState::Failure) => {
            match synced.rollout.as_ref().map(|r| &r.progress) {
                Some(p @ Progress::Halted(_)) => (
                    ResultState::Failure,
                    format!("{}; {description}", p.line().unwrap_or_default()),
                ),
                Some(p @ Progress::InFlight { .. }) if state == ResultState::Success => (
                    ResultState::Pending,
                    format!("{}; {description}", p.line().unwrap_or_default()),
                ),
                Some(p @ Progress::Done { .. }) => {
                    (state, format!("{}; {description}", p.line().unwrap_or_default()))
                }
                _ => (state, description),
            }
        }
        (_, state) => (state, description),
    };
    let description = match non_fast_forward {
        Some(previous) => format!("non-fast-forward from {}: {description}", short(previous)),
        None => description,
    };
    // Health does not change the state (yet): it is told after what the sync did, as room allows.
    let description = match outcome {
        Ok(SyncOutcome::Done(synced)) => with_health(description, &unhealthy_applied(synced)),
        _ => description,
    };
    Verdict { state, description }
}

/// The healths a commit status names, worst first, and the word for each.
const NOT_HEALTHY: [(Health, &str); 4] = [
    (Health::Degraded, "degraded"),
    (Health::Missing, "missing"),
    (Health::Progressing, "progressing"),
    (Health::Unknown, "unknown"),
];

/// The stores this sync applied that were judged not Healthy after it, by health (worst
/// first), each group's names sorted. A store not judged is not named: nothing is known of it.
fn unhealthy_applied(synced: &Synced) -> Vec<(&'static str, Vec<&str>)> {
    let health_of = |store: &str| {
        let live = synced.live.stores.get(store)?;
        live.health.as_ref().map(|h| h.health)
    };
    NOT_HEALTHY
        .iter()
        .filter_map(|(health, word)| {
            let mut names: Vec<&str> = synced
                .report
                .stores
                .iter()
                .filter(|r| {
                    matches!(r.outcome, Outcome::Applied | Outcome::Restored)
                        && health_of(&r.store) == Some(*health)
                })
                .map(|r| r.store.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            (!names.is_empty()).then_some((*word, names))
        })
        .collect()
}

/// `description` followed by the groups (`; 1 degraded: acme; 2 progressing: a, b`), within
/// [`MAX_DESCRIPTION_CHARS`]: worse groups and first names go in first, a group whose names did
/// not all fit ends in `…`, and what does not fit at all is left out (the store table has it).
fn with_health(description: String, groups: &[(&'static str, Vec<&str>)]) -> String {
    let render = |shown: &[usize]| {
        let mut text = description.clone();
        for ((word, names), n) in groups.iter().zip(shown) {
            text.push_str(&format!("; {} {word}", names.len()));
            if *n > 0 {
                text.push_str(&format!(": {}", names[..*n].join(", ")));
                if *n < names.len() {
                    text.push_str(", …");
                }
            }
        }
        text
    };
    let fits = |shown: &[usize]| render(shown).chars().count() <= MAX_DESCRIPTION_CHARS;
    // The groups that fit as bare counts, worst first, then as many names as fit, in order.
    let mut shown: Vec<usize> = Vec::new();
    while shown.len() < groups.len() && fits(&[shown.as_slice(), &[0]].concat()) {
        shown.push(0);
    }
    'names: for g in 0..shown.len() {
        while shown[g] < groups[g].1.len() {
            shown[g] += 1;
            if !fits(&shown) {
                shown[g] -= 1;
                break 'names;
            }
        }
    }
    render(&shown)
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

/// Runs one sync; how it ended (`error` is retried, `pending` checked again soon).
#[instrument(skip_all, fields(reason = trigger.reason.label(), revision))]
pub(super) async fn run(ctx: &Context, trigger: SyncTrigger) -> ResultState {
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
            return ResultState::Error;
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
    let wrote = matches!(&outcome, Ok(SyncOutcome::Done(s)) if s.report.summary.wrote());
    let changed = !repeat
        || last.as_ref().is_some_and(|l| {
            l.state != v.state || (v.state != ResultState::Success && l.description != v.description) || wrote
        });
    if changed || announced {
        ctx.post(&head, SYNC_CONTEXT, v.state.status(), &v.description);
    }
    // Commits covered by this head hear its state; while its rollout is in flight they stay
    // pending with it, and hear its final state when it comes.
    let mut covered: Vec<String> = waiting.iter().filter(|w| **w != head).cloned().collect();
    if let Ok(mut kept) = ctx.rollout_covered.lock() {
        if v.state == ResultState::Pending {
            kept.extend(covered.iter().cloned());
            kept.dedup();
        } else {
            covered.extend(kept.drain(..).filter(|c| *c != head));
        }
    }
    for covered in &covered {
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
        let step = synced.rollout.as_ref();
        ctx.metrics.set_rollout(
            step.map(|s| &s.progress),
            step.is_some_and(|s| s.halted_now.is_some()),
        );
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
    v.state
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

/// The store table and its gauges after a sync, from the live state the sync ends with: after
/// writes, `sync::sync` observed the cluster and judged health again.
async fn refresh_stores(ctx: &Context, synced: &Synced) {
    let ready = live::readiness(&ctx.applier.client).await.unwrap_or_default();
    ctx.state.set_store_health(
        (synced.live.stores.iter())
            .filter_map(|(name, l)| Some((name.clone(), l.health.clone()?)))
            .collect(),
    );
    super::set_stores(
        ctx,
        store_views(
            &synced.live,
            Some(&synced.catalog),
            Some(&synced.report),
            &ready,
            synced.rollout.as_ref().map(|step| (&synced.plan, step)),
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Outcome, ResultSummary, StoreResult, SyncReport};
    use crate::desired::{Catalog, Diagnostic, PlatformConfig};
    use crate::live::LiveStore;
    use crate::live::health::StoreHealth;
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
            rollout: None,
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
            (ResultState::Pending, StatusState::Pending, "pending"),
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

    /// A sync that applied `stores` (name, health judged after it) and left 40 unchanged; the
    /// first, when `failed`, failed with that detail instead.
    fn applied(stores: &[(&str, Option<Health>)], failed: Option<&str>) -> Result<SyncOutcome> {
        let n = stores.len() - usize::from(failed.is_some());
        let summary = ResultSummary {
            applied: n,
            failed: usize::from(failed.is_some()),
            unchanged: 40,
            ..Default::default()
        };
        let mut outcome = done(summary, failed, &[], None);
        let Ok(SyncOutcome::Done(synced)) = &mut outcome else {
            unreachable!()
        };
        for (i, (store, health)) in stores.iter().enumerate() {
            if i > 0 || failed.is_none() {
                synced.report.stores.push(StoreResult {
                    store: store.to_string(),
                    outcome: Outcome::Applied,
                    detail: None,
                    transient: false,
                });
            }
            let live = LiveStore {
                health: health.map(|h| StoreHealth::only(h, "judged in a test")),
                ..Default::default()
            };
            synced.live.stores.insert(store.to_string(), live);
        }
        outcome
    }

    #[test]
    fn the_verdict_names_applied_stores_that_are_not_healthy_worst_first() {
        use Health::*;
        let stores = [
            ("bobs-bikes", Some(Progressing)),
            ("acme", Some(Degraded)),
            ("cafe", Some(Healthy)),
            ("deli", None),
            ("emporium", Some(Missing)),
            ("farm", Some(Progressing)),
            ("grocer", Some(Unknown)),
        ];
        assert_eq!(
            verdict(&applied(&stores, None), None),
            v(
                ResultState::Success,
                "applied 7, pruned 0, unchanged 40; 1 degraded: acme; 1 missing: emporium; \
                 2 progressing: bobs-bikes, farm; 1 unknown: grocer"
            ),
            "health does not turn a sync into a failure; a store not judged yet is not named"
        );
        assert_eq!(
            verdict(&applied(&[("acme", Some(Healthy)), ("deli", None)], None), None),
            v(ResultState::Success, "applied 2, pruned 0, unchanged 40"),
            "all healthy (or not judged): nothing to add"
        );
        assert_eq!(
            verdict(
                &applied(&[("acme", Some(Suspended)), ("b", Some(Retired))], None),
                None
            )
            .description,
            "applied 2, pruned 0, unchanged 40",
            "suspended and retired are what was asked for"
        );
        // Only what this sync applied: a store left unchanged is the store table's to tell.
        let mut unchanged = applied(&[("acme", Some(Healthy))], None);
        if let Ok(SyncOutcome::Done(synced)) = &mut unchanged {
            let live = LiveStore {
                health: Some(StoreHealth::only(Degraded, "crash loop")),
                ..Default::default()
            };
            synced.live.stores.insert("zoo".into(), live);
        }
        assert_eq!(
            verdict(&unchanged, None).description,
            "applied 1, pruned 0, unchanged 40"
        );
        assert_eq!(
            verdict(
                &applied(&[("acme", Some(Degraded)), ("b", Some(Degraded))], None),
                Some(&"b".repeat(40))
            ),
            v(
                ResultState::Success,
                "non-fast-forward from bbbbbbbbbbbb: applied 2, pruned 0, unchanged 40; 2 degraded: acme, b"
            )
        );
        assert_eq!(
            verdict(
                &applied(
                    &[("acme", None), ("bobs-bikes", Some(Degraded))],
                    Some("helm upgrade failed")
                ),
                None
            ),
            v(
                ResultState::Failure,
                "1 failed; applied 1, pruned 0, unchanged 40; acme: helm upgrade failed; 1 degraded: bobs-bikes"
            ),
            "a failure comes first, health after it"
        );
    }

    #[test]
    fn many_unhealthy_stores_fit_in_a_status_worst_and_first_names_kept() {
        let names: Vec<String> = (0..30)
            .map(|i| format!("store-with-a-long-name-{i:02}"))
            .collect();
        let mut stores: Vec<(&str, Option<Health>)> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let health = match i {
                0..10 => Health::Progressing,
                10..25 => Health::Degraded,
                _ => Health::Missing,
            };
            stores.push((name, Some(health)));
        }
        let d = verdict(&applied(&stores, None), None).description;
        assert!(
            d.chars().count() <= MAX_DESCRIPTION_CHARS,
            "{} chars: {d}",
            d.chars().count()
        );
        assert_eq!(
            d,
            "applied 30, pruned 0, unchanged 40; 15 degraded: store-with-a-long-name-10, \
             store-with-a-long-name-11, …; 5 missing; 10 progressing",
            "every group counted, names as room allows, worst first"
        );
        // A description already at the limit (a long failure) keeps it; health gives way.
        let long = "x".repeat(200);
        let d = verdict(
            &applied(&[("acme", None), ("b", Some(Health::Degraded))], Some(&long)),
            None,
        );
        assert_eq!(d.state, ResultState::Failure);
        assert!(
            d.description.ends_with('…') && !d.description.contains("degraded"),
            "{}",
            d.description
        );
        assert_eq!(d.description.chars().count(), MAX_DESCRIPTION_CHARS);
    }
}
