//! The daemon running in process against the fakes, and the view of it the tests poll.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use storesync::apply::{Applier, Helm};
use storesync::daemon::{self, Context, Settings};
use storesync::metrics::Metrics;
use storesync::report::github::GitHubNotifier;
use storesync::report::{GitHubPrWriter, ReporterOptions, StatusReporter};
use storesync::secret::Secret;
use storesync::server::{self, HttpLimits, ServerState};
use storesync::source::tracked::TrackedRepo;
use storesync::source::{RepoLocation, SourceOptions};
use tokio::sync::watch;
use tower::ServiceExt;

use super::webhooks::{SECRET, sign};
use crate::common::fake_cluster::FakeCluster;
use crate::common::fake_github::FakeGitHub;
use crate::common::fake_helm::FakeHelm;
use crate::common::{GitRepo, repo_root, store_yaml};

pub struct Running {
    pub repo: GitRepo,
    pub branch: String,
    pub cluster: FakeCluster,
    pub helm: FakeHelm,
    pub github: FakeGitHub,
    pub ctx: Arc<Context>,
    pub state: Arc<ServerState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn start(repo: GitRepo, interval: Duration) -> Running {
        Running::start_with(repo, interval, |_| {}).await
    }

    /// Like [`Running::start`], with the fake API server prepared (a fault, objects) before
    /// the daemon first looks at it.
    pub async fn start_with(
        repo: GitRepo,
        interval: Duration,
        prepare: impl FnOnce(&FakeCluster),
    ) -> Running {
        let helm = FakeHelm::new();
        let cluster = FakeCluster::new(helm.releases_dir());
        prepare(&cluster);
        let github = FakeGitHub::start().await;
        Running::launch(repo, cluster, helm, github, interval)
    }

    /// Like [`Running::start`], comparing chart-rendered objects every `drift_interval`.
    pub async fn start_with_drift_interval(
        repo: GitRepo,
        interval: Duration,
        drift_interval: Duration,
    ) -> Running {
        let helm = FakeHelm::new();
        let cluster = FakeCluster::new(helm.releases_dir());
        let github = FakeGitHub::start().await;
        Running::launch_with(repo, cluster, helm, github, interval, drift_interval)
    }

    /// Stops this daemon and starts a new one against the same repository, cluster, helm and
    /// GitHub: what a restart of the process looks like from outside.
    pub async fn restart(self, interval: Duration) -> Running {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("daemon stops")
            .unwrap();
        Running::launch(self.repo, self.cluster, self.helm, self.github, interval)
    }

    fn launch(
        repo: GitRepo,
        cluster: FakeCluster,
        helm: FakeHelm,
        github: FakeGitHub,
        interval: Duration,
    ) -> Running {
        Running::launch_with(
            repo,
            cluster,
            helm,
            github,
            interval,
            storesync::live::DEFAULT_DRIFT_INTERVAL,
        )
    }

    fn launch_with(
        repo: GitRepo,
        cluster: FakeCluster,
        helm: FakeHelm,
        github: FakeGitHub,
        interval: Duration,
        drift_interval: Duration,
    ) -> Running {
        let branch = repo.repo.head().unwrap().shorthand().unwrap().to_string();
        let metrics = Arc::new(Metrics::default());
        let notifier = GitHubNotifier::new(
            "acme-platform",
            "stores",
            "test-token".into(),
            Some(&github.url()),
        )
        .unwrap();
        let (counter, feedback_counter) = (metrics.clone(), metrics.clone());
        let comments = Arc::new(GitHubPrWriter::for_notifier(&notifier));
        let statuses = StatusReporter::spawn_full(
            Arc::new(notifier),
            Some(comments),
            Arc::new(move |l| counter.status_post(l)),
            Arc::new(move |kind, result| feedback_counter.pr_feedback_write(kind, result)),
            ReporterOptions::default(),
        );
        let fake_helm = Helm {
            binary: helm.binary(),
            charts_dir: repo_root().join("charts"),
            timeout: Duration::from_secs(60),
            allowed_chart_prefixes: Vec::new(),
        };
        let applier = Applier {
            drift: Arc::new(storesync::live::DriftCheck::new(drift_interval)),
            ..Applier::new(cluster.client(), fake_helm)
        };
        let settings = Settings {
            tracked: TrackedRepo {
                location: RepoLocation::Local(repo.path().to_path_buf()),
                branch: branch.clone(),
                options: SourceOptions::default(),
            },
            interval,
            external_url: Some("https://storesync.example".into()),
            plan_workers: 2,
        };
        // Retries after `error` start at 2 s (10 s in production) and a rollout in flight is
        // looked at every 300 ms (15 s), to keep the tests short.
        let ctx = Arc::new(
            Context::new(applier, metrics, Some(statuses), settings)
                .with_retry_backoff(Duration::from_secs(2))
                .with_rollout_check(Duration::from_millis(300)),
        );
        let state = Arc::new(ServerState::new(
            ctx.clone(),
            Some(Secret::from(SECRET)),
            Some("acme-platform/stores".into()),
            HttpLimits::default(),
        ));
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(daemon::run(ctx.clone(), rx));
        Running {
            repo,
            branch,
            cluster,
            helm,
            github,
            ctx,
            state,
            stop,
            task,
        }
    }

    async fn request(&self, req: Request<Body>) -> (StatusCode, String) {
        let response = server::router(self.state.clone()).oneshot(req).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        self.request(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn webhook(
        &self,
        event: &str,
        delivery: &str,
        body: &str,
        signature: Option<String>,
    ) -> (StatusCode, String) {
        let mut req = Request::post("/webhooks/github")
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery);
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        self.request(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    pub async fn signed(&self, event: &str, delivery: &str, body: &str) -> (StatusCode, String) {
        self.webhook(event, delivery, body, Some(sign(body))).await
    }

    /// Waits until `check` holds, polling.
    /// Waits until the sync of `sha` posted its final status (60 s at most: the recording helm
    /// renders real charts, which a loaded 2-core machine can make slow).
    pub async fn until_synced(&self, what: &str, sha: &str) {
        self.until(what, Duration::from_secs(60), |r| {
            statuses_of(r, sha, "storesync/sync")
                .iter()
                .any(|(state, _)| state != "pending")
        })
        .await;
    }

    pub async fn until(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Running) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !check(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asks the daemon to stop, waits for it, and hands back the fakes for inspection.
    pub async fn stop(self) -> (FakeGitHub, FakeHelm) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("daemon stops")
            .unwrap();
        (self.github, self.helm)
    }
}

pub fn catalog_repo() -> (GitRepo, String) {
    let mut repo = GitRepo::new();
    repo.write(
        "stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "small", "team-acme"),
    );
    let sha = repo.commit("Ada", "Add acme");
    (repo, sha)
}

pub fn statuses_of(r: &Running, sha: &str, context: &str) -> Vec<(String, String)> {
    r.github
        .statuses()
        .into_iter()
        .filter(|s| s.sha == sha && s.context.as_deref() == Some(context))
        .map(|s| (s.state.clone(), s.description.clone().unwrap_or_default()))
        .collect()
}
