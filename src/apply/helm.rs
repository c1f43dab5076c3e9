//! Helm, run as a process: an argument vector (never a shell string), values in a private file
//! (never `--set` built from user text), a timeout, and stderr captured into the error.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tracing::debug;

use crate::desired::RELEASE_HASH_LABEL;
use crate::desired::ReleaseSpec;
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

/// What one helm invocation did, for metrics and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelmOp {
    Upgrade,
    Rollback,
    Uninstall,
}

impl HelmOp {
    pub fn label(self) -> &'static str {
        match self {
            HelmOp::Upgrade => "upgrade",
            HelmOp::Rollback => "rollback",
            HelmOp::Uninstall => "uninstall",
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
        let chart = self.resolve_chart(&release.chart, &release.version)?;
        let values = tempfile::Builder::new()
            .prefix("storesync-values-")
            .suffix(".yaml")
            .tempfile()
            .map_err(Error::io(std::env::temp_dir()))?;
        let yaml = serde_yaml_ng::to_string(&release.values).map_err(|e| Error::Helm {
            operation: "upgrade",
            message: format!("cannot write values: {e}"),
        })?;
        std::fs::write(values.path(), yaml).map_err(Error::io(values.path()))?;
        let timeout = format!("{}s", self.timeout.as_secs());
        let label = format!("{RELEASE_HASH_LABEL}={release_hash}");
        let args: Vec<&str> = vec![
            "upgrade",
            "--install",
            &release.name,
            &chart,
            "--namespace",
            &release.namespace,
            "--version",
            &release.version,
            "--values",
            path_str(values.path())?,
            "--labels",
            &label,
            "--wait",
            "--timeout",
            &timeout,
            "--history-max",
            "10",
            "--server-side",
            "true",
            "--force-conflicts",
        ];
        self.run(HelmOp::Upgrade, &args).await.map(drop)
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
        self.run(HelmOp::Rollback, &args).await.map(drop)
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
        self.run(HelmOp::Uninstall, &args).await.map(drop)
    }

    async fn run(&self, op: HelmOp, args: &[&str]) -> Result<String> {
        debug!(helm = %self.binary.display(), ?args, "running helm");
        let mut child = Command::new(&self.binary)
            .args(args)
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
        let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
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
            let status = child.wait().await;
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
