//! Live state that drifted from the commit is repaired; a release cut off mid-upgrade is
//! unstuck; a dry run changes nothing.
use std::process::Command;
use std::time::{Duration, Instant};

use super::catalog::{Platform, StoreFile, StoresRepo};
use super::cluster::{
    get, helm_history, helm_status, must_get, release_status, snapshot, strings, wait_until,
};
use super::harness::{Suite, admin_kubectl, helm, namespace, path_str, run, spawn, tiny_chart};
use super::output::Sync;

fn assert_drift_planned(sync: &Sync, s: &str) {
    assert_eq!(sync.action(s), "update", "{}", sync.out);
    let quota = sync.change(s, "ResourceQuota", "store-quota");
    assert_eq!(quota["action"], "update");
    let diff = quota["diff"].as_str().unwrap_or_default();
    let shows = |sign: char, value: &str| {
        diff.lines()
            .any(|l| l.starts_with(sign) && l.contains("pods") && l.contains(value))
    };
    assert!(
        shows('-', "99") && shows('+', "4"),
        "the diff does not show the drift and its repair:\n{diff}"
    );
    assert_eq!(sync.change_action(s, "NetworkPolicy", "allow-dns"), "create");
    assert_eq!(sync.change_action(s, "HelmRelease", s), "unchanged");
}

/// Scenario 9: a quota edited by hand and a deleted NetworkPolicy are put back by the next sync,
/// which plans them as updates with a diff; the sync after that has nothing to do.
#[test]
fn manual_drift_is_planned_and_repaired() {
    let Some(suite) = Suite::start("drift") else {
        return;
    };
    let platform = Platform::default();
    let s = suite.store("drift");
    let repo = StoresRepo::new(&platform);
    repo.put(&StoreFile::new(&s));
    let sha = repo.commit("store");
    suite.apply(&repo, &sha, &[]).expect_code(0);
    let ns = namespace(&s);

    admin_kubectl(
        &[
            "patch",
            "resourcequota",
            "store-quota",
            "-n",
            &ns,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"hard":{"pods":"99"}}}"#,
        ],
        None,
    )
    .expect_ok();
    admin_kubectl(&["delete", "networkpolicy", "allow-dns", "-n", &ns], None).expect_ok();

    let plan = suite.plan(&repo, &sha);
    plan.expect_code(0);
    assert_drift_planned(&plan, &s);
    let sync = suite.apply(&repo, &sha, &[]);
    sync.expect_code(0);
    assert_drift_planned(&sync, &s);
    assert_eq!(sync.outcome(&s), "applied");

    let hard = strings(&must_get("resourcequota", Some(&ns), "store-quota")["spec"]["hard"]);
    assert_eq!(hard, platform.quota("small"), "the quota was not repaired");
    assert!(
        get("networkpolicy", Some(&ns), "allow-dns").is_some(),
        "allow-dns was not re-created"
    );
    assert_eq!(helm_history(&s).len(), 1, "repairing guardrails ran helm upgrade");

    let again = suite.apply(&repo, &sha, &[]);
    again.expect_code(0);
    assert_eq!(
        again.action(&s),
        "unchanged",
        "the repair did not converge\n{}",
        again.out
    );
}

