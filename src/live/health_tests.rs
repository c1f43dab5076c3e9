//! The health rules on objects as the API server returns them (`tests/fixtures/health/`).
use serde_json::{Value, json};

use super::*;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/health/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// 11:00:02 is when the fixtures' new pods were created.
fn at(time: &str) -> i64 {
    parse_rfc3339(time).expect("a time")
}

fn judged(kind: &str, obj: &Value, pods: &[Value], now: &str) -> ObjectHealth {
    let pods: Vec<&Value> = pods.iter().collect();
    let judge = Judge {
        pods: &pods,
        now: at(now),
        grace: DEFAULT_HEALTH_GRACE,
    };
    object_health(kind, obj, &judge)
}

#[test]
fn times_read_as_the_api_server_writes_them() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
    assert_eq!(parse_rfc3339("2026-11-18T11:06:40Z"), Some(1_795_000_000));
    for t in [0, 951_782_400, 1_795_000_000, 4_102_444_800] {
        assert_eq!(
            parse_rfc3339(&crate::text::rfc3339(t)),
            Some(t),
            "round trip of {t}"
        );
    }
    for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-12-06 12:00:00Z"] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn a_deployment_rolled_out_is_healthy() {
    let h = judged(
        "Deployment",
        &fixture("deployment-rolled-out"),
        &[],
        "2026-12-06T12:00:00Z",
    );
    assert_eq!((h.health, h.reason), (Health::Healthy, None));
}

#[test]
fn a_deployment_mid_rollout_is_progressing() {
    let d = fixture("deployment-mid-rollout");
    let h = judged("Deployment", &d, &[], "2026-12-06T11:00:30Z");
    assert_eq!(h.health, Health::Progressing);
    assert_eq!(h.reason.as_deref(), Some("0 of 1 replicas available"));
    // A spec its controller has not seen yet says nothing about its status.
    let mut unseen = fixture("deployment-rolled-out");
    unseen["metadata"]["generation"] = json!(3);
    let h = judged("Deployment", &unseen, &[], "2026-12-06T12:00:00Z");
    assert_eq!(h.health, Health::Progressing);
    assert!(h.reason.unwrap().contains("not yet seen"));
}

#[test]
fn a_rollout_past_its_deadline_is_degraded() {
    let h = judged(
        "Deployment",
        &fixture("deployment-deadline-exceeded"),
        &[],
        "2026-12-06T11:10:30Z",
    );
    assert_eq!(h.health, Health::Degraded);
    assert_eq!(
        h.reason.as_deref(),
        Some("rollout exceeded its progress deadline")
    );
}

#[test]
fn a_crash_looping_pod_degrades_its_deployment_once_past_the_grace() {
    let d = fixture("deployment-mid-rollout");
    let pods = [fixture("pod-crash-looping")];
    // 30 s after the pod was created: a rollout may still recover.
    let early = judged("Deployment", &d, &pods, "2026-12-06T11:00:32Z");
    assert_eq!(early.health, Health::Progressing);
    assert_eq!(
        early.reason.as_deref(),
        Some("0 of 1 replicas available; pod acme-wordpress-5f7b8c9d6e-x7k2p CrashLoopBackOff (5 restarts)")
    );
    // Past the 2-minute grace.
    let late = judged("Deployment", &d, &pods, "2026-12-06T11:05:00Z");
    assert_eq!(late.health, Health::Degraded);
    assert_eq!(
        late.reason.as_deref(),
        Some("pod acme-wordpress-5f7b8c9d6e-x7k2p CrashLoopBackOff (5 restarts)")
    );
    let (health, reason) = worst(&[late]);
    assert_eq!(health, Health::Degraded);
    assert_eq!(
        reason.as_deref(),
        Some("Deployment acme-wordpress: pod acme-wordpress-5f7b8c9d6e-x7k2p CrashLoopBackOff (5 restarts)")
    );
}

