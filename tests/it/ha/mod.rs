//! Replicas of the daemon against one fake API server: one leads, through a Lease; the others
//! take webhooks and serve the leader's records. Time-sensitive cases run on paused time.
mod helm_process;
mod lease;
mod replicas;
mod requests;

use std::time::Duration;

use axum::http::StatusCode;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use replicas::{DEFAULT, NAMESPACE, Replica, Timings, World, empty_catalog, until};

use crate::common::store_yaml;

/// How many of `replicas` lead now.
fn leaders(replicas: &[&Replica]) -> usize {
    replicas.iter().filter(|r| r.leads()).count()
}

#[tokio::test(start_paused = true)]
async fn exactly_one_replica_leads_and_a_killed_leader_is_replaced_within_the_lease_duration() {
    let (repo, sha) = empty_catalog();
    let world = World::new(repo);
    let a = world.start("storesync-a", DEFAULT);
    let b = world.start("storesync-b", DEFAULT);
    until("a leader", DEFAULT.retry * 3, || leaders(&[&a, &b]) == 1).await;
    // A minute of renewals: never two leaders, never none.
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(leaders(&[&a, &b]), 1, "exactly one replica leads");
    }
    let (leader, follower) = if a.leads() { (a, b) } else { (b, a) };
    assert_eq!(world.lease().0.as_deref(), Some(leader.name.as_str()));
    until("the leader's sync", Duration::from_secs(5), || {
        leader
            .ctx
            .state
            .syncs()
            .iter()
            .any(|s| s.sha.as_deref() == Some(sha.as_str()))
    })
    .await;
    assert_eq!(
        follower.syncs_run(),
        0.0,
        "a replica that does not lead never syncs"
    );
    let (_, transitions) = world.lease();

    let killed = tokio::time::Instant::now();
    leader.kill().await;
    until(
        "the follower to take over",
        DEFAULT.lease + DEFAULT.retry * 3,
        || follower.leads(),
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took >= DEFAULT.lease - DEFAULT.retry.mul_f64(1.2),
        "a Lease renewed {took:?} ago is not taken: its holder may still be working"
    );
    assert!(
        took <= DEFAULT.lease + DEFAULT.retry.mul_f64(2.4),
        "took over after {took:?}"
    );
    assert_eq!(world.lease(), (Some(follower.name.clone()), transitions + 1));
    let metrics = follower.ctx.metrics.render();
    assert!(metrics.contains("storesync_leader 1"), "{metrics}");
    assert!(
        metrics.contains("storesync_leader_transitions_total 1"),
        "{metrics}"
    );
    follower.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_hands_over_at_once() {
    let (repo, _) = empty_catalog();
    let world = World::new(repo);
    let a = world.start("storesync-a", DEFAULT);
    until("a to lead", DEFAULT.retry * 3, || a.leads()).await;
    let b = world.start("storesync-b", DEFAULT);
    tokio::time::sleep(DEFAULT.retry * 3).await;
    assert!(a.leads() && !b.leads());
    let (_, page) = b.get("/").await;
    assert!(page.contains("Leader: <code>storesync-a</code>"), "{page}");

    let stopped = tokio::time::Instant::now();
    a.stop().await;
    assert_eq!(world.lease().0, None, "the Lease was released");
    until("b to lead", DEFAULT.lease, || b.leads()).await;
    let took = stopped.elapsed();
    assert!(
        took <= DEFAULT.retry.mul_f64(1.2) + Duration::from_millis(100),
        "a released Lease is taken at the next try, not after {took:?}"
    );
    let (_, page) = b.get("/").await;
    assert!(
        page.contains("Leader: <code>storesync-b</code> (this replica)"),
        "{page}"
    );
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_push_to_the_replica_that_does_not_lead_is_synced_by_the_leader() {
    let (repo, first) = empty_catalog();
    let mut world = World::new(repo);
    let a = world.start("storesync-a", DEFAULT);
    until("a to lead", DEFAULT.retry * 3, || a.leads()).await;
    let b = world.start("storesync-b", DEFAULT);
    until("a's first sync", Duration::from_secs(5), || {
        a.ctx.state.last_result().is_some_and(|l| l.sha == first)
    })
    .await;
    world.repo.write("README.md", "stores of acme\n");
    let second = world.repo.commit("Ada", "Say what this is");

    let pushed = tokio::time::Instant::now();
    let (code, _) = b.push(&world.branch, &second, "7f3c2a10-0001").await;
    assert_eq!(code, StatusCode::ACCEPTED, "every replica takes webhooks");
    until("the leader to sync the push", Duration::from_secs(2), || {
        a.ctx.state.syncs().first().is_some_and(|s| {
            s.sha.as_deref() == Some(second.as_str()) && s.reason == storesync::daemon::Reason::Webhook
        })
    })
    .await;
    assert!(
        pushed.elapsed() <= Duration::from_secs(2),
        "{:?}",
        pushed.elapsed()
    );
    let requests = world
        .cluster
        .get("configmaps", NAMESPACE, "storesync-requests")
        .unwrap();
    assert!(
        requests["metadata"]["annotations"]["storesync.dev/requested-at"].is_string(),
        "{requests}"
    );
    assert_eq!(
        b.syncs_run(),
        0.0,
        "the replica that took the push did not sync it"
    );

    // Pushes arriving together race on the ConfigMap: a stale write is refused and retried, so
    // none is lost.
    let shas: Vec<String> = (1..=3).map(|i| format!("{i}").repeat(40)).collect();
    let (x, y, z) = tokio::join!(
        b.push(&world.branch, &shas[0], "7f3c2a10-0011"),
        b.push(&world.branch, &shas[1], "7f3c2a10-0012"),
        b.push(&world.branch, &shas[2], "7f3c2a10-0013"),
    );
    assert!([x.0, y.0, z.0].iter().all(|c| *c == StatusCode::ACCEPTED));
    until("the leader to take all three", Duration::from_secs(2), || {
        let cm = world
            .cluster
            .get("configmaps", NAMESPACE, "storesync-requests")
            .unwrap();
        cm["data"]["sequence"] == "4" && cm["data"]["handled"] == "4"
    })
    .await;
    let cm = world
        .cluster
        .get("configmaps", NAMESPACE, "storesync-requests")
        .unwrap();
    let commits = cm["data"]["commits"].as_str().unwrap();
    assert!(shas.iter().all(|sha| commits.contains(sha.as_str())), "{commits}");

    // The follower serves the leader's records.
    until("b to read the leader's records", Duration::from_secs(5), || {
        b.ctx.state.last_result().is_some_and(|l| l.sha == second)
    })
    .await;
    let (code, page) = b.get(&format!("/commits/{second}")).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    let (code, stores) = b.get("/api/stores").await;
    assert_eq!((code, stores.as_str()), (StatusCode::OK, "[]"));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_daemon_shows_the_history_of_the_ones_before() {
    let (repo, first) = empty_catalog();
    let mut world = World::new(repo);
    let a = world.start("storesync-a", DEFAULT);
    let b = world.start("storesync-b", DEFAULT);
    until("a sync", Duration::from_secs(10), || {
        [&a, &b]
            .iter()
            .any(|r| r.ctx.state.last_result().is_some_and(|l| l.sha == first))
    })
    .await;
    world.repo.write("README.md", "stores of acme\n");
    let second = world.repo.commit("Ada", "Say what this is");
    a.push(&world.branch, &second, "7f3c2a10-0002").await;
    until("the push synced", Duration::from_secs(5), || {
        [&a, &b]
            .iter()
            .any(|r| r.ctx.state.last_result().is_some_and(|l| l.sha == second))
    })
    .await;
    a.stop().await;
    b.stop().await;

    // Neither is running: the history is in the cluster alone.
    let stored = world
        .cluster
        .get("configmaps", NAMESPACE, "storesync-state")
        .unwrap();
    let text = stored["data"]["records.json"].as_str().unwrap();
    assert!(text.len() <= 1024 * 1024, "{} bytes", text.len());
    let c = world.start("storesync-c", DEFAULT);
    until("c to read the history", Duration::from_secs(1), || {
        c.ctx.state.commit(&first).is_some()
    })
    .await;
    let (code, page) = c.get(&format!("/commits/{first}")).await;
    assert_eq!(
        code,
        StatusCode::OK,
        "the first commit's result is still there: {page}"
    );
    let (_, page) = c.get("/").await;
    assert!(
        page.contains(&first[..12]) && page.contains(&second[..12]),
        "{page}"
    );
    c.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_leader_cut_off_from_the_cluster_stops_before_another_starts() {
    let (repo, _) = empty_catalog();
    let world = World::new(repo);
    let a = world.start("storesync-a", DEFAULT);
    until("a to lead", DEFAULT.retry * 3, || a.leads()).await;
    let b = world.start("storesync-b", DEFAULT);
    tokio::time::sleep(DEFAULT.retry * 2).await;

    let cut = tokio::time::Instant::now();
    a.link.cut();
    until("a to step down", DEFAULT.lease, || !a.leads()).await;
    let stepped_down = cut.elapsed();
    assert!(stepped_down <= DEFAULT.renew + DEFAULT.retry, "{stepped_down:?}");
    assert!(!b.leads(), "the Lease is not up for grabs yet");
    until("b to lead", DEFAULT.lease * 2, || b.leads()).await;
    let b_leads = cut.elapsed();
    assert!(
        b_leads > stepped_down + Duration::from_secs(1),
        "a stepped down after {stepped_down:?}, b led after {b_leads:?}: never both"
    );
    let (code, _) = b.get("/readyz").await;
    assert_eq!(code, StatusCode::OK);
    until(
        "a, cut off, to say it is not ready",
        Duration::from_secs(10),
        || !a.ctx.state.is_ready(),
    )
    .await;
    a.link.restore();
    tokio::time::sleep(DEFAULT.retry * 3).await;
    assert!(b.leads() && !a.leads(), "the old leader comes back as a follower");
    let (code, _) = a.get("/readyz").await;
    assert_eq!(code, StatusCode::OK, "ready again once the cluster answers");
    let page = a.get("/").await.1;
    assert!(page.contains("Leader: <code>storesync-b</code>"), "{page}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_election_one_daemon_leads_alone_and_keeps_its_history_across_a_restart() {
    let (repo, sha) = empty_catalog();
    let world = World::new(repo);
    let a = world.start_alone("storesync-a");
    assert!(a.leads(), "no election: the process leads from the start");
    until("the startup sync", Duration::from_secs(5), || {
        a.ctx.state.last_result().is_some_and(|l| l.sha == sha)
    })
    .await;
    let metrics = a.ctx.metrics.render();
    assert!(metrics.contains("storesync_leader 1"), "{metrics}");
    let (_, page) = a.get("/").await;
    assert!(!page.contains("Leader:"), "no election, no leader line: {page}");
    a.stop().await;
    assert!(
        world.lease().0.is_none() && world.cluster.lease(NAMESPACE, "storesync").is_none(),
        "no Lease"
    );

    let b = world.start_alone("storesync-b");
    until("b's own sync", Duration::from_secs(5), || b.syncs_run() >= 1.0).await;
    assert_eq!(
        b.ctx.state.syncs().len(),
        2,
        "a's sync and b's: the history was read back"
    );
    let (code, _) = b.get(&format!("/commits/{sha}")).await;
    assert_eq!(
        code,
        StatusCode::OK,
        "the result a recorded, as b found the same verdict"
    );
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_api_server_hangs_steps_down_and_still_stops() {
    let (repo, _) = empty_catalog();
    let world = World::new(repo);
    let a = world.start("storesync-a", DEFAULT);
    until("a to lead", DEFAULT.retry * 3, || a.leads()).await;
    tokio::time::sleep(DEFAULT.retry * 2).await;
    a.link.hang();
    until("a to step down", DEFAULT.renew + DEFAULT.retry * 2, || !a.leads()).await;
    let stopping = tokio::time::Instant::now();
    a.stop().await;
    assert!(
        stopping.elapsed() <= Duration::from_secs(11),
        "stopped after {:?}",
        stopping.elapsed()
    );
    assert_eq!(
        world.lease().0.as_deref(),
        Some("storesync-a"),
        "nothing could be released: a successor waits for the Lease to expire"
    );
}

/// Real time: the recording helm runs as a process. Timings are short so the test is quick.
#[tokio::test]
async fn helm_never_runs_twice_at_once_for_one_store() {
    let quick = Timings {
        lease: Duration::from_secs(3),
        renew: Duration::from_secs(2),
        retry: Duration::from_millis(500),
    };
    let mut repo = crate::common::GitRepo::new();
    repo.write(
        "stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "small", "team-acme"),
    );
    repo.write(
        "stores/bobs-bikes.yaml",
        &store_yaml("bobs-bikes", "medusa", "small", "team-bikes"),
    );
    let sha = repo.commit("Ada", "Two stores");
    let world = World::with_github(repo).await;
    // Each helm takes long enough that the leader is cut off while one runs.
    world.helm.slow_down(4.0);
    let a = world.start("storesync-a", quick);
    until("a to lead", Duration::from_secs(10), || a.leads()).await;
    let b = world.start("storesync-b", quick);
    until("a's helm to start", Duration::from_secs(30), || {
        !world.helm.operations().is_empty()
    })
    .await;

    a.link.cut();
    until("b to lead", Duration::from_secs(30), || b.leads()).await;
    assert!(!a.leads());
    until("b's sync of both stores", Duration::from_secs(90), || {
        b.ctx
            .state
            .last_result()
            .is_some_and(|l| l.sha == sha && l.state == storesync::daemon::ResultState::Success)
    })
    .await;
    let operations = world.helm.operations();
    for store in ["acme", "bobs-bikes"] {
        let on = operations
            .iter()
            .filter(|o| o.contains(&format!("__{store} ")))
            .count();
        assert!(on >= 1, "{store}: {operations:?}");
    }
    assert!(
        operations.len() > 2,
        "a's helm was stopped and b ran its own: {operations:?}"
    );
    assert_eq!(world.helm.overlaps(), Vec::<String>::new(), "{operations:?}");
    // a stopped leading mid-sync: the verdict on the commit is b's alone.
    until("b's status", Duration::from_secs(10), || {
        world
            .statuses(&sha)
            .last()
            .is_some_and(|(state, _)| state == "success")
    })
    .await;
    let statuses = world.statuses(&sha);
    assert!(
        statuses
            .iter()
            .all(|(state, _)| state == "pending" || state == "success"),
        "{statuses:?}"
    );
    a.link.restore();
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_fake_api_server_refuses_stale_writes() {
    let world = World::new(empty_catalog().0);
    let api: Api<Lease> = Api::namespaced(world.cluster.client(), NAMESPACE);
    let mut lease = Lease::default();
    lease.metadata.name = Some("storesync".into());
    let created = api.create(&PostParams::default(), &lease).await.unwrap();
    let again = api.create(&PostParams::default(), &lease).await.unwrap_err();
    assert!(
        matches!(&again, kube::Error::Api(e) if e.code == 409 && e.reason == "AlreadyExists"),
        "{again}"
    );
    let first = api
        .replace("storesync", &PostParams::default(), &created)
        .await
        .unwrap();
    assert_ne!(first.metadata.resource_version, created.metadata.resource_version);
    let stale = api
        .replace("storesync", &PostParams::default(), &created)
        .await
        .unwrap_err();
    assert!(
        matches!(&stale, kube::Error::Api(e) if e.code == 409 && e.reason == "Conflict"),
        "{stale}"
    );
}
