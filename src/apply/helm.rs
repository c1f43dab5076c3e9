//! Helm, run as a process: an argument vector (never a shell string), values in a private file
//! (never `--set` built from user text), a timeout, stderr captured into the error, and a
//! process that dies with storesync (see [`helm_command`]).
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};

use crate::desired::ReleaseSpec;
use crate::desired::tenancy::helm_user;
use crate::desired::{RELEASE_HASH_LABEL, RETIRED_RELEASE_HASH};
use crate::error::{Error, Result};

/// Longest stderr kept in an error, in bytes.
const STDERR_LIMIT: usize = 4096;

#[derive(Debug, Clone)]
pub struct Helm {
    pub binary: PathBuf,
    /// Where chart names of the platform config (`woocommerce`) are found.
    pub charts_dir: PathBuf,
    /// Time given to one helm invocation, waits included.
    pub timeout: Duration,
    /// OCI references engine charts may come from (`--allowed-chart-prefix`); none by default.
    pub allowed_chart_prefixes: Vec<String>,
}

/// One `helm upgrade`: the release, its chart, the values file's text and the release hash;
/// `mode` is `--install` (an upgrade the catalog asks for) or `--reset-then-reuse-values` (the
/// retiring one, on top of the release's last values).
struct Upgrade<'a> {
    op: HelmOp,
    name: &'a str,
    namespace: &'a str,
    chart: &'a str,
    version: &'a str,
    values: &'a str,
    release_hash: &'a str,
    mode: &'static str,
    /// `--wait`: until the objects are ready (the store's own upgrades); otherwise
    /// `--wait=hookOnly` (Helm's default, said out loud): for hooks only.
    wait: bool,
}

/// What one helm invocation did, for metrics and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelmOp {
    Upgrade,
    Rollback,
    Uninstall,
    /// The upgrade that stops a retired store.
    Retire,
}

impl HelmOp {
    pub fn label(self) -> &'static str {
        match self {
            HelmOp::Upgrade => "upgrade",
            HelmOp::Rollback => "rollback",
            HelmOp::Uninstall => "uninstall",
            HelmOp::Retire => "retire",
        }
    }
}

