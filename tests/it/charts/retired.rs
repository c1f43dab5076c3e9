//! Retired stores (`retired: true`, charts/README.md "Retired stores"): storesync retires a store
//! with an ordinary `helm upgrade` of its release, so the engine charts must render a store that
//! runs nothing and serves nothing while every object that holds data renders exactly as when the
//! store is live. Each chart is rendered both ways, with the values storesync passes, and the two
//! renders are compared object by object: the only differences allowed are the workloads'
//! `spec.replicas` (0 when retired), the Ingress and the setup hook Job (absent when retired).

use super::budget::default_plans;
use super::checks::{assert_clean, check_networking, check_pods, check_wiring};
use super::helm::{chart_path, platform_values, render, repo_root, run_helm, set_path, yaml};
use super::manifest::{get, id, kind, pod_spec, seq, str_at};
use super::{ENGINES, engine_shapes, merge};
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;

/// `values` with the platform value `retired` set.
fn with_retired(values: &Value, retired: bool) -> Value {
    let mut values = values.clone();
    set_path(&mut values, "retired", Value::Bool(retired));
    values
}

/// The chart rendered live and retired, for store `acme` in `store-acme`.
fn both(chart: &str, values: &Value) -> (Vec<Value>, Vec<Value>) {
    let render_as = |retired| render(chart, "acme", "store-acme", &with_retired(values, retired));
    (render_as(false), render_as(true))
}

fn annotation<'a>(doc: &'a Value, key: &str) -> &'a str {
    get(doc, "metadata.annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_hook(doc: &Value) -> bool {
    !annotation(doc, "helm.sh/hook").is_empty()
}

fn is_workload(doc: &Value) -> bool {
    matches!(kind(doc), "Deployment" | "StatefulSet")
}

fn replicas(doc: &Value) -> Option<i64> {
    get(doc, "spec.replicas").and_then(Value::as_i64)
}

/// Every claim the render makes: PersistentVolumeClaims by name, and the claims a StatefulSet's
/// volumeClaimTemplates create for its first pod (`<template>-<statefulset>-0`), with their
/// metadata and spec: the claims a retired store must keep, bound to the same volumes.
fn claims(docs: &[Value]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for doc in docs {
        match kind(doc) {
            "PersistentVolumeClaim" => {
                out.insert(str_at(doc, "metadata.name").to_string(), doc.clone());
            }
            "StatefulSet" => {
                for template in seq(doc, "spec.volumeClaimTemplates") {
                    let name = format!(
                        "{}-{}-0",
                        str_at(template, "metadata.name"),
                        str_at(doc, "metadata.name")
                    );
                    out.insert(name, template.clone());
                }
            }
            _ => {}
        }
    }
    out
}

/// The object with what may differ between live and retired taken out: a workload's replicas
/// (checked on their own), and a standalone Secret's generated values (random in `helm
/// template`, read back with lookup on a cluster; its keys stay).
fn comparable(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if is_workload(&doc) {
        if let Some(spec) = doc.get_mut("spec").and_then(Value::as_mapping_mut) {
            spec.remove("replicas");
        }
    }
    if kind(&doc) == "Secret" {
        if let Some(data) = doc.get_mut("data").and_then(Value::as_mapping_mut) {
            for (_, value) in data.iter_mut() {
                *value = Value::from("<generated>");
            }
        }
    }
    doc
}

