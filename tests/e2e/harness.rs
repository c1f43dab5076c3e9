//! The harness: the skip gate, one end-to-end test at a time per cluster, the tools, processes
//! with a deadline, the restricted identity storesync runs as, and cleanup that runs on failure.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::catalog::StoresRepo;
use super::output::Sync;

pub const SKIP_MESSAGE: &str =
    "SKIPPED: set STORESYNC_E2E=1 and KUBECONFIG to run the end-to-end suite against a real cluster";

/// Identity storesync runs as: a ServiceAccount bound to deploy/rbac/clusterrole.yaml and, in this
/// namespace, to the chart's Role; nothing more.
pub const E2E_NAMESPACE: &str = "storesync-e2e";
pub const E2E_ACCOUNT: &str = "storesync-e2e";
/// The ConfigMap where storesync records the prune limit of the last applied commit (in the
/// namespace of its kubeconfig context, E2E_NAMESPACE).
pub const APPLIED_RECORD: &str = "storesync-applied";
/// Name of the ClusterRole in deploy/rbac/clusterrole.yaml.
const CLUSTER_ROLE: &str = "storesync";

/// Store names of the suite: `e2e` + 4 hex digits + `-` + a suffix; nothing else is ever deleted.
const PREFIX_LEN: usize = 8;

const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);
/// One `storesync apply`: a few helm installs at most, each bounded by --helm-timeout.
const STORESYNC_TIMEOUT: Duration = Duration::from_secs(600);
/// Passed as --helm-timeout: the tiny chart is ready in seconds once its image is on the node.
pub const HELM_TIMEOUT: &str = "3m";

pub fn enabled() -> bool {
    std::env::var("STORESYNC_E2E").as_deref() == Ok("1")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The suite's engine chart.
pub fn tiny_chart() -> PathBuf {
    repo_root().join("tests/e2e/charts/tiny")
}

fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let local = repo_root().join("tools/bin").join(name);
    if local.is_file() {
        local
    } else {
        PathBuf::from(name)
    }
}

/// $STORESYNC_HELM, else <repo>/tools/bin/helm, else `helm` on PATH.
pub fn helm() -> PathBuf {
    tool("STORESYNC_HELM", "helm")
}

/// $STORESYNC_E2E_KUBECTL, else <repo>/tools/bin/kubectl, else `kubectl` on PATH.
pub fn kubectl() -> PathBuf {
    tool("STORESYNC_E2E_KUBECTL", "kubectl")
}

