//! Command-line arguments, with environment fallbacks for every setting.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// The live stores and their sync state.
    Status {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
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

#[derive(Debug, Clone, Args)]
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
    /// HTTPS token for Git URLs.
    #[arg(long, env = "STORESYNC_GIT_TOKEN", hide_env_values = true)]
    pub git_token: Option<String>,
    /// Private key file for SSH Git URLs.
    #[arg(long, env = "STORESYNC_GIT_SSH_KEY")]
    pub git_ssh_key: Option<PathBuf>,
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
}

impl ClusterArgs {
    pub fn options(&self) -> crate::commands::ClusterOptions {
        crate::commands::ClusterOptions {
            helm: self.helm.clone(),
            charts_dir: self.charts_dir.clone(),
            helm_timeout: self.helm_timeout,
            concurrency: usize::from(self.concurrency),
        }
    }
}
