//! A store's life while its file exists: created, left alone, resized, its credentials kept,
//! and reported by `storesync status`.
use super::catalog::{Platform, StoreFile, StoresRepo};
use super::cluster::{
    assert_store_objects, credentials, helm_history, must_get, release_secret_labels, settle_quota, snapshot,
    strings,
};
use super::harness::{Suite, namespace};
use super::identity::{HELM_IDENTITY, assert_store_identity};

/// Scenario 1: the first sync creates every object of every store, and the release is ready.
#[test]
fn first_sync_creates_namespace_guardrails_credentials_and_release() {
    let Some(suite) = Suite::start("first sync") else {
        return;
    };
    let platform = Platform::default();
    let (a, b) = (suite.store("first-a"), suite.store("first-b"));
    let repo = StoresRepo::new(&platform);
    repo.put(
        &StoreFile::new(&a)
            .owner("team-a")
            .value("message", "hello from a"),
    );
    repo.put(&StoreFile::new(&b).owner("team-b").plan("medium"));
    let sha = repo.commit("two stores");

    let sync = suite.apply(&repo, &sha, &[]);
    sync.expect_code(0);
    assert_eq!(sync.json["dryRun"], false);
    assert_eq!(sync.plan()["revision"]["commit"], sha.as_str());
    assert_eq!(sync.result()["revision"]["commit"], sha.as_str());
    assert_eq!(
        (sync.plan_summary("create"), sync.result_summary("applied")),
        (2, 2),
        "{}",
        sync.out
    );
    assert_eq!(sync.result_summary("failed"), 0);
    for store in [&a, &b] {
        assert_eq!(sync.action(store), "create");
        assert_eq!(sync.outcome(store), "applied");
        let ns = namespace(store);
        let mut expected: Vec<(String, String, String)> = [
            ("Namespace", ns.as_str()),
            ("ResourceQuota", "store-quota"),
            ("LimitRange", "store-limits"),
            ("NetworkPolicy", "allow-dns"),
            ("NetworkPolicy", "allow-from-ingress-controller"),
            ("NetworkPolicy", "allow-https-egress"),
            ("NetworkPolicy", "allow-same-namespace"),
            ("NetworkPolicy", "default-deny"),
            ("ServiceAccount", HELM_IDENTITY),
            ("RoleBinding", HELM_IDENTITY),
            ("Secret", "store-credentials"),
            ("HelmRelease", store.as_str()),
        ]
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string(), "create".to_string()))
        .collect();
        let mut got = sync.changes(store);
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "planned changes of {store}");
    }

    for (store, owner, plan) in [(&a, "team-a", "small"), (&b, "team-b", "medium")] {
        let spec_hash = sync
            .plan_store(store)
            .and_then(|s| s["specHash"].as_str())
            .unwrap_or_default();
        assert_store_objects(store, owner, plan, &sha, &platform, spec_hash);
        assert_eq!(helm_history(store).len(), 1, "one helm revision for {store}");
    }
    // helm installed each store as that store's identity, which acts in its own namespace only.
    assert_store_identity(&a, &namespace(&b));
    assert_store_identity(&b, &namespace(&a));
    let config = must_get("configmap", Some(&namespace(&a)), &a);
    assert_eq!(
        config["data"]["message"], "hello from a",
        "the store's allowlisted value reached the chart"
    );
}

/// Scenario 2: syncing the same commit again writes nothing and runs no helm upgrade.
#[test]
fn second_sync_of_the_same_commit_writes_nothing() {
    let Some(suite) = Suite::start("idempotent sync") else {
        return;
    };
    let stores = [
        suite.store("idem-a"),
        suite.store("idem-b"),
        suite.store("idem-c"),
    ];
    let repo = StoresRepo::new(&Platform::default());
    for s in &stores {
        repo.put(&StoreFile::new(s).value("message", s));
    }
    let sha = repo.commit("three stores");
    suite.apply(&repo, &sha, &[]).expect_code(0);
    stores.iter().for_each(|s| settle_quota(s));
    let before: Vec<_> = stores.iter().map(|s| snapshot(s)).collect();

    let plan = suite.plan(&repo, &sha);
    plan.expect_code(0);
    assert_eq!(plan.plan_summary("unchanged"), 3, "{}", plan.out);
    let sync = suite.apply(&repo, &sha, &[]);
    sync.expect_code(0);
    for key in [
        "create", "update", "prune", "blocked", "retire", "restore", "purge", "retired",
    ] {
        assert_eq!(sync.plan_summary(key), 0, "plan.summary.{key}\n{}", sync.out);
    }
    assert_eq!(sync.plan_summary("unchanged"), 3);
    assert_eq!(
        (sync.result_summary("unchanged"), sync.result_summary("applied")),
        (3, 0),
        "{}",
        sync.out
    );
    for s in &stores {
        assert_eq!(sync.action(s), "unchanged");
        assert_eq!(sync.outcome(s), "unchanged");
        for (kind, name, action) in sync.changes(s) {
            assert_eq!(
                action, "unchanged",
                "{kind} {name} of {s} would change on a no-op sync\n{}",
                sync.out
            );
        }
    }
    let after: Vec<_> = stores.iter().map(|s| snapshot(s)).collect();
    assert_eq!(
        before, after,
        "a sync of an unchanged commit wrote to the cluster or ran helm upgrade"
    );
}

