//! Rollouts in waves against the fake API server and the recording helm, on a clock of the
//! test's own: a platform change reaches the canary, then each wave after the last one stayed
//! Healthy for the soak; a change whose image crash-loops halts after the canary, is never
//! retried for the same commit, and is rolled back when asked; a fix starts a new rollout; a
//! newer head takes over at the wave boundary.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use storesync::apply::Applier;
use storesync::rollout::Progress;
use storesync::sync::Synced;

use crate::common::store_yaml;
use crate::sync::world::World;

const T0: i64 = 1_800_000_000;
const STORES: [&str; 5] = ["a-shop", "b-shop", "c-shop", "d-shop", "e-shop"];

/// `storesync.yaml` with the built-in engines, the WordPress image tagged `tag`, and `rollout`.
pub fn platform(tag: &str, rollout: &str) -> String {
    let mut engines = storesync::desired::default_engines();
    let woo = engines.get_mut("woocommerce").unwrap();
    woo.values
        .insert("wordpress".into(), serde_json::json!({"image": {"tag": tag}}));
    let engines = serde_yaml_ng::to_string(&serde_json::json!({ "engines": engines })).unwrap();
    format!("{engines}{rollout}")
}

const ROLLOUT: &str =
    "rollout:\n  canaries: [c-shop]\n  waves: [50%, 100%]\n  healthTimeout: 10m\n  soak: 2m\n";

struct Rollout {
    w: World,
    clock: Arc<AtomicI64>,
}

impl Rollout {
    /// Five stores installed with a good image, before any rollout.
    async fn new(rollout: &str) -> Rollout {
        let w = World::new();
        w.catalog.platform(&platform("7.1.0-php8.3-apache", rollout));
        for name in STORES {
            w.catalog
                .store(name, &store_yaml(name, "woocommerce", "small", "team-a"));
        }
        let r = Rollout {
            w,
            clock: Arc::new(AtomicI64::new(T0)),
        };
        let first = r.sync_at(0).await;
        assert_eq!(first.report.summary.applied, 5, "creates are never held back");
        let expected = (!rollout.is_empty()).then_some(Progress::None);
        assert_eq!(first.rollout.map(|s| s.progress), expected);
        r
    }

    fn applier(&self) -> Applier {
        let clock = self.clock.clone();
        Applier {
            clock: Arc::new(move || clock.load(Ordering::SeqCst)),
            ..self.w.applier()
        }
    }

    /// A sync `at` seconds after T0, by a fresh applier each time (as a restart would).
    async fn sync_at(&self, at: i64) -> Synced {
        self.clock.store(T0 + at, Ordering::SeqCst);
        self.w.sync_by(&self.applier()).await
    }

    fn change(&self, tag: &str, rollout: &str) {
        self.w.catalog.platform(&platform(tag, rollout));
    }

    /// The stores helm upgraded since `before` calls, sorted: the stores of one wave are
    /// upgraded at the same time, in no fixed order.
    fn upgraded_since(&self, before: usize) -> Vec<String> {
        let mut stores: Vec<String> = self.w.helm.calls()[before..]
            .iter()
            .filter(|c| c[0] == "upgrade")
            .map(|c| c[2].clone())
            .collect();
        stores.sort();
        stores
    }
}

