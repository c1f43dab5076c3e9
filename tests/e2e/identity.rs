//! The identity storesync runs as in the suite: a ServiceAccount bound to
//! deploy/rbac/clusterrole.yaml and, in the suite's namespace, to the chart's Role, with a
//! kubeconfig holding only its token; checked to have what storesync needs and no more.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::harness::{
    CLUSTER_ROLE, E2E_ACCOUNT, E2E_NAMESPACE, KUBECTL_TIMEOUT, admin_kubectl, helm, kubectl, path_str,
    repo_root, run,
};

/// The chart's Role (deploy/helm/storesync/templates/role.yaml) as `helm template` renders it
/// for E2E_NAMESPACE: the Lease and ConfigMaps of storesync's own namespace.
pub fn chart_role() -> Value {
    let chart = repo_root().join("deploy/helm/storesync");
    let mut cmd = Command::new(helm());
    cmd.args([
        "template",
        "storesync",
        path_str(&chart),
        "--namespace",
        E2E_NAMESPACE,
        "--show-only",
        "templates/role.yaml",
        // The chart requires a repository; it does not reach the Role.
        "--set",
        "repo.url=https://example.invalid/stores.git",
    ]);
    let rendered = run(cmd, None, Duration::from_secs(60)).expect_ok().stdout;
    let mut roles: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&rendered)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|d: &Value| d["kind"] == "Role")
        .collect();
    assert_eq!(
        roles.len(),
        1,
        "templates/role.yaml of the chart renders no single Role:\n{rendered}"
    );
    roles.remove(0)
}

/// Applies the chart's Role as is and binds it to the suite's ServiceAccount (the chart's own
/// RoleBinding names the chart's ServiceAccount).
fn bind_chart_role() {
    let role = chart_role();
    admin_kubectl(&["apply", "-f", "-"], Some(&role.to_string())).expect_ok();
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": E2E_ACCOUNT, "namespace": E2E_NAMESPACE },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"] },
        "subjects": [{ "kind": "ServiceAccount", "name": E2E_ACCOUNT, "namespace": E2E_NAMESPACE }],
    });
    admin_kubectl(&["apply", "-f", "-"], Some(&binding.to_string())).expect_ok();
}

/// Applies the ClusterRole and a ServiceAccount bound to it (as admin), mints a token and writes
/// a kubeconfig that reaches the same API server as that ServiceAccount.
pub fn restricted_kubeconfig(dir: &Path) -> PathBuf {
    let role = repo_root().join("deploy/rbac/clusterrole.yaml");
    admin_kubectl(&["apply", "-f", path_str(&role)], None).expect_ok();
    let binding = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {E2E_NAMESPACE}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {E2E_ACCOUNT}\n  namespace: {E2E_NAMESPACE}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {E2E_ACCOUNT}\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {CLUSTER_ROLE}\n\
         subjects:\n  - kind: ServiceAccount\n    name: {E2E_ACCOUNT}\n    namespace: {E2E_NAMESPACE}\n"
    );
    admin_kubectl(&["apply", "-f", "-"], Some(&binding)).expect_ok();
    bind_chart_role();
    let token = admin_kubectl(
        &[
            "create",
            "token",
            E2E_ACCOUNT,
            "-n",
            E2E_NAMESPACE,
            "--duration",
            "1h",
        ],
        None,
    )
    .expect_ok()
    .stdout
    .trim()
    .to_string();
    assert!(!token.is_empty(), "kubectl create token printed no token");
    // --flatten inlines a CA given as a file path, so the new kubeconfig stands on its own.
    let admin = admin_kubectl(
        &["config", "view", "--raw", "--minify", "--flatten", "-o", "json"],
        None,
    )
    .expect_ok()
    .json();
    let cluster = admin["clusters"][0]["cluster"].clone();
    assert!(
        cluster["server"].is_string(),
        "no server in the admin kubeconfig: {admin}"
    );
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "e2e", "cluster": cluster }],
        "users": [{ "name": E2E_ACCOUNT, "user": { "token": token } }],
        "contexts": [{ "name": E2E_ACCOUNT, "context": { "cluster": "e2e", "user": E2E_ACCOUNT, "namespace": E2E_NAMESPACE } }],
        "current-context": E2E_ACCOUNT,
    });
    let path = dir.join("storesync-e2e.kubeconfig");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&config).expect("kubeconfig JSON"),
    )
    .expect("write kubeconfig");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod kubeconfig");
    }
    // The identity can do what storesync does and no more than the role: a token of the wrong
    // account (or an admin kubeconfig by mistake) would make every scenario meaningless.
    let can = |verb_resource: &[&str]| {
        let mut cmd = Command::new(kubectl());
        cmd.arg("--kubeconfig")
            .arg(&path)
            .args(["auth", "can-i"])
            .args(verb_resource);
        run(cmd, None, KUBECTL_TIMEOUT).stdout.trim() == "yes"
    };
    // A new binding reaches the authorizer's cache within moments, not at once.
    super::cluster::wait_until(
        "the e2e ServiceAccount may patch namespaces",
        Duration::from_secs(30),
        || can(&["patch", "namespaces"]),
    );
    assert!(
        !can(&["create", "clusterrolebindings"]),
        "the e2e kubeconfig is not restricted to the ClusterRole"
    );
    // The election runs on the chart's Role alone: the Lease `storesync` of its own namespace.
    let lease = |verb: &str, name: &str| {
        can(&[
            verb,
            &format!("leases.coordination.k8s.io/{name}"),
            "-n",
            E2E_NAMESPACE,
        ])
    };
    super::cluster::wait_until(
        "the e2e ServiceAccount may update the Lease storesync (the chart's Role)",
        Duration::from_secs(30),
        || lease("update", "storesync"),
    );
    assert!(
        lease("get", "storesync") && can(&["create", "leases.coordination.k8s.io", "-n", E2E_NAMESPACE]),
        "the chart's Role does not let storesync read or create its Lease"
    );
    assert!(
        !lease("update", "another") && !can(&["list", "leases.coordination.k8s.io", "-n", E2E_NAMESPACE]),
        "the e2e identity may touch other Leases: it has more than the chart's Role"
    );
    // storesync runs `helm upgrade --install --wait`; Helm's readiness check of a Deployment lists
    // its ReplicaSets, and Helm 4's kstatus watcher lists and watches every kind it waits on
    // (helm HIP-0022). Without these every install of every scenario fails, so say it once here.
    let missing: Vec<String> = [
        ["list", "replicasets.apps"],
        ["list", "deployments.apps"],
        ["watch", "deployments.apps"],
        ["watch", "configmaps"],
        ["list", "pods"],
    ]
    .iter()
    .filter(|[verb, resource]| !can(&[verb, resource, "--all-namespaces"]))
    .map(|pair| pair.join(" "))
    .collect();
    assert!(
        missing.is_empty(),
        "deploy/rbac/clusterrole.yaml does not grant what `helm upgrade --install --wait` needs for a \
         Deployment: {missing:?} (Helm's readiness check lists a Deployment's ReplicaSets; see helm HIP-0022)"
    );
    path
}
