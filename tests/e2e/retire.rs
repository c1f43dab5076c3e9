//! Retire, then purge, on a real cluster. A store whose file is gone is stopped by a helm
//! upgrade with `retired: true` (the tiny chart's Deployment at 0 replicas) and marked, while its
//! namespace, claim, `store-credentials` and release history stay the same objects; a file of
//! another engine waits for its purge; its file back restores it on those objects; and once
//! `prune.retention` passed, the next sync purges it.
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::catalog::{Platform, StoreFile, StoresRepo, TINY};
use super::cluster::{
    annotations, get, helm_history, helm_status, labels, list, must_get, release_secret_labels,
    release_status, settle_quota, snapshot, storesync_events, terminating, wait_until,
};
use super::harness::{E2E_NAMESPACE, Phases, Suite, admin_helm, namespace};

/// The namespace label and annotations of a retired store.
pub const STATE_LABEL: &str = "storesync.dev/state";
pub const RETIRED_AT: &str = "storesync.dev/retired-at";
pub const RETIRED_BY: &str = "storesync.dev/retired-by";
pub const PURGE_AT: &str = "storesync.dev/purge-at";
/// The `storesync.dev/release-hash` of a release revision that stopped the store.
const RETIRED_RELEASE_HASH: &str = "retired";
/// storesync's default `prune.retention`.
const DEFAULT_RETENTION: Duration = Duration::from_secs(168 * 3600);
/// A second engine on the tiny chart: a store file that changes engine.
const OTHER_ENGINE: &str = "tiny-b";
/// How long a stopped pod may take to go: its grace period is 5 s.
const PODS_GONE_WITHIN: Duration = Duration::from_secs(30);
/// A claim pre-bound to its volume binds within seconds (helm's wait already waits for it).
const CLAIM_BOUND_WITHIN: Duration = Duration::from_secs(30);

/// A time storesync wrote (RFC 3339, whole seconds, UTC).
fn time(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("`{text}` is not RFC 3339: {e}"))
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

/// The uids of what holds the store's data: its namespace, every claim, its credentials.
fn data_uids(store: &str) -> BTreeMap<String, String> {
    let ns = namespace(store);
    let mut uids = BTreeMap::new();
    uids.insert(format!("Namespace {ns}"), uid(&must_get("namespace", None, &ns)));
    for claim in list("persistentvolumeclaims", &ns, None) {
        let name = claim["metadata"]["name"].as_str().unwrap_or_default();
        uids.insert(format!("PersistentVolumeClaim {name}"), uid(&claim));
    }
    uids.insert(
        "Secret store-credentials".into(),
        uid(&must_get("secret", Some(&ns), "store-credentials")),
    );
    uids
}

/// `spec.replicas` of every Deployment and StatefulSet of the store's namespace.
fn workload_replicas(store: &str) -> BTreeMap<String, i64> {
    let ns = namespace(store);
    let mut replicas = BTreeMap::new();
    for kind in ["deployments", "statefulsets"] {
        for w in list(kind, &ns, None) {
            let name = w["metadata"]["name"].as_str().unwrap_or_default();
            // Left out, the API server defaults it to 1.
            replicas.insert(
                format!("{kind}/{name}"),
                w["spec"]["replicas"].as_i64().unwrap_or(1),
            );
        }
    }
    replicas
}

/// The store's pods, as `name phase`.
fn store_pods(store: &str) -> Vec<String> {
    let selector = format!("app.kubernetes.io/instance={store}");
    list("pods", &namespace(store), Some(&selector))
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["metadata"]["name"].as_str().unwrap_or_default(),
                p["status"]["phase"].as_str().unwrap_or("no phase")
            )
        })
        .collect()
}

/// Waits (briefly: helm already waited for it) until the claim is Bound to its volume.
fn wait_bound(ns: &str, claim: &str) {
    wait_until(
        &format!("claim {ns}/{claim} is Bound"),
        CLAIM_BOUND_WITHIN,
        || must_get("persistentvolumeclaim", Some(ns), claim)["status"]["phase"] == "Bound",
    );
}

/// The release's user-supplied values, as `helm get values` shows them.
fn release_values(store: &str) -> Value {
    admin_helm(&["get", "values", store, "-n", &namespace(store), "-o", "json"])
        .expect_ok()
        .json()
}

