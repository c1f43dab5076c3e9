//! Chart tests: lint and render the engine charts (charts/woocommerce, charts/medusa) and
//! storesync's own chart (deploy/helm/storesync) with the real helm binary, then check what a
//! platform team relies on: guardrail fit (every pod that can run at once fits the plan's
//! ResourceQuota with 20% to spare, and its LimitRange), hardening, credential handling, ingress
//! wiring, RBAC that grants storesync and each store's helm identity exactly what they need, and
//! the admission policies that hold both to it.
//!
//! helm is found as $STORESYNC_HELM, else <repo>/tools/bin/helm, else `helm` on PATH. These tests
//! never skip: without helm they fail and say how to install it (scripts/setup-tools.sh).

mod admission;
mod budget;
mod catalog;
mod checks;
mod fit;
mod fit_tests;
mod github_app;
pub(crate) mod helm;
mod manifest;
mod quantity;
mod rbac;
mod rbac_tests;
mod replicas;
mod retired;

use budget::{Plan, default_plans};
use catalog::{catalog_stores, merge};
use checks::{CREDENTIAL_KEYS, assert_clean, check_networking, check_pods, check_wiring};
use fit::{Fit, container_sizes, fit};
use helm::{chart_path, platform_values, render, repo_root, run_helm, set_path, yaml};
use manifest::{containers, get, kind, pod_spec, seq, str_at};
use serde_yaml_ng::{Mapping, Value};
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
    for extra in ["", "admissionPolicy: {enabled: true}"] {
        let deploy = yaml(&format!(
            "repo: {{url: 'https://github.com/acme/stores.git'}}\n{extra}"
        ));
        let out = run_helm(&["lint", "--strict", "deploy/helm/storesync"], &deploy);
        assert!(
            out.is_ok(),
            "helm lint --strict deploy/helm/storesync {extra}:\n{}",
            out.unwrap_err()
        );
    }
}

#[test]
fn engine_renders_are_hardened_and_wired_for_every_plan() {
    let tls_cases = [
        (false, "", ""),
        (true, "letsencrypt-prod", ""),
        (true, "", "acme-cert"),
    ];
    for engine in ENGINES {
        for plan in default_plans() {
            for (tls, issuer, secret_name) in tls_cases {
                let context = format!("{engine}, plan {}, tls {tls}, issuer {issuer:?}", plan.name);
                let docs = render(
                    &chart_path(engine),
                    "acme",
                    "store-acme",
                    &platform_values(&plan.name, tls, issuer, secret_name),
                );
                let mut errors = vec![];
                check_pods(&docs, true, &mut errors);
                check_networking(&docs, tls, issuer, secret_name, &mut errors);
                check_wiring(&docs, "store-credentials", &mut errors);
                if docs.iter().any(|d| kind(d) == "Secret") {
                    errors.push("with credentials.existingSecret the chart must render no Secret".into());
                }
                if !docs.iter().any(|d| kind(d) == "Job") {
                    errors.push("no setup Job rendered".into());
                }
                assert_clean(&context, errors);
            }
        }
    }
}

/// The chart of `engine` rendered with the values storesync passes for `plan`, plus `extra`.
fn fit_of_docs(engine: &str, plan: &Plan, extra: &str) -> Vec<Value> {
    let mut values = platform_values(&plan.name, false, "", "");
    if !extra.is_empty() {
        merge(&mut values, yaml(extra));
    }
    render(&chart_path(engine), "acme", "store-acme", &values)
}

fn fit_of(engine: &str, plan: &Plan, extra: &str) -> Fit {
    fit(&fit_of_docs(engine, plan, extra), plan)
}

/// Every engine × plan, in each shape a store can choose (the Medusa storefront on or off).
fn engine_shapes() -> [(&'static str, &'static str); 3] {
    [
        ("woocommerce", ""),
        ("medusa", ""),
        ("medusa", "storefront: {enabled: false}"),
    ]
}

