//! Per-object comparison of desired and live state, with readable diffs.
use serde::Serialize;
use serde_json::{Value, json};
use similar::TextDiff;

use super::{Action, Change, ObjectKind, change};
use crate::desired::model::DriftPolicy;
use crate::desired::{self, COMMIT_ANNOTATION, CREDENTIALS_SECRET, DesiredStore};
use crate::live::LiveStore;
pub(super) use crate::live::quantity_nanos;

/// Metadata the API server owns; never part of a comparison.
const SERVER_FIELDS: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Strips what the server writes (status, bookkeeping metadata) and the commit annotation, which
/// changes with every commit without changing the store.
pub fn normalize(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in SERVER_FIELDS {
                meta.remove(*f);
            }
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove(COMMIT_ANNOTATION);
                ann.remove("kubectl.kubernetes.io/last-applied-configuration");
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    v
}

/// The part of `live` that `desired` speaks about: fields storesync does not set (defaults the
/// server filled in, labels others added) are not drift.
pub fn project(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => Value::Object(
            d.iter()
                .filter_map(|(k, dv)| l.get(k).map(|lv| (k.clone(), project(lv, dv))))
                .collect(),
        ),
        (Value::Array(l), Value::Array(d)) if l.len() == d.len() => {
            Value::Array(l.iter().zip(d).map(|(lv, dv)| project(lv, dv)).collect())
        }
        (l, _) => l.clone(),
    }
}

/// Every string under `spec` that is a quantity, replaced by its value.
fn canonical_quantities(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(n) = quantity_nanos(s) {
                    *s = format!("quantity:{n}");
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(m) => m.values_mut().for_each(walk),
            _ => {}
        }
    }
    if let Some(spec) = v.get_mut("spec") {
        walk(spec);
    }
    v
}

pub fn to_yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn unified(live: &str, desired: &str) -> String {
    TextDiff::from_lines(live, desired)
        .unified_diff()
        .context_radius(3)
        .header("live", "desired")
        .to_string()
}

/// Compares one object. `live` is `None` when the object does not exist.
fn compare(
    kind: ObjectKind,
    namespace: Option<&str>,
    name: &str,
    desired: Value,
    live: Option<Value>,
    create_diffs: bool,
) -> Change {
    match live {
        None => {
            let diff = create_diffs.then(|| unified("", &to_yaml(&desired)));
            change(kind, namespace, name, Action::Create, diff)
        }
        Some(live) => {
            let desired = normalize(desired);
            let live = project(&normalize(live), &desired);
            // The API server rewrites quantities (1024Mi is stored as 1Gi): compare values.
            if canonical_quantities(live.clone()) == canonical_quantities(desired.clone()) {
                change(kind, namespace, name, Action::Unchanged, None)
            } else {
                let diff = unified(&to_yaml(&live), &to_yaml(&desired));
                change(kind, namespace, name, Action::Update, Some(diff))
            }
        }
    }
}

