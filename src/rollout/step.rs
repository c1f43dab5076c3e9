//! One sync's step of a rollout, as a pure function of the record, the plan, the health of the
//! wave being judged and the time: which updates this sync holds back, which stores it rolls
//! back, and what the record says afterwards.
use std::collections::{BTreeMap, BTreeSet};

use super::record::{Halt, Record, Run, Target};
use crate::desired::model::{OnFailure, RolloutConfig};
use crate::plan::waves::{is_waved, split, upgrades_release};
use crate::plan::{Action, Plan};

/// How the reason of an update a halt refused begins (the others wait for a wave).
pub const HELD: &str = "held: ";

/// What a sync learns of a store of the wave being judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub healthy: bool,
    /// Why not, for the halt's message: `Degraded: Deployment acme-web CrashLoopBackOff`.
    pub why: String,
}

/// Where the rollout stands after this sync, for the commit status, the pages and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// No rollout: every update goes at once.
    None,
    InFlight {
        /// The wave applied last, from 1.
        wave: usize,
        of: usize,
        updated: usize,
        total: usize,
        /// What the wave waits for: `soaking until …`, `waiting for health until …`.
        waiting: String,
    },
    /// The run ended: every wave Healthy (or within `maxUnhealthy`).
    Done { total: usize, waves: usize },
    /// Updates refused by a halt are held back (the halt may be older than this sync).
    Halted(Halt),
}