/// The dotted paths where `a` and `b` differ (at most a few, for the failure message).
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    if out.len() >= 5 || a == b {
        return;
    }
    let child = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            let keys: std::collections::BTreeSet<String> = x
                .keys()
                .chain(y.keys())
                .map(|k| serde_yaml_ng::to_string(k).unwrap_or_default().trim().to_string())
                .collect();
            for key in keys {
                let k = Value::from(key.as_str());
                let none = Value::Null;
                differences(
                    x.get(&k).unwrap_or(&none),
                    y.get(&k).unwrap_or(&none),
                    &child(&key),
                    out,
                );
            }
        }
        (Value::Sequence(x), Value::Sequence(y)) if x.len() == y.len() => {
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                differences(x, y, &child(&i.to_string()), out);
            }
        }
        _ => out.push(format!(
            "{}: {} when live, {} when retired",
            if at.is_empty() { "(object)" } else { at },
            serde_yaml_ng::to_string(a).unwrap_or_default().trim(),
            serde_yaml_ng::to_string(b).unwrap_or_default().trim()
        )),
    }
}

/// Everything a retired render must be, against the live render of the same values.
fn check_retired(live: &[Value], retired: &[Value], errors: &mut Vec<String>) {
    // The live store has what retiring takes away, so none of the checks below is vacuous.
    if live.iter().filter(|d| kind(d) == "Ingress").count() != 1 {
        errors.push("live: expected one Ingress".into());
    }
    if !live.iter().any(|d| kind(d) == "Job" && is_hook(d)) {
        errors.push("live: expected the setup hook Job".into());
    }
    if !live.iter().any(is_workload) {
        errors.push("live: no Deployment or StatefulSet".into());
    }

    // Nothing serves and nothing runs.
    for doc in retired {
        if kind(doc) == "Ingress" {
            errors.push(format!(
                "{}: rendered while retired; nothing may serve the store",
                id(doc)
            ));
        }
        if is_hook(doc) {
            errors.push(format!(
                "{}: hook ({}) rendered while retired; it would run against a stopped store",
                id(doc),
                annotation(doc, "helm.sh/hook")
            ));
        }
        if pod_spec(doc).is_some() && !is_workload(doc) {
            errors.push(format!(
                "{}: a {} runs pods that replicas cannot stop; no pod may run while retired",
                id(doc),
                kind(doc)
            ));
        }
        if is_workload(doc) && replicas(doc) != Some(0) {
            errors.push(format!(
                "{}: replicas {:?} while retired, want 0",
                id(doc),
                get(doc, "spec.replicas")
            ));
        }
        // Scaling a StatefulSet to 0 must leave its claims (Kubernetes' default is Retain).
        if kind(doc) == "StatefulSet" {
            for when in ["whenScaled", "whenDeleted"] {
                let policy = str_at(doc, &format!("spec.persistentVolumeClaimRetentionPolicy.{when}"));
                if !(policy.is_empty() || policy == "Retain") {
                    errors.push(format!(
                        "{}: persistentVolumeClaimRetentionPolicy.{when} {policy}, want Retain",
                        id(doc)
                    ));
                }
            }
        }
    }
    for doc in live.iter().filter(|d| is_workload(d)) {
        if replicas(doc).is_none_or(|r| r < 1) {
            errors.push(format!(
                "live: {} replicas {:?}",
                id(doc),
                get(doc, "spec.replicas")
            ));
        }
    }

    // Every claim stays: the same names and the same specs, so Helm keeps them.
    let (live_claims, retired_claims) = (claims(live), claims(retired));
    if live_claims.is_empty() {
        errors.push("live: no PersistentVolumeClaim and no volumeClaimTemplate".into());
    }
    if live_claims.keys().ne(retired_claims.keys()) {
        errors.push(format!(
            "claims {:?} when live but {:?} when retired",
            live_claims.keys().collect::<Vec<_>>(),
            retired_claims.keys().collect::<Vec<_>>()
        ));
    }
    for (name, claim) in &live_claims {
        if let Some(other) = retired_claims.get(name) {
            let mut diff = vec![];
            differences(claim, other, "", &mut diff);
            if !diff.is_empty() {
                errors.push(format!("claim {name} changes when retired: {}", diff.join("; ")));
            }
        }
    }

    // Every other object renders identically, replicas aside.
    let by_id =
        |docs: &[Value]| -> BTreeMap<String, Value> { docs.iter().map(|d| (id(d), comparable(d))).collect() };
    let (live_objects, retired_objects) = (by_id(live), by_id(retired));
    for (name, doc) in &live_objects {
        let Some(other) = retired_objects.get(name) else {
            if !(kind(doc) == "Ingress" || is_hook(doc)) {
                errors.push(format!("{name}: rendered when live but missing when retired"));
            }
            continue;
        };
        let mut diff = vec![];
        differences(doc, other, "", &mut diff);
        if !diff.is_empty() {
            errors.push(format!("{name} differs when retired: {}", diff.join("; ")));
        }
    }
    for name in retired_objects.keys().filter(|n| !live_objects.contains_key(*n)) {
        errors.push(format!("{name}: rendered only when retired"));
    }
}

