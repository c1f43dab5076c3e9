//! The cluster as the admin sees it (kubectl and helm with the caller's KUBECONFIG): what the
//! scenarios assert on, never storesync's own view of it.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::catalog::Platform;
use super::harness::{admin_helm, admin_kubectl, namespace};
use super::identity::{HELM_IDENTITY, STORE_CLUSTER_ROLE};

pub const NETWORK_POLICIES: [&str; 5] = [
    "allow-dns",
    "allow-from-ingress-controller",
    "allow-https-egress",
    "allow-same-namespace",
    "default-deny",
];
pub const CREDENTIAL_KEYS: [&str; 5] = [
    "admin-password",
    "cookie-secret",
    "database-password",
    "database-root-password",
    "jwt-secret",
];

/// One object, or `None` when it does not exist. Without `metadata.managedFields`, which
/// `kubectl get` leaves out: read those with [`get_with_managed_fields`].
pub fn get(kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
    get_with(kind, ns, name, &[])
}

/// One object with its `metadata.managedFields` (`kubectl get --show-managed-fields`), or `None`
/// when it does not exist.
pub fn get_with_managed_fields(kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
    get_with(kind, ns, name, &["--show-managed-fields"])
}

/// The `metadata.managedFields` entries of an object read by [`get_with_managed_fields`]; panics
/// when the object carries none, which means it was read without them.
pub fn managed_fields(obj: &Value) -> Vec<Value> {
    let entries = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !entries.is_empty(),
        "no metadata.managedFields on {} {}: read it with get_with_managed_fields (kubectl get \
         --show-managed-fields); every object written through the API has some",
        obj["kind"],
        obj["metadata"]["name"]
    );
    entries
}

fn get_with(kind: &str, ns: Option<&str>, name: &str, extra: &[&str]) -> Option<Value> {
    let mut args = vec!["get", kind, name, "-o", "json", "--ignore-not-found"];
    args.extend_from_slice(extra);
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let out = admin_kubectl(&args, None).expect_ok();
    if out.stdout.trim().is_empty() {
        None
    } else {
        Some(out.json())
    }
}

pub fn must_get(kind: &str, ns: Option<&str>, name: &str) -> Value {
    get(kind, ns, name).unwrap_or_else(|| {
        panic!(
            "{kind} {}{name} does not exist",
            ns.map(|n| format!("{n}/")).unwrap_or_default()
        )
    })
}

pub fn list(kind: &str, ns: &str, selector: Option<&str>) -> Vec<Value> {
    let mut args = vec!["get", kind, "-n", ns, "-o", "json"];
    if let Some(s) = selector {
        args.extend(["-l", s]);
    }
    let out = admin_kubectl(&args, None).expect_ok().json();
    out["items"].as_array().cloned().unwrap_or_default()
}

pub fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn strings(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map(String::from).unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    strings(&obj["metadata"]["labels"])
}

pub fn annotations(obj: &Value) -> BTreeMap<String, String> {
    strings(&obj["metadata"]["annotations"])
}

