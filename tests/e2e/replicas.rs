//! Replicas: two `storesync serve --leader-elect` processes of one installation elect a leader
//! on the real Lease, share the leader's history, fail over when it dies or stops, and a push a
//! follower accepted reaches the leader through the cluster.
//!
//! Both read the stores repository as a `file://` URL with `--interval 1h`: a local path would
//! also be watched for commits, and then a sync could come from the watch instead of the
//! election or the forwarded push a scenario is about.
use std::time::{Duration, Instant};

use serde_json::Value;

use super::catalog::{Platform, StoreFile, StoresRepo};
use super::cluster::{annotations, get, release_status, terminating};
use super::daemon::{
    JITTER, LEASE_DURATION, Lease, Pair, REQUESTS, RETRY_PERIOD, lease, millis_between, shared_records,
    shared_sync,
};
use super::harness::{E2E_NAMESPACE, Suite, namespace};

/// The first install pulls the pause image when the node lacks it.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);
/// Process start, connection to the cluster, first election.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The store's namespace carries commit `sha` and its release is deployed.
fn synced(store: &str, sha: &str) -> bool {
    let Some(ns) = get("namespace", None, &namespace(store)) else {
        return false;
    };
    !terminating(&ns)
        && annotations(&ns).get("storesync.dev/commit").map(String::as_str) == Some(sha)
        && release_status(store) == "deployed"
}

/// Two replicas on a repository holding `stores`, once the leader has synced it and shared its
/// records: the pair, the leader's index, the Lease, the repository and the commit.
///
/// The leader is then idle: its last trigger is the one of its election (a startup trigger
/// still waiting is merged into it), and no poll comes within the scenario.
fn replicas_in_sync(suite: &Suite, stores: &[&str]) -> (Pair, usize, Lease, StoresRepo, String) {
    let repo = StoresRepo::new(&Platform::default());
    for s in stores {
        repo.put(&StoreFile::new(s));
    }
    let sha = repo.commit("stores");
    let pair = Pair::start(suite, &repo);
    let (leader, held) = pair.await_leader(ELECTION_TIMEOUT);
    pair.wait(&format!("the leader syncs {sha}"), SYNC_TIMEOUT, || {
        stores.iter().all(|s| synced(s, &sha))
    });
    let holder = held.holder.clone().unwrap_or_default();
    pair.wait(
        "the leader shares the sync of its election in storesync-state",
        SYNC_TIMEOUT,
        || {
            shared_records().is_some_and(|r| {
                r["leader"] == holder.as_str()
                    && shared_sync(&r, &sha)
                        .is_some_and(|s| s["state"] == "success" && s["reason"] == "elected")
            })
        },
    );
    (pair, leader, held, repo, sha)
}

/// The value of gauge `name` in the OpenMetrics text of `/metrics`.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

/// Two replicas: exactly one holds the Lease (and renews it), both are ready, and the follower
/// serves the stores, sync and commit page of the leader's records.
#[test]
fn two_replicas_elect_one_leader_and_share_its_history() {
    let Some(suite) = Suite::start("replicas") else {
        return;
    };
    let s = suite.store("ha-one");
    let (pair, leader, held, _repo, sha) = replicas_in_sync(&suite, &[&s]);
    let follower = 1 - leader;
    let holder = held.holder.clone().unwrap_or_default();
    let names = [&pair.daemons[0].name, &pair.daemons[1].name];

    let now = lease().unwrap_or_else(|| pair.fail("the Lease is gone"));
    pair.ensure(now.holder.as_deref() == Some(holder.as_str()), || {
        format!("the Lease changed holder: {}", now.raw)
    });
    pair.ensure(now.transitions == 0, || {
        format!("the Lease changed holder since it was created: {}", now.raw)
    });
    pair.ensure(
        now.duration_seconds == Some(LEASE_DURATION.as_secs() as i64),
        || format!("leaseDurationSeconds is not --lease-duration: {}", now.raw),
    );
    pair.ensure(!pair.daemons[follower].holds(&holder), || {
        format!("{holder} is both {names:?}")
    });
    let renewed = now.renew_time;
    pair.wait("the leader renews the Lease", RETRY_PERIOD * 5, || {
        lease().is_some_and(|l| l.holder.as_deref() == Some(holder.as_str()) && l.renew_time > renewed)
    });

    pair.wait("/readyz is 200 on both replicas", ELECTION_TIMEOUT, || {
        pair.daemons
            .iter()
            .all(|d| d.get("/readyz").is_ok_and(|(code, _)| code == 200))
    });
    for (i, want) in [(leader, 1.0), (follower, 0.0)] {
        let (_, metrics) = pair.get(i, "/metrics");
        pair.ensure(gauge(&metrics, "storesync_leader") == Some(want), || {
            format!("storesync_leader of {} is not {want}:\n{metrics}", names[i])
        });
    }

    // The follower never synced, so it never read the catalog: a store it shows with its
    // domain (which only the catalog gives) comes from the leader's records in storesync-state.
    let mut seen = Value::Null;
    pair.wait(
        "the follower's /api/stores shows the leader's sync",
        Duration::from_secs(30),
        || {
            seen = pair.daemons[follower]
                .get("/api/stores")
                .ok()
                .and_then(|(_, body)| serde_json::from_str(&body).ok())
                .unwrap_or(Value::Null);
            seen.as_array()
                .into_iter()
                .flatten()
                .any(|v| v["name"] == s.as_str() && v["commit"] == sha.as_str() && v["domain"].is_string())
        },
    );
    let (code, page) = pair.get(follower, &format!("/commits/{sha}"));
    pair.ensure(code == 200 && page.contains(&sha), || {
        format!("the follower has no page for {sha} ({code}):\n{page}")
    });
    let (code, _) = pair.get(leader, &format!("/commits/{sha}"));
    pair.ensure(code == 200, || {
        format!("the leader has no page for {sha} ({code})")
    });
}

