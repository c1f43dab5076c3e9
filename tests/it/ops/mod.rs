//! The operations kit of storesync's chart: the Grafana dashboard
//! (deploy/helm/storesync/files/grafana-dashboard.json) and the alert rules
//! (files/prometheus-rules.yaml, also rendered as a PrometheusRule). Checked here: the dashboard's
//! shape; that every query reads only metrics, labels and label values storesync exports; the
//! chart's optional ConfigMap and PrometheusRule; and promtool's verdict on the rules and on
//! their unit tests (tests/it/ops/prometheus-rules.test.yaml).
//!
//! helm is found as for tests/it/charts/. promtool (Debian's `prometheus` package) is
//! $STORESYNC_PROMTOOL or `promtool` on PATH; without it the promtool test says it skipped,
//! unless STORESYNC_REQUIRE_PROMTOOL is set, as CI does.

mod check;
mod exported;
#[allow(dead_code)]
use crate::charts::helm;
mod kit;
mod promql;
mod promtool;

use std::collections::{BTreeMap, BTreeSet};

use check::check_expr;
use exported::Exported;
use helm::{render, run_helm, yaml};
use kit::{
    ALERTS, CHART, DASHBOARD, RULE_TESTS, RULES, alert_rules, alerts_in, as_json, dashboard, dashboard_exprs,
    label_values_query, panels, read, rule_exprs, rules, variable,
};
use serde_json::Value as Json;
use serde_yaml_ng::Value;

#[test]
fn dashboard_is_a_grafana_dashboard_that_tells_installs_apart() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion ≥ 36"
    );
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()) && d["title"].is_string());
    let ds = variable(&d, "datasource");
    assert_eq!(
        (ds["type"].as_str(), ds["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    for (name, label) in [("job", "job"), ("namespace", "namespace")] {
        let v = variable(&d, name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(
            v["datasource"]["uid"], "${datasource}",
            "{name} queries the chosen data source"
        );
        assert_eq!(
            (v["includeAll"].as_bool(), v["allValue"].as_str()),
            (Some(true), Some(".*"))
        );
        assert_eq!(label_values_query(v).1, label, "{name} lists the {label} label");
    }

    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for p in panels(&d) {
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {:?} has no numeric id", p["title"]));
        assert!(ids.insert(id), "panel id {id} is used twice");
        let g = &p["gridPos"];
        let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("panel {id}: gridPos.{k} is not a whole number"))
        });
        assert!(
            h > 0 && w > 0 && x + w <= 24,
            "panel {id}: gridPos {g} leaves the 24 columns"
        );
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            if let Some(other) = cells.insert(cell, id) {
                panic!("panels {other} and {id} overlap at {cell:?}");
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {id} uses the chosen data source"
        );
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("panel {id} {:?} has no targets", p["title"]));
        let refs: BTreeSet<&str> = targets.iter().filter_map(|t| t["refId"].as_str()).collect();
        assert_eq!(
            refs.len(),
            targets.len(),
            "panel {id}: every target has its own refId"
        );
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "panel {id}: an empty expr"
            );
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {id} target");
        }
    }
    // Every selector honours the job and namespace variables, so several installs stay apart.
    for (place, expr) in dashboard_exprs(&d) {
        for s in promql::reads(&expr)
            .unwrap_or_else(|e| panic!("{place}: {e}"))
            .selectors
        {
            for (label, value) in [("job", "$job"), ("namespace", "$namespace")] {
                assert!(
                    s.matchers
                        .iter()
                        .any(|m| m.label == label && m.op == "=~" && m.value == value),
                    "{place}: {} lacks {label}=~\"{value}\"",
                    s.metric
                );
            }
        }
    }
    // 401s stand out: the webhook panel colours `unauthorized` on its own.
    let webhooks = panels(&d)
        .into_iter()
        .find(|p| p.to_string().contains("storesync_webhook_deliveries_total"))
        .expect("a webhook deliveries panel");
    let overrides = webhooks["fieldConfig"]["overrides"]
        .as_array()
        .expect("overrides");
    assert!(
        overrides.iter().any(|o| o["matcher"]["options"] == "unauthorized"
            && o["properties"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["id"] == "color")),
        "the webhook panel gives `unauthorized` its own colour"
    );
    // Degraded stores stand out, and only the leader's store table is counted: a follower's is
    // its startup observation, never judged again.
    let health = panels(&d)
        .into_iter()
        .find(|p| p.to_string().contains("storesync_stores_by_health"))
        .expect("a stores-by-health panel");
    let red = health["fieldConfig"]["overrides"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["matcher"]["options"] == "Degraded")
        .flat_map(|o| o["properties"].as_array().into_iter().flatten())
        .any(|p| p["id"] == "color" && p["value"]["fixedColor"] == "red");
    assert!(red, "the health panel shows Degraded in red");
    for t in health["targets"].as_array().into_iter().flatten() {
        let reads = promql::reads(t["expr"].as_str().unwrap_or_default()).expect("health query");
        assert!(
            reads.selectors.iter().any(|s| s.metric == "storesync_leader"),
            "the health panel counts the leader's table only: {}",
            t["expr"]
        );
    }
}

