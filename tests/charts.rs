//! Chart tests: lint and render the engine charts (charts/woocommerce, charts/medusa) and
//! storesync's own chart (deploy/helm/storesync) with the real helm binary, then check what a
//! platform team relies on: guardrail fit (every pod that can run at once fits the plan's
//! ResourceQuota and LimitRange), hardening, credential handling, ingress wiring, and an RBAC
//! ClusterRole that grants exactly what storesync and helm need.
//!
//! helm is found as $STORESYNC_HELM, else <repo>/tools/bin/helm, else `helm` on PATH. These tests
//! never skip: without helm they fail and say how to install it (scripts/setup-tools.sh).

#[path = "charts_support/budget.rs"]
mod budget;
#[path = "charts_support/checks.rs"]
mod checks;
#[path = "charts_support/helm.rs"]
mod helm;
#[path = "charts_support/manifest.rs"]
mod manifest;
#[path = "charts_support/quantity.rs"]
mod quantity;
#[path = "charts_support/rbac.rs"]
mod rbac;

use budget::{PLANS, check_budget};
use checks::{CREDENTIAL_KEYS, assert_clean, check_networking, check_pods, check_wiring};
use helm::{chart_path, platform_values, render, repo_root, run_helm, yaml};
use manifest::{get, kind, seq, str_at};
use rbac::{grants, resource_of, storesync_own_grants};
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeSet;
use std::path::Path;

const ENGINES: [&str; 2] = ["woocommerce", "medusa"];

const WOOCOMMERCE_ALLOWLIST: [&str; 8] = [
    "storeTitle",
    "currency",
    "admin.email",
    "admin.username",
    "sampleProduct.name",
    "sampleProduct.price",
    "persistence.wordpress.size",
    "persistence.database.size",
];
const MEDUSA_ALLOWLIST: [&str; 7] = [
    "storeName",
    "currency",
    "admin.email",
    "storefront.enabled",
    "persistence.database.size",
    "sampleProduct.name",
    "sampleProduct.price",
];

#[test]
fn all_charts_pass_strict_lint() {
    let host = yaml("ingress: {host: lint.shop.example}");
    for engine in ENGINES {
        let out = run_helm(&["lint", "--strict", &chart_path(engine)], &host);
        assert!(
            out.is_ok(),
            "helm lint --strict charts/{engine}:\n{}",
            out.unwrap_err()
        );
        let platform = platform_values("small", true, "letsencrypt", "");
        let out = run_helm(&["lint", "--strict", &chart_path(engine)], &platform);
        assert!(
            out.is_ok(),
            "helm lint --strict charts/{engine} (platform values):\n{}",
            out.unwrap_err()
        );
    }
    let deploy = yaml("repo: {url: 'https://github.com/acme/stores.git'}");
    let out = run_helm(&["lint", "--strict", "deploy/helm/storesync"], &deploy);
    assert!(
        out.is_ok(),
        "helm lint --strict deploy/helm/storesync:\n{}",
        out.unwrap_err()
    );
}

#[test]
fn engine_renders_fit_every_plan_and_are_hardened() {
    let tls_cases = [
        (false, "", ""),
        (true, "letsencrypt-prod", ""),
        (true, "", "acme-cert"),
    ];
    for engine in ENGINES {
        for plan in &PLANS {
            for (tls, issuer, secret_name) in tls_cases {
                let context = format!("{engine}, plan {}, tls {tls}, issuer {issuer:?}", plan.name);
                let docs = render(
                    &chart_path(engine),
                    "acme",
                    "store-acme",
                    &platform_values(plan.name, tls, issuer, secret_name),
                );
                let mut errors = vec![];
                check_pods(&docs, true, &mut errors);
                // The small plan's limits bind every plan: chart defaults do not vary with it.
                let total = check_budget(&docs, &PLANS[0], &mut errors);
                check_budget(&docs, plan, &mut errors);
                check_networking(&docs, tls, issuer, secret_name, &mut errors);
                check_wiring(&docs, "store-credentials", &mut errors);
                if docs.iter().any(|d| kind(d) == "Secret") {
                    errors.push("with credentials.existingSecret the chart must render no Secret".into());
                }
                if !docs.iter().any(|d| kind(d) == "Job") {
                    errors.push("no setup Job rendered".into());
                }
                assert_clean(&context, errors);
                if plan.name == "small" && !tls {
                    eprintln!(
                        "{engine}: worst case {total} (small quota: requests 1000m/2048Mi, limits 2000m/4096Mi)"
                    );
                }
            }
        }
    }
}

