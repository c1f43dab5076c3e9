//! What storesync must not destroy: retiring (or, with `prune.retention: 0s`, pruning) only what
//! the commit removed, never a protected store, never more than the breaker allows, nothing at
//! all from an invalid catalog, and never a namespace it does not manage. Retiring, restoring and
//! purging themselves are retire.rs.
use super::catalog::{Platform, StoreFile, StoresRepo};
use super::cluster::{
    get, helm_history, helm_status, labels, must_get, release_status, rv, settle_quota, snapshot,
    terminating, wait_until,
};
use super::harness::{APPLIED_RECORD, E2E_NAMESPACE, Suite, admin_kubectl, namespace, path_str};
use super::identity::HELM_IDENTITY;
use super::retire::{STATE_LABEL, assert_store_retired};
use std::time::Duration;

fn assert_store_alive(store: &str) {
    let ns = must_get("namespace", None, &namespace(store));
    assert!(!terminating(&ns), "{} is being deleted", namespace(store));
    assert_eq!(release_status(store), "deployed", "release of {store}");
}

/// Scenario 5: with `prune.retention: 0s` a store whose file is deleted is pruned at once:
/// release uninstalled, namespace deleted. Retention 0s behaves as before retirement existed;
/// the default retention retires the store instead (retire.rs).
#[test]
fn deleting_a_store_file_prunes_its_release_and_namespace() {
    let Some(suite) = Suite::start("prune") else {
        return;
    };
    let (keep, gone) = (suite.store("prune-keep"), suite.store("prune-gone"));
    let repo = StoresRepo::new(&Platform::with_retention("0s"));
    repo.put(&StoreFile::new(&keep)).put(&StoreFile::new(&gone));
    let first = repo.commit("two stores");
    suite.apply(&repo, &first, &[]).expect_code(0);

    repo.remove(&gone);
    let second = repo.commit(&format!("remove {gone}"));
    let sync = suite.apply(&repo, &second, &[]);
    sync.expect_code(0);
    assert_eq!(sync.action(&gone), "prune");
    let mut changes = sync.changes(&gone);
    changes.sort();
    let want = |kind: &str, name: &str| (kind.to_string(), name.to_string(), "prune".to_string());
    assert_eq!(
        changes,
        [want("HelmRelease", &gone), want("Namespace", &namespace(&gone))]
    );
    assert_eq!(sync.outcome(&gone), "pruned");
    assert_eq!(sync.outcome(&keep), "unchanged");
    assert_eq!(sync.result_summary("pruned"), 1);
    assert_eq!(
        (sync.plan_summary("retire"), sync.result_summary("retired")),
        (0, 0),
        "retention 0s retires nothing\n{}",
        sync.out
    );

    assert!(
        helm_status(&gone).is_none(),
        "the release of {gone} was not uninstalled"
    );
    let ns = get("namespace", None, &namespace(&gone));
    assert!(
        ns.as_ref().is_none_or(terminating),
        "{} is neither gone nor terminating: {ns:?}",
        namespace(&gone)
    );
    assert_store_alive(&keep);
    assert_eq!(helm_history(&keep).len(), 1);

    wait_until(
        &format!("{} is deleted", namespace(&gone)),
        Duration::from_secs(180),
        || get("namespace", None, &namespace(&gone)).is_none(),
    );
    let again = suite.apply(&repo, &second, &[]);
    again.expect_code(0);
    assert!(
        again.plan_store(&gone).is_none(),
        "a pruned store is still planned:\n{}",
        again.out
    );
    assert_eq!(again.plan_summary("prune"), 0);
}