/// SIGKILL of the leader: the other replica takes the Lease once it expired, not before, and
/// within lease duration + 2 × the (jittered) retry period; it syncs the commit made meanwhile.
#[test]
fn killed_leader_is_replaced_after_the_lease_expires() {
    let Some(suite) = Suite::start("failover") else {
        return;
    };
    let s = suite.store("ha-kill");
    let added = suite.store("ha-new");
    let (pair, leader, _, repo, _) = replicas_in_sync(&suite, &[&s]);
    let follower = 1 - leader;

    let killed_at = Instant::now();
    pair.daemons[leader].kill();
    let before = lease().unwrap_or_else(|| pair.fail("the Lease is gone"));
    pair.ensure(
        before
            .holder
            .as_deref()
            .is_some_and(|h| pair.daemons[leader].holds(h)),
        || format!("the killed replica did not hold the Lease: {}", before.raw),
    );
    // Made while nobody leads: only the next leader can sync it.
    repo.put(&StoreFile::new(&added));
    let sha = repo.commit("a store added during the failover");

    let bound = LEASE_DURATION + RETRY_PERIOD.mul_f64(2.0 * JITTER);
    let mut after = None;
    pair.wait(
        "the other replica takes the Lease",
        bound + Duration::from_secs(10),
        || {
            after = lease().filter(|l| pair.holder_of(l) == Some(follower));
            after.is_some()
        },
    );
    let seen_after = killed_at.elapsed();
    let after = after.expect("found by the wait");
    let (Some(renewed), Some(acquired)) = (before.renew_time, after.acquire_time) else {
        pair.fail(&format!(
            "renewTime or acquireTime missing: {} then {}",
            before.raw, after.raw
        ));
    };
    // Both processes run on this machine: their Lease times share one clock.
    let gap = millis_between(renewed, acquired);
    println!(
        "[e2e] SIGKILL failover: {} took the Lease {gap} ms after the last renewal (seen {seen_after:.1?} after \
         the kill; lease {LEASE_DURATION:?}, retry {RETRY_PERIOD:?})",
        pair.daemons[follower].name
    );
    pair.ensure(gap >= LEASE_DURATION.as_millis() as i64 - 100, || {
        format!(
            "the Lease was taken {gap} ms after its last renewal, before it expired: {} then {}",
            before.raw, after.raw
        )
    });
    // The candidate sees the last renewal within one jittered retry and retries once more after
    // expiry; 1 s for the API round trips of both reads and the write.
    pair.ensure(gap <= bound.as_millis() as i64 + 1000, || {
        format!("the Lease was taken {gap} ms after its last renewal; the bound is {bound:?}")
    });
    pair.ensure(after.transitions == before.transitions + 1, || {
        format!(
            "leaseTransitions did not go up by one: {} then {}",
            before.raw, after.raw
        )
    });

    pair.wait(&format!("the new leader syncs {sha}"), SYNC_TIMEOUT, || {
        synced(&added, &sha)
    });
    let new_holder = after.holder.clone().unwrap_or_default();
    pair.wait(
        "the new leader shares its sync of the new commit",
        Duration::from_secs(30),
        || {
            shared_records().is_some_and(|r| {
                r["leader"] == new_holder.as_str()
                    && shared_sync(&r, &sha)
                        .is_some_and(|s| s["state"] == "success" && s["reason"] == "elected")
            })
        },
    );
    pair.ensure(
        get("namespace", None, &namespace(&s)).is_some_and(|ns| !terminating(&ns))
            && release_status(&s) == "deployed",
        || format!("the first store did not survive the failover: {s}"),
    );
}

