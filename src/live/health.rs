//! Whether a store actually serves: a health per object its release rendered, and the store's
//! as the worst of them, in the spirit of kstatus and Argo CD. Pure: a function of the objects
//! as the API server returned them (JSON) and the time, so the rules are tested on recorded
//! objects without a cluster.
pub use crate::text::parse_rfc3339;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A store's or an object's health, from best to worst: the worst of a store's objects wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Health {
    Healthy,
    /// The store is suspended: storesync leaves it alone, and does not judge it.
    Suspended,
    /// The store's file is gone and it is retired: nothing of it runs, on purpose.
    Retired,
    /// Working towards what was asked: a rollout, a claim waiting for its volume, a Job running.
    Progressing,
    /// What storesync can see does not say.
    Unknown,
    /// The namespace, the release, or an object the release rendered is not there.
    Missing,
    /// Not serving, and not getting there by itself: a crash loop, an image that never pulls, a
    /// rollout past its deadline, a failed Job, a lost claim.
    Degraded,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Suspended => "Suspended",
            Health::Retired => "Retired",
            Health::Progressing => "Progressing",
            Health::Unknown => "Unknown",
            Health::Missing => "Missing",
            Health::Degraded => "Degraded",
        }
    }

    pub const ALL: [Health; 7] = [
        Health::Healthy,
        Health::Suspended,
        Health::Retired,
        Health::Progressing,
        Health::Unknown,
        Health::Missing,
        Health::Degraded,
    ];
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The health of one object, and why when it is not Healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHealth {
    pub kind: String,
    pub name: String,
    pub health: Health,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ObjectHealth {
    fn new(kind: &str, name: &str, health: Health, reason: Option<String>) -> ObjectHealth {
        ObjectHealth {
            kind: kind.to_string(),
            name: name.to_string(),
            health,
            reason,
        }
    }

    /// An object the release rendered that the cluster does not hold.
    pub fn missing(kind: &str, name: &str) -> ObjectHealth {
        ObjectHealth::new(kind, name, Health::Missing, Some("is missing".into()))
    }
}

/// A store's health: the worst of its objects, the first such object's reason, and every
/// object judged (for the store's page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreHealth {
    pub health: Health,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub objects: Vec<ObjectHealth>,
}

impl StoreHealth {
    /// The store's health from its objects' (see [`worst`]).
    pub fn of(objects: Vec<ObjectHealth>) -> StoreHealth {
        let (health, reason) = worst(&objects);
        StoreHealth {
            health,
            reason,
            objects,
        }
    }

    /// A store with no object to judge, for `reason`.
    pub fn only(health: Health, reason: &str) -> StoreHealth {
        StoreHealth {
            health,
            reason: Some(reason.to_string()),
            objects: Vec::new(),
        }
    }
}

/// Container waiting reasons that mean a pod will not start by itself.
const STUCK: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

/// The default of `--health-grace`: how long a pod may wait in a stuck state during a rollout
/// before its workload counts as Degraded.
pub const DEFAULT_HEALTH_GRACE: Duration = Duration::from_secs(120);

/// What the rules need besides the object: the pods of its namespace, the time, the grace.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    /// Pods of the object's namespace (any order).
    pub pods: &'a [&'a Value],
    /// Seconds since the epoch.
    pub now: i64,
    pub grace: Duration,
}

/// The health of a live object of `kind`; kinds without rules are Healthy once they exist.
pub fn object_health(kind: &str, obj: &Value, judge: &Judge<'_>) -> ObjectHealth {
    let name = text(obj, "/metadata/name");
    match kind {
        "Deployment" => workload(kind, name, obj, judge, rollout_of_deployment),
        "StatefulSet" => workload(kind, name, obj, judge, rollout_of_stateful_set),
        "Job" => job(name, obj, judge),
        "PersistentVolumeClaim" => claim(name, obj),
        _ => ObjectHealth::new(kind, name, Health::Healthy, None),
    }
}

