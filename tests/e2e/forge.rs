//! What a store team can do with `admin` in its own namespace, for the tenant scenarios: the
//! tenant user and its RoleBinding, Helm release Secrets written the way Helm writes them (built
//! here from the store's real release), a victim namespace outside every store, and snapshots of
//! what must not change outside the store (read as the admin).
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::cluster::{helm_status, must_get, settle, wait_until};
use super::harness::{Output, Suite, admin_kubectl, namespace, path_str};
use super::identity::can_i_as;

/// The store team's user: `admin` (the built-in ClusterRole) in its store namespace, nothing else.
pub const TENANT: &str = "tenant-acme";
/// The tenant's RoleBinding in its store namespace (deleted with the namespace).
const TENANT_BINDING: &str = "tenant-acme-admin";
/// A namespace no store owns, holding what a forged release would reach for.
pub const VICTIM_NAMESPACE: &str = "storesync-e2e-victim";
pub const VICTIM_DEPLOYMENT: &str = "victim-web";
pub const VICTIM_CONFIG: &str = "victim-config";
/// The image of the victim's Deployment.
pub const VICTIM_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// Names in ClusterRoles and ClusterRoleBindings that storesync, the suite or a tenant would use.
const RBAC_WORDS: [&str; 5] = ["storesync", "tenant", "acme", "forged", "e2e"];

/// kubectl as the tenant: the admin's kubeconfig, impersonating [`TENANT`].
pub fn tenant_kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = args.to_vec();
    all.extend(["--as", TENANT]);
    admin_kubectl(&all, stdin)
}

/// Makes [`TENANT`] the `admin` of `store`'s namespace, and checks it holds nothing outside it:
/// whatever reaches outside in a scenario went through storesync or helm.
pub fn grant_tenant(store: &str) {
    let ns = namespace(store);
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": TENANT_BINDING, "namespace": ns },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT }],
    });
    admin_kubectl(&["apply", "-f", "-"], Some(&binding.to_string())).expect_ok();
    wait_until(
        &format!("{TENANT} may create Secrets in {ns}"),
        Duration::from_secs(30),
        || can_i_as(TENANT, &["create", "secrets", "-n", &ns]),
    );
    for question in [
        &["create", "deployments.apps", "-n", VICTIM_NAMESPACE][..],
        &["update", "configmaps", "-n", VICTIM_NAMESPACE],
        &["create", "jobs.batch", "-n", VICTIM_NAMESPACE],
        &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
    ] {
        assert!(
            !can_i_as(TENANT, question),
            "{TENANT} may `{}` by itself: the scenario could not tell what storesync did",
            question.join(" ")
        );
    }
}

/// Creates the victim namespace (deleted when the test ends) with a ConfigMap and a Deployment of
/// no replicas, and waits until the Deployment controller stopped writing it.
pub fn create_victim(suite: &Suite) {
    let ns = suite.scratch_namespace(VICTIM_NAMESPACE);
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            { "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } },
            {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": VICTIM_CONFIG, "namespace": ns },
                "data": { "owner": "someone else" },
            },
            victim_deployment(VICTIM_IMAGE),
        ],
    });
    admin_kubectl(&["apply", "-f", "-"], Some(&manifest.to_string())).expect_ok();
    settle("deployment", &ns, VICTIM_DEPLOYMENT, |d| {
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
    });
}

/// The victim Deployment with `image`: created as such by the admin, reached for by forgeries.
pub fn victim_deployment(image: &str) -> Value {
    let labels = json!({ "app": VICTIM_DEPLOYMENT, "app.kubernetes.io/managed-by": "Helm" });
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": VICTIM_DEPLOYMENT, "namespace": VICTIM_NAMESPACE, "labels": labels },
        "spec": {
            "replicas": 0,
            "selector": { "matchLabels": { "app": VICTIM_DEPLOYMENT } },
            "template": {
                "metadata": { "labels": { "app": VICTIM_DEPLOYMENT } },
                "spec": { "containers": [{ "name": "web", "image": image }] },
            },
        },
    })
}