fn line(s: &Synced) -> String {
    s.rollout
        .as_ref()
        .and_then(|r| r.progress.line())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_good_change_goes_canary_then_each_wave_after_its_soak() {
    let r = Rollout::new(ROLLOUT).await;
    r.change("7.1.1-php8.3-apache", ROLLOUT);
    let before = r.w.helm.calls().len();

    let s = r.sync_at(0).await;
    assert_eq!(r.upgraded_since(before), ["c-shop"], "the canary alone");
    assert_eq!(line(&s), "rollout wave 1/3: 1 of 5 updated");
    assert_eq!(s.report.summary.applied, 1);
    assert_eq!(s.report.summary.skipped, 4);
    let held = s.report.stores.iter().find(|x| x.store == "a-shop").unwrap();
    assert!(
        held.detail
            .as_deref()
            .unwrap()
            .starts_with("waits for a later wave of the rollout"),
        "{held:?}"
    );
    let plan_wave = s
        .plan
        .stores
        .iter()
        .find(|x| x.store == "c-shop")
        .unwrap()
        .wave
        .unwrap();
    assert_eq!(
        (plan_wave.index, plan_wave.of, plan_wave.canary),
        (1, 3, true),
        "shown in the plan"
    );

    // Healthy as soon as helm --wait returned: the soak runs from the canary's apply. Before it
    // ends nothing more goes and no helm runs; waiting costs one look at the cluster (the owned
    // LISTs, one health pass, the record) and writes nothing.
    let calls = r.w.helm.calls().len();
    r.w.cluster.clear_requests();
    let s = r.sync_at(60).await;
    assert_eq!(r.w.helm.calls().len(), calls);
    assert_eq!(line(&s), "rollout wave 1/3: 1 of 5 updated");
    let requests: Vec<String> = r.w.cluster.requests().iter().map(|q| q.line()).collect();
    let writes: Vec<&String> = requests.iter().filter(|q| !q.starts_with("GET ")).collect();
    assert!(writes.is_empty(), "{writes:?}");
    let pod_lists = requests
        .iter()
        .filter(|q| q.starts_with("GET /api/v1/pods?"))
        .count();
    assert_eq!(pod_lists, 1, "one health pass: {requests:#?}");

    // Later plans keep the waves fixed at the start, not a new split of what is left.
    let d = s
        .plan
        .stores
        .iter()
        .find(|x| x.store == "d-shop")
        .unwrap()
        .wave
        .unwrap();
    assert_eq!((d.index, d.of, d.canary), (3, 3, false));

    r.sync_at(119).await;
    assert_eq!(r.w.helm.calls().len(), calls, "a second short of the soak");
    // Two minutes Healthy: wave 2, the first half of the others by name.
    let s = r.sync_at(120).await;
    assert_eq!(r.upgraded_since(calls), ["a-shop", "b-shop"]);
    assert_eq!(line(&s), "rollout wave 2/3: 3 of 5 updated");

    let calls = r.w.helm.calls().len();
    r.sync_at(200).await;
    assert_eq!(r.w.helm.calls().len(), calls, "wave 2 soaks");
    let s = r.sync_at(240).await;
    assert_eq!(r.upgraded_since(calls), ["d-shop", "e-shop"]);
    assert_eq!(line(&s), "rollout wave 3/3: 5 of 5 updated");

    r.sync_at(300).await;
    let s = r.sync_at(360).await;
    assert_eq!(line(&s), "rollout done: 5 stores updated in 3 waves");
    let s = r.sync_at(500).await;
    assert_eq!(
        s.rollout.unwrap().progress,
        Progress::None,
        "nothing left to carry"
    );
    assert_eq!(s.report.summary.unchanged, 5);
    assert_eq!(r.upgraded_since(before), STORES, "each store upgraded once");
}

#[tokio::test]
async fn a_crash_looping_change_halts_after_the_canary_and_is_never_retried() {
    let r = Rollout::new(ROLLOUT).await;
    r.change("crashloop", ROLLOUT);
    let before = r.w.helm.calls().len();
    r.sync_at(0).await;
    assert_eq!(r.upgraded_since(before), ["c-shop"]);

    let s = r.sync_at(300).await;
    let Some(Progress::InFlight { waiting, .. }) = s.rollout.map(|x| x.progress) else {
        panic!("still in flight")
    };
    assert!(waiting.starts_with("0 of 1 Healthy, waiting until"), "{waiting}");

    let s = r.sync_at(601).await;
    let halted = line(&s);
    assert!(
        halted.starts_with(
            "rollout halted at wave 1/3: c-shop unhealthy: Degraded: Deployment c-shop-wordpress"
        ) && halted.contains("CrashLoopBackOff"),
        "{halted}"
    );
    assert!(s.rollout.as_ref().unwrap().halted_now.is_some());
    assert_eq!(
        r.upgraded_since(before),
        ["c-shop"],
        "the others keep their release"
    );
    let events: Vec<String> =
        r.w.cluster
            .events()
            .into_iter()
            .filter(|(ns, e)| ns == "store-c-shop" && e["reason"] == "RolloutHalted")
            .map(|(_, e)| e["note"].as_str().unwrap_or_default().to_string())
            .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].starts_with("rollout halted at wave 1/3"), "{events:?}");

    // `storesync status` says it too.
    let mut text = Vec::new();
    storesync::commands::status(
        r.w.cluster.client(),
        std::time::Duration::from_secs(120),
        None,
        storesync::config::OutputFormat::Text,
        &mut text,
    )
    .await
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("Rollout of the work tree halted: rollout halted at wave 1/3: c-shop unhealthy:"),
        "{text}"
    );
    assert!(
        text.contains("refused for 5 stores is not applied until a commit changes them"),
        "{text}"
    );

    // The same commit again, hours later, by a fresh applier (a restart, a new leader).
    let calls = r.w.helm.calls().len();
    let s = r.sync_at(7200).await;
    assert_eq!(r.w.helm.calls().len(), calls, "never retried");
    assert!(
        line(&s).starts_with("rollout halted at wave 1/3: c-shop"),
        "{}",
        line(&s)
    );
    let held = s.report.stores.iter().find(|x| x.store == "d-shop").unwrap();
    assert!(
        held.detail
            .as_deref()
            .unwrap()
            .starts_with("held: rollout halted"),
        "{held:?}"
    );

    // A fix starts a new rollout, canary first.
    r.change("7.1.2-php8.3-apache", ROLLOUT);
    let s = r.sync_at(7300).await;
    assert_eq!(r.upgraded_since(calls), ["c-shop"]);
    assert_eq!(line(&s), "rollout wave 1/3: 1 of 5 updated");
    let calls = r.w.helm.calls().len();
    r.sync_at(7310).await;
    let s = r.sync_at(7431).await;
    assert_eq!(r.upgraded_since(calls), ["a-shop", "b-shop"], "{}", line(&s));
}

