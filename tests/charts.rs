//! Chart tests: lint and render the engine charts (charts/woocommerce, charts/medusa) and
//! storesync's own chart (deploy/helm/storesync) with the real helm binary, then check what a
//! platform team relies on: guardrail fit (every pod that can run at once fits the plan's
//! ResourceQuota and LimitRange), hardening, credential handling, ingress wiring, and an RBAC
//! ClusterRole that grants exactly what storesync and helm need.
//!
//! helm is found as $STORESYNC_HELM, else <repo>/tools/bin/helm, else `helm` on PATH. These tests
//! never skip: without helm they fail and say how to install it (scripts/setup-tools.sh).

use serde_yaml_ng::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ENGINES: [&str; 2] = ["woocommerce", "medusa"];
const CREDENTIAL_KEYS: [&str; 5] = [
    "admin-password",
    "database-password",
    "database-root-password",
    "jwt-secret",
    "cookie-secret",
];
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

/// The guardrails of one plan, as storesync's default platform config sets them.
struct Plan {
    name: &'static str,
    requests_cpu_m: f64,
    requests_mem: f64,
    limits_cpu_m: f64,
    limits_mem: f64,
    pods: usize,
    pvcs: usize,
    storage: f64,
    container_max_cpu_m: f64,
    container_max_mem: f64,
    pvc_max: f64,
}

const GI: f64 = 1024.0 * 1024.0 * 1024.0;
const MI: f64 = 1024.0 * 1024.0;

const PLANS: [Plan; 3] = [
    Plan {
        name: "small",
        requests_cpu_m: 1000.0,
        requests_mem: 2.0 * GI,
        limits_cpu_m: 2000.0,
        limits_mem: 4.0 * GI,
        pods: 10,
        pvcs: 4,
        storage: 20.0 * GI,
        container_max_cpu_m: 1000.0,
        container_max_mem: 2.0 * GI,
        pvc_max: 10.0 * GI,
    },
    Plan {
        name: "medium",
        requests_cpu_m: 2000.0,
        requests_mem: 4.0 * GI,
        limits_cpu_m: 4000.0,
        limits_mem: 8.0 * GI,
        pods: 20,
        pvcs: 8,
        storage: 50.0 * GI,
        container_max_cpu_m: 2000.0,
        container_max_mem: 4.0 * GI,
        pvc_max: 25.0 * GI,
    },
    Plan {
        name: "large",
        requests_cpu_m: 4000.0,
        requests_mem: 8.0 * GI,
        limits_cpu_m: 8000.0,
        limits_mem: 16.0 * GI,
        pods: 40,
        pvcs: 16,
        storage: 200.0 * GI,
        container_max_cpu_m: 4000.0,
        container_max_mem: 8.0 * GI,
        pvc_max: 100.0 * GI,
    },
];

// ---------------------------------------------------------------------------------------------
// helm

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("STORESYNC_HELM").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let local = repo_root().join("tools/bin/helm");
    if local.is_file() {
        return local;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        if let Some(found) = std::env::split_paths(&paths)
            .map(|d| d.join("helm"))
            .find(|p| p.is_file())
        {
            return found;
        }
    }
    panic!(
        "helm not found: set STORESYNC_HELM, or run scripts/setup-tools.sh to install it into tools/bin \
         (the chart tests need the real helm binary and do not skip without it)"
    );
}

/// Runs helm with `values` piped as a values file; returns stdout or panics with stderr.
fn run_helm(args: &[&str], values: &Value) -> Result<String, String> {
    let mut child = Command::new(helm())
        .args(args)
        .args(["-f", "-"])
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm().display()));
    let yaml = serde_yaml_ng::to_string(values).expect("values serialize");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write values");
    let out = child.wait_with_output().expect("helm finished");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr) + &text(&out.stdout))
    }
}

fn render(chart: &str, release: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let args = ["template", release, chart, "--namespace", namespace];
    let out = run_helm(&args, values).unwrap_or_else(|e| panic!("helm template {chart} failed:\n{e}"));
    serde_yaml_ng::Deserializer::from_str(&out)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("helm output is YAML"))
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("test YAML")
}

