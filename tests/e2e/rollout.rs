//! Rollouts in waves on a real cluster. A platform-wide engine value changed for four stores
//! reaches the canary alone, then each wave once the one before stayed Healthy for the soak,
//! every store upgraded exactly once. An image that never pulls halts the rollout after the
//! canary, which is rolled back; the same commit is never tried again, and a fix starts a new
//! rollout. `apply` tells of a rollout only through the plan's waves and each store's result, so
//! where the run stands is read as the admin from storesync's record, the ConfigMap
//! `storesync-rollout` of its namespace (`run`, `halt`, `refused`).
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::catalog::{Platform, Rollout, StoreFile, StoresRepo};
use super::cluster::{
    get, helm_history, helm_manifest, list, must_get, rv, settle_quota, snapshot, storesync_events,
    wait_until,
};
use super::harness::{E2E_NAMESPACE, Phases, ROLLOUT_RECORD, Suite, namespace};
use super::health::healthy_or_skip;
use super::identity::{can_i_as, restricted_user};
use super::output::Sync;

/// storesync's exit code when a store failed.
const EXIT_FAILED: i32 = 3;
/// `apply`'s exit code while the commit's rollout is halted.
const EXIT_HALTED: i32 = 1;
/// The tiny engine's image.
const GOOD_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// An image that never pulls (`.invalid` never resolves).
const BAD_IMAGE: (&str, &str) = ("registry.invalid/storesync-e2e/no-such-image", "0.0.0");
/// Between two syncs of a rollout, as the daemon's polls would come.
const POLL_EVERY: Duration = Duration::from_secs(3);
/// Bound of the wait for the next wave: the soak, a few syncs and one wave's helm upgrades.
const NEXT_WAVE_WITHIN: Duration = Duration::from_secs(120);
const HEALTHY_WITHIN: Duration = Duration::from_secs(180);
const SOAK: &str = "5s";
/// The bad change's `healthTimeout`: past it, the canary's wave halts the rollout.
const HALT_TIMEOUT: &str = "40s";
/// helm's `--wait` on the image that never pulls: it fails, so each sync that runs it is short.
const BROKEN_HELM_TIMEOUT: &str = "20s";
/// `--health-grace` of the syncs that judge the bad change.
const SHORT_GRACE: &str = "5s";

/// Four stores: a canary whose name sorts among the others (the canary goes first because
/// `rollout.canaries` lists it, the others by name), and the three others in name order.
struct Fleet {
    canary: String,
    rest: Vec<String>,
}

impl Fleet {
    fn new(suite: &Suite, what: &str) -> Fleet {
        let canary = suite.store(&format!("{what}-c"));
        let rest = ["a", "b", "d"]
            .iter()
            .map(|s| suite.store(&format!("{what}-{s}")))
            .collect();
        Fleet { canary, rest }
    }

    fn all(&self) -> Vec<String> {
        let mut all = vec![self.canary.clone()];
        all.extend(self.rest.iter().cloned());
        all
    }

    fn rollout(&self, health_timeout: &'static str, on_failure: &'static str) -> Rollout {
        Rollout {
            canaries: vec![self.canary.clone()],
            waves: vec!["50%", "100%"],
            max_unhealthy: 0,
            health_timeout,
            soak: SOAK,
            on_failure,
        }
    }
}

/// The suite's platform with `rollout` and the engine values `values`.
fn platform(rollout: &Rollout, values: Value) -> Platform {
    Platform {
        engine_values: values.as_object().cloned().expect("engine values are a map"),
        rollout: Some(rollout.clone()),
        ..Platform::default()
    }
}

/// storesync's rollout record as the admin reads it (`rollout.json`); `Null` when there is none.
fn record() -> Value {
    let Some(cm) = get("configmap", Some(E2E_NAMESPACE), ROLLOUT_RECORD) else {
        return Value::Null;
    };
    let text = cm["data"]["rollout.json"]
        .as_str()
        .unwrap_or_else(|| panic!("{ROLLOUT_RECORD} holds no rollout.json: {cm}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{ROLLOUT_RECORD} is not JSON ({e}): {text}"))
}

