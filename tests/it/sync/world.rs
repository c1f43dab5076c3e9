//! A world to sync: a catalog directory, the fake API server and the recording helm; and the
//! `apply` command run against it as the CLI runs it.

use std::time::Duration;

use storesync::apply::{Applier, Helm};
use storesync::plan::PlanOptions;
use storesync::sync::{self, SyncOutcome};

use crate::common::fake_cluster::FakeCluster;
use crate::common::fake_helm::FakeHelm;
use crate::common::{Catalog, repo_root, store_yaml};

pub struct World {
    pub cluster: FakeCluster,
    pub helm: FakeHelm,
    pub catalog: Catalog,
}

impl World {
    pub fn new() -> World {
        let helm = FakeHelm::new();
        World {
            cluster: FakeCluster::new(helm.releases_dir()),
            helm,
            catalog: Catalog::new(),
        }
    }

    /// Two stores, one of each engine.
    pub fn with_two_stores() -> World {
        let w = World::new();
        w.catalog
            .store("acme", &store_yaml("acme", "woocommerce", "small", "team-acme"));
        w.catalog
            .store("bobs", &store_yaml("bobs", "medusa", "medium", "team-bikes"));
        w
    }

    pub fn applier(&self) -> Applier {
        let helm = Helm {
            binary: self.helm.binary(),
            charts_dir: repo_root().join("charts"),
            timeout: Duration::from_secs(60),
            allowed_chart_prefixes: Vec::new(),
        };
        Applier::new(self.cluster.client(), helm)
    }

    pub async fn sync_with(&self, options: PlanOptions) -> SyncOutcome {
        let snapshot =
            storesync::source::read(&self.catalog.args().location(), None, &Default::default()).unwrap();
        sync::sync(&self.applier(), &snapshot, options)
            .await
            .expect("sync runs")
    }

    /// One sync with `applier` (the daemon keeps one for all its syncs): its plan and result.
    #[allow(dead_code)] // prune.rs shares this file and does not use it
    pub async fn sync_by(&self, applier: &Applier) -> sync::Synced {
        let snapshot =
            storesync::source::read(&self.catalog.args().location(), None, &Default::default()).unwrap();
        match sync::sync(applier, &snapshot, PlanOptions::default())
            .await
            .expect("sync runs")
        {
            SyncOutcome::Done(synced) => *synced,
            SyncOutcome::Invalid(findings) => panic!("invalid catalog: {findings:?}"),
        }
    }

    pub async fn sync(&self) -> storesync::apply::SyncReport {
        match self.sync_with(PlanOptions::default()).await {
            SyncOutcome::Done(synced) => synced.report,
            SyncOutcome::Invalid(findings) => panic!("invalid catalog: {findings:?}"),
        }
    }
}

pub fn cluster_options(w: &World) -> storesync::commands::ClusterOptions {
    storesync::commands::ClusterOptions {
        helm: w.helm.binary(),
        charts_dir: repo_root().join("charts"),
        helm_timeout: Duration::from_secs(60),
        concurrency: 2,
        api_timeout: Duration::from_secs(60),
        allow_prune_all: false,
        allowed_chart_prefixes: Vec::new(),
        namespace: None,
        store_cluster_role: "storesync-store".into(),
        health_grace: Duration::from_secs(120),
    }
}

pub async fn apply_cli(w: &World, output: storesync::config::OutputFormat) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = storesync::commands::apply(
        w.cluster.client(),
        &w.catalog.args(),
        &cluster_options(w),
        storesync::commands::ApplyRequest {
            output,
            ..Default::default()
        },
        &mut out,
        &mut err,
    )
    .await
    .unwrap();
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}