#[test]
fn dashboard_and_rules_read_only_what_storesync_exports() {
    let exported = Exported::read();
    let d = dashboard();
    let mut exprs = dashboard_exprs(&d);
    for name in ["job", "namespace"] {
        let (selector, _) = label_values_query(variable(&d, name));
        exprs.push((format!("{DASHBOARD} variable {name}"), selector));
    }
    exprs.extend(rule_exprs(&rules()));
    let errors: Vec<String> = exprs
        .iter()
        .flat_map(|(place, expr)| check_expr(place, expr, &exported))
        .collect();
    assert!(
        errors.is_empty(),
        "queries read what storesync does not export:\n{}",
        errors.join("\n")
    );

    // A panel for every metric storesync exports.
    let shown: BTreeSet<String> = dashboard_exprs(&d)
        .iter()
        .flat_map(|(_, e)| promql::reads(e).expect("read above").selectors)
        .filter_map(|s| exported.family_of(&s.metric).cloned())
        .collect();
    let missing: Vec<&String> = exported.families.iter().filter(|f| !shown.contains(*f)).collect();
    assert!(missing.is_empty(), "no dashboard panel reads {missing:?}");
}

#[test]
fn query_checks_catch_unknown_metrics_labels_and_values() {
    let exported = Exported::read();
    let errors = |expr: &str| check_expr("test", expr, &exported);
    for fine in [
        r#"histogram_quantile(0.9, sum by (job, le) (rate(storesync_sync_duration_seconds_bucket{job=~"$job"}[5m])))"#,
        r#"sum by (result) (increase(storesync_status_posts_total{result=~"failed|dropped"}[$__rate_interval]))"#,
        r#"up{job="storesync"} == 0 or absent(up{job="storesync"})"#,
        r#"time() - storesync_last_successful_sync_timestamp_seconds > 3 * 60"#,
        r#"sum(storesync_stores{state!="in-sync"}) / on (job) group_left sum by (job) (storesync_stores)"#,
        r#"storesync_stores_by_health{health=~"Degraded|Missing"} * on (instance) group_left storesync_leader"#,
    ] {
        assert_eq!(errors(fine), Vec::<String>::new(), "{fine}");
    }
    for (wrong, says) in [
        (
            "rate(storesync_sync_total[5m])",
            "storesync_sync_total is not exported",
        ),
        ("storesync_sync_duration_seconds_buckets", "is not exported"),
        (
            r#"storesync_syncs_total{state="success"}"#,
            r#"has no label "state""#,
        ),
        (
            r#"storesync_syncs_total{result="failed"}"#,
            r#"never takes the value "failed""#,
        ),
        (
            r#"storesync_stores{state=~"failed|broken"}"#,
            r#"never takes the value "broken""#,
        ),
        (
            r#"storesync_stores{health="Degraded"}"#,
            r#"has no label "health""#,
        ),
        (
            r#"storesync_stores_by_health{health="degraded"}"#,
            r#"never takes the value "degraded""#,
        ),
        (
            r#"sum by (le) (storesync_syncs_total)"#,
            r#"groups or matches on "le""#,
        ),
        (
            r#"sum by (operation) (rate(storesync_plans_total[5m]))"#,
            r#"on "operation""#,
        ),
        (r#"up{result="success"}"#, r#"up has no label "result""#),
        (
            r#"{__name__="storesync_stores"}"#,
            "a selector without a metric name",
        ),
        ("vector(1)", "reads no metric"),
    ] {
        let found = errors(wrong);
        assert!(
            found.iter().any(|e| e.contains(says)),
            "{wrong}: expected {says:?}, got {found:?}"
        );
    }
    let reads = promql::reads(
        r#"sum by (job) (rate(a{b="c", d=~'e|f'}[5m] offset 1h)) / on (job) group_left (g) h_total"#,
    )
    .expect("reads");
    let names: Vec<&str> = reads.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["a", "h_total"]);
    assert_eq!(reads.selectors[0].matchers.len(), 2);
    assert_eq!(reads.selectors[0].matchers[1].value, "e|f");
    assert_eq!(reads.grouping, ["job", "job", "g"]);
}