/// The store's health: the worst of its objects, with the first such object's reason as
/// `<Kind> <name>: <why>`.
pub fn worst(objects: &[ObjectHealth]) -> (Health, Option<String>) {
    let Some(worst) = objects.iter().map(|o| o.health).max() else {
        return (
            Health::Unknown,
            Some("no object of its release was observed".into()),
        );
    };
    if worst == Health::Healthy {
        return (Health::Healthy, None);
    }
    let first = objects.iter().find(|o| o.health == worst);
    let reason = first.map(|o| match &o.reason {
        Some(why) => format!("{} {}: {why}", o.kind, o.name),
        None => format!("{} {}", o.kind, o.name),
    });
    (worst, reason)
}

fn text<'v>(obj: &'v Value, pointer: &str) -> &'v str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn int(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

fn condition<'v>(obj: &'v Value, type_: &str) -> Option<&'v Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// A Deployment's or StatefulSet's rollout: `None` when caught up, else why not.
type Rollout = fn(&Value) -> Option<(Health, String)>;

fn workload(kind: &str, name: &str, obj: &Value, judge: &Judge<'_>, rollout: Rollout) -> ObjectHealth {
    let generation = int(obj, "/metadata/generation").unwrap_or(0);
    let observed = int(obj, "/status/observedGeneration").unwrap_or(0);
    if generation > observed {
        let why = "its controller has not yet seen the latest spec".to_string();
        return ObjectHealth::new(kind, name, Health::Progressing, Some(why));
    }
    let owned: Vec<&Value> = judge
        .pods
        .iter()
        .copied()
        .filter(|p| pod_belongs(p, kind, name))
        .collect();
    if let Some(stuck) = stuck_pod(&owned, judge, true) {
        return ObjectHealth::new(kind, name, Health::Degraded, Some(stuck));
    }
    if let Some((health, why)) = rollout(obj) {
        // A pod stuck for less than the grace explains a rollout that is still in progress.
        let why = match stuck_pod(&owned, judge, false) {
            Some(stuck) => format!("{why}; {stuck}"),
            None => why,
        };
        return ObjectHealth::new(kind, name, health, Some(why));
    }
    ObjectHealth::new(kind, name, Health::Healthy, None)
}

fn rollout_of_deployment(obj: &Value) -> Option<(Health, String)> {
    if let Some(progressing) = condition(obj, "Progressing")
        && progressing.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
    {
        return Some((Health::Degraded, "rollout exceeded its progress deadline".into()));
    }
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let updated = int(obj, "/status/updatedReplicas").unwrap_or(0);
    let total = int(obj, "/status/replicas").unwrap_or(0);
    let available = int(obj, "/status/availableReplicas").unwrap_or(0);
    if updated < want {
        return Some((
            Health::Progressing,
            format!("{updated} of {want} replicas updated"),
        ));
    }
    if total > updated {
        let old = total - updated;
        return Some((
            Health::Progressing,
            format!("{old} old replicas pending termination"),
        ));
    }
    if available < want {
        return Some((
            Health::Progressing,
            format!("{available} of {want} replicas available"),
        ));
    }
    None
}