/// Every object of the victim namespace by `kind/name`, with its uid and resourceVersion: equal
/// snapshots mean nothing there was created, changed or deleted. `kube-root-ca.crt` is left out
/// (the control plane writes it into every namespace in its own time).
pub fn victim_snapshot() -> BTreeMap<String, String> {
    let kinds =
        "configmaps,deployments.apps,jobs.batch,pods,secrets,services,rolebindings.rbac.authorization.k8s.io";
    let out = admin_kubectl(&["get", kinds, "-n", VICTIM_NAMESPACE, "-o", "json"], None)
        .expect_ok()
        .json();
    out["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["metadata"]["name"] != "kube-root-ca.crt")
        .map(|o| {
            let key = format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            let value = format!(
                "uid {} rv {}",
                o["metadata"]["uid"].as_str().unwrap_or_default(),
                o["metadata"]["resourceVersion"].as_str().unwrap_or_default()
            );
            (key, value)
        })
        .collect()
}

/// ClusterRoles and ClusterRoleBindings whose names a forgery, storesync or the suite would use.
pub fn cluster_rbac_names() -> BTreeSet<String> {
    let out = admin_kubectl(&["get", "clusterroles,clusterrolebindings", "-o", "json"], None)
        .expect_ok()
        .json();
    out["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let name = o["metadata"]["name"].as_str()?;
            RBAC_WORDS
                .iter()
                .any(|w| name.contains(w))
                .then(|| format!("{}/{name}", o["kind"].as_str().unwrap_or_default()))
        })
        .collect()
}

/// The name of the Secret holding `revision` of the store's release.
pub fn release_secret_name(store: &str, revision: u64) -> String {
    format!("sh.helm.release.v1.{store}.v{revision}")
}

/// The latest revision of the store's release, as `helm status` reports it.
pub fn latest_revision(store: &str) -> u64 {
    helm_status(store)
        .and_then(|s| s["version"].as_u64())
        .unwrap_or_else(|| panic!("{store} has no release"))
}

/// `data.release` as Helm writes it: base64 of the gzipped release JSON (the API's own base64
/// of Secret data comes on top).
pub fn encode_release(release: &Value) -> String {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(release.to_string().as_bytes())
        .expect("gzip in memory");
    BASE64.encode(gz.finish().expect("gzip in memory"))
}

/// The release JSON of `data.release` as the API returns it (base64 of Helm's base64 of gzip).
pub fn decode_release(data: &str) -> Value {
    let helm_text = BASE64
        .decode(data.trim())
        .unwrap_or_else(|e| panic!("data.release is not base64: {e}"));
    let gzipped = BASE64
        .decode(&helm_text)
        .unwrap_or_else(|e| panic!("Helm's release text is not base64: {e}"));
    let mut json = Vec::new();
    GzDecoder::new(&gzipped[..])
        .read_to_end(&mut json)
        .unwrap_or_else(|e| panic!("Helm's release is not gzip: {e}"));
    serde_json::from_slice(&json).unwrap_or_else(|e| panic!("Helm's release is not JSON: {e}"))
}

/// The store's release Secret of `revision`, as the admin reads it.
pub fn release_secret(store: &str, revision: u64) -> Value {
    must_get(
        "secret",
        Some(&namespace(store)),
        &release_secret_name(store, revision),
    )
}

/// The decoded release of `revision`: what a forgery starts from, so Helm still reads it.
pub fn read_release(store: &str, revision: u64) -> Value {
    let secret = release_secret(store, revision);
    let data = secret["data"]["release"]
        .as_str()
        .unwrap_or_else(|| panic!("no data.release in {}", secret["metadata"]["name"]));
    decode_release(data)
}

/// A forged revision: the release body (JSON), what its Secret's labels claim, and extra labels.
pub struct Forgery {
    pub revision: u64,
    /// The `status` label, which need not match the body's `info.status`.
    pub label_status: String,
    pub body: Value,
    pub extra_labels: BTreeMap<String, String>,
}

impl Forgery {
    /// Revision `revision` made from `base` (a real release): its manifest replaced, its status
    /// in body and label set to `status`.
    pub fn from_release(base: &Value, revision: u64, status: &str, manifest: &str) -> Forgery {
        let mut body = base.clone();
        body["version"] = json!(revision);
        body["manifest"] = json!(manifest);
        body["info"]["status"] = json!(status);
        body["info"]["description"] = json!("Upgrade complete");
        Forgery {
            revision,
            label_status: status.to_string(),
            body,
            extra_labels: BTreeMap::new(),
        }
    }

    /// The Secret Helm would have written, labelled as the forgery claims.
    pub fn secret(&self, store: &str) -> Value {
        let payload = encode_release(&self.body);
        let mut labels = json!({
            "name": store,
            "owner": "helm",
            "status": self.label_status,
            "version": self.revision.to_string(),
        });
        for (k, v) in &self.extra_labels {
            labels[k] = json!(v);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "helm.sh/release.v1",
            "metadata": {
                "name": release_secret_name(store, self.revision),
                "namespace": namespace(store),
                "labels": labels,
            },
            "data": { "release": BASE64.encode(payload) },
        })
    }
}

/// Forged Secrets (and a ClusterRoleBinding a forgery names) deleted when a scenario ends, failed
/// or not, before the suite deletes the namespaces: later scenarios start clean, and a binding
/// that should never exist does not outlive a failure.
pub struct Forged {
    store: String,
    secrets: RefCell<Vec<String>>,
    cluster_bindings: RefCell<Vec<String>>,
}