/// The values storesync passes for a store `acme` on `plan`.
fn platform_values(plan: &str, tls: bool, issuer: &str, secret_name: &str) -> Value {
    yaml(&format!(
        "store: {{name: acme, owner: team-acme, plan: {plan}}}\n\
         ingress:\n  enabled: true\n  className: nginx\n  host: acme.shop.example\n  \
         tls: {{enabled: {tls}, clusterIssuer: '{issuer}', secretName: '{secret_name}'}}\n\
         credentials: {{existingSecret: store-credentials}}\n"
    ))
}

// ---------------------------------------------------------------------------------------------
// manifest access

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn kind(doc: &Value) -> &str {
    str_at(doc, "kind")
}

fn id(doc: &Value) -> String {
    format!("{}/{}", kind(doc), str_at(doc, "metadata.name"))
}

fn pod_spec(doc: &Value) -> Option<&Value> {
    match kind(doc) {
        "Deployment" | "StatefulSet" | "Job" | "DaemonSet" | "ReplicaSet" => get(doc, "spec.template.spec"),
        "CronJob" => get(doc, "spec.jobTemplate.spec.template.spec"),
        "Pod" => get(doc, "spec"),
        _ => None,
    }
}

/// (container, is_init) for every container of a pod.
fn containers(spec: &Value) -> impl Iterator<Item = (&Value, bool)> {
    let init = seq(spec, "initContainers").iter().map(|c| (c, true));
    init.chain(seq(spec, "containers").iter().map(|c| (c, false)))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a quantity: {other:?}"),
    }
}

/// Parses a Kubernetes quantity into base units (cores for cpu, bytes for memory).
fn quantity(q: &str) -> f64 {
    let q = q.trim();
    let suffixes: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", MI),
        ("Gi", GI),
        ("Ti", GI * 1024.0),
        ("Pi", GI * MI),
        ("Ei", GI * GI),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = q.strip_suffix(suffix) {
            return number
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad quantity {q:?}"))
                * factor;
        }
    }
    q.parse::<f64>().unwrap_or_else(|_| panic!("bad quantity {q:?}"))
}

#[derive(Default, Clone, Copy, Debug)]
struct Resources {
    requests_cpu_m: f64,
    requests_mem: f64,
    limits_cpu_m: f64,
    limits_mem: f64,
}

impl Resources {
    fn add(self, o: Resources) -> Resources {
        Resources {
            requests_cpu_m: self.requests_cpu_m + o.requests_cpu_m,
            requests_mem: self.requests_mem + o.requests_mem,
            limits_cpu_m: self.limits_cpu_m + o.limits_cpu_m,
            limits_mem: self.limits_mem + o.limits_mem,
        }
    }
    fn max(self, o: Resources) -> Resources {
        Resources {
            requests_cpu_m: self.requests_cpu_m.max(o.requests_cpu_m),
            requests_mem: self.requests_mem.max(o.requests_mem),
            limits_cpu_m: self.limits_cpu_m.max(o.limits_cpu_m),
            limits_mem: self.limits_mem.max(o.limits_mem),
        }
    }
    fn scale(self, n: f64) -> Resources {
        Resources {
            requests_cpu_m: self.requests_cpu_m * n,
            requests_mem: self.requests_mem * n,
            limits_cpu_m: self.limits_cpu_m * n,
            limits_mem: self.limits_mem * n,
        }
    }
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requests {:.0}m/{:.0}Mi, limits {:.0}m/{:.0}Mi",
            self.requests_cpu_m,
            self.requests_mem / MI,
            self.limits_cpu_m,
            self.limits_mem / MI
        )
    }
}