impl Helm {
    /// The chart argument for `chart`: an OCI reference under an allowed prefix as given, a
    /// name as a directory under the charts directory; nothing else (no path a catalog could
    /// point anywhere). A local chart must carry the version the platform pins.
    pub fn resolve_chart(&self, chart: &str, version: &str) -> Result<String> {
        let refuse = |why: String| Error::Helm {
            operation: "resolve",
            message: format!("chart `{chart}` {why}"),
        };
        if chart.starts_with("oci://") {
            if !self
                .allowed_chart_prefixes
                .iter()
                .any(|p| crate::desired::chart_under_prefix(chart, p))
            {
                return Err(refuse(
                    "is not under an OCI prefix allowed by --allowed-chart-prefix".into(),
                ));
            }
            return Ok(chart.to_string());
        }
        let plain = !chart.is_empty()
            && !chart.starts_with('.')
            && chart
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            return Err(refuse(
                "is not a chart directory name under the charts directory".into(),
            ));
        }
        let path = self.charts_dir.join(chart);
        let manifest = path.join("Chart.yaml");
        let text = std::fs::read_to_string(&manifest).map_err(Error::io(&manifest))?;
        let found = text
            .lines()
            .find_map(|l| l.strip_prefix("version:"))
            .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
            .unwrap_or_default();
        if found != version {
            return Err(Error::Helm {
                operation: "resolve",
                message: format!(
                    "{} has version `{found}` but the platform pins `{version}`; update engines.*.version or the chart",
                    manifest.display()
                ),
            });
        }
        Ok(path.display().to_string())
    }

    /// `helm upgrade --install` of a release, values from a private temporary file, the release
    /// hash recorded as a release label. Server-side apply with `--force-conflicts`: fields of
    /// chart-rendered objects someone took with kubectl (`kubectl set image`, `kubectl edit`) go
    /// back to the chart and to Helm, instead of failing the upgrade on a field conflict. Helm 4
    /// refuses `--force-conflicts` with client-side apply, so server-side is asked for, not left
    /// to `auto` (which keeps client-side for a release first installed by Helm 3).
    pub async fn upgrade_install(&self, release: &ReleaseSpec, release_hash: &str) -> Result<()> {
        let yaml = serde_yaml_ng::to_string(&release.values).map_err(|e| Error::Helm {
            operation: "upgrade",
            message: format!("cannot write values: {e}"),
        })?;
        let upgrade = Upgrade {
            op: HelmOp::Upgrade,
            name: &release.name,
            namespace: &release.namespace,
            chart: &release.chart,
            version: &release.version,
            values: &yaml,
            release_hash,
            mode: "--install",
            wait: true,
        };
        self.upgrade(upgrade).await
    }

    /// One `helm upgrade`: values from a private temporary file, the release hash as a release
    /// label, server-side apply forcing conflicts, `--wait` when asked.
    async fn upgrade(&self, u: Upgrade<'_>) -> Result<()> {
        let chart = self.resolve_chart(u.chart, u.version)?;
        let values = tempfile::Builder::new()
            .prefix("storesync-values-")
            .suffix(".yaml")
            .tempfile()
            .map_err(Error::io(std::env::temp_dir()))?;
        std::fs::write(values.path(), u.values).map_err(Error::io(values.path()))?;
        let timeout = format!("{}s", self.timeout.as_secs());
        let label = format!("{RELEASE_HASH_LABEL}={}", u.release_hash);
        let wait = if u.wait { "--wait" } else { "--wait=hookOnly" };
        let args: Vec<&str> = vec![
            "upgrade",
            u.mode,
            u.name,
            &chart,
            "--namespace",
            u.namespace,
            "--version",
            u.version,
            "--values",
            path_str(values.path())?,
            "--labels",
            &label,
            wait,
            "--timeout",
            &timeout,
            "--history-max",
            "10",
            "--server-side",
            "true",
            "--force-conflicts",
        ];
        self.run(u.op, u.namespace, &args).await.map(drop)
    }

    /// `helm upgrade` of an installed release with the values it was last given plus
    /// `retired: true` (the engine charts then run no pod and serve no Ingress, and keep every
    /// claim, Service and the credentials wiring), its release hash label set to
    /// [`RETIRED_RELEASE_HASH`]. `--reset-then-reuse-values`, not `--reuse-values`: the latter
    /// also keeps the old chart's defaults, which a newer chart version may not render with;
    /// this starts from the chart's own defaults and lays the release's values on top. Never
    /// `--install`: a store without a release has nothing to stop. Helm stays the one that
    /// changed the objects, so `helm history` tells it and a restore's upgrade puts it back.
    pub async fn retire(&self, name: &str, namespace: &str, chart: &str, version: &str) -> Result<()> {
        let upgrade = Upgrade {
            op: HelmOp::Retire,
            name,
            namespace,
            chart,
            version,
            values: "retired: true\n",
            release_hash: RETIRED_RELEASE_HASH,
            mode: "--reset-then-reuse-values",
            // Scaling to 0 needs no wait, and a claim that never bound (no pod ever ran) would
            // hold `--wait` to its timeout at every retirement.
            wait: false,
        };
        self.upgrade(upgrade).await
    }

    pub async fn rollback(&self, name: &str, namespace: &str, revision: u32) -> Result<()> {
        let revision = revision.to_string();
        let timeout = format!("{}s", self.timeout.as_secs());
        // Server-side like every upgrade, forcing conflicts: a field a person took over is taken
        // back, as the upgrade that follows would.
        let args = [
            "rollback",
            name,
            &revision,
            "--namespace",
            namespace,
            "--server-side",
            "true",
            "--force-conflicts",
            "--wait",
            "--timeout",
            &timeout,
        ];
        self.run(HelmOp::Rollback, namespace, &args).await.map(drop)
    }

    pub async fn uninstall(&self, name: &str, namespace: &str) -> Result<()> {
        let timeout = format!("{}s", self.timeout.as_secs());
        let args = [
            "uninstall",
            name,
            "--namespace",
            namespace,
            "--wait",
            "--timeout",
            &timeout,
            "--ignore-not-found",
        ];
        self.run(HelmOp::Uninstall, namespace, &args).await.map(drop)
    }

    /// Runs helm for the store whose namespace is `namespace`, always as that store's identity.
    async fn run(&self, op: HelmOp, namespace: &str, args: &[&str]) -> Result<String> {
        let identity = identity(namespace);
        debug!(helm = %self.binary.display(), ?args, ?identity, "running helm");
        let child = helm_command(&self.binary)
            .await
            .args(args)
            .args(&identity)
            .env_clear()
            .envs(helm_env(std::env::vars_os()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Helm {
                operation: op.label(),
                message: format!("cannot run {}: {e}", self.binary.display()),
            })?;
        let mut child = Running(child);
        let (mut stdout, mut stderr) = (child.0.stdout.take(), child.0.stderr.take());
        let outcome = tokio::time::timeout(self.timeout + Duration::from_secs(30), async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let read_out = async {
                if let Some(s) = stdout.as_mut() {
                    let _ = s.read_to_end(&mut out).await;
                }
            };
            let read_err = async {
                if let Some(s) = stderr.as_mut() {
                    let _ = s.read_to_end(&mut err).await;
                }
            };
            tokio::join!(read_out, read_err);
            let status = child.0.wait().await;
            (status, out, err)
        })
        .await;
        let (status, out, err) = outcome.map_err(|_| Error::Helm {
            operation: op.label(),
            message: format!(
                "helm {} did not finish within {}s",
                op.label(),
                self.timeout.as_secs() + 30
            ),
        })?;
        let status = status.map_err(|e| Error::Helm {
            operation: op.label(),
            message: e.to_string(),
        })?;
        if !status.success() {
            let text = String::from_utf8_lossy(&err);
            let mut text = text.trim().to_string();
            if text.len() > STDERR_LIMIT {
                let cut = text
                    .char_indices()
                    .map(|(i, _)| i)
                    .take_while(|i| *i <= STDERR_LIMIT)
                    .last()
                    .unwrap_or(0);
                text.truncate(cut);
                text.push_str(" …");
            }
            return Err(Error::Helm {
                operation: op.label(),
                message: format!("helm {} failed ({status}): {text}", op.label()),
            });
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The command that starts helm so that it dies with storesync, however storesync ends:
/// - SIGKILL runs no code of ours, so the kernel must do it: helm is started through util-linux
///   `setpriv --pdeathsig KILL`, which sets `PR_SET_PDEATHSIG` on itself and execs helm. The
///   library forbids `unsafe`, so `pre_exec` + prctl is not an option, and a safe prctl call
///   (rustix) in storesync would mark storesync, not helm. The signal follows the thread that
///   forked helm: a runtime thread, alive as long as the process (never spawn helm from
///   `spawn_blocking`, whose threads retire when idle).
/// - helm then leads a process group of its own, killed whole when helm is dropped unfinished
///   (its timeout, an aborted sync, storesync leaving on a second signal): helm's children
///   (plugins, post-renderers) go too, and a terminal's Ctrl-C reaches storesync alone, which
///   drains instead of cutting helm off mid-upgrade.
///
/// Without setpriv 2.33+ on PATH (Alpine without util-linux, macOS) helm runs directly in
/// storesync's own group as it always did, so that a Ctrl-C still reaches it, and a warning
/// says a SIGKILL can orphan it. The image (Debian: util-linux is essential) has setpriv.
async fn helm_command(binary: &Path) -> Command {
    #[cfg(unix)]
    if let (Some(setpriv), Some(helm)) = (setpriv().await, on_path(binary)) {
        let mut command = Command::new(setpriv);
        command
            .args(["--pdeathsig", "KILL", "--"])
            .arg(helm)
            .process_group(0);
        return command;
    }
    // A helm that cannot be found is spawned as named, so the error says so plainly.
    Command::new(binary)
}

/// `setpriv`, when it is on PATH and knows `--pdeathsig`: looked for once per process.
async fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceCell<Option<PathBuf>> = OnceCell::const_new();
    SETPRIV
        .get_or_init(|| async {
            let found = on_path(Path::new("setpriv"));
            let knows_pdeathsig = match &found {
                Some(setpriv) => Command::new(setpriv)
                    .arg("--help")
                    .env_clear()
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .await
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--pdeathsig")),
                None => false,
            };
            match found.filter(|_| knows_pdeathsig) {
                Some(setpriv) => {
                    info!(setpriv = %setpriv.display(), "helm runs under setpriv --pdeathsig KILL: it dies with storesync");
                    Some(setpriv)
                }
                None => {
                    warn!("no setpriv with --pdeathsig on PATH (util-linux 2.33+): a SIGKILLed storesync leaves its helm running");
                    None
                }
            }
        })
        .await
        .as_deref()
}

/// Where `program` is: itself when it names a path, else the first executable file of that
/// name on PATH (helm's PATH too: [`helm_env`] keeps it).
fn on_path(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// A running helm. Dropped before it was reaped, the process group it leads is killed: while
/// helm is unreaped (`id()` is `Some`) its pid names no other group, and when helm leads none
/// (no setpriv) the kill finds nothing; `kill_on_drop` still kills helm itself.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self
            .0
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            // ESRCH: the group is gone already.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// The identity every helm invocation for the store of `namespace` acts as: its ServiceAccount,
/// impersonated, which RBAC confines to `namespace` (Flux's helm-controller does the same). The
/// only place helm's identity is decided; no call site adds identity flags of its own.
fn identity(namespace: &str) -> [String; 2] {
    ["--kube-as-user".to_string(), helm_user(namespace)]
}

/// The part of storesync's environment helm gets: what it needs to find programs, its own
/// configuration and the cluster (kubeconfig, in-cluster service, proxies, CA bundles), and
/// nothing else, so storesync's secrets (GITHUB_TOKEN, STORESYNC_WEBHOOK_SECRET,
/// STORESYNC_GIT_TOKEN, …) never reach helm, its plugins or the charts' hooks.
fn helm_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(name, _)| name.to_str().is_some_and(helm_may_see))
        .collect()
}

