//! The daemon on a bad day: an API server that goes away before or during a sync, and a head
//! that stays invalid across polls. Git is the truth, every commit hears one answer, nothing
//! is pruned while the cluster does not answer, and a retry converges once it does.
use std::time::Duration;

use axum::http::StatusCode;

use super::running::{Running, catalog_repo, statuses_of};
use super::webhooks::push_body;
use crate::common::fake_cluster::Fault;
use crate::common::store_yaml;

fn sync_states(r: &Running, sha: &str) -> Vec<String> {
    r.ctx
        .state
        .syncs()
        .iter()
        .filter(|s| s.sha.as_deref() == Some(sha))
        .map(|s| format!("{}: {}", s.state, s.description))
        .collect()
}

#[tokio::test]
async fn an_unreachable_cluster_ends_the_sync_in_error_is_retried_and_converges() {
    let (repo, sha) = catalog_repo();
    let r = Running::start_with(repo, Duration::from_secs(3600), |c| {
        c.set_fault(Some(Fault::Unreachable))
    })
    .await;
    // Retried with backoff (2 s, then 4 s), not only at the hourly poll.
    r.until("two failed attempts", Duration::from_secs(15), |r| {
        sync_states(r, &sha).len() >= 2
    })
    .await;
    let attempts = sync_states(&r, &sha);
    assert!(
        attempts[0].starts_with("error: storesync could not finish: cannot list namespaces: "),
        "{attempts:?}"
    );
    assert!(
        attempts.iter().all(|a| *a == attempts[0]),
        "the same failure reads the same: {attempts:?}"
    );
    assert_eq!(r.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let statuses = statuses_of(&r, &sha, "storesync/sync");
    assert_eq!(
        statuses.len(),
        2,
        "one pending and one error, not one per attempt: {statuses:?}"
    );
    assert_eq!(statuses[1].0, "error");

    r.cluster.set_fault(None);
    r.until("the retry to converge", Duration::from_secs(15), |r| {
        statuses_of(r, &sha, "storesync/sync")
            .last()
            .is_some_and(|s| s.0 == "success")
    })
    .await;
    assert_eq!(
        statuses_of(&r, &sha, "storesync/sync").last().unwrap().1,
        "applied 1, pruned 0, unchanged 0"
    );
    assert_eq!(r.get("/readyz").await.0, StatusCode::OK);
    assert!(r.cluster.get("namespaces", "", "store-acme").is_some());
    r.stop().await;
}

#[tokio::test]
async fn a_cluster_lost_mid_sync_prunes_nothing_and_the_retry_applies_everything() {
    let (repo, first) = catalog_repo();
    let mut r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;
    let helm_calls = r.helm.calls().len();

    // The next commit adds bobs and removes acme; the API server goes away after observing.
    r.repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    r.repo.remove("stores/acme.yaml");
    let second = r.repo.commit("Ben", "Replace acme with bobs");
    r.cluster.set_fault(Some(Fault::UnreachableForWrites));
    r.signed("push", "m1", &push_body(&r.branch.clone(), &second))
        .await;
    r.until_synced("the failed sync", &second).await;
    let (state, description) = statuses_of(&r, &second, "storesync/sync").last().unwrap().clone();
    assert_eq!(state, "error");
    assert!(
        description.starts_with("the cluster stopped answering mid-sync, nothing pruned: "),
        "{description}"
    );
    assert!(
        r.cluster.get("namespaces", "", "store-acme").unwrap()["metadata"]["labels"]["storesync.dev/state"]
            .is_null(),
        "neither retired nor pruned"
    );
    assert_eq!(
        r.helm.calls().len(),
        helm_calls,
        "no helm while the cluster is gone"
    );
    assert_eq!(r.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);

    r.cluster.set_fault(None);
    r.until("the retry to converge", Duration::from_secs(15), |r| {
        statuses_of(r, &second, "storesync/sync")
            .last()
            .is_some_and(|s| s.0 == "success")
    })
    .await;
    assert_eq!(
        statuses_of(&r, &second, "storesync/sync").last().unwrap().1,
        "applied 1, pruned 0, retired 1, unchanged 0"
    );
    assert_eq!(
        r.cluster.get("namespaces", "", "store-acme").unwrap()["metadata"]["labels"]["storesync.dev/state"],
        "retired"
    );
    assert!(r.cluster.get("namespaces", "", "store-bobs").is_some());
    assert_eq!(r.get("/readyz").await.0, StatusCode::OK);
    r.stop().await;
}

#[tokio::test]
async fn an_api_server_answering_500_is_an_error_not_a_prune() {
    let (repo, first) = catalog_repo();
    let mut r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;
    r.repo.remove("stores/acme.yaml");
    r.repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let second = r.repo.commit("Ben", "Replace acme with bobs");
    r.cluster.set_fault(Some(Fault::ServerError));
    r.signed("push", "e1", &push_body(&r.branch.clone(), &second))
        .await;
    r.until_synced("the failed sync", &second).await;
    let (state, description) = statuses_of(&r, &second, "storesync/sync").last().unwrap().clone();
    assert_eq!(state, "error");
    assert!(
        description.contains("etcdserver: request timed out"),
        "{description}"
    );
    assert!(r.cluster.get("namespaces", "", "store-acme").is_some());
    r.cluster.set_fault(None);
    r.until("the retry to converge", Duration::from_secs(15), |r| {
        statuses_of(r, &second, "storesync/sync")
            .last()
            .is_some_and(|s| s.0 == "success")
    })
    .await;
    r.stop().await;
}

#[tokio::test]
async fn a_head_that_stays_invalid_is_reported_once_however_often_it_is_polled() {
    let (mut repo, _) = catalog_repo();
    repo.write(
        "stores/cafe.yaml",
        "name: cafe\nengine: magento\nplan: small\nowner: team-c\n",
    );
    let bad = repo.commit("Cy", "Add cafe");
    let r = Running::start(repo, Duration::from_millis(200)).await;
    r.until("five polls of the invalid head", Duration::from_secs(15), |r| {
        sync_states(r, &bad).len() >= 5
    })
    .await;
    assert_eq!(
        statuses_of(&r, &bad, "storesync/sync"),
        vec![
            ("pending".into(), "syncing".into()),
            (
                "failure".into(),
                "invalid catalog: stores/cafe.yaml:2:9: unknown engine `magento`".into()
            )
        ]
    );
    r.stop().await;
}

/// An API server that accepts connections and never answers: `apply` ends with an error after
/// `--api-timeout` instead of hanging, and (with nothing answered) changes nothing.
#[test]
fn an_api_server_that_never_answers_times_out_instead_of_hanging() {
    use std::process::Command;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://{addr}'}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    let catalog = dir.path().join("catalog");
    std::fs::create_dir_all(catalog.join("stores")).unwrap();
    std::fs::write(
        catalog.join("stores/acme.yaml"),
        store_yaml("acme", "woocommerce", "small", "team-a"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_storesync"))
        .args(["apply", "--repo"])
        .arg(&catalog)
        .args(["--api-timeout", "1s"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed, and failed, rather than left to hang the suite when the timeout does not hold.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("apply still waiting on a silent API server after 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot list namespaces"), "{stderr}");
}

#[tokio::test]
async fn a_cluster_lost_during_helm_is_an_error_retried_until_the_store_is_installed() {
    let (repo, first) = catalog_repo();
    let mut r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;

    // A new store; the API server goes away while its helm runs, and helm fails for it.
    r.repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let second = r.repo.commit("Ben", "Add bobs");
    r.helm.cut_cluster_during_helm();
    r.signed("push", "m2", &push_body(&r.branch.clone(), &second))
        .await;
    r.until_synced("the cut sync", &second).await;
    let (state, description) = statuses_of(&r, &second, "storesync/sync").last().unwrap().clone();
    assert_eq!(state, "error", "not the store's fault: {description}");
    assert!(
        description.starts_with("the cluster stopped answering mid-sync, nothing pruned: "),
        "{description}"
    );
    assert_eq!(r.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);

    // Whatever else wakes the daemon meanwhile (the file watch saw the commit) finds the cluster
    // still gone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        statuses_of(&r, &second, "storesync/sync").last().unwrap().0,
        "error"
    );

    // The server comes back: with no new commit and no webhook, a retry installs the store.
    r.helm.restore_cluster();
    r.until("the retry to converge", Duration::from_secs(30), |r| {
        statuses_of(r, &second, "storesync/sync")
            .last()
            .is_some_and(|s| s.0 == "success")
    })
    .await;
    let syncs = r.ctx.state.syncs();
    assert_eq!(
        syncs.first().map(|s| s.reason),
        Some(storesync::daemon::Reason::Retry),
        "the sync that converged was a retry"
    );
    assert!(r.cluster.get("namespaces", "", "store-bobs").is_some());
    assert!(
        r.helm
            .release("store-bobs", "bobs")
            .is_some_and(|h| h.contains("deployed")),
        "installed by the retry"
    );
    assert_eq!(r.get("/readyz").await.0, StatusCode::OK);
    r.stop().await;
}

#[tokio::test]
async fn a_drift_interval_shorter_than_the_poll_holds_on_its_own() {
    let (repo, first) = catalog_repo();
    // An hourly poll, a one-second drift comparison.
    let r = Running::start_with_drift_interval(repo, Duration::from_secs(3600), Duration::from_secs(1)).await;
    r.until_synced("the startup sync", &first).await;
    // Let whatever else follows a start (the file watch seeing the repository) pass first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = r.ctx.state.syncs().len();
    let deployment = r
        .cluster
        .names("deployments", "store-acme")
        .into_iter()
        .find(|n| n.ends_with("-wordpress"))
        .expect("the chart's Deployment");
    // Someone scales the store to zero with kubectl; no commit, no webhook, no poll follows.
    r.cluster.edit("deployments", "store-acme", &deployment, |d| {
        d["spec"]["replicas"] = serde_json::json!(0);
        d["metadata"]["managedFields"] = serde_json::json!([{"manager": "kubectl", "operation": "Update",
            "subresource": "scale", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
    });
    let drift_syncs = |r: &Running| {
        let syncs = r.ctx.state.syncs();
        syncs[..syncs.len() - before]
            .iter()
            .filter(|s| s.reason == storesync::daemon::Reason::Drift)
            .count()
    };
    r.until(
        "drift repaired by a drift-scheduled sync",
        Duration::from_secs(30),
        |r| {
            r.cluster.get("deployments", "store-acme", &deployment).unwrap()["spec"]["replicas"] == 1
                && drift_syncs(r) > 0
        },
    )
    .await;
    r.stop().await;
}