/// Scenario 3a: a plan change resizes the guardrails and upgrades the release (the plan is a
/// chart value, so the release's inputs changed).
#[test]
fn plan_change_updates_guardrails_and_upgrades_the_release() {
    let Some(suite) = Suite::start("plan change") else {
        return;
    };
    let platform = Platform::default();
    let s = suite.store("resize");
    let repo = StoresRepo::new(&platform);
    repo.put(&StoreFile::new(&s));
    let first = repo.commit("small store");
    suite.apply(&repo, &first, &[]).expect_code(0);
    let hash_before = release_secret_labels(&s, 1)
        .get("storesync.dev/release-hash")
        .cloned();

    repo.put(&StoreFile::new(&s).plan("medium"));
    let second = repo.commit("small -> medium");
    let sync = suite.apply(&repo, &second, &[]);
    sync.expect_code(0);
    assert_eq!(sync.action(&s), "update");
    assert_eq!(sync.outcome(&s), "applied");
    let quota = sync.change(&s, "ResourceQuota", "store-quota");
    assert_eq!(quota["action"], "update");
    let diff = quota["diff"].as_str().unwrap_or_default();
    let line = |sign: char, value: &str| {
        diff.lines()
            .any(|l| l.starts_with(sign) && l.contains("requests.cpu") && l.contains(value))
    };
    assert!(
        line('-', "200m") && line('+', "400m"),
        "the quota diff does not show the resize:\n{diff}"
    );
    assert_eq!(sync.change_action(&s, "LimitRange", "store-limits"), "update");
    assert_eq!(sync.change_action(&s, "HelmRelease", &s), "update");

    let ns = namespace(&s);
    let quota = must_get("resourcequota", Some(&ns), "store-quota");
    assert_eq!(strings(&quota["spec"]["hard"]), platform.quota("medium"));
    let limits = must_get("limitrange", Some(&ns), "store-limits");
    let max = limits["spec"]["limits"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["type"] == "Container"))
        .map(|c| strings(&c["max"]));
    assert_eq!(max, Some(platform.container_limits("medium").max));
    let n = must_get("namespace", None, &ns);
    assert_eq!(n["metadata"]["labels"]["storesync.dev/plan"], "medium");
    assert_eq!(
        n["metadata"]["annotations"]["storesync.dev/commit"],
        second.as_str()
    );
    let history = helm_history(&s);
    assert_eq!(history.len(), 2, "the release was not upgraded: {history:?}");
    assert_eq!(history[1]["status"], "deployed");
    let hash_after = release_secret_labels(&s, 2)
        .get("storesync.dev/release-hash")
        .cloned();
    assert!(
        hash_after.is_some() && hash_after != hash_before,
        "release hash {hash_before:?} -> {hash_after:?}"
    );
    assert_eq!(must_get("configmap", Some(&ns), &s)["data"]["plan"], "medium");
}