/// `storesync status --output json`: the store's row.
fn status_row(suite: &Suite, store: &str) -> Value {
    let out = suite.storesync(&["status", "--output", "json"]);
    assert!(out.ok(), "storesync status failed\n{out}");
    let rows = out.json();
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["store"] == store))
        .cloned()
        .unwrap_or_else(|| panic!("{store} missing from storesync status\n{out}"))
}

/// Reasons of the Events storesync recorded in `ns` about namespace `regarding`.
fn event_reasons(ns: &str, regarding: &str) -> Vec<String> {
    storesync_events(ns)
        .iter()
        .filter(|e| e["regarding"]["name"] == regarding)
        .filter_map(|e| e["reason"].as_str().map(String::from))
        .collect()
}

/// A retired store as the admin sees it: its namespace marked (retired at and by `sha`, a purge
/// time after it), its release deployed at a revision that stopped it, and every Deployment and
/// StatefulSet at 0 replicas.
pub fn assert_store_retired(store: &str, sha: &str) {
    let ns = namespace(store);
    let n = must_get("namespace", None, &ns);
    assert!(!terminating(&n), "{ns} is being deleted");
    assert_eq!(
        labels(&n).get(STATE_LABEL).map(String::as_str),
        Some("retired"),
        "{ns} is not labelled retired: {:?}",
        labels(&n)
    );
    let a = annotations(&n);
    let at = a.get(RETIRED_AT).map(|t| time(t));
    let purge = a.get(PURGE_AT).map(|t| time(t));
    assert!(
        at.is_some() && purge.is_some() && purge >= at,
        "{ns} lacks its retirement times: {a:?}"
    );
    assert_eq!(
        a.get(RETIRED_BY).map(String::as_str),
        Some(sha),
        "retired-by of {ns}"
    );

    let status = helm_status(store).unwrap_or_else(|| panic!("the release of {store} is gone"));
    assert_eq!(
        status["info"]["status"], "deployed",
        "release {store}: {}",
        status["info"]
    );
    let revision = status["version"].as_u64().expect("release version");
    assert_eq!(
        release_secret_labels(store, revision)
            .get("storesync.dev/release-hash")
            .map(String::as_str),
        Some(RETIRED_RELEASE_HASH),
        "revision {revision} of {store} is not the one that stopped it"
    );
    let replicas = workload_replicas(store);
    assert!(
        !replicas.is_empty() && replicas.values().all(|r| *r == 0),
        "a workload of {store} still runs: {replicas:?}"
    );
}

