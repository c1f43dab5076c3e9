//! Pull-request plans: read-only, on their own workers, planned exactly as a sync would plan.
use std::sync::Arc;

use tracing::{instrument, warn};

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

#[instrument(skip_all, fields(pr = trigger.number, revision = %trigger.sha))]
async fn run(ctx: &Context, trigger: PlanTrigger) {
    let tracked = ctx.settings.tracked.clone();
    let (number, sha) = (trigger.number, trigger.sha.clone());
    let metrics = ctx.metrics.clone();
    ctx.pr_feedback(number, FeedbackKind::Planning { sha: sha.clone() });
    let read = blocking(move || {
        let opened = tracked.open()?;
        if opened.recloned.is_some() {
            metrics.git_cache_recloned();
        }
        tracked.fetch_pull(&opened, number, &sha)?;
        let catalog_dir = opened.subdir.to_string_lossy().replace('\\', "/");
        Ok((tracked.snapshot(&opened, &sha)?, catalog_dir))
    })
    .await;
    let mut catalog_dir = String::new();
    let report = |catalog_dir: &str, result| {
        let report = PlanReport::new(
            trigger.sha.clone(),
            catalog_dir.to_owned(),
            trigger.from_fork,
            result,
        );
        ctx.pr_feedback(trigger.number, FeedbackKind::Planned(Box::new(report)));
    };
    let finish = |state: ResultState, description: String, plan: String, errors| {
        ctx.post(&trigger.sha, PLAN_CONTEXT, state.status(), &description);
        ctx.state.record_commit(CommitRecord {
            sha: trigger.sha.clone(),
            kind: CommitKind::Plan,
            pull_request: Some(trigger.number),
            finished: now(),
            state,
            description,
            plan,
            report: None,
            errors,
        });
        ctx.metrics.plan_finished(state.as_str());
    };
    // storesync could not plan: no plan text, no findings.
    let error = |description: String| finish(ResultState::Error, description, String::new(), Vec::new());
    let snapshot = match read {
        Ok((s, dir)) => {
            catalog_dir = dir;
            s
        }
        Err(e) => {
            warn!(error = %printable(&e.to_string()), "cannot read the pull request's commit");
            let message = format!("storesync could not read the commit: {e}");
            report(&catalog_dir, PlanResult::Failed(message.clone()));
            return error(message);
        }
    };
    // The same planning as a sync: policy, breaker record and all, never a write.
    let plan = match sync::plan_against_cluster(&ctx.applier, &snapshot, PlanOptions::default()).await {
        Ok(Ok((_, plan, _))) => plan,
        Ok(Err(findings)) => {
            let errors = findings.iter().map(ToString::to_string).collect();
            report(&catalog_dir, PlanResult::Invalid(findings.clone()));
            return finish(
                ResultState::Failure,
                first_errors(&findings),
                String::new(),
                errors,
            );
        }
        Err(e) => {
            let message = format!("storesync could not observe the cluster: {e}");
            report(&catalog_dir, PlanResult::Failed(message.clone()));
            return error(message);
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
    report(&catalog_dir, PlanResult::Planned(plan));
    finish(state, description, text, Vec::new());
}

impl Context {
    /// Feedback on pull request `number` beside its status: the plan comment, the check run.
    fn pr_feedback(&self, number: u64, kind: FeedbackKind) {
        if let Some(statuses) = &self.statuses {
            statuses.feedback(PrFeedback { number, kind });
        }
    }

    /// Pull request `number` was closed or merged: its pending plan is dropped and its comment
    /// says so, no longer updated.
    pub fn pull_request_closed(&self, number: u64, merged: bool) {
        self.plans.cancel(number);
        self.pr_feedback(number, FeedbackKind::Closed { merged });
    }
}
