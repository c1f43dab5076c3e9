//! Command-line arguments, with environment fallbacks for every setting.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Result;
use crate::secret::RotatingSecret;
use crate::source::{self, Credentials, RepoLocation, SourceOptions};

#[derive(Debug, Parser)]
#[command(
    name = "storesync",
    version,
    about = "GitOps reconciler for e-commerce stores on Kubernetes"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain, env = "STORESYNC_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every file of the catalog; exit 0 when valid, 1 when not.
    Validate {
        #[command(flatten)]
        source: SourceArgs,
        /// An OCI prefix engine charts may come from, as `plan` and `apply` take it: the catalog
        /// gets the same verdict from every command (repeatable).
        #[arg(long = "allowed-chart-prefix", value_parser = parse_oci_prefix, env = "STORESYNC_ALLOWED_CHART_PREFIXES", value_delimiter = ',')]
        allowed_chart_prefixes: Vec<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Show what a sync would change (against the cluster from KUBECONFIG, or --offline).
    Plan {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Plan against an empty cluster without contacting one.
        #[arg(long)]
        offline: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// Also show the full YAML of objects to be created.
        #[arg(long)]
        diff: bool,
    },
    /// Sync the catalog into the cluster: apply creates and updates, prune last.
    Apply {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Leave stores whose files are gone in place.
        #[arg(long)]
        no_prune: bool,
        /// Check every object write with the API server (server-side dry run); change nothing,
        /// run no helm.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Keep the cluster in step with a branch: poll, webhooks and file watch trigger syncs;
    /// pull requests get plans; results go back to GitHub as commit statuses.
    Serve {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
    /// The live stores, their sync state and their health.
    Status {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// How long a pod may wait in CrashLoopBackOff, ImagePullBackOff, ErrImagePull or
        /// CreateContainerConfigError before its workload counts as Degraded.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, env = "STORESYNC_HEALTH_GRACE")]
        health_grace: std::time::Duration,
        /// Namespace of storesync's own records (where a rollout is recorded); default:
        /// POD_NAMESPACE, else the kubeconfig's namespace.
        #[arg(long, env = "STORESYNC_NAMESPACE")]
        namespace: Option<String>,
    },
    /// The Git history of one store's file: who changed what, when (audit).
    History {
        /// Store name.
        store: String,
        #[command(flatten)]
        source: SourceArgs,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

/// Secrets are never flag values (`ps` shows them to every user): the Git token comes from
/// `STORESYNC_GIT_TOKEN` or `--git-token-file`, read in [`SourceArgs::options`].
#[derive(Clone, Args)]
pub struct SourceArgs {
    /// The stores repository: a local directory (may be a subfolder of a Git repository) or a
    /// Git URL.
    #[arg(long, default_value = ".", env = "STORESYNC_REPO")]
    pub repo: String,
    /// Read the catalog at this commit, branch or tag instead of the work tree on disk.
    #[arg(long)]
    pub rev: Option<String>,
    /// Branch read from a Git URL when no --rev is given.
    #[arg(long, default_value = "main", env = "STORESYNC_BRANCH")]
    pub branch: String,
    /// Where Git URLs are cloned (default: $XDG_CACHE_HOME/storesync or ~/.cache/storesync).
    #[arg(long, env = "STORESYNC_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// File holding the HTTPS token for Git URLs (a mounted Secret), read again at each fetch;
    /// or set STORESYNC_GIT_TOKEN.
    #[arg(long, env = "STORESYNC_GIT_TOKEN_FILE")]
    pub git_token_file: Option<PathBuf>,
    /// Private key file for SSH Git URLs.
    #[arg(long, env = "STORESYNC_GIT_SSH_KEY_FILE")]
    pub git_ssh_key: Option<PathBuf>,
    /// OpenSSH known_hosts file: SSH remotes must present a host key listed there.
    #[arg(long, env = "STORESYNC_GIT_SSH_KNOWN_HOSTS_FILE")]
    pub git_ssh_known_hosts: Option<PathBuf>,
}

/// The environment variable holding the HTTPS token for Git URLs.
pub const GIT_TOKEN_ENV: &str = "STORESYNC_GIT_TOKEN";

impl SourceArgs {
    pub fn location(&self) -> RepoLocation {
        RepoLocation::parse(&self.repo)
    }

    /// Where and how to read a Git URL; the HTTPS token from `STORESYNC_GIT_TOKEN` (fixed for
    /// the process) or `--git-token-file` (read again at each fetch, so it may be rotated).
    pub fn options(&self) -> Result<SourceOptions> {
        self.options_with(std::env::var(GIT_TOKEN_ENV).ok())
    }

    /// [`SourceArgs::options`] with the value of `STORESYNC_GIT_TOKEN` given.
    pub fn options_with(&self, git_token: Option<String>) -> Result<SourceOptions> {
        let https_token = RotatingSecret::from_env_or_file(
            GIT_TOKEN_ENV,
            git_token,
            "--git-token-file",
            self.git_token_file.as_deref(),
        )?;
        Ok(SourceOptions {
            cache_dir: self.cache_dir.clone(),
            branch: Some(self.branch.clone()),
            credentials: Credentials {
                https_token,
                ssh_key: self.git_ssh_key.clone(),
                known_hosts: self.git_ssh_known_hosts.clone(),
            },
            pull_fetch: source::PullFetchLimits::default(),
        })
    }

    /// How the repository is named in output: never with credentials.
    pub fn display(&self) -> String {
        match self.location() {
            RepoLocation::Local(p) => p.display().to_string(),
            RepoLocation::Url(u) => source::redact(&u),
        }
    }
}

/// The repository URL may carry a user and password: shown without them.
impl std::fmt::Debug for SourceArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceArgs")
            .field("repo", &crate::source::redact(&self.repo))
            .field("rev", &self.rev)
            .field("branch", &self.branch)
            .field("cache_dir", &self.cache_dir)
            .field("git_token_file", &self.git_token_file)
            .field("git_ssh_key", &self.git_ssh_key)
            .field("git_ssh_known_hosts", &self.git_ssh_known_hosts)
            .finish()
    }
}

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Directory of the engine charts named in the platform config.
    #[arg(long, default_value = "charts", env = "STORESYNC_CHARTS_DIR")]
    pub charts_dir: PathBuf,
    /// The helm binary.
    #[arg(long, default_value = "helm", env = "STORESYNC_HELM")]
    pub helm: PathBuf,
    /// Time one helm invocation may take (first installs pull images and run setup jobs).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration, env = "STORESYNC_HELM_TIMEOUT")]
    pub helm_timeout: std::time::Duration,
    /// Stores applied at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64), env = "STORESYNC_CONCURRENCY")]
    pub concurrency: u16,
    /// Longest wait for an answer of the Kubernetes API server: one that hangs fails the sync
    /// (which is retried) instead of holding it forever.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, env = "STORESYNC_API_TIMEOUT")]
    pub api_timeout: std::time::Duration,
    /// Let one sync prune every live store (two or more); without it such a sync prunes nothing.
    #[arg(long, env = "STORESYNC_ALLOW_PRUNE_ALL")]
    pub allow_prune_all: bool,
    /// An OCI prefix engine charts may come from, such as oci://registry.example.com/charts
    /// (repeatable; none by default: charts come from --charts-dir only).
    #[arg(long = "allowed-chart-prefix", value_parser = parse_oci_prefix, env = "STORESYNC_ALLOWED_CHART_PREFIXES", value_delimiter = ',')]
    pub allowed_chart_prefixes: Vec<String>,
    /// Namespace of storesync's own records (the prune breaker's last applied limit); default:
    /// POD_NAMESPACE, else the kubeconfig's namespace.
    #[arg(long, env = "STORESYNC_NAMESPACE")]
    pub namespace: Option<String>,
    /// The ClusterRole that helm's ServiceAccount is bound to (by a RoleBinding) in each store
    /// namespace: what the engine charts need, namespaced kinds only.
    #[arg(long, default_value = crate::desired::tenancy::DEFAULT_STORE_CLUSTER_ROLE, env = "STORESYNC_STORE_CLUSTER_ROLE")]
    pub store_cluster_role: String,
    /// How long a pod may wait in CrashLoopBackOff, ImagePullBackOff, ErrImagePull or
    /// CreateContainerConfigError before its workload counts as Degraded.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, env = "STORESYNC_HEALTH_GRACE")]
    pub health_grace: std::time::Duration,
}

fn parse_oci_prefix(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("oci://")
        .ok_or_else(|| format!("`{s}` is not an oci:// prefix"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty()
        || rest.contains(char::is_whitespace)
        || rest.contains('@')
        || rest.split('/').any(|seg| seg == "..")
    {
        return Err(format!("`{s}` is not an oci://HOST[/PATH] prefix"));
    }
    Ok(s.to_string())
}

/// Running as one of several replicas: the holder of the Lease `storesync` in `--namespace`
/// syncs; every replica takes webhooks and serves pages.
#[derive(Debug, Clone, Args)]
pub struct ElectionArgs {
    /// Elect a leader among replicas (on in the Helm chart); without it this process syncs alone.
    #[arg(long, env = "STORESYNC_LEADER_ELECT")]
    pub leader_elect: bool,
    /// How long a Lease not renewed stays with its holder before another replica may take it.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, env = "STORESYNC_LEASE_DURATION")]
    pub lease_duration: std::time::Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "STORESYNC_RENEW_DEADLINE")]
    pub renew_deadline: std::time::Duration,
    /// How often the leader renews and the others try to take the Lease.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, env = "STORESYNC_RETRY_PERIOD")]
    pub retry_period: std::time::Duration,
}

/// Secrets are never flag values: the GitHub token comes from `GITHUB_TOKEN` or
/// `--github-token-file`, the webhook secret from `STORESYNC_WEBHOOK_SECRET` or
/// `--webhook-secret-file`, read by the `serve` command.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub election: ElectionArgs,
    /// How often the tracked branch is fetched and synced, webhooks or not.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, env = "STORESYNC_INTERVAL")]
    pub interval: std::time::Duration,
    /// How often a sync compares the objects the engine charts rendered with the cluster (and
    /// repairs or reports drift, per `driftPolicy`); checked by the first sync after it elapses.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, env = "STORESYNC_DRIFT_INTERVAL")]
    pub drift_interval: std::time::Duration,
    /// Address of the HTTP server (webhook, health, metrics, status pages).
    #[arg(long, default_value = "0.0.0.0:8080", env = "STORESYNC_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// The GitHub repository of the catalog, `OWNER/NAME`, for commit statuses.
    #[arg(long, env = "STORESYNC_GITHUB_REPO")]
    pub github_repo: Option<String>,
    /// File holding the GitHub token for commit statuses, read again before each post; or set
    /// GITHUB_TOKEN.
    #[arg(long, env = "STORESYNC_GITHUB_TOKEN_FILE")]
    pub github_token_file: Option<PathBuf>,
    /// GitHub App id: authenticate as the App's installation on --github-repo (check runs with
    /// annotations besides statuses and comments) instead of with a token.
    #[arg(long, env = "STORESYNC_GITHUB_APP_ID", requires = "github_app_key_file")]
    pub github_app_id: Option<u64>,
    /// File holding the GitHub App's private key (PEM), with --github-app-id.
    #[arg(long, env = "STORESYNC_GITHUB_APP_KEY_FILE", requires = "github_app_id")]
    pub github_app_key_file: Option<PathBuf>,
    /// GitHub API base URL (GitHub Enterprise: https://HOST/api/v3).
    #[arg(long, env = "STORESYNC_GITHUB_API_URL")]
    pub github_api_url: Option<String>,
    /// File holding the GitHub webhook secret; or set STORESYNC_WEBHOOK_SECRET.
    #[arg(long, env = "STORESYNC_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Public URL of this daemon; commit statuses link to `<url>/commits/<sha>`.
    #[arg(long, env = "STORESYNC_EXTERNAL_URL")]
    pub external_url: Option<String>,
    /// Pull-request plans run at once (they never hold up syncs).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16), env = "STORESYNC_PLAN_WORKERS")]
    pub plan_workers: u16,
    /// Most a pull request's head may send when fetched for its plan (shallow, into scratch
    /// space of its own): bytes, or with KiB, MiB, GiB; a larger head is not planned.
    #[arg(long, default_value = "100MiB", value_parser = source::parse_byte_size, env = "STORESYNC_PR_FETCH_MAX_BYTES")]
    pub pr_fetch_max_bytes: u64,
    /// Longest fetching a pull request's head for its plan may take.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, env = "STORESYNC_PR_FETCH_TIMEOUT")]
    pub pr_fetch_timeout: std::time::Duration,
}