#[test]
fn alert_rules_are_complete_scoped_and_documented() {
    let rules = rules();
    let alerts = alert_rules(&rules);
    let names: Vec<&str> = alerts.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(names, ALERTS, "the alerts of {RULES}");
    let readme = read("deploy/README.md");
    let monitoring = readme
        .split("\n## ")
        .find(|s| s.starts_with("Monitoring"))
        .expect("deploy/README.md has a Monitoring section");
    for r in &alerts {
        let name = r["alert"].as_str().unwrap_or_default();
        let severity = r["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            let text = r["annotations"][key].as_str().unwrap_or_default();
            assert!(
                text.len() > 20,
                "{name}: annotation {key} is missing or too short"
            );
        }
        let pending = r["for"].as_str().unwrap_or_default();
        assert!(
            pending.len() > 1
                && pending.ends_with(['s', 'm', 'h'])
                && pending[..pending.len() - 1].parse::<u32>().is_ok_and(|n| n > 0),
            "{name}: `for` {pending:?} is not a positive duration"
        );
        // The chart scopes the rules to a release by rewriting job="storesync"; no selector may lack it.
        let expr = r["expr"].as_str().unwrap_or_default();
        for s in promql::reads(expr).expect("rule expr").selectors {
            assert!(
                s.matchers
                    .iter()
                    .any(|m| m.label == "job" && m.op == "=" && m.value == "storesync"),
                "{name}: {} is not scoped to job=\"storesync\"",
                s.metric
            );
        }
        assert!(
            monitoring.contains(&format!("`{name}`")),
            "deploy/README.md Monitoring lacks a runbook line for {name}"
        );
    }
    // Each alert is unit-tested both firing and staying quiet.
    let tests: Value = serde_yaml_ng::from_str(&read(RULE_TESTS)).expect("rule tests YAML");
    let cases: Vec<&Value> = tests["tests"]
        .as_sequence()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().into_iter().flatten())
        .collect();
    for name in ALERTS {
        let of = |fires: bool| {
            cases.iter().any(|c| {
                c["alertname"] == name
                    && c["exp_alerts"]
                        .as_sequence()
                        .is_some_and(|a| a.is_empty() != fires)
            })
        };
        assert!(
            of(true) && of(false),
            "{RULE_TESTS}: {name} needs a case that fires and one that does not"
        );
    }
}

fn chart_values(extra: &str) -> Value {
    let mut values = yaml("repo: {url: 'https://github.com/acme/stores.git'}\n");
    let extra = yaml(extra);
    if let (Some(v), Some(e)) = (values.as_mapping_mut(), extra.as_mapping()) {
        v.extend(e.clone());
    }
    values
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn rendered_groups(release: &str, extra: &str) -> Value {
    let docs = render(CHART, release, "storesync", &chart_values(extra));
    let rule = of_kind(&docs, "PrometheusRule");
    assert_eq!(rule.len(), 1, "one PrometheusRule when enabled");
    rule[0]["spec"]["groups"].clone()
}

#[test]
fn chart_ships_the_dashboard_and_rules_only_when_asked() {
    let docs = render(CHART, "storesync", "storesync", &chart_values("{}"));
    assert!(
        of_kind(&docs, "PrometheusRule").is_empty(),
        "PrometheusRule is off by default"
    );
    assert!(
        of_kind(&docs, "ConfigMap").is_empty(),
        "the dashboard ConfigMap is off by default"
    );

    let extra = "monitoring:\n  prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}\n  \
                 grafanaDashboard: {enabled: true, annotations: {grafana_folder: Platform}}\n";
    let docs = render(CHART, "storesync", "storesync", &chart_values(extra));
    let maps = of_kind(&docs, "ConfigMap");
    assert_eq!(maps.len(), 1);
    let cm = maps[0];
    assert_eq!(
        cm["metadata"]["labels"]["grafana_dashboard"],
        Value::from("1"),
        "the sidecar's label, a string"
    );
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "Platform");
    assert_eq!(cm["metadata"]["namespace"], "storesync");
    let shipped: Json = serde_json::from_str(cm["data"]["storesync.json"].as_str().expect("storesync.json"))
        .expect("the shipped dashboard is JSON");
    assert_eq!(
        shipped,
        dashboard(),
        "the ConfigMap carries files/grafana-dashboard.json"
    );

    let rule = of_kind(&docs, "PrometheusRule")[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "storesync");
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus-stack");
    assert_eq!(
        as_json(&rule["spec"]["groups"]),
        as_json(&rules()["groups"]),
        "release storesync with the default interval gets exactly the groups of {RULES}"
    );

    let elsewhere = "monitoring: {grafanaDashboard: {enabled: true, namespace: monitoring}}";
    let docs = render(CHART, "storesync", "storesync", &chart_values(elsewhere));
    assert_eq!(
        of_kind(&docs, "ConfigMap")[0]["metadata"]["namespace"],
        "monitoring"
    );

    let lint = run_helm(&["lint", "--strict", CHART], &chart_values(extra));
    assert!(
        lint.is_ok(),
        "helm lint --strict with monitoring on:\n{}",
        lint.unwrap_err()
    );
}

