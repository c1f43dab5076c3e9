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

/// Plans `snapshot` against the live cluster without writing.
pub async fn plan_against_cluster(
    applier: &Applier,
    snapshot: &Snapshot,
    options: PlanOptions,
) -> Result<std::result::Result<(Catalog, Plan, live::LiveState), Vec<Diagnostic>>> {
    let catalog = match desired::load(&snapshot.raw) {
        Ok(c) => c,
        Err(findings) => return Ok(Err(findings)),
    };
    let live = live::observe(&applier.client).await?;
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
    Ok(SyncOutcome::Done(Box::new(Synced {
        catalog,
        plan,
        report,
        live,
    })))
}
