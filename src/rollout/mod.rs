//! Rollouts in waves: a change that updates many stores at once (a chart version, an engine
//! value, a plan's quota) reaches them a wave at a time, each wave judged by store health, and
//! stops by itself when a wave is unhealthy.
//!
//! A rollout is carried by syncs, not inside one: each sync (a push, a poll, the daemon's
//! rollout check) judges the wave applied last and, when it ended, applies the next. The record
//! in the cluster says where the run stands, so restarts and a new leader go on from there, the
//! daemon stays free between syncs (webhooks, pull-request plans, the Lease), and waiting costs
//! one observation of the cluster per check, no helm.
mod record;
mod step;

use tracing::{info, warn};

pub use record::{Halt, ROLLOUT_CONFIGMAP, Record, Run, Target, read, write};
pub use step::{HELD, Judged, Progress, Step, step};

use crate::apply::{Applier, StoreEvent};
use crate::desired::Catalog;
use crate::error::Result;
use crate::live::LiveState;
use crate::live::health::Health;
use crate::plan::{Action, Plan};

/// What a sync does about rollouts: the step it took and the plan it applies.
#[derive(Debug)]
pub struct Carried {
    pub step: Step,
    /// The record as read, to write only what changed.
    pub read: Record,
}

/// Whether this sync has anything to do with rollouts: one is configured, or the record holds
/// one (a run or a halt from before `rollout` left storesync.yaml).
pub fn concerns(catalog: &Catalog, read: &Record) -> bool {
    catalog.platform.rollout.is_some() || !read.is_empty()
}

/// Takes this sync's step from the record `read`. When a run is in flight, `live` must hold the
/// health of its wave as judged now (what the last sync applied is what counts).
pub fn begin(applier: &Applier, catalog: &Catalog, plan: &Plan, live: &LiveState, read: Record) -> Carried {
    let config = catalog.platform.rollout.as_ref();
    let commit = plan.revision.commit.clone().unwrap_or_default();
    let judge = |store: &str| judged(live, store);
    let step = step::step(&read, plan, config, &commit, (applier.clock)(), &judge);
    if let Some(line) = step.progress.line() {
        info!(rollout = %line, held = step.hold.len(), "rollout step");
    }
    Carried { step, read }
}

/// A store's health as a wave's gate reads it.
fn judged(live: &LiveState, store: &str) -> Judged {
    // A store that left the catalog since (retired, or gone) is no longer the rollout's to judge.
    let Some(l) = live.stores.get(store).filter(|l| l.retirement().is_none()) else {
        return Judged {
            healthy: true,
            why: String::new(),
        };
    };
    // What the store's objects say comes first (the pod that crash-loops); then its release.
    let status = l.release.as_ref().map_or("missing", |r| r.status.as_str());
    match &l.health {
        Some(h) if h.health != Health::Healthy => Judged {
            healthy: false,
            why: match &h.reason {
                Some(reason) => format!("{}: {reason}", h.health),
                None => h.health.to_string(),
            },
        },
        Some(_) if status != "deployed" => Judged {
            healthy: false,
            why: format!("release {status}"),
        },
        Some(_) => Judged {
            healthy: true,
            why: String::new(),
        },
        None => Judged {
            healthy: false,
            why: "health unknown".into(),
        },
    }
}

impl Carried {
    /// Gives `plan`'s stores the waves of the run in flight, as fixed when it started (a plan
    /// alone would split what is left of it anew); updates outside the run have none yet.
    pub fn annotate(&self, plan: &mut Plan, config: Option<&crate::desired::model::RolloutConfig>) {
        let Some(run) = &self.step.record.run else { return };
        let waves: Vec<Vec<&str>> = run
            .waves
            .iter()
            .map(|w| w.iter().map(|t| t.store.as_str()).collect())
            .collect();
        let place = crate::plan::waves::places(&waves, config);
        for s in &mut plan.stores {
            s.wave = place.get(&s.store).copied();
        }
    }

    /// `plan` with the held updates turned into skips that say why.
    pub fn held(&self, plan: &Plan) -> Plan {
        if self.step.hold.is_empty() {
            return plan.clone();
        }
        let mut held = plan.clone();
        for s in &mut held.stores {
            if let Some(reason) = self.step.hold.get(&s.store) {
                s.action = Action::Skip;
                s.reason = Some(reason.clone());
            }
        }
        held
    }

    /// After the apply: the rollbacks a halt asks for and its Events. `live` is the cluster as
    /// observed before the apply (the revisions to roll back from).
    pub async fn finish(&mut self, applier: &Applier, live: &LiveState) {
        if applier.dry_run || !applier.gate.is_open() {
            return;
        }
        if let Some(halt) = &self.step.halted_now {
            warn!(halt = %halt.line(), "rollout halted");
            let stores: Vec<&String> = self
                .read
                .run
                .as_ref()
                .map(|r| r.waves[r.wave].iter().map(|t| &t.store).collect())
                .unwrap_or_default();
            for store in stores {
                let note = format!(
                    "{} ({}); no later wave starts, and a commit that changes the halted stores starts a new \
                     rollout",
                    halt.line(),
                    halt.of_commit()
                );
                applier.event(store, StoreEvent::RolloutHalted, note).await;
            }
        }
        for store in &self.step.rollback {
            let Some(l) = live.stores.get(store) else { continue };
            let from = l.release.as_ref().map_or(0, |r| r.revision);
            match applier.roll_back(store, l).await {
                Ok(to) => {
                    let note = format!(
                        "rolled back from revision {from} to revision {to}: it was not Healthy when its wave of the \
                         rollout ended"
                    );
                    applier.event(store, StoreEvent::RolledBack, note).await;
                }
                Err(e) => {
                    warn!(store = %store, error = %e, "cannot roll back after the rollout halted");
                    applier
                        .event(
                            store,
                            StoreEvent::HelmFailed,
                            format!("rollback after the rollout halted: {e}"),
                        )
                        .await;
                }
            }
        }
    }

    /// Writes the record when it changed. A wave just applied is dated now, once its writes are
    /// done (helm --wait included); when `live`, judged after them, finds it Healthy, its soak
    /// starts now too.
    pub async fn record(&mut self, applier: &Applier, live: &LiveState) -> Result<()> {
        if applier.dry_run || !applier.gate.is_open() {
            return Ok(());
        }
        if self.step.wave_applied
            && let Some(run) = &mut self.step.record.run
        {
            let now = (applier.clock)();
            run.applied_at = now;
            let healthy =
                live.health_fresh && run.waves[run.wave].iter().all(|t| judged(live, &t.store).healthy);
            run.healthy_since = healthy.then_some(now);
        }
        if self.step.record != self.read {
            record::write(&applier.client, &applier.own_namespace(), &self.step.record).await?;
        }
        Ok(())
    }
}