/// Scenario 18: with the default retention, a store whose file is removed is retired: plan
/// `retire`, outcome `retired`; helm stops it (a new revision, `retired: true` with its values
/// kept, every workload at 0 replicas, no pod running where pods run at all); its namespace is
/// marked (state, retired-at, retired-by the commit, purge-at a week later) and shown `Retired`
/// by `storesync status`; its namespace, claim and `store-credentials` are the same objects. The
/// next sync plans it `retired` and writes nothing. A file of another engine is blocked (exit 1)
/// naming the purge time. Its file back with the same engine restores it (`restore`,
/// `restored`) on the same objects, unmarked, running again; the sync after is `unchanged`.
#[test]
fn a_removed_store_is_retired_with_its_data_and_restored_by_its_file() {
    let Some(suite) = Suite::start("retire") else {
        return;
    };
    let mut phases = Phases::new("retire");
    let platform = Platform {
        engines: vec![TINY, OTHER_ENGINE],
        ..Platform::default()
    };
    assert_eq!(
        platform.retention, None,
        "the scenario is about the default retention"
    );
    let (keep, gone) = (suite.store("retire-keep"), suite.store("retire-gone"));
    let ns = namespace(&gone);
    let claim = format!("{gone}-data");
    let volume = suite.volume_for(&gone, &claim);
    let gone_file = StoreFile::new(&gone).value("message", "kept").claim(&volume);
    let repo = StoresRepo::new(&platform);
    repo.put(&StoreFile::new(&keep)).put(&gone_file);
    let first = repo.commit("two stores");
    suite.apply(&repo, &first, &[]).expect_code(0);
    let uids = data_uids(&gone);
    assert!(
        uids.contains_key(&format!("PersistentVolumeClaim {claim}")),
        "the store has no claim to keep: {uids:?}"
    );
    wait_bound(&ns, &claim);
    let revisions = helm_history(&gone).len();
    // On a cluster whose pods never run (no container runtime) there is no pod to see stop.
    let pods_run = store_pods(&gone).iter().any(|p| p.ends_with(" Running"));
    phases.phase("install");

    // Retire.
    repo.remove(&gone);
    let second = repo.commit(&format!("remove {gone}"));
    let before = SystemTime::now();
    let sync = suite.apply(&repo, &second, &[]);
    sync.expect_code(0);
    phases.phase("retire");
    assert_eq!(sync.action(&gone), "retire", "{}", sync.out);
    let planned = sync.plan_store(&gone).expect("planned");
    assert!(planned["purgeAt"].is_string(), "no purge time: {planned}");
    let mut changes = sync.changes(&gone);
    changes.sort();
    let want = |kind: &str, name: &str| (kind.to_string(), name.to_string(), "update".to_string());
    assert_eq!(changes, [want("HelmRelease", &gone), want("Namespace", &ns)]);
    assert_eq!(sync.outcome(&gone), "retired");
    assert_eq!(sync.outcome(&keep), "unchanged");
    assert_eq!(
        (
            sync.plan_summary("retire"),
            sync.result_summary("retired"),
            sync.result_summary("pruned")
        ),
        (1, 1, 0),
        "{}",
        sync.out
    );

    assert_store_retired(&gone, &second);
    let marks = annotations(&must_get("namespace", None, &ns));
    let (retired_at, purge_at) = (marks[RETIRED_AT].clone(), marks[PURGE_AT].clone());
    let at = time(&retired_at);
    assert!(
        at + Duration::from_secs(1) >= before && at <= SystemTime::now(),
        "retired at {retired_at}, not during the sync"
    );
    assert_eq!(
        time(&purge_at).duration_since(at).ok(),
        Some(DEFAULT_RETENTION),
        "purge-at {purge_at} is not the default retention after {retired_at}"
    );
    assert_eq!(
        data_uids(&gone),
        uids,
        "namespace, claim and credentials are the same objects"
    );
    wait_bound(&ns, &claim);
    let history = helm_history(&gone);
    assert_eq!(history.len(), revisions + 1, "helm did not stop it: {history:#?}");
    let values = release_values(&gone);
    assert_eq!(values["retired"], true, "{values}");
    assert_eq!(values["message"], "kept", "the store's values went: {values}");
    if pods_run {
        // Gone, not only stopped: the quota's count of pods settles before the next snapshot.
        let stopping = Instant::now();
        let mut left = store_pods(&gone);
        while !left.is_empty() && stopping.elapsed() < PODS_GONE_WITHIN {
            std::thread::sleep(Duration::from_secs(1));
            left = store_pods(&gone);
        }
        assert!(
            left.is_empty(),
            "pods of the retired store {gone} are still there after {PODS_GONE_WITHIN:?}: {left:?}"
        );
    } else {
        eprintln!("[e2e] retire: no pod of {gone} ever ran on this cluster; not waiting for them to stop");
    }
    let row = status_row(&suite, &gone);
    assert_eq!(row["health"], "Retired", "{row}");
    assert_eq!(
        (row["retiredAt"].as_str(), row["purgeAt"].as_str()),
        (Some(retired_at.as_str()), Some(purge_at.as_str())),
        "{row}"
    );
    assert!(
        event_reasons(&ns, &ns).contains(&"Retired".to_string()),
        "no Retired Event in {ns}"
    );
    phases.phase("retired checks");

    // Synced again: nothing to do, nothing written.
    settle_quota(&gone);
    let quiet = snapshot(&gone);
    let again = suite.apply(&repo, &second, &[]);
    again.expect_code(0);
    assert_eq!(again.action(&gone), "retired", "{}", again.out);
    let reason = again
        .plan_store(&gone)
        .and_then(|p| p["reason"].as_str())
        .unwrap_or_default();
    assert!(
        reason.contains(&format!("retired at {retired_at}"))
            && reason.contains(&format!("purged after {purge_at}")),
        "reason: {reason}"
    );
    assert_eq!(again.outcome(&gone), "skipped");
    assert_eq!(again.result_summary("retired"), 0);
    assert_eq!(snapshot(&gone), quiet, "a sync of a retired store wrote to it");
    assert_eq!(
        annotations(&must_get("namespace", None, &ns))[RETIRED_AT],
        retired_at
    );
    phases.phase("again");

    // Another engine: not valid until the retired store is purged.
    repo.put(&StoreFile::new(&gone).engine(OTHER_ENGINE).claim(&volume));
    let other = repo.commit(&format!("{gone} as a {OTHER_ENGINE} store"));
    let refused = suite.apply(&repo, &other, &[]);
    refused.expect_code(1);
    // An invalid catalog: a finding at the file's `engine`, nothing applied.
    let (at, says) = (
        format!("stores/{gone}.yaml:"),
        format!(
            "error: `engine: {OTHER_ENGINE}` is not valid yet: store {gone} is retired as a {TINY} store"
        ),
    );
    let line = refused
        .out
        .stderr
        .lines()
        .find(|l| l.contains(&says))
        .unwrap_or_default();
    assert!(
        line.starts_with(&at) && line.contains(&purge_at),
        "the finding does not say it, or when the purge comes:\n{}",
        refused.out.stderr
    );
    assert_eq!(snapshot(&gone), quiet, "a refused file changed the retired store");
    assert_store_retired(&gone, &second);
    phases.phase("other engine");

    // Restore: the file back, the same engine.
    repo.put(&gone_file);
    let back = repo.commit(&format!("{gone} is back"));
    let restored = suite.apply(&repo, &back, &[]);
    restored.expect_code(0);
    phases.phase("restore");
    assert_eq!(restored.action(&gone), "restore", "{}", restored.out);
    let planned = restored.plan_store(&gone).expect("planned");
    assert_eq!(planned["retiredAt"], retired_at.as_str(), "{planned}");
    assert_eq!(restored.outcome(&gone), "restored");
    assert_eq!(
        (
            restored.plan_summary("restore"),
            restored.result_summary("restored")
        ),
        (1, 1),
        "{}",
        restored.out
    );
    let n = must_get("namespace", None, &ns);
    assert_eq!(labels(&n).get(STATE_LABEL), None, "{ns} still marked retired");
    let a = annotations(&n);
    for key in [RETIRED_AT, RETIRED_BY, PURGE_AT] {
        assert!(!a.contains_key(key), "{key} left on {ns}: {a:?}");
    }
    assert_eq!(
        a.get("storesync.dev/commit").map(String::as_str),
        Some(back.as_str())
    );
    assert_eq!(
        data_uids(&gone),
        uids,
        "not restored on the same namespace, claim and credentials"
    );
    let replicas = workload_replicas(&gone);
    assert!(
        !replicas.is_empty() && replicas.values().all(|r| *r > 0),
        "{replicas:?}"
    );
    let history = helm_history(&gone);
    assert_eq!(history.len(), revisions + 2, "{history:#?}");
    let status = helm_status(&gone).expect("the release of the restored store");
    assert_eq!(status["info"]["status"], "deployed", "{}", status["info"]);
    let revision = status["version"].as_u64().expect("release version");
    let hash = release_secret_labels(&gone, revision)
        .get("storesync.dev/release-hash")
        .cloned()
        .unwrap_or_default();
    assert!(
        hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "the restoring revision carries release hash `{hash}`"
    );
    let values = release_values(&gone);
    assert_ne!(values["retired"], true, "restored with retired: true: {values}");
    assert_eq!(values["message"], "kept", "{values}");
    if pods_run {
        let deployment = must_get("deployment", Some(&ns), &gone);
        assert_eq!(
            deployment["status"]["readyReplicas"], 1,
            "{}",
            deployment["status"]
        );
    }
    let row = status_row(&suite, &gone);
    assert_ne!(row["health"], "Retired", "{row}");
    assert!(row["retiredAt"].is_null() && row["purgeAt"].is_null(), "{row}");
    assert!(
        event_reasons(&ns, &ns).contains(&"Restored".to_string()),
        "no Restored Event in {ns}"
    );

    // Then a store like any other.
    let settled = suite.apply(&repo, &back, &[]);
    settled.expect_code(0);
    for s in [&keep, &gone] {
        assert_eq!(settled.action(s), "unchanged", "{}", settled.out);
    }
    phases.phase("restored checks");
    phases.print();
}