#[test]
fn every_engine_fits_every_plan_with_headroom() {
    let (mut tables, mut failed) = (vec![], 0);
    for (engine, extra) in engine_shapes() {
        for plan in default_plans() {
            let fit = fit_of(engine, &plan, extra);
            let title = if extra.is_empty() {
                engine.to_string()
            } else {
                format!("{engine} ({extra})")
            };
            failed += usize::from(!fit.errors.is_empty());
            tables.push(fit.table(&title));
        }
    }
    // Printed either way, so `--no-capture` shows the figures charts/README.md documents.
    eprintln!("{}", tables.join("\n"));
    assert!(
        failed == 0,
        "{failed} engine × plan combinations do not fit their quota:\n\n{}",
        tables
            .into_iter()
            .filter(|t| t.contains("  ! "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn charts_readme_documents_the_fit_of_every_engine_and_plan() {
    let readme = std::fs::read_to_string(repo_root().join("charts/README.md")).expect("charts/README.md");
    let rows: Vec<String> = ENGINES
        .iter()
        .flat_map(|engine| {
            default_plans()
                .into_iter()
                .map(move |plan| fit_of(engine, &plan, "").readme_row(engine))
        })
        .collect();
    let missing: Vec<&String> = rows.iter().filter(|row| !readme.contains(row.as_str())).collect();
    assert!(
        missing.is_empty(),
        "charts/README.md's fit table is out of date; its rows must read:\n{}",
        rows.join("\n")
    );
}

#[test]
fn every_example_store_fits_its_plan() {
    let stores = catalog_stores(&repo_root().join("stores.example"));
    assert!(stores.len() >= 6, "stores.example has its stores");
    let mut tables = vec![];
    for store in &stores {
        let fit = fit(
            &render(
                &store.chart,
                &store.name,
                &format!("store-{}", store.name),
                &store.values,
            ),
            &store.plan,
        );
        if !fit.errors.is_empty() {
            tables.push(fit.table(&format!("stores.example store {} ({})", store.name, store.chart)));
        }
    }
    assert!(
        tables.is_empty(),
        "stores that do not fit their plan:\n\n{}",
        tables.join("\n")
    );
}

/// The sizes a Medusa store on the small plan was refused with by ResourceQuota admission: the
/// setup Job's pod did not fit beside the long-running pods.
const MEDUSA_SIZES_REFUSED_ON_SMALL: &str = "resourcesByPlan: {small: {
    backend: {requests: {cpu: 250m, memory: 512Mi}, limits: {cpu: 700m, memory: 1536Mi}},
    storefront: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 300m, memory: 512Mi}},
    postgresql: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 300m, memory: 512Mi}},
    redis: {requests: {cpu: 50m, memory: 64Mi}, limits: {cpu: 100m, memory: 128Mi}},
    setup: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 500m, memory: 1Gi}}}}";

#[test]
fn fit_rejects_the_medusa_sizes_refused_on_small() {
    let small = &default_plans()[0];
    let fit = fit_of("medusa", small, MEDUSA_SIZES_REFUSED_ON_SMALL);
    let table = fit.table("medusa");
    assert_eq!(fit.total.limits_cpu_m, 1900.0, "{table}");
    for figure in ["limits.cpu", "limits.memory"] {
        assert!(
            fit.errors.iter().any(|e| e.starts_with(figure)),
            "{figure} over budget must be reported:\n{table}"
        );
    }
    assert!(
        !fit.errors.iter().any(|e| e.starts_with("requests.")),
        "requests fit:\n{table}"
    );
    assert!(table.contains("Job/acme-setup (hook)"), "{table}");
}