/// Every object change of one store that exists in the desired catalog, in apply order.
pub(super) fn object_changes(
    d: &DesiredStore,
    live: Option<&LiveStore>,
    create_diffs: bool,
    drift_policy: DriftPolicy,
) -> Vec<Change> {
    let ns = d.release.namespace.as_str();
    let mut changes = vec![
        compare(
            ObjectKind::Namespace,
            None,
            ns,
            json(&d.namespace),
            live.map(|l| json(&l.namespace)),
            create_diffs,
        ),
        compare(
            ObjectKind::ResourceQuota,
            Some(ns),
            desired::QUOTA_NAME,
            json(&d.quota),
            live.and_then(|l| l.quota.as_ref()).map(json),
            create_diffs,
        ),
        compare(
            ObjectKind::LimitRange,
            Some(ns),
            desired::LIMITS_NAME,
            json(&d.limit_range),
            live.and_then(|l| l.limit_range.as_ref()).map(json),
            create_diffs,
        ),
    ];
    let live_policies = live.map(|l| l.network_policies.as_slice()).unwrap_or_default();
    for p in &d.network_policies {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        let found = live_policies
            .iter()
            .find(|l| l.metadata.name.as_deref() == Some(name));
        changes.push(compare(
            ObjectKind::NetworkPolicy,
            Some(ns),
            name,
            json(p),
            found.map(json),
            create_diffs,
        ));
    }
    let mut stale: Vec<&str> = live_policies
        .iter()
        .filter_map(|l| l.metadata.name.as_deref())
        .filter(|n| {
            !d.network_policies
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(*n))
        })
        .collect();
    stale.sort_unstable();
    for name in stale {
        changes.push(change(
            ObjectKind::NetworkPolicy,
            Some(ns),
            name,
            Action::Prune,
            None,
        ));
    }

    changes.push(compare(
        ObjectKind::ServiceAccount,
        Some(ns),
        desired::tenancy::HELM_SERVICE_ACCOUNT,
        json(&d.service_account),
        live.and_then(|l| l.service_account.as_ref()).map(json),
        create_diffs,
    ));
    changes.push(compare(
        ObjectKind::RoleBinding,
        Some(ns),
        desired::tenancy::HELM_ROLE_BINDING,
        json(&d.role_binding),
        live.and_then(|l| l.role_binding.as_ref()).map(json),
        create_diffs,
    ));

    let installed = live.is_some_and(|l| l.release.is_some());
    let credentials = match live {
        Some(l) if l.credentials => Action::Unchanged,
        // New credentials would lock the store out of its own databases.
        _ if installed => Action::Blocked,
        _ => Action::Create,
    };
    let mut secret = change(
        ObjectKind::Secret,
        Some(ns),
        CREDENTIALS_SECRET,
        credentials,
        None,
    );
    secret.reason = match credentials {
        Action::Create => {
            Some("credentials are generated once in the cluster; they never appear in plans".into())
        }
        Action::Blocked => Some(format!(
            "Secret {ns}/{CREDENTIALS_SECRET} is missing but the store is installed: restore it from a backup; \
             storesync never generates new credentials for an installed store"
        )),
        _ => None,
    };
    changes.push(secret);

    changes.push(release_change(d, live, create_diffs, drift_policy));
    changes
}

/// Reason of a HelmRelease change that repairs drift; the apply step tells repairs by it.
pub const DRIFT_REASON: &str = "drift";
/// Reason of a HelmRelease change the catalog asks for (rollouts wave these, not repairs).
pub const CHANGED_REASON: &str = "chart, version or values changed since the last upgrade";

fn release_change(
    d: &DesiredStore,
    live: Option<&LiveStore>,
    create_diffs: bool,
    drift_policy: DriftPolicy,
) -> Change {
    let r = &d.release;
    // Only a release that changes is shown; keys come out sorted (serde_json's map is ordered).
    let shown = || {
        unified(
            "",
            &to_yaml(&json!({ "chart": r.chart, "version": r.version, "values": r.values })),
        )
    };
    let mut c = change(
        ObjectKind::HelmRelease,
        Some(&r.namespace),
        &r.name,
        Action::Unchanged,
        None,
    );
    match live.and_then(|l| l.release.as_ref()) {
        None => {
            c.action = Action::Create;
            c.diff = create_diffs.then(shown);
        }
        // What the namespace holds as Helm's storage cannot be trusted: the apply step refuses
        // to run helm on it and says why, every sync, until someone cleans it up.
        Some(rel) if rel.refused.is_some() => {
            c.action = Action::Update;
            c.reason = rel.refused.clone();
        }
        Some(rel) if rel.status != "deployed" => {
            c.action = Action::Update;
            c.reason = Some(format!("release status is {}", rel.status));
        }
        Some(rel) if rel.release_hash.as_deref() != Some(d.release_hash.as_str()) => {
            c.action = Action::Update;
            c.reason = Some(CHANGED_REASON.into());
            c.diff = Some(shown());
        }
        // Objects the chart rendered were changed in the cluster: `helm upgrade` puts them back.
        Some(rel) if !rel.drift.is_empty() => {
            let (action, reason) = match drift_policy {
                DriftPolicy::Repair => (Action::Update, format!("{DRIFT_REASON}: {}", rel.drift.summary())),
                DriftPolicy::Report => (
                    Action::Skip,
                    format!(
                        "{DRIFT_REASON}, reported only (driftPolicy: report): {}",
                        rel.drift.summary()
                    ),
                ),
            };
            c.action = action;
            c.reason = Some(reason);
            c.drift = Some(rel.drift.clone());
        }
        Some(_) => {}
    }
    c
}