/// Scenario 6: a protected store is kept when its file is deleted, and the plan says why; not
/// even retired (the default retention): it keeps running.
#[test]
fn protected_store_is_kept_when_its_file_is_deleted() {
    let Some(suite) = Suite::start("protected") else {
        return;
    };
    let (kept, other) = (suite.store("protected"), suite.store("unprotected"));
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(&kept).protected())
        .put(&StoreFile::new(&other));
    let first = repo.commit("a protected store");
    suite.apply(&repo, &first, &[]).expect_code(0);
    let ns = must_get("namespace", None, &namespace(&kept));
    assert_eq!(
        labels(&ns).get("storesync.dev/protected").map(String::as_str),
        Some("true")
    );

    repo.remove(&kept);
    let second = repo.commit(&format!("remove protected {kept}"));
    let sync = suite.apply(&repo, &second, &[]);
    // Kept on purpose and reported; not a failure, so later syncs stay green.
    sync.expect_code(0);
    assert_eq!(sync.action(&kept), "skip");
    let reason = sync
        .plan_store(&kept)
        .and_then(|s| s["reason"].as_str())
        .unwrap_or_default();
    assert!(reason.contains("protected"), "reason: {reason}");
    assert_eq!(sync.outcome(&kept), "skipped");
    assert_eq!(sync.outcome(&other), "unchanged");
    assert_eq!(sync.result_summary("pruned"), 0);
    assert_eq!(sync.result_summary("retired"), 0);

    assert_store_alive(&kept);
    assert_eq!(helm_history(&kept).len(), 1, "the protected store was stopped");
    let ns = must_get("namespace", None, &namespace(&kept));
    assert_eq!(
        labels(&ns).get(STATE_LABEL),
        None,
        "the protected store was marked retired"
    );
}

/// Scenario 7b: the breaker holds to the limit recorded at the last applied commit, so a commit
/// that removes stores cannot raise the limit that guards it; recorded in the cluster, where the
/// restricted identity can write it. With the default retention the removals are retirements,
/// and they count against the limit as deletions did.
#[test]
fn a_commit_cannot_lift_its_own_prune_breaker() {
    let Some(suite) = Suite::start("breaker record") else {
        return;
    };
    let platform = Platform::default();
    let stores: Vec<String> = (1..=4).map(|i| suite.store(&format!("record-{i}"))).collect();
    let repo = StoresRepo::new(&platform);
    for s in &stores {
        repo.put(&StoreFile::new(s));
    }
    let first = repo.commit("four stores");
    suite.apply(&repo, &first, &[]).expect_code(0);
    let record = must_get("configmap", Some(E2E_NAMESPACE), APPLIED_RECORD);
    assert_eq!(record["data"]["maxPrunesPerSync"], "2", "{record}");
    assert_eq!(record["data"]["lastAppliedCommit"], first.as_str());

    for s in &stores[..3] {
        repo.remove(s);
    }
    repo.platform(&Platform {
        max_prunes_per_sync: 10,
        ..platform.clone()
    });
    let second = repo.commit("remove three stores and raise the limit");
    let sync = suite.apply(&repo, &second, &[]);
    sync.expect_code(1);
    let reasons = sync.plan()["blocked"].to_string();
    assert!(reasons.contains("the limit is 2"), "{reasons}\n{}", sync.out);
    for s in &stores[..3] {
        assert_eq!(sync.action(s), "blocked", "{}", sync.out);
    }
    assert_eq!(
        (sync.result_summary("pruned"), sync.result_summary("retired")),
        (0, 0)
    );
    stores.iter().for_each(|s| assert_store_alive(s));
    stores
        .iter()
        .for_each(|s| assert_eq!(helm_history(s).len(), 1, "{s} was stopped"));
}

