//! The identities of the suite. storesync runs as a ServiceAccount bound to
//! deploy/rbac/clusterrole.yaml and, in the suite's namespace, to the chart's Role, with a
//! kubeconfig holding only its token; checked to have what storesync needs and no more. helm runs
//! for store X as `system:serviceaccount:store-X:storesync-helm` (impersonated), which storesync
//! binds in `store-X` to the ClusterRole of deploy/rbac/store-clusterrole.yaml; checked to act in
//! `store-X` only.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::cluster::wait_until;
use super::harness::{
    CLUSTER_ROLE, E2E_ACCOUNT, E2E_NAMESPACE, KUBECTL_TIMEOUT, admin_kubectl, helm, kubectl, namespace,
    path_str, repo_root, run,
};

/// Name of the ClusterRole in deploy/rbac/store-clusterrole.yaml, which storesync binds in each
/// store namespace (it must exist for a RoleBinding to it to grant anything).
pub const STORE_CLUSTER_ROLE: &str = "storesync-store";
/// The ServiceAccount helm acts as in every store namespace, and the RoleBinding granting it
/// [`STORE_CLUSTER_ROLE`] there.
pub const HELM_IDENTITY: &str = "storesync-helm";
/// A store namespace for questions about rights (`kubectl auth can-i` needs no namespace to exist).
const PROBE_NAMESPACE: &str = "store-e2e0000-probe";

/// The user storesync runs as.
pub fn restricted_user() -> String {
    format!("system:serviceaccount:{E2E_NAMESPACE}:{E2E_ACCOUNT}")
}

/// The user helm acts as for `store`.
pub fn helm_user(store: &str) -> String {
    format!("system:serviceaccount:{}:{HELM_IDENTITY}", namespace(store))
}

/// `kubectl auth can-i <question> --as <user>`, asked as the admin (who may impersonate). A
/// question kubectl could not ask (a misspelt resource) fails the test instead of reading "no".
pub fn can_i_as(user: &str, question: &[&str]) -> bool {
    let mut args = vec!["auth", "can-i"];
    args.extend_from_slice(question);
    args.extend(["--as", user]);
    can_i_answer(&admin_kubectl(&args, None))
}

fn can_i_answer(out: &super::harness::Output) -> bool {
    let answer = out.stdout.trim();
    assert!(
        !out.stderr.contains("doesn't have a resource type")
            && (answer.starts_with("yes") || answer.starts_with("no")),
        "kubectl auth can-i did not answer the question\n{out}"
    );
    answer.starts_with("yes")
}