impl Progress {
    /// `rollout wave 2/3: 12 of 40 updated`, or the halt's line.
    pub fn line(&self) -> Option<String> {
        match self {
            Progress::None => None,
            Progress::InFlight {
                wave,
                of,
                updated,
                total,
                ..
            } => Some(format!("rollout wave {wave}/{of}: {updated} of {total} updated")),
            Progress::Done { total, waves } => Some(format!(
                "rollout done: {total} stores updated in {waves} wave{}",
                if *waves == 1 { "" } else { "s" }
            )),
            Progress::Halted(halt) => Some(halt.line()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Updates held back this sync, with the reason the store's result says.
    pub hold: BTreeMap<String, String>,
    /// Stores to roll back to their previous release revision (`onFailure: rollback`).
    pub rollback: Vec<String>,
    pub record: Record,
    /// This sync applies a new wave: its `appliedAt` is set once the writes are done.
    pub wave_applied: bool,
    pub progress: Progress,
    /// The halt this sync decided, for its Events.
    pub halted_now: Option<Halt>,
}

/// The waved updates of `plan`, by store: the spec each is updated to.
fn updates(plan: &Plan) -> BTreeMap<String, String> {
    plan.stores
        .iter()
        .filter(|s| is_waved(s))
        .map(|s| (s.store.clone(), s.spec_hash.clone().unwrap_or_default()))
        .collect()
}

/// The waved updates of `plan` that upgrade the store's release.
fn upgrades(plan: &Plan) -> BTreeSet<String> {
    plan.stores
        .iter()
        .filter(|s| upgrades_release(s))
        .map(|s| s.store.clone())
        .collect()
}

fn time(at: i64) -> String {
    crate::text::rfc3339(at)
}

/// This sync's step. `judge` answers for the stores of the wave being judged.
pub fn step(
    record: &Record,
    plan: &Plan,
    config: Option<&RolloutConfig>,
    commit: &str,
    now: i64,
    judge: &dyn Fn(&str) -> Judged,
) -> Step {
    let mut out = Step {
        hold: BTreeMap::new(),
        rollback: Vec::new(),
        record: record.clone(),
        wave_applied: false,
        progress: Progress::None,
        halted_now: None,
    };
    let Some(config) = config else {
        // `rollout` left storesync.yaml: every update goes at once, as without it.
        out.record = Record::default();
        return out;
    };
    let mut candidates = updates(plan);
    // Every store's spec at this commit, and the stores this sync would write to (a repair of a
    // release left failed included: helm would run the refused spec again).
    let desired: BTreeMap<&str, &str> = plan
        .stores
        .iter()
        .filter_map(|s| Some((s.store.as_str(), s.spec_hash.as_deref()?)))
        .collect();
    let writing: BTreeSet<&str> = plan
        .stores
        .iter()
        .filter(|s| s.action == Action::Update)
        .map(|s| s.store.as_str())
        .collect();

    // A halt's refusal holds while the commit asks for the refused spec of the store (applied
    // already or not): a fix or a revert asks for another.
    out.record
        .refused
        .retain(|store, hash| desired.get(store.as_str()) == Some(&hash.as_str()));
    // The halted commit stays halted (its status says so at every sync); another commit, or a
    // work tree (no commit to tell), leaves the halt behind once nothing it refused is asked
    // for again.
    if out.record.refused.is_empty()
        && out
            .record
            .halt
            .as_ref()
            .is_some_and(|h| h.commit != commit || commit.is_empty())
    {
        out.record.halt = None;
    }
    if let Some(halt) = &out.record.halt {
        for store in out.record.refused.keys() {
            candidates.remove(store);
            if !writing.contains(store.as_str()) {
                continue;
            }
            out.hold.insert(
                store.clone(),
                format!(
                    "{HELD}{} ({}); a commit that changes this store starts a new rollout",
                    halt.line(),
                    halt.of_commit()
                ),
            );
        }
        out.progress = Progress::Halted(halt.clone());
    }

    if let Some(run) = out.record.run.clone() {
        match gate(&run, &candidates, config, now, judge) {
            Gate::Waiting { healthy_since, why } => {
                // The wave is judged as it stands: none of its stores is written to again (a
                // failed upgrade retried would cost a helm timeout per look), nor any update
                // of a later wave or a newer commit.
                let current = run.waves[run.wave].iter().map(|t| t.store.as_str());
                let judged = current.filter(|s| writing.contains(s));
                let waiting: BTreeSet<&str> = candidates.keys().map(String::as_str).chain(judged).collect();
                for store in waiting {
                    out.hold.insert(
                        store.to_string(),
                        format!(
                            "waits for wave {}/{} of the rollout to end: {why}",
                            run.wave + 1,
                            run.waves.len()
                        ),
                    );
                }
                let run = Run { healthy_since, ..run };
                if !matches!(out.progress, Progress::Halted(_)) {
                    out.progress = in_flight(&run, why);
                }
                out.record.run = Some(run);
                return out;
            }
            Gate::Failed { unhealthy } => {
                let (first, why) = unhealthy[0].clone();
                let halt = Halt {
                    commit: run.commit.clone(),
                    wave: run.wave + 1,
                    of: run.waves.len(),
                    store: first,
                    reason: why,
                    at: now,
                };
                let bad: BTreeSet<&str> = unhealthy.iter().map(|(s, _)| s.as_str()).collect();
                for t in run.waves[run.wave]
                    .iter()
                    .filter(|t| bad.contains(t.store.as_str()))
                {
                    out.record.refused.insert(t.store.clone(), t.spec_hash.clone());
                }
                for t in run.waves.iter().skip(run.wave + 1).flatten() {
                    out.record.refused.insert(t.store.clone(), t.spec_hash.clone());
                }
                if config.on_failure == OnFailure::Rollback {
                    // Only a release the wave upgraded goes back; guardrails are not rolled back.
                    let upgraded: BTreeSet<&str> = run.waves[run.wave]
                        .iter()
                        .filter(|t| t.upgrade)
                        .map(|t| t.store.as_str())
                        .collect();
                    out.rollback = unhealthy
                        .iter()
                        .filter(|(s, _)| upgraded.contains(s.as_str()))
                        .map(|(s, _)| s.clone())
                        .collect();
                }
                // Nothing more of any rollout goes in the sync that halts one.
                for store in candidates.keys() {
                    out.hold.insert(store.clone(), format!("{HELD}{}", halt.line()));
                }
                out.record.run = None;
                out.record.halt = Some(halt.clone());
                out.halted_now = Some(halt.clone());
                out.progress = Progress::Halted(halt);
                return out;
            }
            Gate::Passed => {
                out.record.run = None;
                if run.commit == commit {
                    // The next wave with anything left to update, in the order fixed at the start.
                    for (i, wave) in run.waves.iter().enumerate().skip(run.wave + 1) {
                        let next: Vec<&Target> = wave
                            .iter()
                            .filter(|t| candidates.get(&t.store) == Some(&t.spec_hash))
                            .collect();
                        if next.is_empty() {
                            continue;
                        }
                        let keep: BTreeSet<&str> = next.iter().map(|t| t.store.as_str()).collect();
                        for store in candidates.keys().filter(|s| !keep.contains(s.as_str())) {
                            out.hold.insert(
                                store.clone(),
                                format!(
                                    "waits for a later wave of the rollout (wave {} of {} starts now)",
                                    i + 1,
                                    run.waves.len()
                                ),
                            );
                        }
                        let run = Run {
                            wave: i,
                            applied_at: now,
                            healthy_since: None,
                            ..run
                        };
                        out.wave_applied = true;
                        if !matches!(out.progress, Progress::Halted(_)) {
                            out.progress = in_flight(&run, "applying".into());
                        }
                        out.record.run = Some(run);
                        return out;
                    }
                    if !matches!(out.progress, Progress::Halted(_)) {
                        out.progress = Progress::Done {
                            total: run.total(),
                            waves: run.waves.len(),
                        };
                    }
                    // Whatever is left was not part of the run: it goes now, at once or waved.
                    if candidates.len() < 2 {
                        return out;
                    }
                }
                // A newer head takes over at this wave boundary.
            }
        }
    }
    start(&mut out, &candidates, &upgrades(plan), config, commit, now);
    out
}

/// Starts a run over `candidates` when there are two or more; applies its first wave.
fn start(
    out: &mut Step,
    candidates: &BTreeMap<String, String>,
    upgrades: &BTreeSet<String>,
    config: &RolloutConfig,
    commit: &str,
    now: i64,
) {
    let names: Vec<&str> = candidates.keys().map(String::as_str).collect();
    let waves = split(&names, config);
    if waves.is_empty() {
        return;
    }
    let targets: Vec<Vec<Target>> = waves
        .iter()
        .map(|w| {
            w.iter()
                .map(|s| Target {
                    store: s.to_string(),
                    spec_hash: candidates[*s].clone(),
                    upgrade: upgrades.contains(*s),
                })
                .collect()
        })
        .collect();
    let first: BTreeSet<&str> = waves[0].iter().copied().collect();
    for store in candidates.keys().filter(|s| !first.contains(s.as_str())) {
        out.hold.insert(
            store.clone(),
            format!(
                "waits for a later wave of the rollout (wave 1 of {} starts now)",
                targets.len()
            ),
        );
    }
    let run = Run {
        commit: commit.to_string(),
        waves: targets,
        wave: 0,
        applied_at: now,
        healthy_since: None,
        started_at: now,
    };
    out.wave_applied = true;
    if !matches!(out.progress, Progress::Halted(_)) {
        out.progress = in_flight(&run, "applying".into());
    }
    out.record.run = Some(run);
}

fn in_flight(run: &Run, waiting: String) -> Progress {
    Progress::InFlight {
        wave: run.wave + 1,
        of: run.waves.len(),
        updated: run.updated(),
        total: run.total(),
        waiting,
    }
}

enum Gate {
    Waiting {
        healthy_since: Option<i64>,
        why: String,
    },
    Passed,
    /// More stores than `maxUnhealthy` were not Healthy when the health timeout passed.
    Failed {
        unhealthy: Vec<(String, String)>,
    },
}

/// Whether the wave being judged ended: all its stores Healthy for `soak`, or `healthTimeout`
/// passed since its update.
fn gate(
    run: &Run,
    candidates: &BTreeMap<String, String>,
    config: &RolloutConfig,
    now: i64,
    judge: &dyn Fn(&str) -> Judged,
) -> Gate {
    let wave = &run.waves[run.wave];
    let unhealthy: Vec<(String, String)> = wave
        .iter()
        .filter_map(|t| {
            // An update that did not land (its spec still to apply) is not Healthy yet.
            if candidates.get(&t.store) == Some(&t.spec_hash) {
                return Some((t.store.clone(), "its update did not apply".to_string()));
            }
            let j = judge(&t.store);
            (!j.healthy).then(|| (t.store.clone(), j.why))
        })
        .collect();
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let (soak, timeout) = (secs(config.soak()), secs(config.health_timeout()));
    if unhealthy.is_empty() {
        let since = run.healthy_since.unwrap_or(now);
        return if now.saturating_sub(since) >= soak {
            Gate::Passed
        } else {
            Gate::Waiting {
                healthy_since: Some(since),
                why: format!("Healthy, soaking until {}", time(since.saturating_add(soak))),
            }
        };
    }
    let deadline = run.applied_at.saturating_add(timeout);
    if now < deadline {
        return Gate::Waiting {
            healthy_since: None,
            why: format!(
                "{} of {} Healthy, waiting until {}",
                wave.len() - unhealthy.len(),
                wave.len(),
                time(deadline)
            ),
        };
    }
    if unhealthy.len() > config.max_unhealthy_of(wave.len()) {
        Gate::Failed { unhealthy }
    } else {
        Gate::Passed
    }
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
