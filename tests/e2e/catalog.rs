//! Stores repositories for the suite: a real Git repository (libgit2) in a temporary directory,
//! a platform config whose only engine is the tiny chart, and store files. storesync is always
//! run with `--rev <sha>`, so what it syncs is a commit, as the daemon does.
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::harness::tiny_chart;

/// The suite's platform: small plans (a pause pod needs little), the tiny engine, tight limits.
#[derive(Debug, Clone)]
pub struct Platform {
    /// `pods` of the small plan's quota: the guardrail the "guardrail only" scenario changes.
    pub small_pods: u32,
    pub max_prunes_per_sync: u32,
    pub max_stores: u32,
    /// `prune.retention`, left out (storesync's default, `168h`: a removed store is retired)
    /// when `None`; `Some("0s")` deletes a removed store at once.
    pub retention: Option<String>,
    /// Engine names, each installing the tiny chart: a second one lets a store file change its
    /// engine (the retire scenario's blocked variant).
    pub engines: Vec<&'static str>,
    /// Platform-wide chart values of every engine (`engines.<name>.values`, under each store's
    /// own values), left out when empty: a change here updates every store at once.
    pub engine_values: Map<String, Value>,
    /// `rollout`, left out (every update at once) when `None`.
    pub rollout: Option<Rollout>,
}

/// `rollout` of `storesync.yaml`: updates of two stores or more go in waves, each judged by store
/// health (the canaries alone first, then cumulative shares of the others by name).
#[derive(Debug, Clone)]
pub struct Rollout {
    pub canaries: Vec<String>,
    /// Cumulative shares, `50%` … `100%`.
    pub waves: Vec<&'static str>,
    pub max_unhealthy: u32,
    pub health_timeout: &'static str,
    pub soak: &'static str,
    /// `halt` or `rollback`.
    pub on_failure: &'static str,
}

impl Rollout {
    fn json(&self) -> Value {
        json!({
            "canaries": self.canaries,
            "waves": self.waves,
            "maxUnhealthy": self.max_unhealthy,
            "healthTimeout": self.health_timeout,
            "soak": self.soak,
            "onFailure": self.on_failure,
        })
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            small_pods: 4,
            max_prunes_per_sync: 2,
            max_stores: 50,
            retention: None,
            engines: vec![TINY],
            engine_values: Map::new(),
            rollout: None,
        }
    }
}

/// The suite's engine: the tiny chart.
pub const TINY: &str = "tiny";

impl Platform {
    /// The default platform with `prune.retention` set to `retention`.
    pub fn with_retention(retention: &str) -> Platform {
        Platform {
            retention: Some(retention.into()),
            ..Platform::default()
        }
    }
}

/// Container limits of a plan's LimitRange.
pub struct ContainerLimits {
    pub default: BTreeMap<String, String>,
    pub default_request: BTreeMap<String, String>,
    pub max: BTreeMap<String, String>,
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Platform {
    /// `spec.hard` of `store-quota` for `plan`. Every quantity is in the API server's canonical
    /// form, so the live object reads back exactly as written and a second sync sees no drift.
    pub fn quota(&self, plan: &str) -> BTreeMap<String, String> {
        let small_pods = self.small_pods.to_string();
        let pairs: [(&str, &str); 7] = match plan {
            "small" => [
                ("requests.cpu", "200m"),
                ("requests.memory", "256Mi"),
                ("limits.cpu", "400m"),
                ("limits.memory", "512Mi"),
                ("pods", &small_pods),
                ("services.loadbalancers", "0"),
                ("services.nodeports", "0"),
            ],
            "medium" => [
                ("requests.cpu", "400m"),
                ("requests.memory", "512Mi"),
                ("limits.cpu", "800m"),
                ("limits.memory", "1Gi"),
                ("pods", "8"),
                ("services.loadbalancers", "0"),
                ("services.nodeports", "0"),
            ],
            other => panic!("the suite has no plan `{other}`"),
        };
        map(&pairs)
    }

    pub fn container_limits(&self, plan: &str) -> ContainerLimits {
        let max = match plan {
            "small" => map(&[("cpu", "100m"), ("memory", "64Mi")]),
            "medium" => map(&[("cpu", "200m"), ("memory", "128Mi")]),
            other => panic!("the suite has no plan `{other}`"),
        };
        ContainerLimits {
            default: map(&[("cpu", "50m"), ("memory", "32Mi")]),
            default_request: map(&[("cpu", "10m"), ("memory", "16Mi")]),
            max,
        }
    }

    /// `storesync.yaml`.
    pub fn yaml(&self) -> String {
        let plan = |name: &str| {
            let c = self.container_limits(name);
            json!({
                "quota": self.quota(name),
                "limitRange": { "container": { "default": c.default, "defaultRequest": c.default_request, "max": c.max } },
            })
        };
        let mut engine = json!({
            // A chart directory name: apply and plan pass its parent as --charts-dir.
            "chart": tiny_chart().file_name().and_then(|n| n.to_str()).expect("chart name"),
            "version": "0.1.0",
            "valuesAllowlist": ["message", "image", "persistence"],
        });
        if !self.engine_values.is_empty() {
            engine["values"] = Value::Object(self.engine_values.clone());
        }
        let engines: Map<String, Value> = self
            .engines
            .iter()
            .map(|name| (name.to_string(), engine.clone()))
            .collect();
        let mut config = json!({
            "baseDomain": "e2e.storesync.test",
            "ingressClass": "nginx",
            "ingressNamespace": "ingress-nginx",
            "storesDir": "stores",
            "plans": { "small": plan("small"), "medium": plan("medium") },
            "engines": engines,
            "limits": {
                "maxStores": self.max_stores,
                "maxStoresPerOwner": self.max_stores,
                "maxPrunesPerSync": self.max_prunes_per_sync,
            },
        });
        if let Some(retention) = &self.retention {
            config["prune"] = json!({ "retention": retention });
        }
        if let Some(rollout) = &self.rollout {
            config["rollout"] = rollout.json();
        }
        serde_yaml_ng::to_string(&config).expect("platform YAML")
    }
}

/// One store file.
#[derive(Debug, Clone)]
pub struct StoreFile {
    pub name: String,
    pub engine: String,
    pub plan: String,
    pub owner: String,
    pub protected: bool,
    pub values: Map<String, Value>,
}

impl StoreFile {
    pub fn new(name: &str) -> StoreFile {
        StoreFile {
            name: name.to_string(),
            engine: TINY.into(),
            plan: "small".into(),
            owner: "team-e2e".into(),
            protected: false,
            values: Map::new(),
        }
    }