fn rollout_of_stateful_set(obj: &Value) -> Option<(Health, String)> {
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let ready = int(obj, "/status/readyReplicas").unwrap_or(0);
    let rolling = text(obj, "/spec/updateStrategy/type") != "OnDelete";
    if rolling {
        let partition = int(obj, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
        let updated = int(obj, "/status/updatedReplicas").unwrap_or(0);
        if updated < want - partition {
            let of = want - partition;
            return Some((Health::Progressing, format!("{updated} of {of} replicas updated")));
        }
        let (current, update) = (
            text(obj, "/status/currentRevision"),
            text(obj, "/status/updateRevision"),
        );
        if partition == 0 && !update.is_empty() && current != update {
            return Some((Health::Progressing, format!("rolling out revision {update}")));
        }
    }
    if ready < want {
        return Some((Health::Progressing, format!("{ready} of {want} replicas ready")));
    }
    None
}

fn job(name: &str, obj: &Value, judge: &Judge<'_>) -> ObjectHealth {
    let is_true = |c: Option<&Value>| c.and_then(|c| c.get("status")).and_then(Value::as_str) == Some("True");
    if is_true(condition(obj, "Failed")) {
        let failed = condition(obj, "Failed");
        let why = failed
            .and_then(|c| c.get("message").or_else(|| c.get("reason")))
            .and_then(Value::as_str)
            .unwrap_or("failed");
        return ObjectHealth::new("Job", name, Health::Degraded, Some(format!("failed: {why}")));
    }
    if is_true(condition(obj, "Complete")) {
        return ObjectHealth::new("Job", name, Health::Healthy, None);
    }
    let owned: Vec<&Value> = judge
        .pods
        .iter()
        .copied()
        .filter(|p| pod_belongs(p, "Job", name))
        .collect();
    if let Some(stuck) = stuck_pod(&owned, judge, true) {
        return ObjectHealth::new("Job", name, Health::Degraded, Some(stuck));
    }
    ObjectHealth::new("Job", name, Health::Progressing, Some("running".into()))
}

fn claim(name: &str, obj: &Value) -> ObjectHealth {
    let kind = "PersistentVolumeClaim";
    match text(obj, "/status/phase") {
        "Bound" => ObjectHealth::new(kind, name, Health::Healthy, None),
        "Lost" => ObjectHealth::new(kind, name, Health::Degraded, Some("its volume is lost".into())),
        "Pending" | "" => ObjectHealth::new(kind, name, Health::Progressing, Some("Pending".into())),
        other => ObjectHealth::new(kind, name, Health::Unknown, Some(format!("phase {other}"))),
    }
}

/// Whether `pod` is one of `kind`/`name`'s: a Deployment's through the ReplicaSet its
/// `pod-template-hash` names, a StatefulSet's or a Job's directly.
fn pod_belongs(pod: &Value, kind: &str, name: &str) -> bool {
    let Some(owner) = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
    else {
        return false;
    };
    let (owner_kind, owner_name) = (text(owner, "/kind"), text(owner, "/name"));
    match kind {
        "Deployment" => {
            let hash = text(pod, "/metadata/labels/pod-template-hash");
            owner_kind == "ReplicaSet" && !hash.is_empty() && owner_name == format!("{name}-{hash}")
        }
        _ => owner_kind == kind && owner_name == name,
    }
}

/// The first pod (by name) with a container waiting in a stuck state: those stuck longer than
/// the grace when `past_grace`, else those stuck for less. As `pod <name> <Reason> (<n> restarts)`.
fn stuck_pod(pods: &[&Value], judge: &Judge<'_>, past_grace: bool) -> Option<String> {
    let mut found: Vec<(String, String)> = pods
        .iter()
        .filter_map(|pod| {
            let since = parse_rfc3339(text(pod, "/metadata/creationTimestamp"))?;
            let waited = judge.now.saturating_sub(since);
            let over = waited >= i64::try_from(judge.grace.as_secs()).unwrap_or(i64::MAX);
            if over != past_grace {
                return None;
            }
            let statuses = ["/status/initContainerStatuses", "/status/containerStatuses"]
                .iter()
                .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
                .flatten();
            statuses.into_iter().find_map(|c| {
                let reason = text(c, "/state/waiting/reason");
                STUCK.contains(&reason).then(|| {
                    let restarts = int(c, "/restartCount").unwrap_or(0);
                    let name = text(pod, "/metadata/name").to_string();
                    let plural = if restarts == 1 { "" } else { "s" };
                    (
                        name.clone(),
                        format!("pod {name} {reason} ({restarts} restart{plural})"),
                    )
                })
            })
        })
        .collect();
    found.sort();
    found.into_iter().next().map(|(_, why)| why)
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