fn container_resources(c: &Value, errors: &mut Vec<String>, owner: &str) -> Resources {
    let mut read = |path: &str| match get(c, path) {
        Some(v) => quantity(&scalar(v)),
        None => {
            errors.push(format!(
                "{owner}: container {} has no resources.{path}",
                str_at(c, "name")
            ));
            0.0
        }
    };
    Resources {
        requests_cpu_m: read("resources.requests.cpu") * 1000.0,
        requests_mem: read("resources.requests.memory"),
        limits_cpu_m: read("resources.limits.cpu") * 1000.0,
        limits_mem: read("resources.limits.memory"),
    }
}

/// Pods a workload can run at once in the worst case (rollout surge included).
fn worst_case_pods(doc: &Value) -> usize {
    let int = |path: &str, default: i64| get(doc, path).and_then(Value::as_i64).unwrap_or(default);
    match kind(doc) {
        "Deployment" => {
            let replicas = int("spec.replicas", 1);
            let surge = if str_at(doc, "spec.strategy.type") == "Recreate" {
                0
            } else {
                match get(doc, "spec.strategy.rollingUpdate.maxSurge") {
                    Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
                    Some(Value::String(p)) => {
                        let pct: f64 = p.trim_end_matches('%').parse().expect("maxSurge percentage");
                        (replicas as f64 * pct / 100.0).ceil() as i64
                    }
                    _ => (replicas as f64 * 0.25).ceil() as i64, // Kubernetes default 25%
                }
            };
            (replicas + surge) as usize
        }
        "StatefulSet" => int("spec.replicas", 1) as usize,
        "Job" => int("spec.parallelism", 1) as usize,
        other => panic!("no worst-case rule for {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// checks (each returns the violations it found, so one run reports all of them)

/// Every pod: hardening, resources, probes, credentials never as literals.
fn check_pods(docs: &[Value], engine: bool, errors: &mut Vec<String>) {
    let secret_ish = ["PASSWORD", "SECRET", "TOKEN", "KEY"];
    for doc in docs {
        let Some(spec) = pod_spec(doc) else { continue };
        let owner = id(doc);
        let pod_sc = get(spec, "securityContext");
        if engine && get(spec, "automountServiceAccountToken").and_then(Value::as_bool) != Some(false) {
            errors.push(format!("{owner}: automountServiceAccountToken must be false"));
        }
        if pod_sc
            .and_then(|s| s.get("runAsNonRoot"))
            .and_then(Value::as_bool)
            != Some(true)
        {
            errors.push(format!("{owner}: pod securityContext.runAsNonRoot must be true"));
        }
        if pod_sc.map(|s| str_at(s, "seccompProfile.type")) != Some("RuntimeDefault") {
            errors.push(format!("{owner}: pod seccompProfile must be RuntimeDefault"));
        }
        let secret_volumes: BTreeSet<&str> = seq(spec, "volumes")
            .iter()
            .filter(|v| v.get("secret").is_some())
            .map(|v| str_at(v, "name"))
            .collect();
        for (c, is_init) in containers(spec) {
            let name = format!("{owner} container {}", str_at(c, "name"));
            let sc = c.get("securityContext");
            let flag = |key: &str| sc.and_then(|s| s.get(key)).and_then(Value::as_bool);
            if flag("allowPrivilegeEscalation") != Some(false) {
                errors.push(format!("{name}: allowPrivilegeEscalation must be false"));
            }
            if flag("privileged") == Some(true) {
                errors.push(format!("{name}: must not be privileged"));
            }
            let drops = sc.map(|s| seq(s, "capabilities.drop")).unwrap_or(&[]);
            if !drops.iter().any(|d| d.as_str() == Some("ALL")) {
                errors.push(format!("{name}: capabilities.drop must contain ALL"));
            }
            if engine
                && sc
                    .map(|s| seq(s, "capabilities.add"))
                    .is_some_and(|a| !a.is_empty())
            {
                errors.push(format!("{name}: engine containers add no capabilities"));
            }
            let r = container_resources(c, errors, &owner);
            if r.requests_cpu_m > r.limits_cpu_m || r.requests_mem > r.limits_mem {
                errors.push(format!("{name}: requests exceed limits ({r})"));
            }
            if !is_init && matches!(kind(doc), "Deployment" | "StatefulSet") {
                for probe in ["livenessProbe", "readinessProbe"] {
                    if c.get(probe).is_none() {
                        errors.push(format!("{name}: no {probe}"));
                    }
                }
            }
            let mounts: Vec<(&str, &str)> = seq(c, "volumeMounts")
                .iter()
                .map(|m| (str_at(m, "name"), str_at(m, "mountPath")))
                .collect();
            for env in seq(c, "env") {
                let var = str_at(env, "name");
                let Some(value) = env.get("value") else { continue };
                if !secret_ish.iter().any(|s| var.to_uppercase().contains(s)) {
                    continue;
                }
                // A *_FILE variable holds a path; it must point into a mounted Secret.
                let value = value.as_str().unwrap_or("");
                let in_secret = mounts.iter().any(|(vol, path)| {
                    secret_volumes.contains(vol)
                        && value.starts_with(&format!("{}/", path.trim_end_matches('/')))
                });
                if !(var.ends_with("_FILE") && in_secret) {
                    errors.push(format!("{name}: env {var} is secret-ish but has a literal value"));
                }
            }
        }
    }
}

/// Sums what every pod that can run at once requests (init containers per Kubernetes' rule:
/// a pod needs max(sum of app containers, largest init container)).
fn budget(docs: &[Value], errors: &mut Vec<String>) -> (Resources, usize, Vec<Resources>) {
    let (mut total, mut pods, mut per_container) = (Resources::default(), 0, vec![]);
    for doc in docs {
        let Some(spec) = pod_spec(doc) else { continue };
        let owner = id(doc);
        let (mut apps, mut init_max) = (Resources::default(), Resources::default());
        for (c, is_init) in containers(spec) {
            let r = container_resources(c, errors, &owner);
            per_container.push(r);
            let sidecar = is_init && str_at(c, "restartPolicy") == "Always";
            if is_init && !sidecar {
                init_max = init_max.max(r)
            } else {
                apps = apps.add(r)
            }
        }
        let n = worst_case_pods(doc);
        pods += n;
        total = total.add(apps.max(init_max).scale(n as f64));
    }
    (total, pods, per_container)
}

fn check_budget(docs: &[Value], plan: &Plan, errors: &mut Vec<String>) -> Resources {
    let (total, pods, per_container) = budget(docs, errors);
    let over = |what: &str, have: f64, max: f64, errors: &mut Vec<String>| {
        if have > max + 1e-6 {
            errors.push(format!(
                "{} plan: {what} {have} exceeds {max} ({total})",
                plan.name
            ));
        }
    };
    over(
        "requests.cpu (m)",
        total.requests_cpu_m,
        plan.requests_cpu_m,
        errors,
    );
    over("requests.memory", total.requests_mem, plan.requests_mem, errors);
    over("limits.cpu (m)", total.limits_cpu_m, plan.limits_cpu_m, errors);
    over("limits.memory", total.limits_mem, plan.limits_mem, errors);
    over("pods", pods as f64, plan.pods as f64, errors);
    for r in per_container {
        over(
            "container limit cpu (m)",
            r.limits_cpu_m,
            plan.container_max_cpu_m,
            errors,
        );
        over(
            "container limit memory",
            r.limits_mem,
            plan.container_max_mem,
            errors,
        );
    }
    let claims: Vec<f64> = docs
        .iter()
        .flat_map(|d| match kind(d) {
            "PersistentVolumeClaim" => vec![d],
            "StatefulSet" => seq(d, "spec.volumeClaimTemplates").iter().collect(),
            _ => vec![],
        })
        .map(|pvc| {
            quantity(&scalar(
                get(pvc, "spec.resources.requests.storage").expect("PVC size"),
            ))
        })
        .collect();
    for size in &claims {
        over("PVC size", *size, plan.pvc_max, errors);
    }
    over(
        "persistentvolumeclaims",
        claims.len() as f64,
        plan.pvcs as f64,
        errors,
    );
    over("requests.storage", claims.iter().sum(), plan.storage, errors);
    total
}

/// Ingress host/class/TLS as passed, Services ClusterIP, and every reference resolves.
fn check_networking(docs: &[Value], tls: bool, issuer: &str, secret_name: &str, errors: &mut Vec<String>) {
    let services: BTreeMap<&str, &Value> = docs
        .iter()
        .filter(|d| kind(d) == "Service")
        .map(|d| (str_at(d, "metadata.name"), d))
        .collect();
    for svc in services.values() {
        let t = str_at(svc, "spec.type");
        if !(t.is_empty() || t == "ClusterIP") {
            errors.push(format!(
                "{}: type {t}, only ClusterIP fits the guardrails",
                id(svc)
            ));
        }
        let selector = get(svc, "spec.selector")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        let selects = docs.iter().filter_map(|d| pod_spec(d).map(|_| d)).any(|d| {
            let labels = get(d, "spec.template.metadata.labels").and_then(Value::as_mapping);
            labels.is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
        });
        if selector.is_empty() || !selects {
            errors.push(format!("{}: selector matches no pod template", id(svc)));
        }
    }
    let ingresses: Vec<&Value> = docs.iter().filter(|d| kind(d) == "Ingress").collect();
    if ingresses.len() != 1 {
        errors.push(format!("expected one Ingress, got {}", ingresses.len()));
    }
    for ing in ingresses {
        if str_at(ing, "spec.ingressClassName") != "nginx" {
            errors.push(format!(
                "{}: ingressClassName must be the platform's (nginx)",
                id(ing)
            ));
        }
        for rule in seq(ing, "spec.rules") {
            if str_at(rule, "host") != "acme.shop.example" {
                errors.push(format!("{}: rule host {:?}", id(ing), str_at(rule, "host")));
            }
            for path in seq(rule, "http.paths") {
                let name = str_at(path, "backend.service.name");
                let port = str_at(path, "backend.service.port.name");
                let ok = services
                    .get(name)
                    .is_some_and(|s| seq(s, "spec.ports").iter().any(|p| str_at(p, "name") == port));
                if !ok {
                    errors.push(format!(
                        "{}: path backend {name}:{port} is not a rendered Service port",
                        id(ing)
                    ));
                }
            }
        }
        let tls_entries = seq(ing, "spec.tls");
        let want_secret = if secret_name.is_empty() {
            "acme-tls"
        } else {
            secret_name
        };
        match (tls, tls_entries) {
            (false, []) => {}
            (true, [entry]) => {
                if str_at(entry, "secretName") != want_secret
                    || seq(entry, "hosts").first().and_then(Value::as_str) != Some("acme.shop.example")
                {
                    errors.push(format!(
                        "{}: tls must be {want_secret} for acme.shop.example",
                        id(ing)
                    ));
                }
            }
            _ => errors.push(format!(
                "{}: tls.enabled={tls} but tls is {tls_entries:?}",
                id(ing)
            )),
        }
        // Annotation keys contain dots, so they are looked up directly rather than by path.
        let annotation = get(ing, "metadata.annotations")
            .and_then(|a| a.get("cert-manager.io/cluster-issuer"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let want = if tls { issuer } else { "" };
        if annotation != want {
            errors.push(format!(
                "{}: cluster-issuer annotation {annotation:?}, want {want:?}",
                id(ing)
            ));
        }
    }
}

/// Labels on every object; hook Jobs; Secrets referenced only by the given name and keys.
fn check_wiring(docs: &[Value], credentials: &str, errors: &mut Vec<String>) {
    for doc in docs {
        for label in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/managed-by",
        ] {
            if get(doc, "metadata.labels").and_then(|l| l.get(label)).is_none() {
                errors.push(format!("{}: missing label {label}", id(doc)));
            }
        }
        if kind(doc) == "Job" {
            let note = |k: &str| {
                get(doc, "metadata.annotations")
                    .and_then(|a| a.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            if !note("helm.sh/hook").contains("post-install")
                || !note("helm.sh/hook").contains("post-upgrade")
            {
                errors.push(format!("{}: must be a post-install,post-upgrade hook", id(doc)));
            }
            if !note("helm.sh/hook-delete-policy").contains("before-hook-creation") {
                errors.push(format!(
                    "{}: hook-delete-policy must include before-hook-creation",
                    id(doc)
                ));
            }
        }
        let Some(spec) = pod_spec(doc) else { continue };
        let mut refs: Vec<(&str, &str)> = vec![];
        for (c, _) in containers(spec) {
            for env in seq(c, "env") {
                if let Some(r) = get(env, "valueFrom.secretKeyRef") {
                    refs.push((str_at(r, "name"), str_at(r, "key")));
                }
            }
        }
        for vol in seq(spec, "volumes") {
            if let Some(secret) = vol.get("secret") {
                for item in seq(secret, "items") {
                    refs.push((str_at(secret, "secretName"), str_at(item, "key")));
                }
            }
        }
        for (name, key) in refs {
            if name != credentials || !CREDENTIAL_KEYS.contains(&key) {
                errors.push(format!(
                    "{}: references secret {name}/{key}, want {credentials}/<credential key>",
                    id(doc)
                ));
            }
        }
    }
}

fn assert_clean(context: &str, errors: Vec<String>) {
    assert!(errors.is_empty(), "{context}:\n  {}", errors.join("\n  "));
}

fn chart_path(engine: &str) -> String {
    format!("charts/{engine}")
}

// ---------------------------------------------------------------------------------------------
// tests

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

type Grant = (String, String, String); // (apiGroup, resource, verb)

fn grants(rules: &[Value], errors: &mut Vec<String>) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let list = |key: &str| {
            seq(rule, key)
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        if rule.get("nonResourceURLs").is_some() || rule.get("resourceNames").is_some() {
            errors.push(format!("unexpected rule shape: {rule:?}"));
        }
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    if [&group, &resource, &verb].iter().any(|s| s.contains('*')) {
                        errors.push(format!("wildcard in rule: {group}/{resource}/{verb}"));
                    }
                    if ["escalate", "bind", "impersonate"].contains(&verb.as_str()) {
                        errors.push(format!("forbidden verb {verb} on {resource}"));
                    }
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// What storesync itself does (SPEC, sync engine), independent of the engine charts.
fn storesync_own_grants() -> BTreeSet<Grant> {
    let own: [(&str, &[&str], &[&str]); 7] = [
        (
            "",
            &["namespaces"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        (
            "",
            &["resourcequotas", "limitranges"],
            &["get", "list", "create", "patch"],
        ),
        (
            "networking.k8s.io",
            &["networkpolicies"],
            &["get", "list", "create", "patch", "delete"],
        ),
        (
            "",
            &["secrets"],
            &["get", "list", "create", "patch", "update", "delete"],
        ),
        ("", &["pods"], &["get", "list", "watch"]),
        (
            "apps",
            &["deployments", "statefulsets"],
            &["get", "list", "watch"],
        ),
        // helm --wait judges a Deployment ready from its ReplicaSets.
        ("apps", &["replicasets"], &["get", "list", "watch"]),
    ];
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in own {
        for r in resources {
            for v in verbs {
                out.insert((group.to_string(), r.to_string(), v.to_string()));
            }
        }
    }
    out
}

fn resource_of(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "Secret" => ("", "secrets"),
        "ConfigMap" => ("", "configmaps"),
        "Service" => ("", "services"),
        "PersistentVolumeClaim" => ("", "persistentvolumeclaims"),
        "ServiceAccount" => ("", "serviceaccounts"),
        "Deployment" => ("apps", "deployments"),
        "StatefulSet" => ("apps", "statefulsets"),
        "Job" => ("batch", "jobs"),
        "Ingress" => ("networking.k8s.io", "ingresses"),
        "NetworkPolicy" => ("networking.k8s.io", "networkpolicies"),
        "PodDisruptionBudget" => ("policy", "poddisruptionbudgets"),
        other => panic!("engine charts render {other}: add it to resource_of and to the ClusterRole"),
    }
}

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