pub fn storesync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_storesync"))
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Output {
    pub what: String,
    /// `None` when the process was killed (deadline) or died from a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with everything the process said unless it exited 0.
    pub fn expect_ok(self) -> Output {
        if !self.ok() {
            panic!("{self}");
        }
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` to completion, killing it at `timeout`; never panics on a failed command.
pub fn run(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Output {
    let what = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output {
                what,
                code: None,
                stdout: String::new(),
                stderr: format!("cannot start: {e}"),
                elapsed: start.elapsed(),
            };
        }
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("cannot wait for `{what}`: {e}"),
        }
    };
    let text = |h: JoinHandle<Vec<u8>>| String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned();
    let mut stderr = text(err);
    if code.is_none() && start.elapsed() > timeout {
        stderr.push_str(&format!("\n[e2e] killed after the {timeout:?} deadline"));
    }
    Output {
        what,
        code,
        stdout: text(out),
        stderr,
        elapsed: start.elapsed(),
    }
}

/// A process started in the background for a test to kill; killed anyway when dropped, so a
/// failed assertion never leaves it running.
pub struct Background(Child);

impl Background {
    /// Whether it has ended on its own, and how.
    pub fn ended(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }

    /// SIGKILL on Unix: the process gets no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` in the background with its output discarded.
pub fn spawn(mut cmd: Command) -> Background {
    let what = describe(&cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    Background(child)
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// kubectl as the cluster admin (the caller's KUBECONFIG).
pub fn admin_kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(kubectl());
    cmd.args(args);
    run(cmd, stdin, KUBECTL_TIMEOUT)
}

/// helm as the cluster admin.
pub fn admin_helm(args: &[&str]) -> Output {
    let mut cmd = Command::new(helm());
    cmd.args(args);
    run(cmd, None, Duration::from_secs(600))
}

/// Held while one end-to-end test runs. Tests share one cluster and every sync prunes what its
/// catalog lacks, so they must never overlap: not across threads (`cargo test`) and not across
/// processes (`cargo nextest run` without --no-capture). A bound localhost port is that lock;
/// the kernel releases it when the process dies, so a crashed run never leaves it stale.
struct ClusterLock {
    _listener: TcpListener,
}

fn lock() -> ClusterLock {
    let port: u16 = std::env::var("STORESYNC_E2E_LOCK_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(47_391);
    let start = Instant::now();
    let mut told = false;
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => return ClusterLock { _listener: listener },
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if !told {
                    eprintln!("[e2e] waiting for another end-to-end test to finish (lock: 127.0.0.1:{port})");
                    told = true;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(3600),
                    "the end-to-end lock 127.0.0.1:{port} was held for an hour; is something else bound to it? \
                     set STORESYNC_E2E_LOCK_PORT to another port"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("cannot take the end-to-end lock 127.0.0.1:{port}: {e}"),
        }
    }
}

fn random_hex4() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:04x}", h.finish() & 0xffff)
}

/// Whether `store` is a name this suite generates (`e2e1a2b-...`).
pub fn is_suite_store(store: &str) -> bool {
    let b = store.as_bytes();
    b.len() > PREFIX_LEN
        && store.starts_with("e2e")
        && b[3..7]
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && b[7] == b'-'
}

/// One end-to-end test's hold on the cluster. Dropping it (also while a failed assertion
/// unwinds) deletes every namespace the test registered, then releases the lock.
pub struct Suite {
    pub prefix: String,
    /// Kubeconfig of the ServiceAccount bound to the ClusterRole: storesync only ever runs as it.
    pub kubeconfig: PathBuf,
    namespaces: std::cell::RefCell<Vec<String>>,
    _dir: tempfile::TempDir,
    _lock: ClusterLock,
}

impl Suite {
    /// `None` (after saying so) when the suite is not enabled; panics when it is enabled but the
    /// cluster cannot be used.
    pub fn start(test: &str) -> Option<Suite> {
        if !enabled() {
            eprintln!("{SKIP_MESSAGE}");
            return None;
        }
        let lock = lock();
        preflight();
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = restricted_kubeconfig(dir.path());
        // Each scenario starts as a fresh installation: no prune limit recorded by another one.
        admin_kubectl(
            &[
                "delete",
                "configmap",
                APPLIED_RECORD,
                "-n",
                E2E_NAMESPACE,
                "--ignore-not-found",
            ],
            None,
        )
        .expect_ok();
        let prefix = format!("e2e{}-", random_hex4());
        eprintln!(
            "[e2e] {test}: stores `{prefix}*`; storesync runs as system:serviceaccount:{E2E_NAMESPACE}:{E2E_ACCOUNT} \
             (ClusterRole {CLUSTER_ROLE})"
        );
        Some(Suite {
            prefix,
            kubeconfig,
            namespaces: Default::default(),
            _dir: dir,
            _lock: lock,
        })
    }

    /// A store name unique to this test, whose namespace is deleted when the test ends.
    pub fn store(&self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.prefix);
        assert!(name.len() <= 40 && is_suite_store(&name), "bad store name {name}");
        self.namespaces.borrow_mut().push(namespace(&name));
        name
    }

    /// storesync as the restricted identity; helm, started by storesync, inherits it.
    pub fn storesync(&self, args: &[&str]) -> Output {
        let mut cmd = self.storesync_command();
        cmd.args(args);
        run(cmd, None, STORESYNC_TIMEOUT)
    }

    /// The storesync command, without arguments, set up to run as the restricted identity.
    pub fn storesync_command(&self) -> Command {
        let mut cmd = Command::new(storesync_bin());
        cmd.env("KUBECONFIG", &self.kubeconfig);
        // Settings of the caller's helm that would point it elsewhere than the kubeconfig.
        for var in [
            "HELM_KUBECONTEXT",
            "HELM_KUBETOKEN",
            "HELM_KUBEAPISERVER",
            "HELM_KUBEASUSER",
            "HELM_KUBECAFILE",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// `storesync apply --output json` of commit `sha` with the suite's settings and `extra` flags.
    pub fn apply(&self, repo: &StoresRepo, sha: &str, extra: &[&str]) -> Sync {
        let charts = tiny_chart().parent().expect("charts dir").to_path_buf();
        let helm = helm();
        let mut args = vec![
            "apply",
            "--repo",
            path_str(repo.path()),
            "--rev",
            sha,
            "--charts-dir",
            path_str(&charts),
            "--helm",
            path_str(&helm),
            "--helm-timeout",
            HELM_TIMEOUT,
            "--concurrency",
            "4",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        Sync::new(self.storesync(&args))
    }

    /// `storesync plan --output json` of commit `sha` against the cluster.
    pub fn plan(&self, repo: &StoresRepo, sha: &str) -> Sync {
        let charts = tiny_chart().parent().expect("charts dir").to_path_buf();
        let args = [
            "plan",
            "--repo",
            path_str(repo.path()),
            "--rev",
            sha,
            "--charts-dir",
            path_str(&charts),
            "--output",
            "json",
        ];
        Sync::plan_only(self.storesync(&args))
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        let namespaces = self.namespaces.borrow().clone();
        if namespaces.is_empty() {
            return;
        }
        // Never panic here: this also runs while a failed assertion unwinds.
        let mut args = vec![
            "delete",
            "namespace",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=180s",
        ];
        args.extend(namespaces.iter().map(String::as_str));
        let out = admin_kubectl(&args, None);
        if !out.ok() {
            eprintln!("[e2e] cleanup failed; delete these namespaces by hand: {namespaces:?}\n{out}");
        }
    }
}

pub fn namespace(store: &str) -> String {
    format!("store-{store}")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The cluster must be reachable, and must hold no store this suite did not create: every sync
/// prunes the stores missing from its catalog, so a cluster with real stores is refused.
fn preflight() {
    let version = admin_kubectl(&["version", "-o", "json", "--request-timeout=20s"], None);
    assert!(
        version.ok(),
        "STORESYNC_E2E=1 but the cluster from KUBECONFIG ({}) is not reachable with {}:\n{version}",
        std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into()),
        kubectl().display(),
    );
    let managed = admin_kubectl(
        &[
            "get",
            "namespaces",
            "-l",
            "app.kubernetes.io/managed-by=storesync",
            "-o",
            "json",
        ],
        None,
    )
    .expect_ok()
    .json();
    let mut leftovers = Vec::new();
    for ns in managed["items"].as_array().into_iter().flatten() {
        let name = ns["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let store = ns["metadata"]["labels"]["storesync.dev/store"]
            .as_str()
            .unwrap_or_default();
        assert!(
            is_suite_store(store),
            "refusing to run the end-to-end suite: namespace {name} holds store `{store}`, which this suite did \
             not create, and every sync would prune it. Use a throwaway cluster (scripts/e2e-kind.sh)."
        );
        leftovers.push(name);
    }
    // Stores of an earlier run that died before its cleanup (and scenario namespaces that were
    // never storesync's): they would count as prunes or trip the breaker.
    let all = admin_kubectl(&["get", "namespaces", "-o", "json"], None)
        .expect_ok()
        .json();
    for ns in all["items"].as_array().into_iter().flatten() {
        let name = ns["metadata"]["name"].as_str().unwrap_or_default();
        if name.strip_prefix("store-").is_some_and(is_suite_store) && !leftovers.iter().any(|l| l == name) {
            leftovers.push(name.to_string());
        }
    }
    if !leftovers.is_empty() {
        eprintln!("[e2e] deleting leftovers of an earlier run: {leftovers:?}");
        let mut args = vec![
            "delete",
            "namespace",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=180s",
        ];
        args.extend(leftovers.iter().map(String::as_str));
        admin_kubectl(&args, None).expect_ok();
    }
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

/// Applies the ClusterRole and a ServiceAccount bound to it (as admin), mints a token and writes
/// a kubeconfig that reaches the same API server as that ServiceAccount.
fn restricted_kubeconfig(dir: &Path) -> PathBuf {
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
