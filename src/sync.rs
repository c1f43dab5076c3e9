//! One sync of one commit: load and validate the catalog, observe the cluster, plan, apply,
//! prune last. The CLI's `apply` and the daemon both run exactly this.
use tracing::{info, instrument};

use crate::apply::{self, Applier, SyncReport};
use crate::desired::{self, Catalog, Diagnostic};
use crate::error::Result;
use crate::live;
use crate::plan::{self, Plan, PlanOptions};
use crate::source::Snapshot;

/// What a sync came to.
#[derive(Debug)]
pub enum SyncOutcome {
    /// The catalog is invalid: nothing was applied, nothing pruned.
    Invalid(Vec<Diagnostic>),
    Done(Box<Synced>),
}

/// A sync that ran: the catalog, its plan and what applying it did.
#[derive(Debug)]
pub struct Synced {
    pub catalog: Catalog,
    pub plan: Plan,
    pub report: SyncReport,
    /// The cluster as observed before applying.
    pub live: live::LiveState,
}

/// Plans `snapshot` against the live cluster without writing: the catalog must be valid and
/// within the operator's policy; the prune breaker also holds to the limit recorded at the last
/// successfully applied commit.
pub async fn plan_against_cluster(
    applier: &Applier,
    snapshot: &Snapshot,
    mut options: PlanOptions,
) -> Result<std::result::Result<(Catalog, Plan, live::LiveState), Vec<Diagnostic>>> {
    let catalog = match desired::load(&snapshot.raw) {
        Ok(c) => c,
        Err(findings) => return Ok(Err(findings)),
    };
    let outside = desired::chart_policy(
        &snapshot.raw,
        &catalog.platform,
        &applier.helm.allowed_chart_prefixes,
    );
    if !outside.is_empty() {
        return Ok(Err(outside));
    }
    let own_namespace = applier.own_namespace();
    let (live, applied) = tokio::join!(
        live::observe(&applier.client),
        live::read_applied(&applier.client, &own_namespace),
    );
    let (mut live, applied) = (live?, applied?);
    live.applied = applied;
    options.allow_prune_all = applier.policy.allow_prune_all;
    let plan = plan::plan_catalog(snapshot.revision.clone(), &catalog, &live, options, false);
    Ok(Ok((catalog, plan, live)))
}

#[instrument(skip_all, fields(revision = %snapshot.revision.label))]
pub async fn sync(applier: &Applier, snapshot: &Snapshot, options: PlanOptions) -> Result<SyncOutcome> {
    let (catalog, plan, live) = match plan_against_cluster(applier, snapshot, options).await? {
        Ok(planned) => planned,
        Err(findings) => return Ok(SyncOutcome::Invalid(findings)),
    };
    info!(summary = %plan.summary.line(), "planned");
    let report = apply::apply(applier, &catalog, &plan, &live).await;
    info!(result = %report.description(), "synced");
    record_applied(applier, &catalog, &plan, &live, &report).await?;
    Ok(SyncOutcome::Done(Box::new(Synced {
        catalog,
        plan,
        report,
        live,
    })))
}

/// After a sync that applied everything it planned, records its commit's prune limit for the
/// breaker of later syncs. Not recording is an error, never silence: without a record, a
/// later commit would set its own limit.
async fn record_applied(
    applier: &Applier,
    catalog: &Catalog,
    plan: &Plan,
    live: &live::LiveState,
    report: &SyncReport,
) -> Result<()> {
    if applier.dry_run || report.failed() || plan.is_blocked() {
        return Ok(());
    }
    let applied = live::AppliedLimits {
        commit: plan.revision.commit.clone().unwrap_or_default(),
        max_prunes_per_sync: catalog.platform.limits.max_prunes_per_sync,
    };
    if live.applied.as_ref() == Some(&applied) {
        return Ok(());
    }
    apply::record_applied(&applier.client, &applier.own_namespace(), &applied).await
}
