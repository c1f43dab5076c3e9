//! The kit's files, read: the dashboard and the rules file, and the PromQL expressions in each.

use serde_json::Value as Json;
use serde_yaml_ng::Value;

use crate::charts::helm::repo_root;

pub const CHART: &str = "deploy/helm/storesync";
pub const DASHBOARD: &str = "deploy/helm/storesync/files/grafana-dashboard.json";
pub const RULES: &str = "deploy/helm/storesync/files/prometheus-rules.yaml";
pub const RULE_TESTS: &str = "tests/it/ops/prometheus-rules.test.yaml";
pub const ALERTS: [&str; 9] = [
    "StoresyncDaemonDown",
    "StoresyncNoRecentSuccessfulSync",
    "StoresyncSyncsFailing",
    "StoresyncHelmFailures",
    "StoresyncWebhookUnauthorized",
    "StoresyncStatusPostsFailing",
    "StoresyncNoLeader",
    "StoresyncStoresDegraded",
    "StoresyncRolloutHalted",
];

pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn dashboard() -> Json {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

pub fn rules() -> Value {
    serde_yaml_ng::from_str(&read(RULES)).unwrap_or_else(|e| panic!("{RULES}: {e}"))
}

/// YAML as JSON, so mappings compare without regard to key order.
pub fn as_json(v: &Value) -> Json {
    serde_json::to_value(v).expect("YAML converts to JSON")
}

/// Every panel, those inside collapsed rows included.
pub fn panels(d: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// (where, expr) of every panel target.
pub fn dashboard_exprs(d: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let place = format!(
                "{DASHBOARD} panel {} {:?} target {}",
                p["id"], p["title"], t["refId"]
            );
            out.push((place, t["expr"].as_str().unwrap_or_default().to_string()));
        }
    }
    out
}

/// The alert rules of every group of a rules file.
pub fn alert_rules(rules: &Value) -> Vec<Value> {
    alerts_in(&rules["groups"])
}

pub fn alerts_in(groups: &Value) -> Vec<Value> {
    groups
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter().cloned())
        .collect()
}

pub fn rule_exprs(rules: &Value) -> Vec<(String, String)> {
    alert_rules(rules)
        .iter()
        .map(|r| {
            let place = format!("{RULES} alert {}", r["alert"].as_str().unwrap_or("?"));
            (place, r["expr"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// A template variable's `label_values(<selector>, <label>)`, as (selector, label).
pub fn label_values_query(var: &Json) -> (String, String) {
    let q = var["query"]["query"].as_str().unwrap_or_default();
    let inner = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable {} is not label_values(…): {q:?}", var["name"]));
    let (selector, label) = inner.rsplit_once(',').expect("label_values(selector, label)");
    (selector.trim().to_string(), label.trim().to_string())
}

pub fn variable<'a>(d: &'a Json, name: &str) -> &'a Json {
    d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("the dashboard has no `{name}` variable"))
}