/// The expected rendering of the rules file for `job` and a poll interval of `interval` seconds.
fn expected_groups(job: &str, interval: u64) -> Json {
    let text = read(RULES)
        .replace(r#"job="storesync""#, &format!("job={job:?}"))
        .replace("> 3 * 60", &format!("> 3 * {interval}"));
    as_json(&serde_yaml_ng::from_str::<Value>(&text).expect("rules YAML"))["groups"].clone()
}

#[test]
fn chart_rules_follow_the_release_job_and_poll_interval() {
    let enabled = "monitoring: {prometheusRule: {enabled: true}}\n";
    let groups = rendered_groups("shop-a", &format!("{enabled}sync: {{interval: 5m}}"));
    assert_eq!(as_json(&groups), expected_groups("shop-a-storesync", 300));
    let stale = alerts_in(&groups)
        .into_iter()
        .find(|r| r["alert"] == "StoresyncNoRecentSuccessfulSync")
        .expect("stale alert");
    assert!(
        stale["expr"]
            .as_str()
            .unwrap_or_default()
            .contains(r#"{job="shop-a-storesync"} > 3 * 300"#),
        "three 5m polls: {:?}",
        stale["expr"]
    );

    let groups = rendered_groups("storesync", &format!("{enabled}sync: {{interval: 90s}}"));
    assert_eq!(as_json(&groups), expected_groups("storesync", 90));
    let groups = rendered_groups(
        "storesync",
        "monitoring: {prometheusRule: {enabled: true, job: storesync-prod}}\nsync: {interval: 1h}",
    );
    assert_eq!(as_json(&groups), expected_groups("storesync-prod", 3600));

    let values = chart_values(&format!("{enabled}sync: {{interval: 1m30s}}"));
    let err = run_helm(&["template", "storesync", CHART], &values).expect_err("1m30s is refused");
    assert!(
        err.contains(r#"sync.interval "1m30s""#) && err.contains("e.g. 90s"),
        "the error names the value and the fix: {err}"
    );
}

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let Some(promtool) = promtool::find() else {
        assert!(
            std::env::var_os("STORESYNC_REQUIRE_PROMTOOL").is_none(),
            "STORESYNC_REQUIRE_PROMTOOL is set but promtool is missing (apt-get install prometheus)"
        );
        eprintln!("SKIPPED: promtool is not installed; CI installs it and sets STORESYNC_REQUIRE_PROMTOOL=1");
        return;
    };
    let ok = |args: &[&str]| {
        promtool::run(&promtool, args).unwrap_or_else(|e| panic!("promtool {}:\n{e}", args.join(" ")))
    };
    let checked = ok(&["check", "rules", RULES]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "{checked}"
    );
    let tested = ok(&["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");

    let dir = tempfile::tempdir().expect("temp dir");
    // What the chart renders for another release and interval is valid too.
    let custom = rendered_groups(
        "shop-a",
        "monitoring: {prometheusRule: {enabled: true}}\nsync: {interval: 5m}",
    );
    ok(&[
        "check",
        "rules",
        &promtool::rules_file(dir.path(), "chart.yaml", &as_json(&custom)),
    ]);
    // The unit tests notice a wrong threshold: three 10m intervals, 30 minutes, fail them.
    let slow = rendered_groups(
        "storesync",
        "monitoring: {prometheusRule: {enabled: true}}\nsync: {interval: 10m}",
    );
    let slow_file = promtool::rules_file(dir.path(), "slow.yaml", &as_json(&slow));
    let mut tests: Value = serde_yaml_ng::from_str(&read(RULE_TESTS)).expect("rule tests YAML");
    tests["rule_files"] = yaml(&format!("[{slow_file:?}]"));
    let tests_file = dir.path().join("slow.test.yaml");
    std::fs::write(&tests_file, serde_yaml_ng::to_string(&tests).expect("YAML")).expect("write tests");
    let failed = promtool::run(&promtool, &["test", "rules", &tests_file.display().to_string()])
        .expect_err("the unit tests fail against a 30-minute threshold");
    assert!(failed.contains("StoresyncNoRecentSuccessfulSync"), "{failed}");

    // Every dashboard query parses, with Grafana's variables filled in.
    let d = dashboard();
    let mut record = Vec::new();
    for p in panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$job", ".*")
                .replace("$namespace", ".*");
            let name = format!(
                "storesync_dashboard:panel_{}_{}",
                p["id"],
                t["refId"].as_str().unwrap_or("X")
            );
            record.push(serde_json::json!({ "record": name, "expr": expr }));
        }
    }
    let dashboard_rules = serde_json::json!([{ "name": "dashboard", "rules": record }]);
    ok(&[
        "check",
        "rules",
        &promtool::rules_file(dir.path(), "dashboard.yaml", &dashboard_rules),
    ]);
}
