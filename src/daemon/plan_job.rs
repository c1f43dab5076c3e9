//! Pull-request plans: read-only, on their own workers, planned exactly as a sync would plan.
//!
//! A plan writes the pull request's feedback (comment, check run) only while its head is the
//! newest whose plan started and the pull request is open: a late `synchronize` after a close
//! plans nothing, and an older head that finishes after a newer one started never replaces it.
//! With replicas, the same holds across them through the shared record (`persist`'s pulls).
use std::sync::Arc;

use tracing::{info, instrument, warn};

use super::persist::Store;
use super::{
    CommitKind, CommitRecord, Context, PlanTrigger, ResultState, blocking, now, sync_job::first_errors,
};
use crate::plan::{self, PlanOptions};
use crate::report::{FeedbackKind, PLAN_CONTEXT, PlanReport, PlanResult, PrFeedback};
use crate::sync;
use crate::untrusted::printable;

pub(super) async fn worker(ctx: Arc<Context>) {
    while let Some(trigger) = ctx.plans.next().await {
        run(&ctx, trigger).await;
    }
}

/// One plan of a pull request's head, started: what its result is checked against before it is
/// written. Made by [`Context::start_pull_plan`].
#[derive(Debug)]
pub struct PlanTicket {
    number: u64,
    sha: String,
    /// Sequence number among this replica's plans.
    local: u64,
    /// Sequence number among every replica's, when they share one.
    shared: Option<u64>,
}

/// What a plan of one head came to.
struct Planned {
    catalog_dir: String,
    result: PlanResult,
    state: ResultState,
    description: String,
    text: String,
    errors: Vec<String>,
}

#[instrument(skip_all, fields(pr = trigger.number, revision = %trigger.sha))]
async fn run(ctx: &Context, trigger: PlanTrigger) {
    let Some(ticket) = ctx.start_pull_plan(&trigger).await else {
        return;
    };
    let planned = plan_head(ctx, &trigger).await;
    let report = PlanReport::new(
        trigger.sha.clone(),
        planned.catalog_dir,
        trigger.from_fork,
        planned.result,
    );
    ctx.finish_pull_plan(&ticket, report).await;
    // The status and the record are of this commit alone: an outdated head keeps its own.
    let state = planned.state;
    ctx.post(&trigger.sha, PLAN_CONTEXT, state.status(), &planned.description);
    ctx.state.record_commit(CommitRecord {
        sha: trigger.sha.clone(),
        kind: CommitKind::Plan,
        pull_request: Some(trigger.number),
        finished: now(),
        state,
        description: planned.description,
        plan: planned.text,
        report: None,
        errors: planned.errors,
    });
    ctx.metrics.plan_finished(state.as_str());
}

/// Reads the head and plans it against the cluster, never writing.
async fn plan_head(ctx: &Context, trigger: &PlanTrigger) -> Planned {
    let tracked = ctx.settings.tracked.clone();
    let (number, sha) = (trigger.number, trigger.sha.clone());
    // In a scratch repository of its own (depth 1, capped in bytes and time), never in the
    // shared cache nor under its lock: a fork's head cannot fill the cache or hold up syncs.
    let read = blocking(move || {
        let head = tracked.read_pull_request(number, &sha)?;
        Ok((head.snapshot, head.catalog_dir))
    })
    .await;
    // storesync could not plan: no plan text, no findings.
    let failed = |catalog_dir: String, message: String| Planned {
        catalog_dir,
        result: PlanResult::Failed(message.clone()),
        state: ResultState::Error,
        description: message,
        text: String::new(),
        errors: Vec::new(),
    };
    let (snapshot, catalog_dir) = match read {
        Ok(read) => read,
        Err(e) => {
            warn!(error = %printable(&e.to_string()), "cannot read the pull request's commit");
            return failed(String::new(), format!("storesync could not read the commit: {e}"));
        }
    };
    // The same planning as a sync: policy, breaker record and all, never a write.
    let plan = match sync::plan_against_cluster(&ctx.applier, &snapshot, PlanOptions::default()).await {
        Ok(Ok((_, plan, _))) => plan,
        Ok(Err(findings)) => {
            return Planned {
                catalog_dir,
                state: ResultState::Failure,
                description: first_errors(&findings),
                text: String::new(),
                errors: findings.iter().map(ToString::to_string).collect(),
                result: PlanResult::Invalid(findings),
            };
        }
        Err(e) => {
            return failed(
                catalog_dir,
                format!("storesync could not observe the cluster: {e}"),
            );
        }
    };
    let (state, description) = match plan.blocked.first() {
        Some(reason) => (
            ResultState::Failure,
            format!("plan: {}; blocked: {reason}", plan.summary.line()),
        ),
        None => (ResultState::Success, format!("plan: {}", plan.summary.line())),
    };
    let text = plan::render_text(&plan, &format!("pull request #{}", trigger.number));
    Planned {
        catalog_dir,
        result: PlanResult::Planned(plan),
        state,
        description,
        text,
        errors: Vec::new(),
    }
}

