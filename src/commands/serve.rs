//! `serve`: the daemon and its HTTP server, until the first shutdown signal drains them.
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use super::{ClusterOptions, connect};
use crate::apply::Applier;
use crate::config::{ServeArgs, SourceArgs};
use crate::daemon::leader::{self, ElectionSettings};
use crate::daemon::{self, Context, Replicas, Settings};
use crate::error::{Error, Result};
use crate::live::DriftCheck;
use crate::metrics::Metrics;
use crate::report::app_auth::AppCredentials;
use crate::report::{GitHubAuth, GitHubPrWriter, ReporterOptions, StatusReporter, github::GitHubNotifier};
use crate::secret::{RotatingSecret, Secret};
use crate::server::{self, HttpLimits, ServerState};
use crate::source::tracked::TrackedRepo;

/// The environment variables secrets come from (flag values would show in `ps`).
pub(super) const GITHUB_TOKEN_ENV: &str = "GITHUB_TOKEN";
pub(super) const WEBHOOK_SECRET_ENV: &str = "STORESYNC_WEBHOOK_SECRET";

/// Runs until `shutdown` turns true; returns once the in-flight sync and requests are done.
pub async fn serve(
    source: &SourceArgs,
    cluster: &ClusterOptions,
    args: &ServeArgs,
    shutdown: watch::Receiver<bool>,
) -> Result<u8> {
    let mut options = source.options()?;
    options.pull_fetch = args.pull_fetch();
    let tracked = TrackedRepo {
        location: source.location(),
        branch: source.branch.clone(),
        options,
    };
    let metrics = Arc::new(Metrics::default());
    let election = &args.election;
    let timings = ElectionSettings {
        namespace: String::new(),
        identity: leader::identity(),
        lease_duration: election.lease_duration,
        renew_deadline: election.renew_deadline,
        retry_period: election.retry_period,
    };
    if election.leader_elect {
        timings.check().map_err(Error::Usage)?;
    }

    // A token file is read again before each post (GitHub App installation tokens last an hour).
    let github_token = RotatingSecret::from_env_or_file(
        GITHUB_TOKEN_ENV,
        std::env::var(GITHUB_TOKEN_ENV).ok(),
        "--github-token-file",
        args.github_token_file.as_deref(),
    )?;
    let auth = match (github_token, &args.github_app_id, &args.github_app_key_file) {
        (Some(_), Some(_), _) => {
            return Err(Error::Usage(
                "both a GitHub token and --github-app-id are set; keep one".into(),
            ));
        }
        (None, Some(id), Some(key)) => Some(GitHubAuth::App(
            AppCredentials::from_file(*id, key).map_err(|e| Error::Usage(format!("{e}")))?,
        )),
        (token, _, _) => token.map(GitHubAuth::Token),
    };
    let statuses = match (&args.github_repo, auth) {
        (Some(repo), Some(auth)) => {
            let (owner, name) = repo
                .split_once('/')
                .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
                .ok_or_else(|| Error::Usage(format!("--github-repo must be OWNER/NAME, not `{repo}`")))?;
            let notifier = GitHubNotifier::with_auth(owner, name, auth, args.github_api_url.as_deref())
                .map_err(|e| Error::Usage(format!("cannot set up GitHub: {e}")))?;
            let comments = GitHubPrWriter::for_notifier(&notifier);
            let (counter, feedback_counter) = (metrics.clone(), metrics.clone());
            Some(StatusReporter::spawn_full(
                Arc::new(notifier),
                Some(Arc::new(comments)),
                Arc::new(move |label| counter.status_post(label)),
                Arc::new(move |kind, result| feedback_counter.pr_feedback_write(kind, result)),
                ReporterOptions::default(),
            ))
        }
        (Some(_), None) => {
            return Err(Error::Usage(
                "--github-repo needs a token (GITHUB_TOKEN or --github-token-file) or a GitHub App \
                 (--github-app-id and --github-app-key-file)"
                    .into(),
            ));
        }
        (None, _) => {
            warn!("no --github-repo: results are not reported as commit statuses");
            None
        }
    };
    let webhook_secret = Secret::from_env_or_file(
        WEBHOOK_SECRET_ENV,
        std::env::var(WEBHOOK_SECRET_ENV).ok(),
        "--webhook-secret-file",
        args.webhook_secret_file.as_deref(),
    )?;
    if webhook_secret.is_none() {
        warn!("no webhook secret: POST /webhooks/github answers 401; syncs come from polling and file watch");
    }

    // Bound before the cluster is contacted: an address in use fails at once.
    let listen = args.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Listen { addr: listen, source })?;
    let client = connect(cluster.api_timeout).await?;
    let (helm_metrics, drift_metrics, store_metrics) = (metrics.clone(), metrics.clone(), metrics.clone());
    let applier = Applier {
        on_helm: Some(Arc::new(move |op, ok| helm_metrics.helm_invoked(op.label(), ok))),
        on_drift_repair: Some(Arc::new(move || drift_metrics.drift_repaired())),
        on_store_applied: Some(Arc::new(move |seconds| store_metrics.store_synced(seconds))),
        drift: Arc::new(DriftCheck::new(args.drift_interval)),
        ..cluster.applier(client.clone(), false)
    };
    // storesync's own records live where the prune breaker's do.
    let namespace = cluster
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let election = election.leader_elect.then(|| ElectionSettings {
        namespace: namespace.clone(),
        ..timings
    });
    let replicas = Replicas::new(client.clone(), namespace, election);
    let ctx = Arc::new(
        Context::new(
            applier,
            metrics,
            statuses,
            Settings {
                tracked,
                interval: args.interval,
                external_url: args.external_url.clone(),
                plan_workers: usize::from(args.plan_workers),
            },
        )
        .with_replicas(replicas),
    );
    let state = Arc::new(ServerState::new(
        ctx.clone(),
        webhook_secret,
        args.github_repo.clone(),
        HttpLimits::default(),
    ));
    info!(listen = %args.listen, repo = %source.display(), branch = %source.branch, "serving");

    let daemon = tokio::spawn(daemon::run(ctx.clone(), shutdown.clone()));
    let limits = state.limits;
    let served = server::serve(listener, server::router(state), limits, shutdown.clone()).await;
    let _ = daemon.await;
    served.map_err(|source| Error::Listen { addr: listen, source })?;
    info!("stopped");
    Ok(super::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_in_use_is_named_in_the_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let source = SourceArgs {
            repo: ".".into(),
            rev: None,
            branch: "main".into(),
            cache_dir: None,
            git_token_file: None,
            git_ssh_key: None,
            git_ssh_known_hosts: None,
        };
        let cluster = ClusterOptions {
            helm: "helm".into(),
            charts_dir: "charts".into(),
            helm_timeout: std::time::Duration::from_secs(60),
            concurrency: 1,
            api_timeout: std::time::Duration::from_secs(60),
            allow_prune_all: false,
            allowed_chart_prefixes: Vec::new(),
            namespace: None,
            store_cluster_role: "storesync-store".into(),
            health_grace: std::time::Duration::from_secs(120),
        };
        let args = ServeArgs {
            election: crate::config::ElectionArgs {
                leader_elect: false,
                lease_duration: std::time::Duration::from_secs(15),
                renew_deadline: std::time::Duration::from_secs(10),
                retry_period: std::time::Duration::from_secs(2),
            },
            interval: std::time::Duration::from_secs(60),
            drift_interval: std::time::Duration::from_secs(600),
            listen: addr,
            github_repo: None,
            github_token_file: None,
            github_app_id: None,
            github_app_key_file: None,
            github_api_url: None,
            webhook_secret_file: None,
            external_url: None,
            plan_workers: 1,
            pr_fetch_max_bytes: 100 << 20,
            pr_fetch_timeout: std::time::Duration::from_secs(60),
        };
        let (_stop, shutdown) = watch::channel(false);
        let err = serve(&source, &cluster, &args, shutdown.clone())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Listen { .. }), "{err:?}");

        // A GitHub App and a token at once, or an App key that is no key: usage errors naming
        // what to fix, before anything is contacted.
        let dir = tempfile::tempdir().unwrap();
        let (token, key) = (dir.path().join("token"), dir.path().join("app.pem"));
        std::fs::write(&token, "ghp_s3cret").unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let app = ServeArgs {
            github_repo: Some("acme/stores".into()),
            github_app_id: Some(12),
            github_app_key_file: Some(key.clone()),
            ..args.clone()
        };
        let both = ServeArgs {
            github_token_file: Some(token),
            ..app.clone()
        };
        let twice = serve(&source, &cluster, &both, shutdown.clone())
            .await
            .unwrap_err();
        assert!(twice.to_string().contains("keep one"), "{twice}");
        let bad = serve(&source, &cluster, &app, shutdown)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains(&key.display().to_string()) && bad.contains("PEM"),
            "{bad}"
        );
        assert!(!bad.contains("not-a-key") && !bad.contains("s3cret"), "{bad}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot listen on {addr}: ")),
            "{message}"
        );
    }
}
