//! The harness: the skip gate, one end-to-end test at a time per cluster, the tools, and cleanup
//! that runs on failure (processes with a deadline are in process.rs, the identity storesync runs
//! as in identity.rs).
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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
/// The ConfigMap where storesync records a rollout (the run in flight, a halt and the updates it
/// refused), in the same namespace.
pub const ROLLOUT_RECORD: &str = "storesync-rollout";
/// Name of the ClusterRole in deploy/rbac/clusterrole.yaml.
pub const CLUSTER_ROLE: &str = "storesync";

/// Store names of the suite: `e2e` + 4 hex digits + `-` + a suffix; nothing else is ever deleted.
const PREFIX_LEN: usize = 8;

pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);
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

pub use super::process::{Output, run, run_measured, spawn};

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

/// Held while one end-to-end test runs. Tests share one cluster and every sync retires (with
/// `prune.retention: 0s`, deletes) the stores its catalog lacks, so they must never overlap: not
/// across threads (`cargo test`) and not across processes (`cargo nextest run` without
/// --no-capture). A bound localhost port is that lock; the kernel releases it when the process
/// dies, so a crashed run never leaves it stale.
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

/// Label of the PersistentVolumes the suite creates, so that leftovers are found and deleted.
const VOLUME_LABEL: &str = "app.kubernetes.io/managed-by=storesync-e2e";

/// One end-to-end test's hold on the cluster. Dropping it (also while a failed assertion
/// unwinds) deletes every namespace the test registered (retired stores' included: they are
/// namespaces like any other), then its PersistentVolumes, then releases the lock.
pub struct Suite {
    pub prefix: String,
    /// Kubeconfig of the ServiceAccount bound to the ClusterRole: storesync only ever runs as it.
    pub kubeconfig: PathBuf,
    namespaces: std::cell::RefCell<Vec<String>>,
    volumes: std::cell::RefCell<Vec<String>>,
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
        let kubeconfig = super::identity::restricted_kubeconfig(dir.path());
        // Each scenario starts as a fresh installation: no prune limit recorded by another one,
        // and no rollout (one in flight, or a halt) left by another one.
        admin_kubectl(
            &[
                "delete",
                "configmap",
                APPLIED_RECORD,
                ROLLOUT_RECORD,
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
             (ClusterRole {CLUSTER_ROLE}), helm as each store's storesync-helm (ClusterRole storesync-store, bound \
             in the store's namespace)"
        );
        Some(Suite {
            prefix,
            kubeconfig,
            namespaces: Default::default(),
            volumes: Default::default(),
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

    /// A namespace that is not a store's (a scenario's bystander), deleted when the test ends
    /// like the stores' namespaces; a leftover of an earlier run that died is deleted first.
    pub fn scratch_namespace(&self, name: &str) -> String {
        let leftover = admin_kubectl(
            &[
                "delete",
                "namespace",
                name,
                "--ignore-not-found",
                "--wait=true",
                "--timeout=180s",
            ],
            None,
        );
        assert!(
            leftover.ok(),
            "cannot delete the leftover namespace {name}\n{leftover}"
        );
        self.namespaces.borrow_mut().push(name.to_string());
        name.to_string()
    }

    /// A PersistentVolume pre-bound to claim `claim` of `store`'s namespace, for the tiny chart's
    /// claim (`StoreFile::claim`): the claim binds at once on any cluster, with no storage class
    /// or provisioner, so `helm --wait` (which waits for claims to be Bound) finishes. A hostPath
    /// that no pod mounts; kept (`Retain`) when the claim goes, deleted when the test ends.
    pub fn volume_for(&self, store: &str, claim: &str) -> String {
        let name = format!("{store}-data");
        assert!(is_suite_store(&name), "bad volume name {name}");
        let (key, value) = VOLUME_LABEL.split_once('=').expect("label");
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": { "name": name, "labels": { key: value } },
            "spec": {
                "capacity": { "storage": "8Mi" },
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "volumeMode": "Filesystem",
                "claimRef": { "namespace": namespace(store), "name": claim },
                "hostPath": { "path": format!("/tmp/storesync-e2e/{name}") },
            },
        });
        self.volumes.borrow_mut().push(name.clone());
        admin_kubectl(&["apply", "-f", "-"], Some(&manifest.to_string())).expect_ok();
        name
    }