/// The stores of each wave of the run in flight, as recorded.
fn recorded_waves(record: &Value) -> Vec<Vec<String>> {
    record["run"]["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|wave| {
            wave.as_array()
                .into_iter()
                .flatten()
                .map(|t| t["store"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

/// The number of revisions of each store's release.
fn revisions(stores: &[String]) -> BTreeMap<String, usize> {
    stores
        .iter()
        .map(|s| (s.clone(), helm_history(s).len()))
        .collect()
}

/// The `message` the store's release rendered into its ConfigMap.
fn message(store: &str) -> String {
    must_get("configmap", Some(&namespace(store)), store)["data"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn detail<'a>(sync: &'a Sync, store: &str) -> &'a str {
    sync.result_store(store)
        .and_then(|r| r["detail"].as_str())
        .unwrap_or_default()
}

/// Each of `stores` was held back: outcome `skipped`, its detail starting with `says`.
fn assert_held(sync: &Sync, stores: &[String], says: &str) {
    for s in stores {
        assert_eq!(sync.outcome(s), "skipped", "{s} was not held back\n{}", sync.out);
        let d = detail(sync, s);
        assert!(
            d.starts_with(says),
            "{s}: the detail `{d}` does not start with `{says}`\n{}",
            sync.out
        );
    }
}

/// storesync records a rollout by server-side apply of its ConfigMap: `patch` of it by name and
/// `create` the first time. Asked before anything else, so that a Role without them fails here,
/// saying so, rather than as a 403 in the middle of a rollout.
fn assert_may_record_rollouts() {
    let user = restricted_user();
    let named = format!("configmaps/{ROLLOUT_RECORD}");
    let missing: Vec<String> = [
        ("get", named.as_str()),
        ("patch", named.as_str()),
        ("create", "configmaps"),
    ]
    .into_iter()
    .filter(|(verb, what)| !can_i_as(&user, &[verb, what, "-n", E2E_NAMESPACE]))
    .map(|(verb, what)| format!("{verb} {what}"))
    .collect();
    assert!(
        missing.is_empty(),
        "storesync's identity ({user}) may not {missing:?} in {E2E_NAMESPACE}, where it records rollouts \
         (ConfigMap {ROLLOUT_RECORD}). The suite grants the chart's Role \
         (deploy/helm/storesync/templates/role.yaml) and nothing more: the Role must name {ROLLOUT_RECORD} \
         beside storesync-applied."
    );
}

/// Installs the stores of commit `sha`; false (after printing SKIPPED) on a cluster whose pods
/// never run.
fn install(suite: &Suite, repo: &StoresRepo, sha: &str, fleet: &Fleet) -> bool {
    let installed = suite.apply(repo, sha, &[]);
    let needs = "a rollout's waves end by store health, which needs pods that run";
    healthy_or_skip(suite, &installed, &fleet.all(), HEALTHY_WITHIN, needs)
}

/// Applies `sha` every POLL_EVERY until the record says `done` (within NEXT_WAVE_WITHIN): the
/// sync that got there. Each sync before it is handed to `waiting`, the checks of a wave being
/// judged.
fn apply_until(
    suite: &Suite,
    repo: &StoresRepo,
    sha: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
    waiting: impl Fn(&Sync),
) -> Sync {
    let started = Instant::now();
    loop {
        std::thread::sleep(POLL_EVERY);
        let sync = suite.apply(repo, sha, &[]);
        sync.expect_code(0);
        let now = record();
        if done(&now) {
            return sync;
        }
        waiting(&sync);
        assert!(
            started.elapsed() < NEXT_WAVE_WITHIN,
            "not {what} within {NEXT_WAVE_WITHIN:?}; the record: {now}\nthe last sync:\n{}",
            sync.out
        );
    }
}

/// The plan shows each store's place in the rollout: the canary alone in wave 1, then half of
/// the others (rounded up) by name, then the rest.
fn assert_planned_waves(sync: &Sync, fleet: &Fleet) {
    assert_eq!(sync.plan_summary("update"), 4, "{}", sync.out);
    let wave = |s: &str| sync.plan_store(s).map(|p| p["wave"].clone()).unwrap_or_default();
    let (a, b, d) = (&fleet.rest[0], &fleet.rest[1], &fleet.rest[2]);
    let want = [
        (&fleet.canary, json!({ "index": 1, "of": 3, "canary": true })),
        (a, json!({ "index": 2, "of": 3 })),
        (b, json!({ "index": 2, "of": 3 })),
        (d, json!({ "index": 3, "of": 3 })),
    ];
    for (store, place) in want {
        assert_eq!(sync.action(store), "update", "{}", sync.out);
        assert_eq!(wave(store), place, "the wave of {store}\n{}", sync.out);
    }
    let waves: Vec<Vec<String>> = vec![
        vec![fleet.canary.clone()],
        vec![a.clone(), b.clone()],
        vec![d.clone()],
    ];
    assert_eq!(recorded_waves(&record()), waves, "the run's waves, as recorded");
}

/// Scenario 20: with `rollout: {canaries: [<c>], waves: [50%, 100%], soak: 5s, healthTimeout:
/// 90s}`, a commit changing the engine's `message` for four stores upgrades the canary alone
/// (plan: every store `update` with its wave; the others `skipped`, waiting for a later wave,
/// their ConfigMap unchanged). The syncs that follow hold them while the canary soaks, then
/// upgrade the first two others by name, then the last; then the run ends (no `run` in the
/// record) with every store one revision further, and the next sync is quiet.
#[test]
fn a_good_change_rolls_out_canary_first_then_wave_by_wave() {
    let Some(suite) = Suite::start("rollout") else {
        return;
    };
    assert_may_record_rollouts();
    let mut phases = Phases::new("rollout");
    let fleet = Fleet::new(&suite, "wave");
    let all = fleet.all();
    let (canary, a, b, d) = (&fleet.canary, &fleet.rest[0], &fleet.rest[1], &fleet.rest[2]);
    let rollout = fleet.rollout("90s", "halt");
    let repo = StoresRepo::new(&platform(&rollout, json!({ "message": "first" })));
    for s in &all {
        repo.put(&StoreFile::new(s));
    }
    let first = repo.commit("four stores");
    if !install(&suite, &repo, &first, &fleet) {
        return;
    }
    assert!(
        record()["run"].is_null(),
        "creating stores started a rollout: {}",
        record()
    );
    phases.phase("install");

    // A change to every store: the canary alone.
    repo.platform(&platform(&rollout, json!({ "message": "second" })));
    let change = repo.commit("every store: a new engine message");
    let mut want = revisions(&all);
    assert!(want.values().all(|r| *r == 1), "{want:?}");
    let sync = suite.apply(&repo, &change, &[]);
    sync.expect_code(0);
    phases.phase("canary");
    assert_planned_waves(&sync, &fleet);
    assert_eq!(sync.outcome(canary), "applied", "{}", sync.out);
    assert_held(
        &sync,
        &fleet.rest,
        "waits for a later wave of the rollout (wave 1 of 3 starts now)",
    );
    *want.get_mut(canary).expect("canary") += 1;
    assert_eq!(revisions(&all), want, "only the canary is upgraded");
    assert_eq!(message(canary), "second");
    for s in &fleet.rest {
        assert_eq!(message(s), "first", "{s} was changed while held back");
    }
    let run = record()["run"].clone();
    assert_eq!(
        (&run["commit"], &run["wave"]),
        (&json!(change), &json!(0)),
        "{run}"
    );

    // Wave 2 once the canary stayed Healthy for the soak: the first half of the others by name.
    let sync = apply_until(
        &suite,
        &repo,
        &change,
        "wave 2/3 started",
        |r| r["run"]["wave"] == 1,
        |s| {
            assert_eq!(s.outcome(canary), "unchanged", "{}", s.out);
            assert_held(s, &fleet.rest, "waits for wave 1/3 of the rollout to end: ");
            assert_eq!(
                revisions(&all),
                want,
                "a sync upgraded a store while the canary soaked"
            );
        },
    );
    phases.phase("wave 2");
    assert_eq!(sync.outcome(a), "applied", "{}", sync.out);
    assert_eq!(sync.outcome(b), "applied", "{}", sync.out);
    assert_eq!(sync.outcome(canary), "unchanged", "{}", sync.out);
    assert_eq!(
        detail(&sync, d),
        "waits for a later wave of the rollout (wave 2 of 3 starts now)",
        "{}",
        sync.out
    );
    *want.get_mut(a).expect("a") += 1;
    *want.get_mut(b).expect("b") += 1;
    assert_eq!(revisions(&all), want);

    // Wave 3: the rest.
    let sync = apply_until(
        &suite,
        &repo,
        &change,
        "wave 3/3 started",
        |r| r["run"]["wave"] == 2,
        |s| {
            assert_held(
                s,
                std::slice::from_ref(d),
                "waits for wave 2/3 of the rollout to end: ",
            );
            assert_eq!(
                revisions(&all),
                want,
                "a sync upgraded a store while wave 2 soaked"
            );
        },
    );
    phases.phase("wave 3");
    assert_eq!(sync.outcome(d), "applied", "{}", sync.out);
    for s in [canary, a, b] {
        assert_eq!(sync.outcome(s), "unchanged", "{}", sync.out);
    }
    *want.get_mut(d).expect("d") += 1;
    assert_eq!(revisions(&all), want);

    // The last wave soaks too; then the run is over.
    let sync = apply_until(
        &suite,
        &repo,
        &change,
        "the rollout done",
        |r| r["run"].is_null(),
        |s| {
            for st in &all {
                assert_eq!(s.outcome(st), "unchanged", "{}", s.out);
            }
        },
    );
    phases.phase("done");
    for s in &all {
        assert_eq!(sync.action(s), "unchanged", "{}", sync.out);
        assert_eq!(message(s), "second", "{s}");
        assert_eq!(want[s], 2, "{s} is not exactly one revision further: {want:?}");
    }
    assert_eq!(revisions(&all), want);
    let done = record();
    assert!(
        done["halt"].is_null() && done["refused"].is_null(),
        "the record after a good rollout: {done}"
    );
    let recorded = rv(&must_get("configmap", Some(E2E_NAMESPACE), ROLLOUT_RECORD));
    let quiet = suite.apply(&repo, &change, &[]);
    quiet.expect_code(0);
    for s in &all {
        assert_eq!(quiet.outcome(s), "unchanged", "{}", quiet.out);
    }
    assert_eq!(
        rv(&must_get("configmap", Some(E2E_NAMESPACE), ROLLOUT_RECORD)),
        recorded,
        "a sync with no rollout to carry rewrote the record"
    );
    phases.phase("quiet");
    phases.print();
}

/// Notes of the Events storesync recorded in the store's namespace with `reason`.
fn event_notes(store: &str, reason: &str) -> Vec<String> {
    storesync_events(&namespace(store))
        .iter()
        .filter(|e| e["reason"] == reason)
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Scenario 21: the same four stores with `healthTimeout: 40s, onFailure: rollback`, and a commit
/// pointing the engine's image at one that never pulls. The canary alone is upgraded (helm's
/// wait fails: `failed`); a sync within the timeout holds the others, waiting for its wave; the
/// first sync past it halts the rollout: the record's `halt` names wave 1/3, the canary and
/// why, `refused` holds all four; the others are held (`held: rollout halted …`) at revision 1;
/// the canary is rolled back (a last revision `Rollback to 1` with revision 1's manifest, the
/// good image running) with `RolloutHalted` and `RolledBack` Events. The same commit again
/// writes nothing (resourceVersions, helm revisions, the record). A fix commit starts a new
/// rollout, canary first.
#[test]
fn an_unhealthy_canary_halts_the_rollout_and_is_rolled_back() {
    let Some(suite) = Suite::start("rollout halt") else {
        return;
    };
    assert_may_record_rollouts();
    let mut phases = Phases::new("rollout halt");
    let fleet = Fleet::new(&suite, "halt");
    let all = fleet.all();
    let canary = &fleet.canary;
    let rollout = fleet.rollout(HALT_TIMEOUT, "rollback");
    let repo = StoresRepo::new(&platform(&rollout, json!({ "message": "good" })));
    for s in &all {
        repo.put(&StoreFile::new(s));
    }
    let first = repo.commit("four stores");
    if !install(&suite, &repo, &first, &fleet) {
        return;
    }
    phases.phase("install");

    // The bad change: the canary alone, and helm's wait fails on it.
    let (repository, tag) = BAD_IMAGE;
    let bad_values = json!({ "message": "good", "image": { "repository": repository, "tag": tag } });
    repo.platform(&platform(&rollout, bad_values));
    let bad = repo.commit("every store: an image that does not exist");
    let judged = ["--health-grace", SHORT_GRACE];
    let sync = suite.apply_with_helm_timeout(&repo, &bad, BROKEN_HELM_TIMEOUT, &judged);
    sync.expect_code(EXIT_FAILED);
    phases.phase("canary");
    assert_planned_waves(&sync, &fleet);
    assert_eq!(sync.outcome(canary), "failed", "{}", sync.out);
    assert_held(
        &sync,
        &fleet.rest,
        "waits for a later wave of the rollout (wave 1 of 3 starts now)",
    );
    let history = helm_history(canary);
    assert_eq!(history.len(), 2, "{history:#?}");
    assert_eq!(history[1]["status"], "failed", "{history:#?}");
    let rest_revisions: BTreeMap<String, usize> = fleet.rest.iter().map(|s| (s.clone(), 1)).collect();
    assert_eq!(revisions(&fleet.rest), rest_revisions);
    let run = record()["run"].clone();
    assert_eq!((&run["commit"], &run["wave"]), (&json!(bad), &json!(0)), "{run}");
    let applied_at = run["appliedAt"]
        .as_u64()
        .unwrap_or_else(|| panic!("no appliedAt: {run}"));

    // Within the health timeout: the others wait for the canary's wave to end.
    let sync = suite.apply_with_helm_timeout(&repo, &bad, BROKEN_HELM_TIMEOUT, &judged);
    assert!(
        matches!(sync.out.code, Some(0) | Some(EXIT_FAILED)) && !sync.json.is_null(),
        "{}",
        sync.out
    );
    assert_held(
        &sync,
        &fleet.rest,
        "waits for wave 1/3 of the rollout to end: 0 of 1 Healthy, waiting until ",
    );
    assert_eq!(revisions(&fleet.rest), rest_revisions);
    assert_eq!(
        helm_history(canary).len(),
        2,
        "the canary's failed upgrade is judged as it stands, not run again"
    );
    let waiting = record();
    assert!(
        waiting["run"]["wave"] == 0 && waiting["halt"].is_null(),
        "halted within the health timeout: {waiting}"
    );
    phases.phase("within the timeout");

    // Past it (whole seconds, by the test machine's clock, which storesync reads too): halted.
    let timeout = humantime::parse_duration(HALT_TIMEOUT).expect("healthTimeout");
    let due = UNIX_EPOCH + Duration::from_secs(applied_at + timeout.as_secs() + 1);
    let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(
        wait <= timeout + Duration::from_secs(1),
        "appliedAt is in the future by {wait:?}"
    );
    std::thread::sleep(wait);
    phases.phase("health timeout");
    let sync = suite.apply_with_helm_timeout(&repo, &bad, BROKEN_HELM_TIMEOUT, &judged);
    phases.phase("halt");
    // A halted rollout is the commit's to fix: `apply` exits 1, as for a blocked plan.
    sync.expect_code(EXIT_HALTED);
    assert!(!sync.json.is_null(), "{}", sync.out);
    assert!(
        sync.json["rollout"]["state"] == "halted",
        "apply says the rollout halted: {}",
        sync.out
    );
    let halted = record();
    let halt = &halted["halt"];
    assert!(halted["run"].is_null(), "{halted}");
    assert_eq!(
        (&halt["commit"], &halt["wave"], &halt["of"], &halt["store"]),
        (&json!(bad), &json!(1), &json!(3), &json!(canary)),
        "{halted}"
    );
    // helm's wait gave up on the image first, so the wave is judged with the release failed;
    // had the upgrade gone through, the pull error would be the reason.
    let reason = halt["reason"].as_str().unwrap_or_default();
    assert!(
        reason == "release failed" || reason.contains("ImagePullBackOff") || reason.contains("ErrImagePull"),
        "the halt's reason: `{reason}`"
    );
    let refused: Vec<String> = halted["refused"]
        .as_object()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(refused, sorted, "the updates the halt refused: {halted}");
    let says = format!("held: rollout halted at wave 1/3: {canary} unhealthy: ");
    assert_held(&sync, &fleet.rest, &says);
    assert_eq!(
        revisions(&fleet.rest),
        rest_revisions,
        "a store after the canary was upgraded"
    );

    // The canary is back on revision 1's manifest, by a rollback.
    let history = helm_history(canary);
    let last = history.last().cloned().unwrap_or_default();
    assert_eq!(
        (&last["status"], &last["description"]),
        (&json!("deployed"), &json!("Rollback to 1")),
        "{history:#?}"
    );
    let revision = last["revision"].as_u64().expect("revision");
    assert_eq!(
        helm_manifest(canary, revision),
        helm_manifest(canary, 1),
        "the rollback's manifest is not the good one"
    );
    let deployment = must_get("deployment", Some(&namespace(canary)), canary);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"], GOOD_IMAGE,
        "{}",
        deployment["spec"]
    );
    let halted_notes = event_notes(canary, "RolloutHalted");
    assert!(
        halted_notes
            .iter()
            .any(|n| n.starts_with(&format!("rollout halted at wave 1/3: {canary} unhealthy: "))),
        "no RolloutHalted Event on the canary: {halted_notes:?}"
    );
    let rolled_back = event_notes(canary, "RolledBack");
    assert!(
        rolled_back.iter().any(|n| n.contains("to revision 1")),
        "no RolledBack Event on the canary: {rolled_back:?}"
    );
    for s in &fleet.rest {
        assert!(
            event_notes(s, "RolloutHalted").is_empty(),
            "{s} was not in the halted wave"
        );
    }
    phases.phase("halted checks");

    // The same commit again: never retried, nothing written. First the bad image's pod goes (the
    // quota then counts it out), so that nothing but storesync could change a snapshot.
    let ns = namespace(canary);
    wait_until(
        &format!("the pod of the bad image in {ns} is gone"),
        Duration::from_secs(60),
        || {
            list("pods", &ns, None)
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == GOOD_IMAGE)
        },
    );
    for s in &all {
        settle_quota(s);
    }
    let before: Vec<_> = all.iter().map(|s| snapshot(s)).collect();
    let record_rv = rv(&must_get("configmap", Some(E2E_NAMESPACE), ROLLOUT_RECORD));
    let again = suite.apply(&repo, &bad, &[]);
    again.expect_code(EXIT_HALTED);
    assert_held(&again, &all, &says);
    let after: Vec<_> = all.iter().map(|s| snapshot(s)).collect();
    assert_eq!(
        after, before,
        "the halted commit, applied again, wrote to a store"
    );
    assert_eq!(
        rv(&must_get("configmap", Some(E2E_NAMESPACE), ROLLOUT_RECORD)),
        record_rv,
        "the halted commit, applied again, rewrote the record"
    );
    phases.phase("again");

    // A fix: a new rollout, the canary first.
    repo.platform(&platform(&rollout, json!({ "message": "fixed" })));
    let fix = repo.commit("every store: the image back, a new message");
    let canary_revisions = helm_history(canary).len();
    let sync = suite.apply(&repo, &fix, &[]);
    sync.expect_code(0);
    phases.phase("fix");
    assert_eq!(sync.outcome(canary), "applied", "{}", sync.out);
    assert_held(
        &sync,
        &fleet.rest,
        "waits for a later wave of the rollout (wave 1 of 3 starts now)",
    );
    assert_eq!(helm_history(canary).len(), canary_revisions + 1);
    assert_eq!(message(canary), "fixed");
    assert_eq!(revisions(&fleet.rest), rest_revisions);
    let started = record();
    assert_eq!(
        (&started["run"]["commit"], &started["run"]["wave"]),
        (&json!(fix), &json!(0)),
        "{started}"
    );
    assert!(
        started["halt"].is_null() && started["refused"].is_null(),
        "the fix did not leave the halt behind: {started}"
    );
    phases.print();
}