fn helm_may_see(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "KUBECONFIG",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        // Paths of CA bundles Go reads for TLS to registries and the API server: not secrets.
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "KUBERNETES_PORT",
    ];
    const PREFIXES: &[&str] = &["HELM_", "XDG_", "KUBERNETES_SERVICE_", "KUBERNETES_PORT_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| Error::Usage(format!("{} is not a UTF-8 path", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_acts_as_the_store_service_account() {
        assert_eq!(
            identity("store-acme"),
            [
                "--kube-as-user",
                "system:serviceaccount:store-acme:storesync-helm"
            ]
        );
    }

    #[test]
    fn helm_gets_an_allowlisted_environment() {
        let given = [
            "PATH",
            "HOME",
            "KUBECONFIG",
            "HELM_CACHE_HOME",
            "XDG_CONFIG_HOME",
            "https_proxy",
            "NO_PROXY",
            "KUBERNETES_SERVICE_HOST",
            "KUBERNETES_SERVICE_PORT",
            "KUBERNETES_PORT_443_TCP",
            "GITHUB_TOKEN",
            "STORESYNC_WEBHOOK_SECRET",
            "STORESYNC_GIT_TOKEN",
            "STORESYNC_GIT_TOKEN_FILE",
            "AWS_SECRET_ACCESS_KEY",
            "KUBERNETES_PORTAL",
            "LD_PRELOAD",
            "path",
        ];
        let vars = given.iter().map(|n| (OsString::from(n), OsString::from("v")));
        let kept: Vec<String> = helm_env(vars)
            .into_iter()
            .map(|(n, _)| n.into_string().unwrap())
            .collect();
        assert_eq!(kept, given[..10]);
    }
}