/// Scenario 7: more removals than limits.maxPrunesPerSync block them all; --no-prune and exactly
/// the limit behave as documented. With the default retention a removal is a retirement: the
/// breaker counts retirements as it counted deletions, and the two that may go are retired.
#[test]
fn prune_breaker_blocks_the_whole_prune() {
    let Some(suite) = Suite::start("prune breaker") else {
        return;
    };
    let platform = Platform::default();
    assert_eq!(platform.max_prunes_per_sync, 2);
    let stores: Vec<String> = (1..=4).map(|i| suite.store(&format!("breaker-{i}"))).collect();
    let repo = StoresRepo::new(&platform);
    for s in &stores {
        repo.put(&StoreFile::new(s));
    }
    let first = repo.commit("four stores");
    suite.apply(&repo, &first, &[]).expect_code(0);

    for s in &stores[..3] {
        repo.remove(s);
    }
    let second = repo.commit("remove three stores");
    let sync = suite.apply(&repo, &second, &[]);
    sync.expect_code(1);
    for blocked in [&sync.plan()["blocked"], &sync.result()["blocked"]] {
        let reasons = blocked.to_string();
        assert!(
            reasons.contains("maxPrunesPerSync is 2"),
            "no breaker reason in {blocked}\n{}",
            sync.out
        );
    }
    for s in &stores[..3] {
        assert_eq!(sync.action(s), "blocked");
        assert!(
            sync.plan_store(s)
                .and_then(|p| p["reason"].as_str())
                .unwrap_or_default()
                .contains("prune breaker")
        );
        assert_eq!(sync.outcome(s), "blocked");
    }
    assert_eq!(sync.outcome(&stores[3]), "unchanged");
    assert_eq!(
        (sync.result_summary("pruned"), sync.result_summary("retired")),
        (0, 0)
    );
    stores.iter().for_each(|s| assert_store_alive(s));
    stores
        .iter()
        .for_each(|s| assert_eq!(helm_history(s).len(), 1, "{s} was stopped"));

    let held = suite.apply(&repo, &second, &["--no-prune"]);
    held.expect_code(0);
    assert!(
        held.plan()["blocked"].is_null(),
        "--no-prune still trips the breaker\n{}",
        held.out
    );
    for s in &stores[..3] {
        assert_eq!(held.action(s), "skip");
        assert!(
            held.plan_store(s)
                .and_then(|p| p["reason"].as_str())
                .unwrap_or_default()
                .contains("--no-prune")
        );
    }
    stores.iter().for_each(|s| assert_store_alive(s));

    repo.put(&StoreFile::new(&stores[2]));
    let third = repo.commit("restore one: two stores go, exactly the limit");
    let sync = suite.apply(&repo, &third, &[]);
    sync.expect_code(0);
    assert!(sync.plan()["blocked"].is_null(), "{}", sync.out);
    assert_eq!(sync.plan_summary("retire"), 2, "{}", sync.out);
    assert_eq!(
        (sync.result_summary("retired"), sync.result_summary("pruned")),
        (2, 0),
        "{}",
        sync.out
    );
    for s in &stores[..2] {
        assert_eq!(sync.action(s), "retire");
        assert_eq!(sync.outcome(s), "retired");
        assert_store_retired(s, &third);
    }
    assert_store_alive(&stores[2]);
    assert_store_alive(&stores[3]);
    for s in &stores[2..] {
        let ns = must_get("namespace", None, &namespace(s));
        assert_eq!(labels(&ns).get(STATE_LABEL), None, "{s} was marked retired");
    }
}

/// Scenario 8: an invalid catalog is never applied, not even in part, and prunes nothing.
#[test]
fn invalid_catalog_changes_nothing() {
    let Some(suite) = Suite::start("invalid catalog") else {
        return;
    };
    let (a, b, bad) = (suite.store("valid-a"), suite.store("valid-b"), suite.store("bad"));
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(&a)).put(&StoreFile::new(&b));
    let first = repo.commit("two stores");
    suite.apply(&repo, &first, &[]).expect_code(0);
    settle_quota(&a);
    settle_quota(&b);
    let before = (snapshot(&a), snapshot(&b));

    // One bad file next to changes that would otherwise apply (a resize) and prune (b).
    repo.put(&StoreFile::new(&a).plan("medium"));
    repo.remove(&b);
    repo.file(
        &format!("stores/{bad}.yaml"),
        &format!("{}colour: red\n", StoreFile::new(&bad).yaml()),
    );
    let second = repo.commit("resize a, remove b, add a typo");

    let validate = suite.storesync(&["validate", "--repo", path_str(repo.path()), "--rev", &second]);
    assert_eq!(validate.code, Some(1), "{validate}");
    let sync = suite.apply(&repo, &second, &[]);
    sync.expect_code(1);
    let file = format!("stores/{bad}.yaml");
    assert!(
        sync.out.stderr.contains(&file) && sync.out.stderr.contains("colour"),
        "the diagnostic does not name {file} and the unknown field\n{}",
        sync.out
    );

    assert_eq!(
        (snapshot(&a), snapshot(&b)),
        before,
        "an invalid catalog changed the cluster"
    );
    assert!(get("namespace", None, &namespace(&bad)).is_none());
    assert_store_alive(&b);
}