#[test]
fn standalone_install_generates_credentials_preserved_across_upgrades() {
    let values = yaml("ingress: {host: solo.example}");
    for engine in ENGINES {
        let first = render(&chart_path(engine), "solo", "shop", &values);
        let second = render(&chart_path(engine), "solo", "shop", &values);
        let secret = |docs: &[Value]| -> Value {
            let found: Vec<&Value> = docs.iter().filter(|d| kind(d) == "Secret").collect();
            assert_eq!(
                found.len(),
                1,
                "{engine}: standalone render must contain exactly one Secret"
            );
            found[0].clone()
        };
        let (a, b) = (secret(&first), secret(&second));
        assert_eq!(
            str_at(&a, "metadata.name"),
            "solo-credentials",
            "{engine}: Secret name"
        );
        let keep = get(&a, "metadata.annotations").and_then(|m| m.get("helm.sh/resource-policy"));
        assert_eq!(
            keep.and_then(Value::as_str),
            Some("keep"),
            "{engine}: Secret must be kept on uninstall"
        );
        let data = get(&a, "data")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_else(Mapping::new);
        for key in CREDENTIAL_KEYS {
            let value = data.get(key).and_then(Value::as_str).unwrap_or("");
            assert!(
                value.len() >= 40,
                "{engine}: key {key} must hold a generated value (base64 of 32+ chars)"
            );
            assert_ne!(
                get(&b, &format!("data.{key}")),
                Some(&Value::from(value)),
                "{engine}: {key} must be random"
            );
        }
        // Preservation: the template reads the live Secret back with lookup before generating.
        let source =
            std::fs::read_to_string(repo_root().join(chart_path(engine)).join("templates/secret.yaml"))
                .expect("secret template");
        assert!(
            source.contains("lookup \"v1\" \"Secret\""),
            "{engine}: Secret values must be preserved via lookup"
        );
        let mut errors = vec![];
        check_wiring(&first, "solo-credentials", &mut errors);
        check_pods(&first, true, &mut errors);
        assert_clean(&format!("{engine} standalone"), errors);
    }
}

#[test]
fn every_allowlisted_store_value_is_documented_and_changes_the_render() {
    let readme = std::fs::read_to_string(repo_root().join("charts/README.md")).expect("charts/README.md");
    for (engine, allowlist) in [
        ("woocommerce", &WOOCOMMERCE_ALLOWLIST[..]),
        ("medusa", &MEDUSA_ALLOWLIST[..]),
    ] {
        let defaults: Value = yaml(
            &std::fs::read_to_string(repo_root().join(chart_path(engine)).join("values.yaml"))
                .expect("values.yaml"),
        );
        let base = platform_values("small", false, "", "");
        let before =
            serde_yaml_ng::to_string(&render(&chart_path(engine), "acme", "store-acme", &base)).unwrap();
        for path in allowlist {
            assert!(
                readme.contains(&format!("`{path}`")),
                "charts/README.md must list {engine} value `{path}`"
            );
            let default =
                get(&defaults, path).unwrap_or_else(|| panic!("{engine}: {path} missing from values.yaml"));
            let marker = match default {
                Value::Bool(b) => Value::Bool(!b),
                _ if path.ends_with(".size") => Value::from("3Gi"),
                _ if path.ends_with("price") => Value::from("12.34"),
                _ if path.ends_with("email") => Value::from("marker@shop.example"),
                _ if *path == "currency" => Value::from("gbp"),
                _ => Value::from("markerzz"),
            };
            let mut values = base.clone();
            let mut node = &mut values;
            let keys: Vec<&str> = path.split('.').collect();
            for key in &keys[..keys.len() - 1] {
                let map = node.as_mapping_mut().expect("mapping");
                node = map
                    .entry(Value::from(*key))
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
            }
            node.as_mapping_mut()
                .expect("mapping")
                .insert(Value::from(keys[keys.len() - 1]), marker.clone());
            let after = serde_yaml_ng::to_string(&render(&chart_path(engine), "acme", "store-acme", &values))
                .unwrap();
            let visible = match &marker {
                Value::String(s) => after.to_lowercase().contains(&s.to_lowercase()),
                _ => after != before,
            };
            assert!(visible, "{engine}: setting {path} must change the rendered store");
        }
    }
}