/// Asserts `user`'s answer to each question, naming every wrong one at once. The questions are
/// asked 8 at a time: every scenario checks its identities, and each answer is a kubectl run.
fn assert_rights(who: &str, user: &str, want: bool, questions: &[&[&str]]) {
    let mut wrong: Vec<String> = Vec::new();
    for batch in questions.chunks(8) {
        let answers: Vec<bool> = std::thread::scope(|scope| {
            let asked: Vec<_> = batch
                .iter()
                .map(|q| scope.spawn(move || can_i_as(user, q)))
                .collect();
            asked
                .into_iter()
                .map(|a| a.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        wrong.extend(
            batch
                .iter()
                .zip(answers)
                .filter(|(_, answer)| *answer != want)
                .map(|(q, _)| q.join(" ")),
        );
    }
    assert!(
        wrong.is_empty(),
        "{who} ({user}) {} {wrong:#?}",
        if want {
            "may NOT do what it needs:"
        } else {
            "may do what it must never do:"
        }
    );
}

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

/// Applies the ClusterRoles (storesync's and the store role it binds) and a ServiceAccount bound
/// to storesync's (as admin), mints a token and writes a kubeconfig that reaches the same API
/// server as that ServiceAccount.
pub fn restricted_kubeconfig(dir: &Path) -> PathBuf {
    let role = repo_root().join("deploy/rbac/clusterrole.yaml");
    let store_role = repo_root().join("deploy/rbac/store-clusterrole.yaml");
    assert!(
        store_role.is_file(),
        "{} is missing: storesync binds ClusterRole {STORE_CLUSTER_ROLE} in every store namespace, so the suite \
         applies it beside {}",
        store_role.display(),
        role.display()
    );
    for manifest in [&role, &store_role] {
        admin_kubectl(&["apply", "-f", path_str(manifest)], None).expect_ok();
    }
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
    assert_token_identity(&path);
    assert_restricted_identity();
    path
}

/// The kubeconfig's token is the restricted identity: a token of the wrong account (or an admin
/// kubeconfig by mistake) would make every scenario meaningless.
fn assert_token_identity(path: &Path) {
    let can = |question: &[&str]| {
        let mut cmd = Command::new(kubectl());
        cmd.arg("--kubeconfig")
            .arg(path)
            .args(["auth", "can-i"])
            .args(question);
        can_i_answer(&run(cmd, None, KUBECTL_TIMEOUT))
    };
    // A new binding reaches the authorizer's cache within moments, not at once.
    wait_until(
        "the e2e ServiceAccount may patch namespaces",
        Duration::from_secs(30),
        || can(&["patch", "namespaces"]),
    );
    assert!(
        !can(&["create", "clusterrolebindings.rbac.authorization.k8s.io"]),
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
    wait_until(
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
}

/// What storesync's own identity may and may not do (spec, "Tenant isolation"): set a store
/// namespace up (namespaces, guardrails, helm's ServiceAccount and RoleBinding, `bind` of the store
/// role only) and act as a store's helm identity, but write no Secret, workload, Job or
/// cluster-wide RBAC itself, read no Secret, and hand out no other role.
fn assert_restricted_identity() {
    let me = restricted_user();
    let store = PROBE_NAMESPACE;
    wait_until(
        "the e2e ServiceAccount may impersonate storesync-helm (deploy/rbac/clusterrole.yaml)",
        Duration::from_secs(30),
        || {
            can_i_as(
                &me,
                &["impersonate", "serviceaccounts/storesync-helm", "-n", store],
            )
        },
    );
    assert_rights(
        "storesync",
        &me,
        true,
        &[
            &["impersonate", "serviceaccounts/storesync-helm", "-n", store],
            &["create", "rolebindings.rbac.authorization.k8s.io", "-n", store],
            &[
                "bind",
                &format!("clusterroles.rbac.authorization.k8s.io/{STORE_CLUSTER_ROLE}"),
            ],
            &["create", "serviceaccounts", "-n", store],
            &["create", "namespaces"],
            &["patch", "namespaces"],
            // Drift and health: one cluster-wide LIST per kind.
            &["list", "deployments.apps", "--all-namespaces"],
            &["list", "replicasets.apps", "--all-namespaces"],
            &["list", "pods", "--all-namespaces"],
        ],
    );
    assert_rights(
        "storesync",
        &me,
        false,
        &[
            &["create", "secrets", "-n", store],
            &["update", "secrets", "-n", store],
            &["delete", "secrets", "-n", store],
            &["create", "secrets", "-n", "kube-system"],
            &["get", "secrets", "-n", "kube-system"],
            &["get", "secrets", "-n", store],
            &["create", "deployments.apps", "--all-namespaces"],
            &["create", "deployments.apps", "-n", store],
            &["create", "deployments.apps", "-n", "default"],
            &["patch", "deployments.apps", "-n", store],
            &["create", "statefulsets.apps", "-n", store],
            &["create", "jobs.batch", "-n", store],
            &["create", "pods", "-n", store],
            &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
            &["create", "clusterroles.rbac.authorization.k8s.io"],
            &["escalate", "clusterroles.rbac.authorization.k8s.io"],
            &["bind", "clusterroles.rbac.authorization.k8s.io/admin"],
            &["bind", "clusterroles.rbac.authorization.k8s.io/cluster-admin"],
            &["create", "roles.rbac.authorization.k8s.io", "-n", store],
            &["impersonate", "serviceaccounts/default", "-n", store],
            &["impersonate", "users/admin"],
            &["impersonate", "groups/system:masters"],
        ],
    );
}

/// What helm's identity for `store` may do, once storesync has set the store up: what the engine
/// charts render and `helm upgrade --install --wait` reads, in `store-<store>` and nowhere else
/// (`elsewhere` is another namespace that exists).
pub fn assert_store_identity(store: &str, elsewhere: &str) {
    let (user, ns) = (helm_user(store), namespace(store));
    wait_until(
        &format!(
            "{user} may create Deployments in {ns} (RoleBinding {HELM_IDENTITY} to {STORE_CLUSTER_ROLE})"
        ),
        Duration::from_secs(30),
        || can_i_as(&user, &["create", "deployments.apps", "-n", &ns]),
    );
    // helm --wait judges a Deployment ready from its ReplicaSets and pods, and Helm 4's kstatus
    // watcher lists and watches every kind it waits on (helm HIP-0022).
    assert_rights(
        "helm's store identity",
        &user,
        true,
        &[
            &["create", "deployments.apps", "-n", &ns],
            &["create", "jobs.batch", "-n", &ns],
            &["create", "secrets", "-n", &ns],
            &["create", "configmaps", "-n", &ns],
            &["list", "replicasets.apps", "-n", &ns],
            &["list", "deployments.apps", "-n", &ns],
            &["watch", "deployments.apps", "-n", &ns],
            &["watch", "configmaps", "-n", &ns],
            &["list", "pods", "-n", &ns],
        ],
    );
    assert_rights(
        "helm's store identity",
        &user,
        false,
        &[
            &["create", "deployments.apps", "-n", elsewhere],
            &["create", "deployments.apps", "--all-namespaces"],
            &["create", "jobs.batch", "-n", elsewhere],
            &["create", "configmaps", "-n", elsewhere],
            &["get", "secrets", "-n", elsewhere],
            &["get", "secrets", "-n", E2E_NAMESPACE],
            &["create", "secrets", "-n", "kube-system"],
            &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
            &["create", "clusterroles.rbac.authorization.k8s.io"],
            &["create", "rolebindings.rbac.authorization.k8s.io", "-n", &ns],
            &["bind", "clusterroles.rbac.authorization.k8s.io/admin"],
            &["patch", &format!("namespaces/{ns}")],
            &["create", "namespaces"],
            &["impersonate", "serviceaccounts/storesync-helm", "-n", elsewhere],
        ],
    );
}
