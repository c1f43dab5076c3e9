//! Store health against the fake API server: judged in the drift check's pass (plus one LIST of
//! Pods and one of Jobs), shown in the store table, `storesync status` and its JSON.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use storesync::apply::Applier;
use storesync::live::DriftCheck;
use storesync::live::health::Health;

use super::world::World;

/// An applier that judges health (and compares drift) at every sync.
fn every_sync(w: &World) -> Applier {
    Applier {
        drift: Arc::new(DriftCheck::new(Duration::ZERO)),
        ..w.applier()
    }
}

fn health_of(synced: &storesync::sync::Synced, store: &str) -> (Health, Option<String>) {
    let h = synced.live.stores[store].health.clone().expect("judged");
    (h.health, h.reason)
}

fn wordpress(w: &World) -> String {
    w.cluster
        .names("deployments", "store-acme")
        .into_iter()
        .find(|n| n.ends_with("-wordpress"))
        .expect("the chart's Deployment")
}

/// A pod of `deployment` created `ago` seconds ago, its container waiting for `reason`.
fn stuck_pod(deployment: &str, reason: &str, restarts: i64, ago: i64) -> Value {
    let now = storesync::text::unix_now();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{deployment}-5f7b8c9d6e-x7k2p"),
            "creationTimestamp": storesync::text::rfc3339(now - ago),
            "labels": {"app.kubernetes.io/managed-by": "Helm", "pod-template-hash": "5f7b8c9d6e"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{deployment}-5f7b8c9d6e"), "uid": "rs-1", "controller": true}],
        },
        "status": {"phase": "Running", "containerStatuses": [{"name": "wordpress", "ready": false,
            "restartCount": restarts, "state": {"waiting": {"reason": reason}}}]},
    })
}

/// The Deployment's status as its controller reports a rollout whose pod never became ready.
fn unavailable(w: &World, name: &str) {
    w.cluster.edit("deployments", "store-acme", name, |d| {
        d["status"]["readyReplicas"] = json!(0);
        d["status"]["availableReplicas"] = json!(0);
    });
}

#[tokio::test]
async fn installed_stores_are_healthy_and_a_crash_loop_degrades_one_after_the_grace() {
    let w = World::with_two_stores();
    let applier = every_sync(&w);
    let first = w.sync_by(&applier).await;
    assert_eq!(
        health_of(&first, "acme"),
        (Health::Healthy, None),
        "judged after the install"
    );
    assert_eq!(health_of(&first, "bobs").0, Health::Healthy);
    let views =
        storesync::report::store_views(&first.live, Some(&first.catalog), None, &Default::default(), None);
    assert!(
        views.iter().all(|v| v.health == Some(Health::Healthy)),
        "{views:?}"
    );

    let name = wordpress(&w);
    unavailable(&w, &name);
    // Within the grace, a rollout may still recover.
    w.cluster
        .insert("pods", "store-acme", stuck_pod(&name, "CrashLoopBackOff", 5, 30));
    let early = w.sync_by(&applier).await;
    let (health, reason) = health_of(&early, "acme");
    assert_eq!(health, Health::Progressing, "{reason:?}");
    // Past the grace.
    w.cluster
        .remove("pods", "store-acme", &format!("{name}-5f7b8c9d6e-x7k2p"));
    w.cluster
        .insert("pods", "store-acme", stuck_pod(&name, "CrashLoopBackOff", 5, 600));
    let late = w.sync_by(&applier).await;
    assert_eq!(
        health_of(&late, "acme"),
        (
            Health::Degraded,
            Some(format!(
                "Deployment {name}: pod {name}-5f7b8c9d6e-x7k2p CrashLoopBackOff (5 restarts)"
            ))
        )
    );
    assert_eq!(
        health_of(&late, "bobs").0,
        Health::Healthy,
        "the other store is not affected"
    );
}

#[tokio::test]
async fn a_failed_setup_job_degrades_and_a_missing_service_is_missing() {
    let w = World::with_two_stores();
    // Drift is only reported, so the deleted Service stays deleted for the judgement.
    w.catalog.platform("driftPolicy: report\n");
    let applier = every_sync(&w);
    w.sync_by(&applier).await;
    // The setup Job is a Helm hook: not in the manifest, but judged in the namespace.
    w.cluster.insert(
        "jobs",
        "store-bobs",
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "bobs-setup", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
            "status": {"failed": 7, "conditions": [{"type": "Failed", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}),
    );
    let service = w
        .cluster
        .names("services", "store-acme")
        .first()
        .cloned()
        .expect("a Service");
    w.cluster.remove("services", "store-acme", &service);
    let synced = w.sync_by(&every_sync(&w)).await;
    assert_eq!(
        health_of(&synced, "bobs"),
        (
            Health::Degraded,
            Some("Job bobs-setup: failed: Job has reached the specified backoff limit".into())
        )
    );
    assert_eq!(
        health_of(&synced, "acme"),
        (Health::Missing, Some(format!("Service {service}: is missing")))
    );
}

#[tokio::test]
async fn status_shows_health_and_why_in_text_and_json() {
    let w = World::with_two_stores();
    w.sync().await;
    let name = wordpress(&w);
    unavailable(&w, &name);
    w.cluster
        .insert("pods", "store-acme", stuck_pod(&name, "ImagePullBackOff", 0, 600));
    let mut out = Vec::new();
    let code = storesync::commands::status(
        w.cluster.client(),
        Duration::from_secs(120),
        None,
        storesync::config::OutputFormat::Json,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(code, 0);
    let rows: Vec<Value> = serde_json::from_slice(&out).unwrap();
    let acme = rows.iter().find(|r| r["store"] == "acme").unwrap();
    assert_eq!(acme["health"], "Degraded");
    assert_eq!(
        acme["healthReason"],
        format!("Deployment {name}: pod {name}-5f7b8c9d6e-x7k2p ImagePullBackOff (0 restarts)")
    );
    let bobs = rows.iter().find(|r| r["store"] == "bobs").unwrap();
    assert_eq!(bobs["health"], "Healthy");
    assert!(bobs.get("healthReason").is_none_or(Value::is_null));

    let mut text = Vec::new();
    storesync::commands::status(
        w.cluster.client(),
        Duration::from_secs(3600),
        None,
        storesync::config::OutputFormat::Text,
        &mut text,
    )
    .await
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.lines().next().unwrap().contains("HEALTH"), "{text}");
    // An hour of grace: the same pod only slows a rollout down.
    let acme_line = text.lines().find(|l| l.starts_with("acme")).unwrap();
    assert!(acme_line.contains("Progressing"), "{text}");
}