impl Forged {
    pub fn new(store: &str) -> Forged {
        Forged {
            store: store.to_string(),
            secrets: RefCell::default(),
            cluster_bindings: RefCell::default(),
        }
    }

    /// Writes the forgery's Secret as the tenant, from a temporary file.
    pub fn write(&self, forgery: &Forgery) {
        let secret = forgery.secret(&self.store);
        let name = secret["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.secrets.borrow_mut().push(name.clone());
        let mut file = tempfile::Builder::new()
            .prefix("forged-release-")
            .suffix(".json")
            .tempfile()
            .expect("temp file");
        file.write_all(secret.to_string().as_bytes())
            .expect("write the forged Secret");
        let out = tenant_kubectl(&["create", "-f", path_str(file.path())], None);
        assert!(
            out.ok(),
            "{TENANT} could not write the forged release Secret {name}\n{out}"
        );
    }

    /// A ClusterRoleBinding a forgery names: deleted at the end should it ever be created.
    pub fn cluster_binding(&self, name: &str) -> String {
        self.cluster_bindings.borrow_mut().push(name.to_string());
        name.to_string()
    }
}

impl Drop for Forged {
    fn drop(&mut self) {
        let ns = namespace(&self.store);
        let secrets = self.secrets.borrow();
        if !secrets.is_empty() {
            let mut args = vec!["delete", "secret", "-n", &ns, "--ignore-not-found"];
            args.extend(secrets.iter().map(String::as_str));
            let out = admin_kubectl(&args, None);
            if !out.ok() {
                eprintln!("[e2e] cannot delete the forged Secrets {secrets:?} of {ns}\n{out}");
            }
        }
        for name in self.cluster_bindings.borrow().iter() {
            let out = admin_kubectl(
                &["delete", "clusterrolebinding", name, "--ignore-not-found"],
                None,
            );
            if !out.ok() {
                eprintln!("[e2e] DELETE ClusterRoleBinding {name} BY HAND: it grants cluster-admin\n{out}");
            }
        }
    }
}

/// A manifest document that is a YAML alias bomb ("billion laughs"): `levels` lists of 9 aliases
/// of the list before, 9^levels strings once expanded, in under a kilobyte.
pub fn alias_bomb(name: &str, levels: usize) -> String {
    let mut doc = format!(
        "---\n# Source: tiny/templates/bomb.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  \
         labels:\n    app.kubernetes.io/managed-by: Helm\ndata:\n  l0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\
         \"lol\",\"lol\",\"lol\",\"lol\"]\n"
    );
    for level in 1..levels {
        let previous = format!("*l{}", level - 1);
        let list = [previous.as_str(); 9].join(",");
        doc.push_str(&format!("  l{level}: &l{level} [{list}]\n"));
    }
    doc
}

/// Objects a forged manifest names outside the store: the victim's Deployment (another image) and
/// ConfigMap (another owner), and ClusterRoleBinding `binding` making the tenant cluster-admin.
pub fn outside_objects(binding: &str) -> String {
    let mut deployment = victim_deployment("registry.k8s.io/pause:forged");
    deployment["spec"]["replicas"] = json!(1);
    let config = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": VICTIM_CONFIG,
            "namespace": VICTIM_NAMESPACE,
            "labels": { "app.kubernetes.io/managed-by": "Helm" },
        },
        "data": { "owner": TENANT },
    });
    let admin = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": { "name": binding, "labels": { "app.kubernetes.io/managed-by": "Helm" } },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT }],
    });
    [
        ("victim.yaml", deployment),
        ("victim-config.yaml", config),
        ("admin.yaml", admin),
    ]
    .iter()
    .map(|(file, obj)| manifest_document(file, obj))
    .collect()
}

/// A Job in the victim namespace, as a manifest document or as a hook of a release.
pub fn victim_job(name: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": VICTIM_NAMESPACE,
            "labels": { "app.kubernetes.io/managed-by": "Helm" },
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{ "name": "job", "image": "registry.k8s.io/pause:3.10" }],
                },
            },
        },
    })
}

/// One document of a Helm manifest: `---`, Helm's `# Source:` comment, the object as YAML.
pub fn manifest_document(file: &str, obj: &Value) -> String {
    let yaml = serde_yaml_ng::to_string(obj).expect("object as YAML");
    format!("---\n# Source: tiny/templates/{file}\n{yaml}")
}

/// A pre-rollback hook of a release (Helm's `hooks` entry) whose manifest is `obj`.
pub fn rollback_hook(file: &str, obj: &Value) -> Value {
    json!({
        "name": obj["metadata"]["name"],
        "kind": obj["kind"],
        "path": format!("tiny/templates/{file}"),
        "manifest": serde_yaml_ng::to_string(obj).expect("object as YAML"),
        "events": ["pre-rollback", "post-rollback"],
    })
}