    pub fn engine(mut self, engine: &str) -> Self {
        self.engine = engine.into();
        self
    }

    pub fn plan(mut self, plan: &str) -> Self {
        self.plan = plan.into();
        self
    }

    pub fn owner(mut self, owner: &str) -> Self {
        self.owner = owner.into();
        self
    }

    pub fn protected(mut self) -> Self {
        self.protected = true;
        self
    }

    pub fn value(mut self, key: &str, value: &str) -> Self {
        self.values.insert(key.into(), Value::String(value.into()));
        self
    }

    /// A claim of the store, bound to the PersistentVolume `volume` (the tiny chart's
    /// `persistence`; see its pvc.yaml).
    pub fn claim(mut self, volume: &str) -> Self {
        self.values.insert(
            "persistence".into(),
            json!({ "enabled": true, "volumeName": volume }),
        );
        self
    }

    pub fn yaml(&self) -> String {
        let mut doc =
            json!({ "name": self.name, "engine": self.engine, "plan": self.plan, "owner": self.owner });
        if self.protected {
            doc["protected"] = Value::Bool(true);
        }
        if !self.values.is_empty() {
            doc["values"] = Value::Object(self.values.clone());
        }
        serde_yaml_ng::to_string(&doc).expect("store YAML")
    }
}

/// A stores repository: a Git work tree whose commits storesync syncs.
pub struct StoresRepo {
    dir: tempfile::TempDir,
    repo: git2::Repository,
}

impl StoresRepo {
    pub fn new(platform: &Platform) -> StoresRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        // On `main`, the branch `serve` tracks by default, whatever the machine's Git config says.
        let repo = git2::Repository::init_opts(
            dir.path(),
            git2::RepositoryInitOptions::new().initial_head("main"),
        )
        .expect("git init");
        let r = StoresRepo { dir, repo };
        r.platform(platform);
        std::fs::create_dir_all(r.path().join("stores")).expect("stores dir");
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The repository as a `file://` URL: storesync clones and fetches it like a remote, and
    /// (unlike a local path) does not watch it for commits.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    pub fn platform(&self, platform: &Platform) -> &Self {
        self.file("storesync.yaml", &platform.yaml())
    }

    pub fn put(&self, store: &StoreFile) -> &Self {
        self.file(&format!("stores/{}.yaml", store.name), &store.yaml())
    }

    pub fn remove(&self, store: &str) -> &Self {
        let path = self.path().join(format!("stores/{store}.yaml"));
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
        self
    }

    pub fn file(&self, rel: &str, text: &str) -> &Self {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        self
    }

    /// Commits the whole work tree (additions, edits and deletions) and returns the full sha.
    pub fn commit(&self, message: &str) -> String {
        let mut index = self.repo.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("git add");
        index.update_all(["*"], None).expect("git add -u");
        index.write().expect("write index");
        let tree = self
            .repo
            .find_tree(index.write_tree().expect("write tree"))
            .expect("tree");
        let who = git2::Signature::now("storesync e2e", "e2e@storesync.test").expect("signature");
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid = self
            .repo
            .commit(Some("HEAD"), &who, &who, message, &tree, &parents)
            .expect("git commit");
        oid.to_string()
    }
}
