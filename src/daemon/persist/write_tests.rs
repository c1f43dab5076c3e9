//! Shared-state writes against an API server that answers like the real one: the leader's
//! write stops when it stops leading, whatever conflict it met; the pull requests' record keeps
//! replicas in agreement.
use tokio::sync::watch;

use super::fake_api::FakeApi;
use super::*;

fn shared(leader: &str) -> Shared {
    Shared {
        leader: leader.into(),
        written: 1,
        records: Records::default(),
    }
}

#[tokio::test]
async fn a_leader_that_lost_the_lease_during_a_conflict_does_not_retry_over_its_successor() {
    let api = FakeApi::new();
    let store = Store::new(api.client(), "storesync");
    let (leading, gate) = watch::channel(true);
    let gate = WriteGate::new(gate);
    store.write(&shared("old"), &gate).await.unwrap();
    // The next replace meets a conflict (the successor wrote), and meanwhile the Lease is gone.
    api.before_replace(move |n| {
        (n == 1).then(|| {
            leading.send_replace(false);
            409
        })
    });
    *api.replaces.lock().unwrap() = 0;
    let err = store.write(&shared("old"), &gate).await.unwrap_err();
    assert!(err.to_string().contains("no longer leads"), "{err}");
    assert_eq!(*api.replaces.lock().unwrap(), 1, "not retried");
    // Still leading, the same conflict is retried, and written.
    let (_still, gate) = watch::channel(true);
    api.before_replace(|n| (n == 1).then_some(409));
    *api.replaces.lock().unwrap() = 0;
    store.write(&shared("new"), &WriteGate::new(gate)).await.unwrap();
    assert_eq!(*api.replaces.lock().unwrap(), 2);
    assert!(
        api.data(STATE_CONFIGMAP)[RECORDS_KEY]
            .as_str()
            .unwrap()
            .contains("\"new\"")
    );
}

#[tokio::test]
async fn a_closed_pull_request_and_the_newest_head_are_shared_by_replicas() {
    let api = FakeApi::new();
    let (one, two) = (
        Store::new(api.client(), "storesync"),
        Store::new(api.client(), "storesync"),
    );
    // Two heads of pull request 7, started on two replicas: the second is the newest.
    let older = one.start_pull(7, false).await.unwrap().unwrap();
    assert_eq!(
        one.read().await.unwrap(),
        None,
        "no records yet, and no error either"
    );
    let newer = two.start_pull(7, false).await.unwrap().unwrap();
    assert!(newer > older);
    assert!(!one.is_current_pull(7, older).await.unwrap());
    assert!(two.is_current_pull(7, newer).await.unwrap());
    // Closed on one: the other's late delivery plans nothing, its plan under way is dropped.
    one.close_pull(7).await.unwrap();
    assert!(!two.is_current_pull(7, newer).await.unwrap());
    assert_eq!(two.start_pull(7, false).await.unwrap(), None);
    let reopened = two.start_pull(7, true).await.unwrap().unwrap();
    assert!(one.is_current_pull(7, reopened).await.unwrap());
    // The leader's records and the pull requests live side by side.
    let (_leading, gate) = watch::channel(true);
    one.write(&shared("a"), &WriteGate::new(gate)).await.unwrap();
    let data = api.data(STATE_CONFIGMAP);
    assert!(
        data["pulls.json"].is_string() && data[RECORDS_KEY].is_string(),
        "{data}"
    );
    assert!(one.is_current_pull(7, reopened).await.unwrap());
}