/// Scenario 3b: a guardrail-only change of the platform config updates the quota and leaves the
/// release alone.
#[test]
fn guardrail_only_change_updates_the_quota_without_a_helm_upgrade() {
    let Some(suite) = Suite::start("guardrail change") else {
        return;
    };
    let s = suite.store("guard");
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(&s));
    let first = repo.commit("store");
    suite.apply(&repo, &first, &[]).expect_code(0);
    let ns = namespace(&s);
    let generation = must_get("deployment", Some(&ns), &s)["metadata"]["generation"].clone();

    let bigger = Platform {
        small_pods: 6,
        ..Platform::default()
    };
    repo.platform(&bigger);
    let second = repo.commit("small plan: 6 pods");
    let sync = suite.apply(&repo, &second, &[]);
    sync.expect_code(0);
    assert_eq!(sync.action(&s), "update");
    let quota = sync.change(&s, "ResourceQuota", "store-quota");
    assert_eq!(quota["action"], "update");
    assert!(
        quota["diff"].as_str().unwrap_or_default().contains("pods"),
        "quota diff: {quota}"
    );
    assert_eq!(sync.change_action(&s, "LimitRange", "store-limits"), "unchanged");
    assert_eq!(
        sync.change_action(&s, "HelmRelease", &s),
        "unchanged",
        "{}",
        sync.out
    );

    let hard = strings(&must_get("resourcequota", Some(&ns), "store-quota")["spec"]["hard"]);
    assert_eq!(hard.get("pods").map(String::as_str), Some("6"));
    assert_eq!(hard, bigger.quota("small"));
    assert_eq!(
        helm_history(&s).len(),
        1,
        "helm upgrade ran for a change that is not the release's"
    );
    assert_eq!(
        must_get("deployment", Some(&ns), &s)["metadata"]["generation"],
        generation
    );
}

/// Scenario 4: credentials are generated once and survive no-op syncs, upgrades and resizes.
#[test]
fn credentials_are_generated_once_and_never_change() {
    let Some(suite) = Suite::start("credentials") else {
        return;
    };
    let s = suite.store("creds");
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(&s));
    let sha = repo.commit("store");
    let first = suite.apply(&repo, &sha, &[]);
    first.expect_code(0);
    let ns = namespace(&s);
    let original = credentials(&s);
    let uid = must_get("secret", Some(&ns), "store-credentials")["metadata"]["uid"].clone();

    let mut outputs = vec![first.out.stdout.clone()];
    let noop = suite.apply(&repo, &sha, &[]);
    noop.expect_code(0);
    outputs.push(noop.out.stdout.clone());
    repo.put(&StoreFile::new(&s).value("message", "new message"));
    let upgraded = repo.commit("new message: helm upgrade");
    let sync = suite.apply(&repo, &upgraded, &[]);
    sync.expect_code(0);
    assert_eq!(sync.change_action(&s, "Secret", "store-credentials"), "unchanged");
    outputs.push(sync.out.stdout.clone());
    repo.put(&StoreFile::new(&s).plan("medium").value("message", "new message"));
    let resized = repo.commit("medium");
    let sync = suite.apply(&repo, &resized, &[]);
    sync.expect_code(0);
    outputs.push(sync.out.stdout.clone());

    assert_eq!(
        helm_history(&s).len(),
        3,
        "the scenario did not upgrade the release twice"
    );
    assert_eq!(credentials(&s), original, "the credentials of {s} changed");
    assert_eq!(
        must_get("secret", Some(&ns), "store-credentials")["metadata"]["uid"],
        uid,
        "the Secret was re-created"
    );
    for (key, encoded) in &original {
        let plain = String::from_utf8(super::cluster::base64_decode(encoded)).expect("UTF-8 credential");
        for out in &outputs {
            assert!(
                !out.contains(&plain) && !out.contains(encoded.as_str()),
                "{key} appears in storesync's output"
            );
        }
    }
}

/// Scenario 12: `storesync status --output json` lists the live stores with their readiness.
#[test]
fn status_lists_stores_with_commit_release_and_readiness() {
    let Some(suite) = Suite::start("status") else {
        return;
    };
    let (a, b) = (suite.store("status-a"), suite.store("status-b"));
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(&a).owner("team-a"));
    repo.put(&StoreFile::new(&b).owner("team-b").plan("medium"));
    let sha = repo.commit("two stores");
    suite.apply(&repo, &sha, &[]).expect_code(0);

    let status = suite
        .storesync(&["status", "--output", "json"])
        .expect_ok()
        .json();
    let rows = status
        .as_array()
        .unwrap_or_else(|| panic!("status is not a JSON array: {status}"));
    for (store, owner, plan) in [(&a, "team-a", "small"), (&b, "team-b", "medium")] {
        let row = rows
            .iter()
            .find(|r| r["store"] == store.as_str())
            .unwrap_or_else(|| panic!("{store} is missing from storesync status: {status}"));
        assert_eq!(row["owner"], owner, "{row}");
        assert_eq!(row["engine"], "tiny", "{row}");
        assert_eq!(row["plan"], plan, "{row}");
        assert_eq!(row["commit"], sha.as_str(), "{row}");
        assert!(
            row["release"].as_str().is_some_and(|r| r.starts_with("deployed")),
            "{row}"
        );
        assert_eq!(row["ready"], "1/1", "{row}");
        assert!(row["lastError"].is_null(), "{row}");
    }
}