impl Context {
    /// Feedback on pull request `number` beside its status: the plan comment, the check run.
    fn pr_feedback(&self, number: u64, kind: FeedbackKind) {
        if let Some(statuses) = &self.statuses {
            statuses.feedback(PrFeedback { number, kind });
        }
    }

    /// The record of pull requests replicas share, when they share one.
    fn shared_pulls(&self) -> Option<Store> {
        let replicas = self.replicas.as_ref()?;
        Some(Store::new(self.applier.client.clone(), &replicas.namespace))
    }

    /// A plan of `trigger`'s head starts, and its check run says so: its ticket, or `None` when
    /// the pull request was closed (here or on another replica) and this is no reopen: a late
    /// delivery, which changes nothing.
    pub async fn start_pull_plan(&self, trigger: &PlanTrigger) -> Option<PlanTicket> {
        let number = trigger.number;
        let Some(local) = self.plans.start(trigger) else {
            info!(pr = number, "pull request closed: a late delivery plans nothing");
            return None;
        };
        let shared = match self.shared_pulls() {
            None => None,
            Some(store) => match store.start_pull(number, trigger.reopened).await {
                Ok(Some(seq)) => Some(seq),
                Ok(None) => {
                    info!(
                        pr = number,
                        "pull request closed on another replica: a late delivery plans nothing"
                    );
                    self.plans.close_pull(number, || {});
                    return None;
                }
                // The other replicas cannot be asked: this one's own order still holds.
                Err(e) => {
                    warn!(pr = number, error = %e, "cannot record the plan's start for the other replicas");
                    None
                }
            },
        };
        let ticket = PlanTicket {
            number,
            sha: trigger.sha.clone(),
            local,
            shared,
        };
        let sha = ticket.sha.clone();
        self.plans.if_current(number, local, || {
            self.pr_feedback(number, FeedbackKind::Planning { sha })
        });
        Some(ticket)
    }

    /// The plan of `ticket` finished with `report`: it becomes the pull request's feedback only
    /// while its head is the newest started (on any replica) and the pull request open;
    /// otherwise it is outdated and only completes its own head's check run. Whether it was
    /// written as the pull request's.
    pub async fn finish_pull_plan(&self, ticket: &PlanTicket, report: PlanReport) -> bool {
        let number = ticket.number;
        let newest_everywhere = match (ticket.shared, self.shared_pulls()) {
            (Some(seq), Some(store)) => store.is_current_pull(number, seq).await.unwrap_or_else(|e| {
                warn!(pr = number, error = %e, "cannot ask the other replicas whether a newer head started");
                true
            }),
            _ => true,
        };
        let mut report = Some(Box::new(report));
        let written = newest_everywhere
            && self.plans.if_current(number, ticket.local, || {
                if let Some(report) = report.take() {
                    self.pr_feedback(number, FeedbackKind::Planned(report));
                }
            });
        if let Some(report) = report {
            info!(
                pr = number, sha = %ticket.sha,
                "a newer head started, or the pull request closed: this plan is not written over it"
            );
            self.pr_feedback(number, FeedbackKind::Outdated(report));
        }
        written
    }

    /// Pull request `number` was closed or merged: its pending plan is dropped, none under way
    /// is written, its comment says so and is no longer updated; no plan of it starts, on any
    /// replica, until it is reopened.
    pub fn pull_request_closed(&self, number: u64, merged: bool) {
        self.plans.close_pull(number, || {
            self.pr_feedback(number, FeedbackKind::Closed { merged })
        });
        if let Some(store) = self.shared_pulls() {
            tokio::spawn(async move {
                if let Err(e) = store.close_pull(number).await {
                    warn!(pr = number, error = %e, "cannot tell the other replicas that the pull request closed");
                }
            });
        }
    }
}