/// The storesync contract of a retired render: hardening, wiring to `store-credentials` and no
/// chart-rendered Secret, Services that still select their (scaled-down) pods; the one thing of
/// the live contract it drops is the Ingress.
fn check_contract(retired: &[Value], tls: bool, issuer: &str, secret_name: &str, errors: &mut Vec<String>) {
    check_pods(retired, true, errors);
    check_wiring(retired, "store-credentials", errors);
    if retired.iter().any(|d| kind(d) == "Secret") {
        errors.push("with credentials.existingSecret the chart must render no Secret".into());
    }
    let mut networking = vec![];
    check_networking(retired, tls, issuer, secret_name, &mut networking);
    errors.extend(
        networking
            .into_iter()
            .filter(|e| e != "expected one Ingress, got 0"),
    );
}

#[test]
fn engine_charts_lint_strict_retired_and_live() {
    for engine in ENGINES {
        for retired in [false, true] {
            let values = with_retired(&platform_values("small", true, "letsencrypt", ""), retired);
            let out = run_helm(&["lint", "--strict", &chart_path(engine)], &values);
            assert!(
                out.is_ok(),
                "helm lint --strict charts/{engine} with retired: {retired}:\n{}",
                out.unwrap_err()
            );
        }
    }
}

#[test]
fn retired_is_documented_and_defaults_to_live() {
    let readme = std::fs::read_to_string(repo_root().join("charts/README.md")).expect("charts/README.md");
    assert!(
        readme.contains("### Retired stores"),
        "charts/README.md documents `retired`"
    );
    for engine in ENGINES {
        let dir = repo_root().join(chart_path(engine));
        let defaults = yaml(&std::fs::read_to_string(dir.join("values.yaml")).expect("values.yaml"));
        assert_eq!(
            get(&defaults, "retired"),
            Some(&Value::Bool(false)),
            "{engine}: values.yaml has `retired: false`"
        );
        let notes = std::fs::read_to_string(dir.join("templates/NOTES.txt")).expect("NOTES.txt");
        assert!(
            notes.contains(&format!("include \"{engine}.retired\"")),
            "{engine}: NOTES.txt says what a retired store is"
        );
        // Without the value, the store is live: the render of the values storesync passes today.
        let docs = render(
            &chart_path(engine),
            "acme",
            "store-acme",
            &platform_values("small", false, "", ""),
        );
        let live = render(
            &chart_path(engine),
            "acme",
            "store-acme",
            &with_retired(&platform_values("small", false, "", ""), false),
        );
        assert_eq!(docs, live, "{engine}: no `retired` value renders the live store");
    }
}

#[test]
fn retired_must_be_a_boolean() {
    // A quoted "false" is truthy in a template: it must fail, never stop a live store.
    for engine in ENGINES {
        for bad in ["'false'", "'true'", "'retired'", "1"] {
            let mut values = platform_values("small", false, "", "");
            merge(&mut values, yaml(&format!("retired: {bad}")));
            let out = run_helm(&["template", "acme", &chart_path(engine)], &values);
            let err = out
                .err()
                .unwrap_or_else(|| panic!("{engine}: retired: {bad} must fail the render"));
            assert!(
                err.contains("retired must be true or false"),
                "{engine}: retired: {bad} fails with a clear message, got:\n{err}"
            );
        }
    }
}