pub fn terminating(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

/// `helm status` of the store's release, or `None` when there is no release.
pub fn helm_status(store: &str) -> Option<Value> {
    let ns = namespace(store);
    let out = admin_helm(&["status", store, "-n", &ns, "-o", "json"]);
    if out.ok() {
        return Some(out.json());
    }
    assert!(out.stderr.contains("not found"), "helm status failed\n{out}");
    None
}

pub fn release_status(store: &str) -> String {
    helm_status(store)
        .and_then(|s| s["info"]["status"].as_str().map(String::from))
        .unwrap_or_else(|| "<no release>".into())
}

/// `helm history`, oldest first; empty when there is no release.
pub fn helm_history(store: &str) -> Vec<Value> {
    let ns = namespace(store);
    let out = admin_helm(&["history", store, "-n", &ns, "-o", "json"]);
    if !out.ok() {
        assert!(out.stderr.contains("not found"), "helm history failed\n{out}");
        return Vec::new();
    }
    out.json().as_array().cloned().unwrap_or_default()
}

/// `helm get manifest` of revision `revision` of the store's release.
pub fn helm_manifest(store: &str, revision: u64) -> String {
    let ns = namespace(store);
    let revision = revision.to_string();
    admin_helm(&["get", "manifest", store, "-n", &ns, "--revision", &revision])
        .expect_ok()
        .stdout
}

/// Labels of the Secret in which Helm stores one revision of the store's release.
pub fn release_secret_labels(store: &str, revision: u64) -> BTreeMap<String, String> {
    let ns = namespace(store);
    labels(&must_get(
        "secret",
        Some(&ns),
        &format!("sh.helm.release.v1.{store}.v{revision}"),
    ))
}

/// Waits for `done`, polling every second; panics with `what` at `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Waits until `ready` holds for an object and its resourceVersion stopped changing (two reads
/// 2 s apart), so that a later change of its resourceVersion can only come from someone else.
pub fn settle(kind: &str, ns: &str, name: &str, ready: impl Fn(&Value) -> bool) {
    let mut last = String::new();
    wait_until(
        &format!("{kind} {ns}/{name} settles"),
        Duration::from_secs(60),
        || {
            let obj = must_get(kind, Some(ns), name);
            let current = rv(&obj);
            let settled = ready(&obj) && current == last;
            last = current;
            if !settled {
                std::thread::sleep(Duration::from_secs(2));
            }
            settled
        },
    );
}

/// Waits until the quota controller has filled in the quota's status and stopped writing it.
pub fn settle_quota(store: &str) {
    settle("resourcequota", &namespace(store), "store-quota", |q| {
        q["status"]["hard"] == q["spec"]["hard"]
    });
}

/// Events that storesync (reporting controller `storesync`) recorded in namespace `ns`.
pub fn storesync_events(ns: &str) -> Vec<Value> {
    let out = admin_kubectl(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"], None)
        .expect_ok()
        .json();
    out["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reportingController"] == "storesync")
        .cloned()
        .collect()
}

/// resourceVersions of everything storesync writes for `store`, and its Helm history length:
/// equal snapshots mean nothing was written in between.
pub fn snapshot(store: &str) -> BTreeMap<String, String> {
    let ns = namespace(store);
    let mut s = BTreeMap::new();
    let mut put = |key: String, obj: Option<Value>| {
        s.insert(key, obj.map(|o| rv(&o)).unwrap_or_else(|| "<absent>".into()));
    };
    put(format!("Namespace {ns}"), get("namespace", None, &ns));
    put(
        "ResourceQuota store-quota".into(),
        get("resourcequota", Some(&ns), "store-quota"),
    );
    put(
        "LimitRange store-limits".into(),
        get("limitrange", Some(&ns), "store-limits"),
    );
    put(
        "Secret store-credentials".into(),
        get("secret", Some(&ns), "store-credentials"),
    );
    for p in list("networkpolicy", &ns, None) {
        let name = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
        put(format!("NetworkPolicy {name}"), Some(p));
    }
    put(
        format!("ServiceAccount {HELM_IDENTITY}"),
        get("serviceaccount", Some(&ns), HELM_IDENTITY),
    );
    put(
        format!("RoleBinding {HELM_IDENTITY}"),
        get("rolebinding", Some(&ns), HELM_IDENTITY),
    );
    s.insert("helm revisions".into(), helm_history(store).len().to_string());
    s
}

/// The store's credentials as stored (base64 as the API returns it), by key.
pub fn credentials(store: &str) -> BTreeMap<String, String> {
    strings(&must_get("secret", Some(&namespace(store)), "store-credentials")["data"])
}

/// Decodes standard base64, as Secret `data` is returned.
pub fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .unwrap_or_else(|| panic!("not base64: {text}"));
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Everything the product contract says one store becomes, checked object by object.
pub fn assert_store_objects(
    store: &str,
    owner: &str,
    plan: &str,
    sha: &str,
    platform: &Platform,
    spec_hash: &str,
) {
    let ns = namespace(store);
    let n = must_get("namespace", None, &ns);
    assert!(!terminating(&n), "{ns} is terminating");
    let l = labels(&n);
    for (key, want) in [
        ("app.kubernetes.io/managed-by", "storesync"),
        ("storesync.dev/store", store),
        ("storesync.dev/owner", owner),
        ("storesync.dev/engine", "tiny"),
        ("storesync.dev/plan", plan),
        ("storesync.dev/protected", "false"),
    ] {
        assert_eq!(
            l.get(key).map(String::as_str),
            Some(want),
            "label {key} of {ns}: {l:?}"
        );
    }
    let a = annotations(&n);
    assert_eq!(
        a.get("storesync.dev/commit").map(String::as_str),
        Some(sha),
        "commit annotation of {ns}"
    );
    assert_eq!(
        a.get("storesync.dev/spec-hash").map(String::as_str),
        Some(spec_hash),
        "spec-hash of {ns}"
    );
    assert!(
        !a.contains_key("storesync.dev/last-error"),
        "{ns} records an error: {a:?}"
    );

    let quota = must_get("resourcequota", Some(&ns), "store-quota");
    assert_eq!(
        strings(&quota["spec"]["hard"]),
        platform.quota(plan),
        "quota of {ns}"
    );
    assert_eq!(
        labels(&quota)
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("storesync")
    );
    let quota_fields = get_with_managed_fields("resourcequota", Some(&ns), "store-quota")
        .map(|q| managed_fields(&q))
        .unwrap_or_default();
    let applied_by_storesync = quota_fields
        .iter()
        .any(|f| f["manager"] == "storesync" && f["operation"] == "Apply");
    assert!(
        applied_by_storesync,
        "store-quota of {ns} was not server-side applied by `storesync`: its managedFields are {quota_fields:#?}"
    );

    let limits = must_get("limitrange", Some(&ns), "store-limits");
    let container = limits["spec"]["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["type"] == "Container")
        .unwrap_or_else(|| panic!("no Container limits in {ns}/store-limits: {limits}"));
    let want = platform.container_limits(plan);
    assert_eq!(strings(&container["max"]), want.max, "container max of {ns}");
    assert_eq!(
        strings(&container["default"]),
        want.default,
        "container default of {ns}"
    );
    assert_eq!(
        strings(&container["defaultRequest"]),
        want.default_request,
        "container defaultRequest of {ns}"
    );

    let policies = list("networkpolicy", &ns, None);
    let mut names: Vec<&str> = policies
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, NETWORK_POLICIES, "network policies of {ns}");
    let policy = |name: &str| {
        policies
            .iter()
            .find(|p| p["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    for p in &policies {
        assert_eq!(
            labels(p).get("app.kubernetes.io/managed-by").map(String::as_str),
            Some("storesync")
        );
    }
    let deny = policy("default-deny");
    assert_eq!(
        deny["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"]),
        "default-deny: {deny}"
    );
    assert!(
        deny["spec"]["ingress"].is_null() && deny["spec"]["egress"].is_null(),
        "default-deny allows: {deny}"
    );
    let from_ingress = policy("allow-from-ingress-controller");
    assert_eq!(
        from_ingress["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx",
        "{from_ingress}"
    );
    let dns = policy("allow-dns");
    let ports: Vec<String> = dns["spec"]["egress"][0]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}/{}", p["protocol"].as_str().unwrap_or_default(), p["port"]))
        .collect();
    assert_eq!(ports, ["UDP/53", "TCP/53"], "allow-dns: {dns}");

    let secret = must_get("secret", Some(&ns), "store-credentials");
    assert_eq!(secret["type"], "Opaque");
    let data = strings(&secret["data"]);
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        CREDENTIAL_KEYS,
        "keys of {ns}/store-credentials"
    );
    for (key, value) in &data {
        let plain = base64_decode(value);
        assert!(
            plain.len() >= 32 && plain.iter().all(u8::is_ascii_alphanumeric),
            "{key} is not 32+ letters and digits"
        );
    }

    // helm's identity: a ServiceAccount of the namespace, bound there (never cluster-wide) to
    // the store ClusterRole.
    let account = must_get("serviceaccount", Some(&ns), HELM_IDENTITY);
    let binding = must_get("rolebinding", Some(&ns), HELM_IDENTITY);
    for obj in [&account, &binding] {
        assert_eq!(
            labels(obj)
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("storesync"),
            "{obj}"
        );
    }
    assert_eq!(
        binding["roleRef"],
        serde_json::json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": STORE_CLUSTER_ROLE }),
        "{ns}/{HELM_IDENTITY} binds another role: {binding}"
    );
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{ "kind": "ServiceAccount", "name": HELM_IDENTITY, "namespace": ns }]),
        "{ns}/{HELM_IDENTITY} binds someone else: {binding}"
    );

    let status = helm_status(store).unwrap_or_else(|| panic!("no helm release {store} in {ns}"));
    assert_eq!(
        status["info"]["status"], "deployed",
        "release {store}: {}",
        status["info"]
    );
    assert_eq!(status["chart"]["metadata"]["name"], "tiny");
    assert_eq!(status["chart"]["metadata"]["version"], "0.1.0");
    let revision = status["version"].as_u64().expect("release version");
    let release = release_secret_labels(store, revision);
    let hash = release
        .get("storesync.dev/release-hash")
        .cloned()
        .unwrap_or_default();
    assert!(
        hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "the release Secret of {store} v{revision} carries no storesync.dev/release-hash label: {release:?}"
    );

    let deployment = must_get("deployment", Some(&ns), store);
    assert_eq!(
        deployment["status"]["readyReplicas"], 1,
        "deployment {ns}/{store} not ready: {}",
        deployment["status"]
    );
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"];
    assert_eq!(
        env["name"], "store-credentials",
        "the chart does not read the store's credentials: {env}"
    );
    let config = must_get("configmap", Some(&ns), store);
    assert_eq!(config["data"]["store"], store);
    assert_eq!(config["data"]["plan"], plan);
    let pods = list("pods", &ns, Some(&format!("app.kubernetes.io/instance={store}")));
    let ready = pods.iter().any(|p| {
        p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    assert!(ready, "no ready pod of {store} in {ns}");
}