/// SIGTERM of the leader: it finishes, releases the Lease and exits 0, and the other replica
/// takes over within a few seconds, well before the Lease would have expired.
#[test]
fn stopped_leader_hands_over_at_once() {
    let Some(suite) = Suite::start("handover") else {
        return;
    };
    let s = suite.store("ha-term");
    let (pair, leader, _, _repo, _) = replicas_in_sync(&suite, &[&s]);
    let follower = 1 - leader;
    let before = lease().unwrap_or_else(|| pair.fail("the Lease is gone"));

    let stopped_at = Instant::now();
    pair.daemons[leader].terminate();
    let mut released: Option<Duration> = None;
    let mut after = None;
    let handover = pair.wait("the other replica takes the Lease", LEASE_DURATION * 3, || {
        let now = lease();
        if released.is_none() && now.as_ref().is_some_and(|l| l.holder.is_none()) {
            released = Some(stopped_at.elapsed());
        }
        after = now.filter(|l| pair.holder_of(l) == Some(follower));
        after.is_some()
    });
    let after = after.expect("found by the wait");
    println!(
        "[e2e] SIGTERM handover: {} took the Lease {handover:.2?} after SIGTERM (seen released: {})",
        pair.daemons[follower].name,
        released.map_or("no, taken between two reads".into(), |d| format!("after {d:.2?}")),
    );
    // Without the release the Lease could not be taken before its last renewal (at most one
    // retry period before SIGTERM) plus the lease duration.
    pair.ensure(handover < LEASE_DURATION - RETRY_PERIOD, || {
        format!("handover took {handover:.1?}: the Lease was waited out, not released")
    });
    pair.ensure(after.transitions == before.transitions + 1, || {
        format!(
            "leaseTransitions did not go up by one: {} then {}",
            before.raw, after.raw
        )
    });
    pair.ensure(
        after.duration_seconds == Some(LEASE_DURATION.as_secs() as i64),
        || format!("the new holder did not write its lease duration: {}", after.raw),
    );

    pair.wait(
        "the old leader exits after SIGTERM",
        Duration::from_secs(30),
        || pair.daemons[leader].exited().is_some(),
    );
    let status = pair.daemons[leader].exited();
    pair.ensure(status.is_some_and(|s| s.success()), || {
        format!("the old leader exited with {status:?}")
    });
    pair.ensure(
        pair.daemons[leader].logs().contains("leader Lease released"),
        || "the old leader did not log the release of the Lease".into(),
    );
    let new_holder = after.holder.clone().unwrap_or_default();
    pair.wait(
        "the new leader syncs and shares its records",
        SYNC_TIMEOUT,
        || shared_records().is_some_and(|r| r["leader"] == new_holder.as_str()),
    );
}

/// A signed push delivered to the follower reaches the leader through ConfigMap
/// storesync-requests and is synced by it; nothing else syncs the commit (no poll, no watch).
#[test]
fn push_to_a_follower_is_synced_by_the_leader() {
    let Some(suite) = Suite::start("forward") else {
        return;
    };
    let s = suite.store("ha-push");
    let added = suite.store("ha-pushed");
    let (pair, leader, held, repo, _) = replicas_in_sync(&suite, &[&s]);
    let follower = 1 - leader;
    let holder = held.holder.clone().unwrap_or_default();

    repo.put(&StoreFile::new(&added));
    let sha = repo.commit("a store added by a push");
    // The control: without the push, nothing syncs the new commit.
    std::thread::sleep(Duration::from_secs(5));
    pair.ensure(get("namespace", None, &namespace(&added)).is_none(), || {
        format!("{sha} was synced before any push: the scenario cannot tell a forwarded push apart")
    });

    let (code, body) = pair.daemons[follower]
        .push(&sha, &pair.secret, &format!("{}forward", suite.prefix))
        .unwrap_or_else(|e| pair.fail(&format!("the follower did not answer the webhook: {e}")));
    pair.ensure(code == 202, || {
        format!("the follower answered the push with {code}: {body}")
    });

    pair.wait(&format!("the leader syncs {sha}"), SYNC_TIMEOUT, || {
        synced(&added, &sha)
    });
    // The records are written once the sync has ended, a moment after its last write.
    let mut records = Value::Null;
    pair.wait(
        &format!("the leader shares its sync of {sha}"),
        Duration::from_secs(30),
        || {
            records = shared_records().unwrap_or(Value::Null);
            shared_sync(&records, &sha).is_some()
        },
    );
    let sync = shared_sync(&records, &sha);
    pair.ensure(
        records["leader"] == holder.as_str()
            && sync
                .as_ref()
                .is_some_and(|s| s["reason"] == "webhook" && s["state"] == "success"),
        || format!("the sync of {sha} is not the leader's, for a webhook: {records:#}"),
    );
    pair.ensure(
        lease().and_then(|l| l.holder).as_deref() == Some(holder.as_str()),
        || "the Lease changed holder during the scenario".into(),
    );
    let requests = get("configmap", Some(E2E_NAMESPACE), REQUESTS)
        .unwrap_or_else(|| pair.fail("no ConfigMap storesync-requests"));
    let data = &requests["data"];
    pair.ensure(
        data["commits"].as_str().is_some_and(|c| c.contains(&sha))
            && data["handled"].is_string()
            && data["handled"] == data["sequence"],
        || format!("the push is not in storesync-requests, or not taken by the leader: {requests}"),
    );
    pair.ensure(
        pair.daemons[follower]
            .logs()
            .contains("push handed to the leader"),
        || "the follower did not log handing the push over".into(),
    );
    pair.ensure(
        pair.daemons[leader]
            .logs()
            .contains("push accepted by another replica"),
        || "the leader did not log taking the push".into(),
    );
}