#[test]
fn retired_engines_run_nothing_serve_nothing_and_keep_their_data() {
    let tls_cases = [(false, "", ""), (true, "letsencrypt-prod", "")];
    for (engine, extra) in engine_shapes() {
        for plan in default_plans() {
            for (tls, issuer, secret_name) in tls_cases {
                let context = format!("{engine} {extra}, plan {}, tls {tls}", plan.name);
                let mut values = platform_values(&plan.name, tls, issuer, secret_name);
                if !extra.is_empty() {
                    merge(&mut values, yaml(extra));
                }
                let (live, retired) = both(&chart_path(engine), &values);
                let mut errors = vec![];
                check_retired(&live, &retired, &mut errors);
                check_contract(&retired, tls, issuer, secret_name, &mut errors);
                assert_clean(&context, errors);
            }
        }
    }
}

#[test]
fn every_example_store_retires_with_the_values_storesync_passes() {
    use storesync::source::RepoLocation;
    let location = RepoLocation::Local(repo_root().join("stores.example"));
    let snapshot = storesync::source::read(&location, None, &Default::default()).expect("stores.example");
    let catalog = storesync::desired::load(&snapshot.raw).expect("stores.example is a valid catalog");
    let desired = storesync::desired::render(&catalog, None);
    assert!(desired.len() >= 6, "stores.example has its stores");
    let mut failures = vec![];
    for store in &desired {
        let release = &store.release;
        assert!(
            !release.chart.contains('/') && !release.chart.contains(':'),
            "{}: chart {:?} is not a chart of this repository's charts/",
            store.store.name,
            release.chart
        );
        let values: Value = serde_yaml_ng::to_value(&release.values).expect("values as YAML");
        let render_as = |retired| {
            render(
                &format!("charts/{}", release.chart),
                &release.name,
                &release.namespace,
                &with_retired(&values, retired),
            )
        };
        let (live, retired) = (render_as(false), render_as(true));
        let mut errors = vec![];
        check_retired(&live, &retired, &mut errors);
        check_pods(&retired, true, &mut errors);
        check_wiring(&retired, "store-credentials", &mut errors);
        if !errors.is_empty() {
            failures.push(format!(
                "store {} ({}):\n  {}",
                store.store.name,
                release.chart,
                errors.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn standalone_retired_keeps_its_credentials_secret() {
    // Without credentials.existingSecret the chart owns its Secret: retiring must not drop it
    // (Helm would delete it) nor change how it is kept.
    for engine in ENGINES {
        let (live, retired) = both(&chart_path(engine), &yaml("ingress: {host: solo.example}"));
        let secrets =
            |docs: &[Value]| -> Vec<Value> { docs.iter().filter(|d| kind(d) == "Secret").cloned().collect() };
        let (a, b) = (secrets(&live), secrets(&retired));
        assert_eq!(a.len(), 1, "{engine}: the standalone render has its Secret");
        assert_eq!(
            b.len(),
            1,
            "{engine}: the retired standalone render keeps its Secret"
        );
        assert_eq!(str_at(&b[0], "metadata.name"), "acme-credentials");
        assert_eq!(annotation(&b[0], "helm.sh/resource-policy"), "keep");
        let keys = |s: &Value| -> Vec<String> {
            get(s, "data")
                .and_then(Value::as_mapping)
                .cloned()
                .unwrap_or_else(Mapping::new)
                .keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        };
        assert_eq!(keys(&a[0]), keys(&b[0]), "{engine}: the same credential keys");
        let mut errors = vec![];
        check_retired(&live, &retired, &mut errors);
        assert_clean(&format!("{engine} standalone"), errors);
    }
}