#[test]
fn an_image_that_never_pulls_is_degraded_after_the_grace_only() {
    let d = fixture("deployment-mid-rollout");
    let pods = [fixture("pod-image-pull")];
    let within = judged("Deployment", &d, &pods, "2026-12-06T11:01:00Z");
    assert_eq!(within.health, Health::Progressing, "{within:?}");
    let past = judged("Deployment", &d, &pods, "2026-12-06T11:02:03Z");
    assert_eq!(past.health, Health::Degraded);
    assert_eq!(
        past.reason.as_deref(),
        Some("pod acme-wordpress-5f7b8c9d6e-q9w8e ImagePullBackOff (0 restarts)")
    );
    // A pod of another Deployment (another template hash) is not this one's.
    let mut other = fixture("pod-image-pull");
    other["metadata"]["labels"]["pod-template-hash"] = json!("9a8b7c6d5e");
    other["metadata"]["ownerReferences"][0]["name"] = json!("acme-storefront-9a8b7c6d5e");
    let h = judged(
        "Deployment",
        &fixture("deployment-rolled-out"),
        &[other],
        "2026-12-06T12:00:00Z",
    );
    assert_eq!(h.health, Health::Healthy);
}

#[test]
fn jobs_fail_or_complete() {
    let failed = judged("Job", &fixture("job-failed"), &[], "2026-12-06T12:00:00Z");
    assert_eq!(failed.health, Health::Degraded);
    assert_eq!(
        failed.reason.as_deref(),
        Some("failed: Job has reached the specified backoff limit")
    );
    let done = judged("Job", &fixture("job-complete"), &[], "2026-12-06T12:00:00Z");
    assert_eq!(done.health, Health::Healthy);
    let mut running = fixture("job-complete");
    running["status"] = json!({"active": 1, "startTime": "2026-12-06T10:00:00Z"});
    assert_eq!(
        judged("Job", &running, &[], "2026-12-06T10:00:10Z").health,
        Health::Progressing
    );
}

#[test]
fn claims_pending_progress_and_lost_degrade() {
    let pending = judged(
        "PersistentVolumeClaim",
        &fixture("pvc-pending"),
        &[],
        "2026-12-06T12:00:00Z",
    );
    assert_eq!(
        (pending.health, pending.reason.as_deref()),
        (Health::Progressing, Some("Pending"))
    );
    let lost = judged(
        "PersistentVolumeClaim",
        &fixture("pvc-lost"),
        &[],
        "2026-12-06T12:00:00Z",
    );
    assert_eq!(lost.health, Health::Degraded);
    let mut bound = fixture("pvc-pending");
    bound["status"]["phase"] = json!("Bound");
    assert_eq!(
        judged("PersistentVolumeClaim", &bound, &[], "2026-12-06T12:00:00Z").health,
        Health::Healthy
    );
}

#[test]
fn a_stateful_set_is_healthy_when_ready_and_on_its_update_revision() {
    let s = fixture("statefulset-ready");
    assert_eq!(
        judged("StatefulSet", &s, &[], "2026-12-06T12:00:00Z").health,
        Health::Healthy
    );
    let mut rolling = s.clone();
    rolling["status"]["updateRevision"] = json!("acme-mariadb-7d9e0a8c6");
    rolling["status"]["updatedReplicas"] = json!(0);
    let h = judged("StatefulSet", &rolling, &[], "2026-12-06T12:00:00Z");
    assert_eq!(h.health, Health::Progressing);
    let mut unready = s;
    unready["status"]["readyReplicas"] = json!(0);
    let h = judged("StatefulSet", &unready, &[], "2026-12-06T12:00:00Z");
    assert_eq!(
        (h.health, h.reason.as_deref()),
        (Health::Progressing, Some("0 of 1 replicas ready"))
    );
}

#[test]
fn the_worst_object_wins_and_names_itself() {
    let objects = [
        ObjectHealth::new("Service", "acme-wordpress", Health::Healthy, None),
        ObjectHealth::new(
            "PersistentVolumeClaim",
            "acme-data",
            Health::Progressing,
            Some("Pending".into()),
        ),
        ObjectHealth::missing("Service", "acme-mariadb"),
        ObjectHealth::new("Job", "acme-setup", Health::Progressing, Some("running".into())),
    ];
    assert_eq!(
        worst(&objects),
        (Health::Missing, Some("Service acme-mariadb: is missing".into()))
    );
    assert_eq!(worst(&objects[..1]), (Health::Healthy, None));
    assert_eq!(worst(&[]).0, Health::Unknown);
    assert!(Health::Degraded > Health::Missing && Health::Missing > Health::Progressing);
    assert!(Health::Progressing > Health::Healthy);
}