#[tokio::test]
async fn rollback_takes_back_only_the_unhealthy_stores_of_the_failed_wave() {
    let rollout = "rollout:\n  waves: [40%, 100%]\n  healthTimeout: 5m\n  soak: 1m\n  onFailure: rollback\n";
    let r = Rollout::new(rollout).await;
    r.change("crashloop", rollout);
    let before = r.w.helm.calls().len();
    r.sync_at(0).await;
    assert_eq!(
        r.upgraded_since(before),
        ["a-shop", "b-shop"],
        "40% of 5, by name"
    );
    let s = r.sync_at(301).await;
    assert!(
        line(&s).starts_with("rollout halted at wave 1/2: a-shop unhealthy"),
        "{}",
        line(&s)
    );
    let rollbacks: Vec<Vec<String>> = r.w.helm.calls()[before..]
        .iter()
        .filter(|c| c[0] == "rollback")
        .cloned()
        .collect();
    let mut rolled: Vec<(&str, &str)> = rollbacks.iter().map(|c| (c[1].as_str(), c[2].as_str())).collect();
    rolled.sort_unstable();
    assert_eq!(
        rolled,
        [("a-shop", "1"), ("b-shop", "1")],
        "each to its previous revision"
    );
    for store in ["a-shop", "b-shop"] {
        let release = r.w.helm.release(&format!("store-{store}"), store).unwrap();
        assert!(
            release.ends_with("3 deployed -\n") || release.contains("3 deployed"),
            "{release}"
        );
        assert!(
            r.w.cluster
                .events()
                .iter()
                .any(|(ns, e)| ns == &format!("store-{store}") && e["reason"] == "RolledBack"),
            "{store}"
        );
    }
    assert!(
        r.w.cluster.names("pods", "store-a-shop").is_empty(),
        "the good release runs again"
    );
    assert!(
        !r.upgraded_since(before)
            .iter()
            .any(|s| s == "c-shop" || s == "d-shop")
    );

    // Rolled back, they are still held for this commit: no upgrade again.
    let calls = r.w.helm.calls().len();
    r.sync_at(900).await;
    assert_eq!(r.w.helm.calls().len(), calls);
}

#[tokio::test]
async fn a_newer_head_takes_over_at_the_wave_boundary() {
    let r = Rollout::new(ROLLOUT).await;
    r.change("7.1.1-php8.3-apache", ROLLOUT);
    let before = r.w.helm.calls().len();
    r.sync_at(0).await;
    // A newer head while the canary soaks: it waits for the wave to end.
    r.change("7.1.2-php8.3-apache", ROLLOUT);
    let calls = r.w.helm.calls().len();
    let s = r.sync_at(60).await;
    assert_eq!(r.w.helm.calls().len(), calls, "{}", line(&s));
    let held = s.report.stores.iter().find(|x| x.store == "c-shop").unwrap();
    assert!(
        held.detail.as_deref().unwrap().starts_with("waits for wave 1/3"),
        "{held:?}"
    );
    // The wave ends: the newer head's own rollout starts, with its canary.
    let s = r.sync_at(181).await;
    assert_eq!(r.upgraded_since(before), ["c-shop", "c-shop"]);
    assert_eq!(line(&s), "rollout wave 1/3: 1 of 5 updated");
}

#[tokio::test]
async fn without_rollout_every_update_goes_at_once() {
    let r = Rollout::new("").await;
    r.change("7.1.1-php8.3-apache", "");
    let before = r.w.helm.calls().len();
    let s = r.sync_at(0).await;
    assert_eq!(r.upgraded_since(before).len(), 5);
    assert!(s.rollout.is_none(), "no rollout configured or recorded");
}
