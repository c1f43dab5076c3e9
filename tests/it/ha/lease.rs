//! Lease timing as client-go judges it, on paused time: a candidate waits out the duration the
//! holder stated, not its own; a leader counts its renew deadline from when its last good
//! renewal was sent, however late the answer came.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::replicas::{DEFAULT, NAMESPACE, World, empty_catalog, until};

/// A Lease held by a replica that is gone, which promised to renew within `seconds`.
fn plant_lease(world: &World, seconds: i32) {
    world.cluster.insert(
        "leases",
        NAMESPACE,
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "storesync"},
            "spec": {
                "holderIdentity": "storesync-gone",
                "leaseDurationSeconds": seconds,
                "acquireTime": "2026-01-01T00:00:00.000000Z",
                "renewTime": "2026-01-01T00:00:00.000000Z",
                "leaseTransitions": 4
            }
        }),
    );
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_promised_a_longer_lease_is_waited_out_in_full() {
    let world = World::new(empty_catalog().0);
    plant_lease(&world, 60);
    let started = Instant::now();
    let a = world.start("storesync-a", DEFAULT);
    tokio::time::sleep(Duration::from_secs(55)).await;
    assert!(
        !a.leads(),
        "the holder said 60 s: the candidate's own 15 s do not make its Lease expire"
    );
    until("a to take the expired Lease", Duration::from_secs(15), || {
        a.leads()
    })
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(60) && took <= Duration::from_secs(60) + DEFAULT.retry.mul_f64(2.4),
        "took over after {took:?}"
    );
    assert_eq!(world.lease(), (Some("storesync-a".into()), 5));
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_promised_a_shorter_lease_is_replaced_when_it_runs_out() {
    let world = World::new(empty_catalog().0);
    plant_lease(&world, 5);
    let started = Instant::now();
    let a = world.start("storesync-a", DEFAULT);
    until("a to take the expired Lease", DEFAULT.lease, || a.leads()).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took <= Duration::from_secs(5) + DEFAULT.retry.mul_f64(2.4),
        "the holder said 5 s, yet took over after {took:?}"
    );
    a.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_renewal_answered_late_counts_from_when_it_was_sent() {
    let world = World::new(empty_catalog().0);
    let a = world.start("storesync-a", DEFAULT);
    until("a to lead", DEFAULT.retry * 3, || a.leads()).await;
    let b = world.start("storesync-b", DEFAULT);
    tokio::time::sleep(DEFAULT.retry * 2).await;

    // The next renewal is written at once (b sees it) but answered 7 s later, inside the
    // deadline; then a is cut off.
    a.link.answer_lease_writes_after(Duration::from_secs(7));
    until("a renewal answered late", DEFAULT.renew, || {
        !a.link.late_lease_writes().is_empty()
    })
    .await;
    let sent = a.link.late_lease_writes()[0];
    a.link.cut();
    assert!(
        a.leads(),
        "a renewal answered within the deadline keeps the Lease"
    );

    let (mut stepped_down, mut both) = (None, None);
    until("b to lead", DEFAULT.lease * 3, || {
        if !a.leads() {
            stepped_down.get_or_insert(sent.elapsed());
        } else if b.leads() {
            both.get_or_insert(sent.elapsed());
        }
        b.leads()
    })
    .await;
    assert_eq!(
        both, None,
        "a still led when b took over (time since the renewal was sent)"
    );
    let stepped_down = stepped_down.expect("a stepped down");
    assert!(
        stepped_down <= DEFAULT.renew + DEFAULT.retry,
        "a stepped down {stepped_down:?} after its last good renewal was sent: b judges that \
         renewal from when it landed, so a must give up within the renew deadline of sending it"
    );
    assert_eq!(world.lease().0.as_deref(), Some("storesync-b"));
    a.link.restore();
    a.stop().await;
    b.stop().await;
}