fn foreign_namespace(store: &str) -> String {
    let ns = namespace(store);
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    storesync.dev/store: {store}\n    \
         app.kubernetes.io/managed-by: e2e-someone-else\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  \
         name: keep-me\n  namespace: {ns}\ndata:\n  owner: someone else\n"
    );
    admin_kubectl(&["apply", "-f", "-"], Some(&manifest)).expect_ok();
    ns
}

/// Scenario 11: a namespace named like a store but not managed by storesync is never touched,
/// even though no file names it (it is not storesync's to prune).
#[test]
fn unmanaged_namespace_named_like_a_store_is_never_touched() {
    let Some(suite) = Suite::start("unmanaged namespace") else {
        return;
    };
    let (foreign, a) = (suite.store("foreign"), suite.store("near-foreign"));
    let ns = foreign_namespace(&foreign);
    let before = must_get("namespace", None, &ns);

    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(&a));
    let sha = repo.commit("one store, not the foreign one");
    let sync = suite.apply(&repo, &sha, &[]);
    sync.expect_code(0);
    assert!(
        sync.plan_store(&foreign).is_none(),
        "storesync planned the unmanaged namespace\n{}",
        sync.out
    );
    assert!(sync.result_store(&foreign).is_none());

    let after = must_get("namespace", None, &ns);
    assert!(!terminating(&after));
    assert_eq!(rv(&after), rv(&before), "{ns} was written");
    assert_eq!(labels(&after), labels(&before));
    assert!(
        get("configmap", Some(&ns), "keep-me").is_some(),
        "a ConfigMap in {ns} is gone"
    );
}

/// Scenario 11b: a store file whose namespace exists but belongs to someone else must not take
/// that namespace over ("only objects carrying managed-by=storesync are ever changed").
#[test]
fn store_file_does_not_adopt_an_unmanaged_namespace() {
    let Some(suite) = Suite::start("no adoption") else {
        return;
    };
    let foreign = suite.store("adopt");
    let ns = foreign_namespace(&foreign);
    let before = labels(&must_get("namespace", None, &ns));

    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(&foreign));
    let sha = repo.commit("a store whose namespace is someone else's");
    let sync = suite.apply(&repo, &sha, &[]);
    assert_ne!(
        sync.out.code,
        Some(0),
        "storesync took over a namespace it does not manage\n{}",
        sync.out
    );
    if !sync.json.is_null() {
        let outcome = sync.outcome(&foreign);
        assert!(
            outcome == "failed" || outcome == "blocked",
            "outcome {outcome}\n{}",
            sync.out
        );
    }
    assert_eq!(
        labels(&must_get("namespace", None, &ns)),
        before,
        "the labels of {ns} changed"
    );
    assert!(
        helm_status(&foreign).is_none(),
        "a release was installed into {ns}"
    );
    assert!(
        get("resourcequota", Some(&ns), "store-quota").is_none(),
        "guardrails were written into {ns}"
    );
    for kind in ["serviceaccount", "rolebinding"] {
        assert!(
            get(kind, Some(&ns), HELM_IDENTITY).is_none(),
            "helm's identity ({kind} {HELM_IDENTITY}) was written into {ns}"
        );
    }
}
