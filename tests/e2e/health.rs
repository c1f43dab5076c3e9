//! Store health on a real cluster: an image that does not exist turns the store Degraded with
//! the reason, past `--health-grace`; a fix commit brings it back to Healthy.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::catalog::{Platform, StoreFile, StoresRepo};
use super::cluster::list;
use super::harness::{Suite, namespace};
use super::output::Sync;

/// Short, so the scenario does not wait two minutes for the default.
const GRACE: &str = "10s";
/// How long after the grace the store must be judged Degraded: the kubelet's first pull
/// attempt and its back-off, plus the grace.
const DEGRADED_WITHIN: Duration = Duration::from_secs(120);
const HEALTHY_WITHIN: Duration = Duration::from_secs(180);
/// helm's `--wait` on the broken image: it fails, leaving the broken Deployment in place.
const BROKEN_HELM_TIMEOUT: &str = "30s";

fn with_image(store: &str, repository: &str, tag: &str) -> StoreFile {
    let mut file = StoreFile::new(store);
    file.values
        .insert("image".into(), json!({"repository": repository, "tag": tag}));
    file
}

/// `storesync status --output json --health-grace GRACE`: the store's row.
fn status_of(suite: &Suite, store: &str) -> Value {
    let out = suite.storesync(&["status", "--output", "json", "--health-grace", GRACE]);
    assert!(out.ok(), "storesync status failed\n{out}");
    let rows = out.json();
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["store"] == store))
        .cloned()
        .unwrap_or_else(|| panic!("{store} missing from storesync status\n{out}"))
}

/// Polls the store's status until `done` holds; the last row either way.
fn poll(suite: &Suite, store: &str, within: Duration, done: impl Fn(&Value) -> bool) -> (bool, Value) {
    let started = Instant::now();
    loop {
        let row = status_of(suite, store);
        if done(&row) || started.elapsed() > within {
            return (done(&row), row);
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Why the store's pods never ran, when that is the cluster's doing (no container runtime that
/// pulls and starts images, as on a control plane without real nodes), for SKIPPED.
pub fn pods_cannot_run(store: &str) -> Option<String> {
    let pods = list("pods", &namespace(store), None);
    let running = pods
        .iter()
        .any(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object());
    if running {
        return None;
    }
    let phases: Vec<String> = pods
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p["metadata"]["name"].as_str().unwrap_or("?"),
                p["status"]["phase"].as_str().unwrap_or("no phase"),
                p["status"]["containerStatuses"][0]["state"]
            )
        })
        .collect();
    Some(format!(
        "a known-good image (the tiny engine's pause) never ran in {}: {phases:?}",
        namespace(store)
    ))
}

/// `storesync status --output json`: each store's health, by store.
pub fn healths(suite: &Suite) -> BTreeMap<String, String> {
    let out = suite.storesync(&["status", "--output", "json"]);
    assert!(out.ok(), "storesync status failed\n{out}");
    out.json()
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (text(&row["store"]), text(&row["health"]))
        })
        .collect()
}

/// Whether `installed`, the sync that installed `stores`, succeeded and storesync then called each
/// of them Healthy within `within`. False, after printing SKIPPED with why, on a cluster whose
/// pods never run (`needs` says what needed them); any other failure panics.
pub fn healthy_or_skip(
    suite: &Suite,
    installed: &Sync,
    stores: &[String],
    within: Duration,
    needs: &str,
) -> bool {
    let mut last = BTreeMap::new();
    if installed.out.code == Some(0) {
        let started = Instant::now();
        loop {
            last = healths(suite);
            if stores
                .iter()
                .all(|s| last.get(s).map(String::as_str) == Some("Healthy"))
            {
                return true;
            }
            if started.elapsed() > within {
                break;
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }
    if let Some(why) = stores.first().and_then(|s| pods_cannot_run(s)) {
        eprintln!("SKIPPED: {why}; {needs}");
        return false;
    }
    installed.expect_code(0);
    panic!("not all of {stores:?} became Healthy within {within:?}: {last:?}");
}

/// Scenario: a store's values point at an image that does not exist; `storesync status` says
/// Degraded with ImagePullBackOff or ErrImagePull within the bound past the grace, and Healthy
/// again after the commit that fixes it.
#[test]
fn a_missing_image_degrades_the_store_and_a_fix_heals_it() {
    let Some(suite) = Suite::start("health") else {
        return;
    };
    let platform = Platform::default();
    let s = suite.store("health");
    let repo = StoresRepo::new(&platform);

    // A known-good image first: it tells whether this cluster runs containers at all.
    repo.put(&StoreFile::new(&s));
    let good = repo.commit("store");
    let installed = suite.apply(&repo, &good, &[]);
    let needs = "store health needs pods that run";
    if !healthy_or_skip(
        &suite,
        &installed,
        std::slice::from_ref(&s),
        HEALTHY_WITHIN,
        needs,
    ) {
        return;
    }

    // The broken image: helm's wait fails and leaves the Deployment pulling in vain.
    repo.put(&with_image(
        &s,
        "registry.invalid/storesync-e2e/no-such-image",
        "0.0.0",
    ));
    let broken = repo.commit("store: an image that does not exist");
    let applied = suite.apply_with_helm_timeout(&repo, &broken, BROKEN_HELM_TIMEOUT, &[]);
    assert_ne!(
        applied.out.code,
        Some(0),
        "helm cannot wait for an image that does not exist\n{}",
        applied.out
    );
    let grace = humantime::parse_duration(GRACE).unwrap();
    let started = Instant::now();
    let (degraded, row) = poll(&suite, &s, grace + DEGRADED_WITHIN, |r| r["health"] == "Degraded");
    assert!(
        degraded,
        "not Degraded within {:?} past the grace: {row}",
        DEGRADED_WITHIN
    );
    let reason = row["healthReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("ImagePullBackOff") || reason.contains("ErrImagePull"),
        "the reason names the image pull: {row}"
    );
    eprintln!("[e2e] health: Degraded after {:?}: {reason}", started.elapsed());

    // The fix: back to the known-good image.
    repo.put(&StoreFile::new(&s));
    let fixed = repo.commit("store: fix the image");
    suite.apply(&repo, &fixed, &[]).expect_code(0);
    let (healthy, row) = poll(&suite, &s, HEALTHY_WITHIN, |r| r["health"] == "Healthy");
    assert!(healthy, "not Healthy again after the fix: {row}");
    assert!(row["healthReason"].is_null(), "{row}");
}
