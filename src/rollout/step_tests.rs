//! The rollout step on hand-built plans, records, health and times.
use super::*;
use crate::desired::model::{OnFailure, RolloutConfig, Scalar};
use crate::plan::{Action, Change, ObjectKind, Plan, StorePlan, Summary};
use crate::source::Revision;

const C1: &str = "1111111111111111111111111111111111111111";
const C2: &str = "2222222222222222222222222222222222222222";
const T0: i64 = 1_800_000_000;

fn config(canaries: &[&str], waves: &[&str]) -> RolloutConfig {
    RolloutConfig {
        canaries: canaries.iter().map(|s| s.to_string()).collect(),
        waves: waves.iter().map(|w| Scalar::Text(w.to_string())).collect(),
        max_unhealthy: Scalar::Number(0),
        health_timeout: "10m".into(),
        soak: "2m".into(),
        on_failure: OnFailure::Halt,
    }
}

fn store_plan(name: &str, action: Action, hash: &str) -> StorePlan {
    let changes = match action {
        Action::Update => vec![Change {
            kind: ObjectKind::HelmRelease,
            namespace: Some(format!("store-{name}")),
            name: name.to_string(),
            action: Action::Update,
            diff: None,
            reason: Some(crate::plan::CHANGED_REASON.into()),
            drift: None,
        }],
        _ => Vec::new(),
    };
    StorePlan {
        store: name.to_string(),
        action,
        owner: None,
        engine: None,
        plan: None,
        domain: None,
        spec_hash: Some(hash.to_string()),
        reason: None,
        retired_at: None,
        retired_by: None,
        purge_at: None,
        wave: None,
        changes,
    }
}

/// A plan that updates each of `updates` (store, spec hash) by a chart change, and leaves
/// `unchanged` alone.
fn plan(updates: &[(&str, &str)], unchanged: &[&str]) -> Plan {
    let mut stores: Vec<StorePlan> = updates
        .iter()
        .map(|(name, hash)| store_plan(name, Action::Update, hash))
        .chain(
            unchanged
                .iter()
                .map(|name| store_plan(name, Action::Unchanged, "h2")),
        )
        .collect();
    stores.sort_by(|a, b| a.store.cmp(&b.store));
    Plan {
        revision: Revision {
            commit: None,
            label: "test".into(),
        },
        offline: false,
        summary: Summary::default(),
        stores,
        blocked: Vec::new(),
    }
}

fn healthy(_: &str) -> Judged {
    Judged {
        healthy: true,
        why: String::new(),
    }
}