#[test]
fn budget_check_rejects_a_chart_that_outgrows_the_small_plan() {
    let mut values = platform_values("small", false, "", "");
    let extra = yaml(
        "wordpress: {resources: {requests: {cpu: 900m, memory: 256Mi}, limits: {cpu: '2', memory: 1Gi}}}",
    );
    values
        .as_mapping_mut()
        .unwrap()
        .extend(extra.as_mapping().unwrap().clone());
    let docs = render("charts/woocommerce", "acme", "store-acme", &values);
    let mut errors = vec![];
    check_budget(&docs, &PLANS[0], &mut errors);
    assert!(
        errors.iter().any(|e| e.contains("requests.cpu")),
        "over-requesting must be caught: {errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("container limit cpu")),
        "container max must be caught: {errors:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// storesync's own chart and RBAC

#[test]
fn storesync_cluster_role_is_exactly_storesync_plus_helm_on_engine_kinds() {
    // Every kind any engine render can produce: platform mode and standalone, storefront on/off.
    let mut kinds = BTreeSet::new();
    for engine in ENGINES {
        for values in [
            platform_values("small", true, "x", ""),
            yaml("ingress: {host: solo.example}"),
        ] {
            for doc in render(&chart_path(engine), "acme", "store-acme", &values) {
                kinds.insert(kind(&doc).to_string());
            }
        }
    }
    let mut expected = storesync_own_grants();
    for k in &kinds {
        let (group, resource) = resource_of(k);
        for verb in ["get", "list", "watch", "create", "update", "patch", "delete"] {
            expected.insert((group.into(), resource.into(), verb.into()));
        }
    }

    let docs = render(
        "deploy/helm/storesync",
        "storesync",
        "storesync",
        &yaml("repo: {url: 'https://x/y.git'}"),
    );
    let role = docs
        .iter()
        .find(|d| kind(d) == "ClusterRole")
        .expect("chart renders a ClusterRole");
    let file: Value =
        yaml(&std::fs::read_to_string(repo_root().join("deploy/rbac/clusterrole.yaml")).expect("rbac file"));
    assert_eq!(kind(&file), "ClusterRole");
    let mut errors = vec![];
    let chart_grants = grants(seq(role, "rules"), &mut errors);
    let file_grants = grants(seq(&file, "rules"), &mut errors);
    assert_clean("ClusterRole rules", errors);
    assert_eq!(
        chart_grants, file_grants,
        "chart ClusterRole and deploy/rbac/clusterrole.yaml differ"
    );
    let missing: Vec<_> = expected.difference(&chart_grants).collect();
    let extra: Vec<_> = chart_grants.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "ClusterRole lacks (kinds rendered: {kinds:?}): {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "ClusterRole grants more than storesync + helm need: {extra:?}"
    );

    let binding = docs
        .iter()
        .find(|d| kind(d) == "ClusterRoleBinding")
        .expect("ClusterRoleBinding");
    assert_eq!(str_at(binding, "roleRef.name"), str_at(role, "metadata.name"));
    let sa = docs
        .iter()
        .find(|d| kind(d) == "ServiceAccount")
        .expect("ServiceAccount");
    assert_eq!(
        str_at(&seq(binding, "subjects")[0], "name"),
        str_at(sa, "metadata.name")
    );
}

#[test]
fn storesync_deployment_is_a_single_hardened_reconciler() {
    let values = yaml(
        "repo: {url: 'https://github.com/acme/stores.git', auth: {ssh: {existingSecret: git-ssh}}}\n\
         github: {repo: acme/stores, token: {existingSecret: gh}, webhookSecret: {existingSecret: gh}}\n\
         externalUrl: https://storesync.example\n\
         ingress: {enabled: true, className: nginx, host: storesync.example}\n",
    );
    let docs = render("deploy/helm/storesync", "storesync", "storesync", &values);
    let mut errors = vec![];
    check_pods(&docs, false, &mut errors);
    assert_clean("storesync pod", errors);
    let deploy = docs.iter().find(|d| kind(d) == "Deployment").expect("Deployment");
    assert_eq!(get(deploy, "spec.replicas").and_then(Value::as_i64), Some(1));
    assert_eq!(
        str_at(deploy, "spec.strategy.type"),
        "Recreate",
        "one reconciler at a time"
    );
    let c = &seq(deploy, "spec.template.spec.containers")[0];
    assert_eq!(
        get(c, "securityContext.readOnlyRootFilesystem").and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(str_at(c, "livenessProbe.httpGet.path"), "/healthz");
    assert_eq!(str_at(c, "readinessProbe.httpGet.path"), "/readyz");
    let args: Vec<&str> = seq(c, "args").iter().filter_map(Value::as_str).collect();
    for expected in [
        &["serve"][..],
        &["--repo", "https://github.com/acme/stores.git"],
        &["--branch", "main"],
        &["--interval", "60s"],
        &["--listen", "0.0.0.0:8080"],
        &["--github-repo", "acme/stores"],
        &["--external-url", "https://storesync.example"],
    ] {
        assert!(
            args.windows(expected.len()).any(|w| w == expected),
            "args {args:?} lack {expected:?}"
        );
    }
    let env = |name: &str| seq(c, "env").iter().find(|e| str_at(e, "name") == name).cloned();
    assert_eq!(
        env("STORESYNC_CHARTS_DIR")
            .map(|e| str_at(&e, "value").to_string())
            .as_deref(),
        Some("/charts")
    );
    for secret in ["GITHUB_TOKEN", "STORESYNC_WEBHOOK_SECRET"] {
        assert!(
            env(secret).is_some_and(|e| get(&e, "valueFrom.secretKeyRef").is_some()),
            "{secret} from a Secret"
        );
    }
    let mounts: Vec<&str> = seq(c, "volumeMounts")
        .iter()
        .map(|m| str_at(m, "mountPath"))
        .collect();
    assert!(
        mounts.contains(&"/tmp") && mounts.contains(&"/var/cache/storesync"),
        "writable dirs: {mounts:?}"
    );
    let ingress = docs
        .iter()
        .find(|d| kind(d) == "Ingress")
        .expect("Ingress when enabled");
    assert_eq!(
        str_at(&seq(&seq(ingress, "spec.rules")[0], "http.paths")[0], "path"),
        "/webhooks/github"
    );
    assert!(
        !docs.iter().any(|d| kind(d) == "ServiceMonitor"),
        "ServiceMonitor is off by default"
    );

    let mut monitored = values.clone();
    monitored.as_mapping_mut().unwrap().extend(
        yaml("monitoring: {serviceMonitor: {enabled: true}}")
            .as_mapping()
            .unwrap()
            .clone(),
    );
    let docs = render("deploy/helm/storesync", "storesync", "storesync", &monitored);
    let sm = docs
        .iter()
        .find(|d| kind(d) == "ServiceMonitor")
        .expect("ServiceMonitor when enabled");
    assert_eq!(str_at(sm, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(str_at(&seq(sm, "spec.endpoints")[0], "path"), "/metrics");
    assert!(
        Path::new(&repo_root().join("deploy/Dockerfile")).is_file(),
        "deploy/Dockerfile exists"
    );
}