/// Scenario 10: a release left `pending-upgrade` by a helm that was killed mid-upgrade is rolled
/// back to its last good revision and then upgraded to the commit.
#[test]
fn stuck_release_is_rolled_back_then_upgraded() {
    let Some(suite) = Suite::start("stuck release") else {
        return;
    };
    let s = suite.store("stuck");
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(&s).value("message", "good"));
    let sha = repo.commit("store");
    suite.apply(&repo, &sha, &[]).expect_code(0);
    let ns = namespace(&s);

    // An upgrade that can never become ready (an image that does not exist), cut off by SIGKILL
    // once helm has recorded it and patched the Deployment: nothing gets to mark it failed.
    let bad_image = "registry.k8s.io/pause:e2e-does-not-exist";
    let mut upgrade = Command::new(helm());
    upgrade.args([
        "upgrade",
        "--install",
        &s,
        path_str(&tiny_chart()),
        "--namespace",
        &ns,
        "--version",
        "0.1.0",
    ]);
    upgrade.args([
        "--reuse-values",
        "--set",
        "image.tag=e2e-does-not-exist",
        "--wait",
        "--timeout",
        "5m",
    ]);
    let mut child = spawn(upgrade);
    let image = |ns: &str| {
        get("deployment", Some(ns), &s)
            .and_then(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(String::from)
            })
            .unwrap_or_default()
    };
    wait_until("helm has started the upgrade", Duration::from_secs(90), || {
        if let Some(status) = child.ended() {
            panic!("helm upgrade ended ({status}) before it could be killed");
        }
        release_status(&s) == "pending-upgrade" && image(&ns) == bad_image
    });
    child.kill();
    assert_eq!(
        release_status(&s),
        "pending-upgrade",
        "the killed upgrade did not leave the release stuck"
    );
    let stuck_revision = helm_status(&s)
        .and_then(|h| h["version"].as_u64())
        .expect("stuck revision");

    let plan = suite.plan(&repo, &sha);
    plan.expect_code(0);
    let release = plan.change(&s, "HelmRelease", &s);
    assert_eq!(release["action"], "update");
    assert!(
        release["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("pending-upgrade"),
        "{release}"
    );

    let sync = suite.apply(&repo, &sha, &[]);
    sync.expect_code(0);
    assert_eq!(sync.outcome(&s), "applied");

    let status = helm_status(&s).expect("release");
    assert_eq!(status["info"]["status"], "deployed");
    // 1 deployed, 2 the killed upgrade, then storesync's rollback to 1, then its upgrade.
    let history = helm_history(&s);
    let revision = |h: &serde_json::Value| h["revision"].as_u64().unwrap_or_default();
    let rollback = history
        .iter()
        .find(|h| {
            h["description"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Rollback to 1")
        })
        .unwrap_or_else(|| panic!("no rollback to revision 1 in the history: {history:#?}"));
    assert!(
        revision(rollback) > stuck_revision,
        "the rollback is older than the stuck upgrade: {history:#?}"
    );
    let last = history.last().expect("history");
    assert_eq!(last["status"], "deployed");
    assert!(
        revision(last) > revision(rollback),
        "storesync did not upgrade after the rollback: {history:#?}"
    );
    assert_eq!(image(&ns), "registry.k8s.io/pause:3.10");
    let deployment = must_get("deployment", Some(&ns), &s);
    assert_eq!(deployment["status"]["readyReplicas"], 1);
    let values = super::harness::admin_helm(&["get", "values", &s, "-n", &ns, "-o", "json"])
        .expect_ok()
        .json();
    assert!(
        values["image"].is_null(),
        "the manual value survived the repair: {values}"
    );

    let again = suite.apply(&repo, &sha, &[]);
    again.expect_code(0);
    assert_eq!(again.action(&s), "unchanged", "{}", again.out);
}

/// Longest `apply --dry-run` of two stores: about ten API requests (LISTs, a GET, a few
/// server-side dry-run applies), no helm, no wait.
const DRY_RUN_BOUND: Duration = Duration::from_secs(60);

/// `apply --dry-run` checks every write with the API server and changes nothing: not for a store
/// that already exists and changes, and not for a store that does not exist yet. It is quick:
/// each phase's time is printed, and the dry run is bounded, its request log kept for a failure.
#[test]
fn dry_run_changes_nothing() {
    let Some(suite) = Suite::start("dry run") else {
        return;
    };
    let (existing, new) = (suite.store("dry-existing"), suite.store("dry-new"));
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(&existing));
    let first = repo.commit("one store");
    let installed = suite.apply(&repo, &first, &[]);
    installed.expect_code(0);
    let settling = Instant::now();
    super::cluster::settle_quota(&existing);
    let settled = settling.elapsed();
    let before = snapshot(&existing);

    repo.put(&StoreFile::new(&existing).plan("medium"))
        .put(&StoreFile::new(&new));
    let second = repo.commit("resize one, add one");
    // kube-client's request log (method, URL, status, latency) goes with the output, so a slow
    // dry run says which request it waited for.
    let mut cmd = suite.storesync_command();
    cmd.args(suite.apply_args(&repo, &second, &["--dry-run"]))
        .env("RUST_LOG", "storesync=debug,kube_client=debug");
    let sync = Sync::new(run(cmd, None, Duration::from_secs(600)));
    let checking = Instant::now();
    sync.expect_code(0);
    assert_eq!(sync.json["dryRun"], true);
    assert_eq!(sync.action(&existing), "update");
    assert_eq!(sync.action(&new), "create");
    assert_eq!(sync.result_summary("failed"), 0, "{}", sync.out);

    assert_eq!(snapshot(&existing), before, "a dry run wrote to the cluster");
    assert!(
        get("namespace", None, &namespace(&new)).is_none(),
        "a dry run created {}",
        namespace(&new)
    );
    assert_eq!(release_status(&new), "<no release>");
    println!(
        "[e2e] dry run: install {:.1?}, quota settled {settled:.1?}, dry run {:.1?}, checks {:.1?} \
         (namespace deletion follows)",
        installed.out.elapsed,
        sync.out.elapsed,
        checking.elapsed()
    );
    assert!(
        sync.out.elapsed < DRY_RUN_BOUND,
        "`apply --dry-run` took {:.1?} (bound {DRY_RUN_BOUND:?}) for a few API requests and no helm; \
         storesync's client retries nothing itself (kube-client's default retry is off), so the \
         request log below shows which request waited.\n{}",
        sync.out.elapsed,
        sync.out
    );
}