impl ServeArgs {
    /// The bounds on fetching pull-request heads, for [`SourceOptions::pull_fetch`].
    pub fn pull_fetch(&self) -> source::PullFetchLimits {
        source::PullFetchLimits {
            max_bytes: self.pr_fetch_max_bytes,
            timeout: self.pr_fetch_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn a_github_app_needs_its_id_and_its_key_file() {
        let base = ["storesync", "serve", "--repo", "."];
        for extra in [
            &["--github-app-id", "12"][..],
            &["--github-app-key-file", "/run/app.pem"],
        ] {
            let err = Cli::try_parse_from(base.iter().chain(extra)).expect_err("one without the other");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{err}"
            );
        }
        let both = ["--github-app-id", "12", "--github-app-key-file", "/run/app.pem"];
        assert!(Cli::try_parse_from(base.iter().chain(&both)).is_ok());
    }

    #[test]
    fn secrets_are_not_flags() {
        for flag in [
            "--webhook-secret",
            "--github-token",
            "--git-token",
            "--github-app-key",
        ] {
            let joined = format!("{flag}=s3cret-value");
            for args in [vec![flag, "s3cret-value"], vec![joined.as_str()]] {
                let mut argv = vec!["storesync", "serve", "--repo", "."];
                argv.extend(args);
                let err = Cli::try_parse_from(&argv).expect_err(flag);
                assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument, "{err}");
                assert_eq!(err.exit_code(), 2, "a usage error");
                assert!(!err.to_string().contains("s3cret-value"), "{err}");
            }
        }
    }

    #[test]
    fn debug_of_the_command_line_shows_no_credentials() {
        let cli = Cli::try_parse_from([
            "storesync",
            "serve",
            "--repo",
            "https://deploy:p%40ss@github.com/acme/stores.git",
            "--webhook-secret-file",
            "/run/secrets/webhook",
            "--github-token-file",
            "/run/secrets/github",
            "--git-token-file",
            "/run/secrets/git",
        ])
        .unwrap();
        let debug = format!("{cli:?} {cli:#?}");
        assert!(!debug.contains("p%40ss") && !debug.contains("deploy"), "{debug}");
        assert!(debug.contains("https://github.com/acme/stores.git"), "{debug}");
        assert!(debug.contains("/run/secrets/webhook"), "{debug}");
    }
}