/// `prune.retention` of the purge scenario: short, so it passes within the scenario.
const SHORT_RETENTION: &str = "5s";

/// Scenario 19: with `prune.retention: 5s`, a removed store is retired, and the first sync
/// after retired-at + 5 s purges it: plan `purge` (release, then namespace) with its retirement
/// time, outcome `purged`, the release uninstalled, the same namespace gone or terminating, a
/// `Purged` Event where storesync lives; the other store untouched.
#[test]
fn a_retired_store_is_purged_at_the_first_sync_after_its_retention() {
    let Some(suite) = Suite::start("purge") else {
        return;
    };
    let mut phases = Phases::new("purge");
    let (keep, gone) = (suite.store("purge-keep"), suite.store("purge-gone"));
    let ns = namespace(&gone);
    let repo = StoresRepo::new(&Platform::with_retention(SHORT_RETENTION));
    repo.put(&StoreFile::new(&keep)).put(&StoreFile::new(&gone));
    let first = repo.commit("two stores");
    suite.apply(&repo, &first, &[]).expect_code(0);
    let ns_uid = uid(&must_get("namespace", None, &ns));
    phases.phase("install");

    repo.remove(&gone);
    let second = repo.commit(&format!("remove {gone}"));
    let retired = suite.apply(&repo, &second, &[]);
    retired.expect_code(0);
    assert_eq!(retired.action(&gone), "retire", "{}", retired.out);
    assert_eq!(retired.outcome(&gone), "retired");
    assert_store_retired(&gone, &second);
    let marks = annotations(&must_get("namespace", None, &ns));
    let (retired_at, purge_at) = (marks[RETIRED_AT].clone(), time(&marks[PURGE_AT]));
    let retention = humantime::parse_duration(SHORT_RETENTION).expect("retention");
    assert_eq!(
        purge_at.duration_since(time(&retired_at)).ok(),
        Some(retention),
        "{marks:?}"
    );
    phases.phase("retire");

    // Past purge-at (whole seconds), by the test machine's clock, which storesync reads too.
    let due = purge_at + Duration::from_secs(1);
    let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(
        wait <= retention + Duration::from_secs(1),
        "purge-at is in the future by {wait:?}"
    );
    std::thread::sleep(wait);
    phases.phase("retention");

    let plan = suite.plan(&repo, &second);
    plan.expect_code(0);
    assert_eq!(plan.action(&gone), "purge", "{}", plan.out);
    let planned = plan.plan_store(&gone).expect("planned");
    assert_eq!(planned["retiredAt"], retired_at.as_str(), "{planned}");
    let reason = planned["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("prune.retention ({SHORT_RETENTION}) passed")),
        "reason: {reason}"
    );
    let mut changes = plan.changes(&gone);
    changes.sort();
    let want = |kind: &str, name: &str| (kind.to_string(), name.to_string(), "prune".to_string());
    assert_eq!(changes, [want("HelmRelease", &gone), want("Namespace", &ns)]);

    let sync = suite.apply(&repo, &second, &[]);
    sync.expect_code(0);
    phases.phase("purge");
    assert_eq!(sync.action(&gone), "purge", "{}", sync.out);
    assert_eq!(sync.outcome(&gone), "purged");
    assert_eq!(sync.outcome(&keep), "unchanged");
    assert_eq!(
        (sync.result_summary("purged"), sync.result_summary("pruned")),
        (1, 0),
        "{}",
        sync.out
    );
    assert!(
        helm_status(&gone).is_none(),
        "the release of {gone} was not uninstalled"
    );
    let n = get("namespace", None, &ns);
    assert!(
        n.as_ref().is_none_or(terminating),
        "{ns} is neither gone nor terminating: {n:?}"
    );
    if let Some(n) = n {
        assert_eq!(uid(&n), ns_uid, "{ns} is not the namespace that was retired");
    }
    assert!(
        event_reasons(E2E_NAMESPACE, &ns).contains(&"Purged".to_string()),
        "no Purged Event about {ns} in {E2E_NAMESPACE}"
    );
    assert_eq!(release_status(&keep), "deployed");
    let kept = must_get("namespace", None, &namespace(&keep));
    assert!(
        !terminating(&kept) && !labels(&kept).contains_key(STATE_LABEL),
        "{kept}"
    );
    phases.phase("purged checks");
    phases.print();
}