/// Every store Healthy but those of `bad`, which crash-loop.
fn all_but<'a>(bad: &'a [&'a str]) -> impl Fn(&str) -> Judged + 'a {
    move |store| Judged {
        healthy: !bad.contains(&store),
        why: "Degraded: Deployment web CrashLoopBackOff".into(),
    }
}

fn held(step: &Step) -> Vec<&str> {
    step.hold.keys().map(String::as_str).collect()
}

fn five(hash: &str) -> Vec<(&'static str, String)> {
    ["a", "b", "c", "d", "e"]
        .iter()
        .map(|s| (*s, hash.to_string()))
        .collect()
}

fn plan_of(updates: &[(&'static str, String)]) -> Plan {
    let pairs: Vec<(&str, &str)> = updates.iter().map(|(s, h)| (*s, h.as_str())).collect();
    plan(&pairs, &[])
}

#[test]
fn a_change_to_two_stores_or_more_starts_with_the_canaries_alone() {
    let cfg = config(&["c"], &["50%", "100%"]);
    let step = step(
        &Record::default(),
        &plan_of(&five("h2")),
        Some(&cfg),
        C1,
        T0,
        &healthy,
    );
    assert_eq!(held(&step), ["a", "b", "d", "e"], "only the canary goes");
    assert!(step.wave_applied);
    let run = step.record.run.as_ref().unwrap();
    let names: Vec<Vec<&str>> = run
        .waves
        .iter()
        .map(|w| w.iter().map(|t| t.store.as_str()).collect())
        .collect();
    assert_eq!(names, vec![vec!["c"], vec!["a", "b"], vec!["d", "e"]]);
    assert_eq!(step.progress.line().unwrap(), "rollout wave 1/3: 1 of 5 updated");

    // One store updated: no rollout, nothing held, nothing recorded.
    let one = step_of_one();
    assert!(one.hold.is_empty() && one.record.run.is_none() && one.progress == Progress::None);
}

fn step_of_one() -> Step {
    step(
        &Record::default(),
        &plan(&[("a", "h2")], &["b"]),
        Some(&config(&[], &["100%"])),
        C1,
        T0,
        &healthy,
    )
}

/// The record after the canary of a run over five stores was applied at T0.
fn canary_applied() -> Record {
    let cfg = config(&["c"], &["50%", "100%"]);
    step(
        &Record::default(),
        &plan_of(&five("h2")),
        Some(&cfg),
        C1,
        T0,
        &healthy,
    )
    .record
}

/// The plan once `done` stores are at h2: the others still to update.
fn remaining(done: &[&str]) -> Plan {
    let left: Vec<(&'static str, String)> = five("h2")
        .into_iter()
        .filter(|(s, _)| !done.contains(s))
        .collect();
    plan_of(&left)
}

#[test]
fn a_healthy_wave_soaks_then_the_next_starts() {
    let cfg = config(&["c"], &["50%", "100%"]);
    let record = canary_applied();
    // Healthy at once: it must stay so for the soak (2m).
    let s1 = step(&record, &remaining(&["c"]), Some(&cfg), C1, T0 + 30, &healthy);
    assert_eq!(held(&s1), ["a", "b", "d", "e"]);
    assert!(!s1.wave_applied);
    assert_eq!(s1.record.run.as_ref().unwrap().healthy_since, Some(T0 + 30));
    let Progress::InFlight { waiting, .. } = &s1.progress else {
        panic!("{:?}", s1.progress)
    };
    assert!(waiting.starts_with("Healthy, soaking until"), "{waiting}");

    let s2 = step(&s1.record, &remaining(&["c"]), Some(&cfg), C1, T0 + 150, &healthy);
    assert_eq!(held(&s2), ["d", "e"], "wave 2 (a, b) starts");
    assert!(s2.wave_applied);
    assert_eq!(s2.progress.line().unwrap(), "rollout wave 2/3: 3 of 5 updated");

    // A store of the wave turning unhealthy during its soak starts the soak over.
    let s3 = step(
        &s2.record,
        &remaining(&["c", "a", "b"]),
        Some(&cfg),
        C1,
        T0 + 160,
        &healthy,
    );
    let s4 = step(
        &s3.record,
        &remaining(&["c", "a", "b"]),
        Some(&cfg),
        C1,
        T0 + 200,
        &all_but(&["a"]),
    );
    assert_eq!(s4.record.run.as_ref().unwrap().healthy_since, None);
    let s5 = step(
        &s4.record,
        &remaining(&["c", "a", "b"]),
        Some(&cfg),
        C1,
        T0 + 290,
        &healthy,
    );
    assert_eq!(held(&s5), ["d", "e"], "soaking again since T0 + 290");

    let s6 = step(
        &s5.record,
        &remaining(&["c", "a", "b"]),
        Some(&cfg),
        C1,
        T0 + 410,
        &healthy,
    );
    assert!(s6.hold.is_empty(), "the last wave");
    let s7 = step(
        &s6.record,
        &remaining(&["c", "a", "b", "d", "e"]),
        Some(&cfg),
        C1,
        T0 + 420,
        &healthy,
    );
    let s8 = step(
        &s7.record,
        &remaining(&["c", "a", "b", "d", "e"]),
        Some(&cfg),
        C1,
        T0 + 540,
        &healthy,
    );
    assert_eq!(
        s8.progress.line().unwrap(),
        "rollout done: 5 stores updated in 3 waves"
    );
    assert!(s8.record.is_empty());
    // Synced again: nothing to do.
    let s9 = step(
        &s8.record,
        &remaining(&["c", "a", "b", "d", "e"]),
        Some(&cfg),
        C1,
        T0 + 600,
        &healthy,
    );
    assert_eq!(s9.progress, Progress::None);
}

#[test]
fn an_unhealthy_canary_halts_after_the_timeout_and_the_rest_is_refused() {
    let cfg = config(&["c"], &["50%", "100%"]);
    let record = canary_applied();
    let bad = all_but(&["c"]);
    let waiting = step(&record, &remaining(&["c"]), Some(&cfg), C1, T0 + 599, &bad);
    assert!(waiting.halted_now.is_none(), "the health timeout has not passed");
    assert!(waiting.progress.line().unwrap().starts_with("rollout wave 1/3"));

    let halted = step(
        &waiting.record,
        &remaining(&["c"]),
        Some(&cfg),
        C1,
        T0 + 600,
        &bad,
    );
    let halt = halted.halted_now.clone().expect("halted");
    assert_eq!(
        halt.line(),
        "rollout halted at wave 1/3: c unhealthy: Degraded: Deployment web CrashLoopBackOff"
    );
    assert_eq!(held(&halted), ["a", "b", "d", "e"]);
    assert!(halted.rollback.is_empty(), "onFailure: halt");
    assert!(halted.record.run.is_none());
    let refused: Vec<&str> = halted.record.refused.keys().map(String::as_str).collect();
    assert_eq!(refused, ["a", "b", "c", "d", "e"]);

    // The same commit, synced again (a poll, a restart, a new leader): still held, still halted.
    let again = step(
        &halted.record,
        &remaining(&["c"]),
        Some(&cfg),
        C1,
        T0 + 900,
        &healthy,
    );
    assert_eq!(held(&again), ["a", "b", "d", "e"]);
    assert!(again.record.run.is_none(), "no new run of what was refused");
    assert!(again.halted_now.is_none());
    assert_eq!(again.progress, Progress::Halted(halt.clone()));
    assert!(
        again.hold["a"].starts_with("held: rollout halted at wave 1/3: c unhealthy"),
        "{}",
        again.hold["a"]
    );

    // A fix (another spec for every store) starts a new rollout, canary first.
    let fix = plan_of(&five("h3"));
    let fixed = step(&again.record, &fix, Some(&cfg), C2, T0 + 1000, &healthy);
    assert_eq!(held(&fixed), ["a", "b", "d", "e"]);
    assert!(fixed.record.halt.is_none() && fixed.record.refused.is_empty());
    assert_eq!(fixed.record.run.as_ref().unwrap().commit, C2);
    assert_eq!(fixed.progress.line().unwrap(), "rollout wave 1/3: 1 of 5 updated");
}

#[test]
fn rollback_takes_back_only_the_unhealthy_stores_of_the_failed_wave() {
    let mut cfg = config(&["c"], &["50%", "100%"]);
    cfg.on_failure = OnFailure::Rollback;
    cfg.max_unhealthy = Scalar::Text("50%".into());
    let record = canary_applied();
    let s1 = step(&record, &remaining(&["c"]), Some(&cfg), C1, T0 + 130, &healthy);
    let s2 = step(&s1.record, &remaining(&["c"]), Some(&cfg), C1, T0 + 260, &healthy);
    assert_eq!(held(&s2), ["d", "e"], "wave 2: a and b");
    // Wave 2 has two stores; 50% of 2 is one: one unhealthy store passes, two do not.
    let one_bad = step(
        &s2.record,
        &remaining(&["c", "a", "b"]),
        Some(&cfg),
        C1,
        T0 + 260 + 600,
        &all_but(&["a"]),
    );
    assert!(
        one_bad.halted_now.is_none() && one_bad.hold.is_empty(),
        "within maxUnhealthy"
    );

    let s3 = step(
        &s2.record,
        &remaining(&["c", "a", "b"]),
        Some(&cfg),
        C1,
        T0 + 260 + 600,
        &all_but(&["a", "b"]),
    );
    assert_eq!(s3.halted_now.as_ref().unwrap().wave, 2);
    assert_eq!(s3.rollback, ["a", "b"], "the canary was Healthy: it stays");
    let refused: Vec<&str> = s3.record.refused.keys().map(String::as_str).collect();
    assert_eq!(refused, ["a", "b", "d", "e"]);
}

#[test]
fn a_newer_head_takes_over_at_the_wave_boundary() {
    let cfg = config(&["c"], &["50%", "100%"]);
    let record = canary_applied();
    // C2 changes every store again while the canary of C1 soaks: nothing of C2 goes yet.
    let newer = plan_of(&five("h3"));
    let s1 = step(&record, &newer, Some(&cfg), C2, T0 + 60, &healthy);
    assert_eq!(held(&s1), ["a", "b", "c", "d", "e"]);
    assert!(
        s1.hold["c"].starts_with("waits for wave 1/3 of the rollout to end"),
        "{}",
        s1.hold["c"]
    );
    // The wave ends: C2's own rollout starts, with its canary.
    let s2 = step(&s1.record, &newer, Some(&cfg), C2, T0 + 200, &healthy);
    assert_eq!(s2.record.run.as_ref().unwrap().commit, C2);
    assert_eq!(held(&s2), ["a", "b", "d", "e"]);
}

#[test]
fn an_update_that_did_not_apply_is_judged_as_it_stands_and_counts_as_unhealthy() {
    let cfg = config(&["c"], &["50%", "100%"]);
    let record = canary_applied();
    // c's upgrade failed: it is still to update, and is not tried again while its wave is
    // judged (a failing upgrade would cost a helm timeout at every look).
    let s1 = step(&record, &remaining(&[]), Some(&cfg), C1, T0 + 60, &healthy);
    assert_eq!(held(&s1), ["a", "b", "c", "d", "e"]);
    let s2 = step(&s1.record, &remaining(&[]), Some(&cfg), C1, T0 + 600, &healthy);
    assert_eq!(
        s2.halted_now.unwrap().line(),
        "rollout halted at wave 1/3: c unhealthy: its update did not apply"
    );
}

#[test]
fn without_rollout_in_storesync_yaml_everything_goes_and_the_record_is_cleared() {
    let record = canary_applied();
    let s = step(&record, &remaining(&["c"]), None, C1, T0 + 60, &healthy);
    assert!(s.hold.is_empty());
    assert!(s.record.is_empty());
    assert_eq!(s.progress, Progress::None);
}

#[test]
fn a_halt_at_the_last_wave_keeps_its_commit_failed() {
    let cfg = config(&[], &["100%"]);
    let two = plan(&[("a", "h2"), ("b", "h2")], &[]);
    let started = step(&Record::default(), &two, Some(&cfg), C1, T0, &healthy);
    assert!(started.hold.is_empty(), "one wave of both");
    let done: Plan = plan(&[], &["a", "b"]);
    let halted = step(&started.record, &done, Some(&cfg), C1, T0 + 600, &all_but(&["b"]));
    assert!(halted.halted_now.is_some());
    let again = step(&halted.record, &done, Some(&cfg), C1, T0 + 700, &healthy);
    assert!(
        matches!(again.progress, Progress::Halted(_)),
        "{:?}",
        again.progress
    );
    // A later commit that leaves b as it is stays halted: b still runs the refused spec.
    let unrelated = step(&again.record, &done, Some(&cfg), C2, T0 + 800, &healthy);
    assert!(matches!(unrelated.progress, Progress::Halted(_)));
    assert!(unrelated.hold.is_empty(), "nothing to hold: b is not written to");
    // A commit that changes b (a fix, here of b alone) leaves the halt behind.
    let fix = plan(&[("b", "h3")], &["a"]);
    let fixed = step(&again.record, &fix, Some(&cfg), C2, T0 + 900, &healthy);
    assert_eq!(fixed.progress, Progress::None, "one update: no rollout");
    assert!(fixed.record.is_empty());
    assert!(fixed.hold.is_empty());
}

#[test]
fn a_canary_whose_upgrade_failed_is_not_upgraded_again_while_judged_or_once_halted() {
    let cfg = config(&["c"], &["50%", "100%"]);
    let record = canary_applied();
    // helm --wait failed: the release is `failed` at the new spec, which the plan repairs.
    let mut plan = remaining(&["c"]);
    let mut repair = store_plan("c", Action::Update, "h2");
    repair.changes[0].reason = Some("release status is failed".into());
    plan.stores.push(repair);
    plan.stores.sort_by(|a, b| a.store.cmp(&b.store));
    let failed = |store: &str| Judged {
        healthy: store != "c",
        why: "release failed".into(),
    };
    let s1 = step(&record, &plan, Some(&cfg), C1, T0 + 60, &failed);
    assert_eq!(
        held(&s1),
        ["a", "b", "c", "d", "e"],
        "no retry while the wave is judged"
    );
    let s2 = step(&s1.record, &plan, Some(&cfg), C1, T0 + 600, &failed);
    assert_eq!(s2.halted_now.as_ref().unwrap().reason, "release failed");
    let s3 = step(&s2.record, &plan, Some(&cfg), C1, T0 + 900, &failed);
    assert!(
        s3.hold["c"].starts_with(HELD),
        "the refused spec is not run again: {:?}",
        s3.hold
    );
}

#[test]
fn a_quota_change_is_waved_but_never_rolled_back_as_a_release() {
    let mut cfg = config(&[], &["100%"]);
    cfg.on_failure = OnFailure::Rollback;
    let quota = |name: &str| {
        let mut s = store_plan(name, Action::Update, "h2");
        s.changes[0].kind = ObjectKind::ResourceQuota;
        s.changes[0].reason = None;
        s
    };
    let mut two = plan(&[], &[]);
    two.stores = vec![quota("a"), quota("b")];
    let started = step(&Record::default(), &two, Some(&cfg), C1, T0, &healthy);
    let run = started
        .record
        .run
        .as_ref()
        .expect("a quota change to two stores is waved");
    assert!(run.waves[0].iter().all(|t| !t.upgrade));
    let done = plan(&[], &["a", "b"]);
    let halted = step(&started.record, &done, Some(&cfg), C1, T0 + 600, &all_but(&["b"]));
    assert!(halted.halted_now.is_some());
    assert!(
        halted.rollback.is_empty(),
        "helm rollback would take b's release back past a revision the rollout never made"
    );
}