#[test]
fn container_sizes_never_shrink_on_a_larger_plan() {
    // So a move to a smaller plan replaces each pod by one that takes less of the smaller quota.
    let plans = default_plans();
    for (engine, _) in engine_shapes() {
        let sizes: Vec<_> = plans
            .iter()
            .map(|plan| {
                let mut errors = vec![];
                let sizes = container_sizes(&fit_of_docs(engine, plan, ""), plan, &mut errors);
                assert_clean(&format!("{engine} container sizes on {}", plan.name), errors);
                sizes
            })
            .collect();
        for (pair, plans) in sizes.windows(2).zip(plans.windows(2)) {
            for ((name, smaller), (other, larger)) in pair[0].iter().zip(&pair[1]) {
                assert_eq!(name, other, "{engine}: the same containers on every plan");
                let grows = [
                    (larger.requests_cpu_m, smaller.requests_cpu_m),
                    (larger.requests_mem, smaller.requests_mem),
                    (larger.limits_cpu_m, smaller.limits_cpu_m),
                    (larger.limits_mem, smaller.limits_mem),
                ]
                .iter()
                .all(|(l, s)| l >= s);
                assert!(
                    grows,
                    "{engine} {name}: {} on {} but {} on {}",
                    smaller, plans[0].name, larger, plans[1].name
                );
            }
        }
    }
}

#[test]
fn medusa_node_heap_is_three_quarters_of_each_memory_limit() {
    for plan in default_plans() {
        let docs = fit_of_docs("medusa", &plan, "backend: {nodeOptions: --enable-source-maps}");
        let mut seen = 0;
        for doc in &docs {
            let Some(spec) = pod_spec(doc) else { continue };
            for (c, _) in containers(spec) {
                let Some(env) = seq(c, "env").iter().find(|e| str_at(e, "name") == "NODE_OPTIONS") else {
                    continue;
                };
                let limit = quantity::quantity(str_at(c, "resources.limits.memory")) / quantity::MI;
                let want = format!(
                    "--max-old-space-size={} --enable-source-maps",
                    (limit * 0.75) as u64
                );
                let context = format!("{} {} on {}", manifest::id(doc), str_at(c, "name"), plan.name);
                assert_eq!(str_at(env, "value"), want, "{context}");
                seen += 1;
            }
        }
        assert_eq!(
            seen, 3,
            "server, migrations and setup Job run Node.js with a heap"
        );
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
            set_path(&mut values, path, marker.clone());
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
fn fit_rejects_a_chart_that_outgrows_the_small_plan() {
    let small = &default_plans()[0];
    let extra = "resourcesByPlan: {small: {wordpress: {requests: {cpu: 900m, memory: 256Mi}, limits: {cpu: '2', memory: 1Gi}}}}";
    let fit = fit_of("woocommerce", small, extra);
    assert!(
        fit.errors.iter().any(|e| e.starts_with("requests.cpu")),
        "over-requesting must be caught: {:?}",
        fit.errors
    );
    assert!(
        fit.errors
            .iter()
            .any(|e| e.contains("cpu limit 2000m is above the LimitRange max 1000m")),
        "container max must be caught: {:?}",
        fit.errors
    );
}

// ---------------------------------------------------------------------------------------------
// storesync's own chart (its RBAC: rbac_tests.rs, admission policies: admission.rs)

#[test]
fn storesync_deployment_is_a_hardened_reconciler() {
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
    // Replicas elect the one that syncs: tests/it/charts/replicas.rs.
    assert_eq!(get(deploy, "spec.replicas").and_then(Value::as_i64), Some(2));
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
    assert!(
        env("STORESYNC_WEBHOOK_SECRET").is_some_and(|e| get(&e, "valueFrom.secretKeyRef").is_some()),
        "the webhook secret from a Secret"
    );
    // The GitHub token is a mounted file, re-read at each use, so a rotated token is picked up.
    assert!(
        env("GITHUB_TOKEN").is_none(),
        "never a fixed environment variable"
    );
    assert_eq!(
        env("STORESYNC_GITHUB_TOKEN_FILE")
            .map(|e| str_at(&e, "value").to_string())
            .as_deref(),
        Some("/etc/storesync/github-token/token")
    );
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