    /// Arguments of `storesync apply --output json` of commit `sha` with the suite's settings
    /// and `extra` flags.
    pub fn apply_args(&self, repo: &StoresRepo, sha: &str, extra: &[&str]) -> Vec<String> {
        let charts = tiny_chart().parent().expect("charts dir").to_path_buf();
        let mut args: Vec<String> = [
            "apply",
            "--repo",
            path_str(repo.path()),
            "--rev",
            sha,
            "--charts-dir",
            path_str(&charts),
            "--helm",
            path_str(&helm()),
            "--helm-timeout",
            HELM_TIMEOUT,
            "--concurrency",
            "4",
            "--output",
            "json",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    /// Arguments of `storesync plan --output json` of commit `sha` against the cluster.
    pub fn plan_args(&self, repo: &StoresRepo, sha: &str) -> Vec<String> {
        let charts = tiny_chart().parent().expect("charts dir").to_path_buf();
        [
            "plan",
            "--repo",
            path_str(repo.path()),
            "--rev",
            sha,
            "--charts-dir",
            path_str(&charts),
            "--output",
            "json",
        ]
        .map(String::from)
        .to_vec()
    }

    /// `storesync apply --output json` of commit `sha` with the suite's settings and `extra` flags.
    pub fn apply(&self, repo: &StoresRepo, sha: &str, extra: &[&str]) -> Sync {
        let args = self.apply_args(repo, sha, extra);
        Sync::new(self.storesync(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    }

    /// `apply` as [`Suite::apply`], with `--helm-timeout helm_timeout` instead of the suite's: a
    /// change helm's wait never sees through (an image that never pulls) fails sooner.
    pub fn apply_with_helm_timeout(
        &self,
        repo: &StoresRepo,
        sha: &str,
        helm_timeout: &str,
        extra: &[&str],
    ) -> Sync {
        let mut args = self.apply_args(repo, sha, extra);
        let at = args
            .iter()
            .position(|a| a == "--helm-timeout")
            .expect("--helm-timeout")
            + 1;
        args[at] = helm_timeout.into();
        Sync::new(self.storesync(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    }

    /// `storesync plan --output json` of commit `sha` against the cluster.
    pub fn plan(&self, repo: &StoresRepo, sha: &str) -> Sync {
        let args = self.plan_args(repo, sha);
        Sync::plan_only(self.storesync(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        self.delete_namespaces();
        // After the namespaces: a volume is deleted once its claim is gone. Not waited for; a
        // volume left behind is deleted by the next run's preflight.
        let volumes = self.volumes.borrow().clone();
        if !volumes.is_empty() {
            let mut args = vec!["delete", "persistentvolume", "--ignore-not-found", "--wait=false"];
            args.extend(volumes.iter().map(String::as_str));
            let out = admin_kubectl(&args, None);
            if !out.ok() {
                eprintln!("[e2e] cleanup failed; delete these PersistentVolumes by hand: {volumes:?}\n{out}");
            }
        }
    }
}

impl Suite {
    fn delete_namespaces(&self) {
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
        // Said out loud: a deletion that waits out its timeout adds minutes to the scenario's
        // time without failing it.
        if !out.ok() {
            eprintln!(
                "[e2e] cleanup failed after {:.0?}; delete these namespaces by hand: {namespaces:?}\n{out}",
                out.elapsed
            );
        } else if out.elapsed > Duration::from_secs(60) {
            eprintln!(
                "[e2e] cleanup: deleting {namespaces:?} took {:.0?} (a namespace slow to empty)",
                out.elapsed
            );
        }
    }
}

/// How long each phase of a scenario took, printed at its end.
pub struct Phases {
    scenario: &'static str,
    started: Instant,
    last: Instant,
    done: Vec<String>,
}

impl Phases {
    pub fn new(scenario: &'static str) -> Phases {
        let now = Instant::now();
        Phases {
            scenario,
            started: now,
            last: now,
            done: Vec::new(),
        }
    }

    pub fn phase(&mut self, name: &str) {
        self.done.push(format!("{name} {:.1?}", self.last.elapsed()));
        self.last = Instant::now();
    }

    pub fn print(&self) {
        eprintln!(
            "[e2e] {}: {} (total {:.1?}; namespace deletion follows)",
            self.scenario,
            self.done.join(", "),
            self.started.elapsed()
        );
    }
}

pub fn namespace(store: &str) -> String {
    format!("store-{store}")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The cluster must be reachable, and must hold no store this suite did not create: every sync
/// retires (stops, and after `prune.retention` deletes) the stores missing from its catalog, so
/// a cluster with real stores is refused.
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
             not create, and every sync would retire it. Use a throwaway cluster (scripts/e2e-kind.sh)."
        );
        leftovers.push(name);
    }
    // Stores of an earlier run that died before its cleanup, retired ones included (and scenario
    // namespaces that were never storesync's): they would count as retirements or trip the
    // breaker.
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
    // Volumes of an earlier run (Suite::volume_for), their claims gone with the namespaces above.
    let volumes = admin_kubectl(
        &["get", "persistentvolumes", "-l", VOLUME_LABEL, "-o", "json"],
        None,
    )
    .expect_ok()
    .json();
    let stale: Vec<&str> = volumes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["metadata"]["name"].as_str())
        .filter(|name| is_suite_store(name))
        .collect();
    if !stale.is_empty() {
        eprintln!("[e2e] deleting PersistentVolumes of an earlier run: {stale:?}");
        let mut args = vec!["delete", "persistentvolume", "--ignore-not-found", "--wait=false"];
        args.extend(stale);
        admin_kubectl(&args, None).expect_ok();
    }
}
