//! Several daemons in process against one fake API server, one recording helm and one stores
//! repository, as replicas of a Deployment see them; each has its own connection to the API
//! server, which a test can cut.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use storesync::apply::{Applier, Helm, Policy};
use storesync::daemon::leader::ElectionSettings;
use storesync::daemon::{self, Context, Replicas, Settings};
use storesync::metrics::Metrics;
use storesync::report::StatusReporter;
use storesync::report::github::GitHubNotifier;
use storesync::secret::Secret;
use storesync::server::{self, HttpLimits, ServerState};
use storesync::source::tracked::TrackedRepo;
use storesync::source::{RepoLocation, SourceOptions};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::common::fake_cluster::FakeCluster;
use crate::common::fake_coordination::Link;
use crate::common::fake_github::FakeGitHub;
use crate::common::fake_helm::FakeHelm;
use crate::common::{GitRepo, repo_root};
use crate::daemon::webhooks::{SECRET, push_body, sign};

/// The daemons' own namespace.
pub const NAMESPACE: &str = "storesync";

/// Lease timings.
#[derive(Clone, Copy)]
pub struct Timings {
    pub lease: Duration,
    pub renew: Duration,
    pub retry: Duration,
}

/// The chart's defaults.
pub const DEFAULT: Timings = Timings {
    lease: Duration::from_secs(15),
    renew: Duration::from_secs(10),
    retry: Duration::from_secs(2),
};

/// What the replicas share: the repository, the cluster, helm.
pub struct World {
    pub repo: GitRepo,
    pub branch: String,
    pub cluster: FakeCluster,
    pub helm: FakeHelm,
    /// Where commit statuses go, when the test looks at them (a socket: real time only).
    pub github: Option<FakeGitHub>,
}

impl World {
    pub fn new(repo: GitRepo) -> World {
        let helm = FakeHelm::new();
        let cluster = FakeCluster::new(helm.releases_dir());
        cluster.insert("namespaces", "", json!({"metadata": {"name": NAMESPACE}}));
        let branch = repo.repo.head().unwrap().shorthand().unwrap().to_string();
        World {
            repo,
            branch,
            cluster,
            helm,
            github: None,
        }
    }

    /// Replicas post commit statuses to a fake GitHub.
    pub async fn with_github(repo: GitRepo) -> World {
        World {
            github: Some(FakeGitHub::start().await),
            ..World::new(repo)
        }
    }

    /// `(state, description)` of the statuses posted for `sha`, in order.
    pub fn statuses(&self, sha: &str) -> Vec<(String, String)> {
        let github = self.github.as_ref().expect("a world with GitHub");
        github
            .statuses()
            .into_iter()
            .filter(|s| s.sha == sha && s.context.as_deref() == Some("storesync/sync"))
            .map(|s| (s.state.clone(), s.description.clone().unwrap_or_default()))
            .collect()
    }

    /// A replica named `name`, started.
    pub fn start(&self, name: &str, timings: Timings) -> Replica {
        self.launch(name, Some(timings))
    }

    /// A daemon without election (a local `serve`): it always leads.
    pub fn start_alone(&self, name: &str) -> Replica {
        self.launch(name, None)
    }

    fn launch(&self, name: &str, timings: Option<Timings>) -> Replica {
        let link = Link::default();
        let client = self.cluster.client_over(&link);
        let helm = Helm {
            binary: self.helm.binary(),
            charts_dir: repo_root().join("charts"),
            timeout: Duration::from_secs(60),
            allowed_chart_prefixes: Vec::new(),
        };
        let applier = Applier {
            policy: Policy {
                allow_prune_all: false,
                namespace: Some(NAMESPACE.into()),
                store_cluster_role: None,
            },
            ..Applier::new(client.clone(), helm)
        };
        let settings = Settings {
            tracked: TrackedRepo {
                location: RepoLocation::Local(self.repo.path().to_path_buf()),
                branch: self.branch.clone(),
                options: SourceOptions::default(),
            },
            interval: Duration::from_secs(3600),
            external_url: None,
            plan_workers: 1,
        };
        let election = timings.map(|t| ElectionSettings {
            namespace: NAMESPACE.into(),
            identity: name.into(),
            lease_duration: t.lease,
            renew_deadline: t.renew,
            retry_period: t.retry,
        });
        let replicas = Replicas::new(client, NAMESPACE.into(), election);
        let metrics = Arc::new(Metrics::default());
        let statuses = self.github.as_ref().map(|github| {
            let notifier = GitHubNotifier::new(
                "acme-platform",
                "stores",
                "test-token".into(),
                Some(&github.url()),
            )
            .unwrap();
            let counter = metrics.clone();
            StatusReporter::spawn(Arc::new(notifier), Arc::new(move |l| counter.status_post(l)))
        });
        let ctx = Arc::new(Context::new(applier, metrics, statuses, settings).with_replicas(replicas));
        let state = Arc::new(ServerState::new(
            ctx.clone(),
            Some(Secret::from(SECRET)),
            Some("acme-platform/stores".into()),
            HttpLimits::default(),
        ));
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(daemon::run(ctx.clone(), rx));
        Replica {
            name: name.into(),
            ctx,
            state,
            stop,
            task,
            link,
        }
    }

    /// The holder of the Lease as stored, and its `leaseTransitions`.
    pub fn lease(&self) -> (Option<String>, i64) {
        let lease = self.cluster.lease(NAMESPACE, "storesync").unwrap_or_default();
        (
            lease["spec"]["holderIdentity"].as_str().map(String::from),
            lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0),
        )
    }
}

pub struct Replica {
    pub name: String,
    pub ctx: Arc<Context>,
    pub state: Arc<ServerState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    pub link: Link,
}

impl Replica {
    pub fn leads(&self) -> bool {
        self.ctx.leader.is_leader()
    }

    /// Syncs this replica ran, of every result.
    pub fn syncs_run(&self) -> f64 {
        let text = self.ctx.metrics.render();
        text.lines()
            .filter(|l| l.starts_with("storesync_syncs_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let req = Request::get(path).body(Body::empty()).unwrap();
        self.request(req).await
    }

    pub async fn push(&self, branch: &str, sha: &str, delivery: &str) -> (StatusCode, String) {
        let body = push_body(branch, sha);
        let req = Request::post("/webhooks/github")
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sign(&body))
            .body(Body::from(body))
            .unwrap();
        self.request(req).await
    }

    async fn request(&self, req: Request<Body>) -> (StatusCode, String) {
        let response = server::router(self.state.clone()).oneshot(req).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A graceful stop: the in-flight sync finishes, the Lease is released.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the daemon stops")
            .unwrap();
    }

    /// The process dies: nothing is released, nothing more is renewed.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Waits (in the test's time, paused or not) until `check` holds, polling every 50 ms.
pub async fn until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A repository whose catalog has no store: syncs run no helm, so time can be paused.
pub fn empty_catalog() -> (GitRepo, String) {
    let mut repo = GitRepo::new();
    repo.write("stores/.gitkeep", "");
    let sha = repo.commit("Ada", "An empty catalog");
    (repo, sha)
}
