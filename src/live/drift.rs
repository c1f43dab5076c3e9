//! Drift of the objects a store's chart rendered: each release's manifest, as Helm stored it,
//! compared with the live objects on the fields the chart sets.
//!
//! Cost of a check: one label-selected (`app.kubernetes.io/managed-by=Helm`), cluster-wide,
//! paginated LIST per kind the manifests hold, never a write. A release's manifest is fetched
//! (one GET of its release Secret, as the store's own identity) once per revision and kept in
//! memory, compressed, so a check of unchanged stores fetches none. Live objects are compared
//! page by page and dropped.
//!
//! A store's team can write its release Secrets, so they are decoded within bounds (see
//! [`super::release`]), on blocking threads, two at a time in the whole process; a Secret that
//! does not decode costs one GET and one decode per revision, and is then reported from memory.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, ObjectList};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::compare::drifted_fields;
use super::health::StoreHealth;
use super::health_observe::{HealthJudge, Judging};
use super::observe::each_page;
use super::release::{
    DecodedRelease, HELM_MANAGED_SELECTOR, ReleaseRef, RenderedObject, decode_release, secret_name,
};
use super::tenant::store_client;
use crate::error::{Error, Result};
use crate::text::truncate;
use crate::untrusted::printable;

/// How often a sync compares chart-rendered objects with the cluster, unless told otherwise.
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(600);
/// Fields listed per release; the rest are counted.
const MAX_FIELDS: usize = 20;
/// Release Secrets fetched at once on a cold cache (after a restart).
const FETCHES_AT_ONCE: usize = 8;
/// Releases decoded at once in the process: each may take 8 MiB and tens of milliseconds.
const DECODES_AT_ONCE: usize = 2;
/// Confinement violations quoted in a store's reason.
const REFUSED_SHOWN: usize = 3;

/// Decodes running now, process-wide, whatever number of drift checks there are.
static DECODES: Semaphore = Semaphore::const_new(DECODES_AT_ONCE);

/// Kinds whose objects are compared, as `(apiVersion, kind, plural)`. Secrets never are: their
/// data is never read. Objects of other kinds are left out (and logged).
const KINDS: &[(&str, &str, &str)] = &[
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    ("apps/v1", "DaemonSet", "daemonsets"),
    ("v1", "Service", "services"),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("batch/v1", "CronJob", "cronjobs"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
];

/// What one pass found: drift of the releases compared, health of the stores judged.
#[derive(Debug, Default)]
pub struct Observation {
    pub drift: BTreeMap<String, Drift>,
    pub health: BTreeMap<String, StoreHealth>,
}

/// A field of a chart-rendered object that differs in the cluster; `field` is `None` when the
/// object itself is gone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DriftedField {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl std::fmt::Display for DriftedField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} {} {field}", self.kind, self.name),
            None => write!(f, "{} {} is missing", self.kind, self.name),
        }
    }
}

/// What changed in the cluster under one release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The first fields found, in object order.
    pub fields: Vec<DriftedField>,
    /// Fields found beyond those listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub more: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `Deployment acme-wordpress spec.replicas; ConfigMap acme-apache data.x (and 2 more)`.
    pub fn summary(&self) -> String {
        let listed: Vec<String> = self.fields.iter().map(ToString::to_string).collect();
        let mut text = listed.join("; ");
        if self.more > 0 {
            text.push_str(&format!(" (and {} more)", self.more));
        }
        text
    }

    fn push(&mut self, field: DriftedField) {
        if self.fields.len() < MAX_FIELDS {
            self.fields.push(field);
        } else {
            self.more += 1;
        }
    }
}

type ReleaseKey = (String, String, u32);
/// The rendered objects of one kind by (namespace, name), with the store they belong to.
type Wanted<'a> = HashMap<(String, String), (&'a str, &'a RenderedObject)>;
/// A revision as read once: decoded, or why its Secret cannot be used (naming the Secret).
type Decoded = std::result::Result<Arc<DecodedRelease>, String>;

fn key_of(r: &ReleaseRef) -> ReleaseKey {
    (r.namespace.clone(), r.name.clone(), r.revision)
}

struct Cached {
    release: Decoded,
    /// The check that last used it: entries two checks old belong to superseded revisions or
    /// stores that are gone.
    used: u64,
}

/// Drift checks of one process: how often, when last, and the releases read so far (decode
/// failures included, so a bad Secret is read once per revision).
pub struct DriftCheck {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    manifests: Mutex<HashMap<ReleaseKey, Cached>>,
    generation: Mutex<u64>,
    /// What the last check found per release revision: it stands until the next check, so a
    /// sync between checks still repairs (or reports) it instead of calling the store in sync.
    found: Mutex<HashMap<ReleaseKey, Drift>>,
    /// Each store's health as last judged: it stands until the next judgement.
    health: Mutex<BTreeMap<String, StoreHealth>>,
}

impl std::fmt::Debug for DriftCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftCheck")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Default for DriftCheck {
    fn default() -> Self {
        DriftCheck::new(DEFAULT_DRIFT_INTERVAL)
    }
}

impl DriftCheck {
    pub fn new(interval: Duration) -> DriftCheck {
        DriftCheck {
            interval,
            last: Mutex::new(None),
            manifests: Mutex::new(HashMap::new()),
            generation: Mutex::new(0),
            found: Mutex::new(HashMap::new()),
            health: Mutex::new(BTreeMap::new()),
        }
    }

    /// Each store's health as last judged (stores judged since, or gone, replaced or dropped).
    pub fn last_health(&self) -> BTreeMap<String, StoreHealth> {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether the last successful check is older than the interval (or there was none).
    pub fn is_due(&self) -> bool {
        self.last
            .lock()
            .map(|last| last.is_none_or(|at| at.elapsed() >= self.interval))
            .unwrap_or(true)
    }

    /// Records a sync's check: the next is due an interval from now.
    pub fn checked(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(Instant::now());
        }
    }

    /// Release revisions held now (those that failed to decode included), and bytes.
    pub fn cached(&self) -> (usize, usize) {
        let cache = self.manifests.lock().map(|c| {
            let bytes = c
                .values()
                .map(|e| match &e.release {
                    Ok(release) => release.held_bytes(),
                    Err(why) => why.len(),
                })
                .sum();
            (c.len(), bytes)
        });
        cache.unwrap_or_default()
    }

    /// Revision `r` of a release, decoded: from memory, or read once from its Secret (as the
    /// store's identity) and kept. `None` when the Secret is gone. A Secret that does not decode
    /// is `Error::Unreadable` with the reason, every time, without being read again.
    pub async fn release(&self, client: &Client, r: &ReleaseRef) -> Result<Option<Arc<DecodedRelease>>> {
        let generation = *self.generation.lock().map_err(|_| poisoned())?;
        let key = key_of(r);
        let cached = {
            let mut cache = self.manifests.lock().map_err(|_| poisoned())?;
            cache.get_mut(&key).map(|entry| {
                entry.used = entry.used.max(generation);
                entry.release.clone()
            })
        };
        let decoded = match cached {
            Some(decoded) => decoded,
            None => match read_release(client, r).await? {
                Some(decoded) => {
                    self.keep(r, decoded.clone(), generation);
                    decoded
                }
                None => return Ok(None),
            },
        };
        decoded.map(Some).map_err(Error::Unreadable)
    }

    /// Why the current revision of each of `releases` is not to be acted on, by store, as far
    /// as read so far: its Secret does not decode, or its manifest names objects a store's
    /// release may not hold. Reads nothing.
    pub fn refused(&self, releases: &[ReleaseRef]) -> BTreeMap<String, String> {
        let Ok(cache) = self.manifests.lock() else {
            return BTreeMap::new();
        };
        releases
            .iter()
            .filter_map(|r| {
                let why = match &cache.get(&key_of(r))?.release {
                    Err(why) => why.clone(),
                    Ok(release) => confinement_summary(r, release)?,
                };
                Some((r.store.clone(), why))
            })
            .collect()
    }

    /// Keeps a revision as read; a failure is logged here, once per revision.
    fn keep(&self, r: &ReleaseRef, release: Decoded, generation: u64) {
        if let Err(why) = &release {
            warn!(store = %r.store, reason = %why, "release storage cannot be used; reported on the store until a new revision");
        }
        if let Ok(mut cache) = self.manifests.lock() {
            cache.insert(
                key_of(r),
                Cached {
                    release,
                    used: generation,
                },
            );
        }
    }

    /// Compares the objects of `releases` with the cluster: the drift of each store that has
    /// some. A release whose Secret cannot be read, does not decode, or whose manifest reaches
    /// outside its store (see [`DriftCheck::refused`]) is left out; an API server that does not
    /// answer, or a LIST it refuses, fails the check.
    pub async fn check(&self, client: &Client, releases: &[ReleaseRef]) -> Result<BTreeMap<String, Drift>> {
        Ok(self.observe(client, releases, None).await?.drift)
    }

    /// One pass over the cluster: the drift of `compare`'s releases and, with `judge`, the health
    /// of its releases' stores, from the same LISTs (plus Pods and Jobs for health).
    pub async fn observe(
        &self,
        client: &Client,
        compare: &[ReleaseRef],
        judge: Option<&HealthJudge>,
    ) -> Result<Observation> {
        let mut releases: Vec<ReleaseRef> = compare.to_vec();
        if let Some(j) = judge {
            releases.extend(j.releases.iter().filter(|r| !compare.contains(r)).cloned());
        }
        let releases = releases.as_slice();
        let comparing: HashSet<&str> = compare.iter().map(|r| r.store.as_str()).collect();
        let mut health = judge.map(|j| Judging::new(j, releases));
        let generation = {
            let mut g = self.generation.lock().map_err(|_| poisoned())?;
            *g += 1;
            *g
        };
        let manifests = self.manifests(client, releases, generation).await?;
        if let Some(h) = health.as_mut() {
            h.read(client, &manifests).await?;
        }
        // kind -> (namespace, name) -> (store, rendered object)
        let mut index: BTreeMap<&str, Wanted<'_>> = BTreeMap::new();
        for (release, decoded) in &manifests {
            for o in &decoded.objects {
                match KINDS.iter().find(|(v, k, _)| *v == o.api_version && *k == o.kind) {
                    Some((_, kind, _)) => {
                        index
                            .entry(kind)
                            .or_default()
                            .insert((o.namespace.clone(), o.name.clone()), (release.store.as_str(), o));
                    }
                    None => debug!(kind = %o.kind, name = %o.name, "kind not compared for drift"),
                }
            }
        }
        let mut drift: BTreeMap<String, Vec<DriftedField>> = BTreeMap::new();
        for (kind, wanted) in &index {
            let (api_version, _, plural) = KINDS
                .iter()
                .find(|(_, k, _)| k == kind)
                .copied()
                .unwrap_or_default();
            // A raw LIST: the objects are compared as JSON, so they are decoded once, as JSON.
            let path = match api_version.split_once('/') {
                Some((group, version)) => format!("/apis/{group}/{version}/{plural}"),
                None => format!("/api/{api_version}/{plural}"),
            };
            let mut seen: HashSet<&(String, String)> = HashSet::new();
            let what = format!("{plural} for the drift check");
            let mut compare = |page: Vec<Value>| {
                for live in page {
                    let text = |p: &str| {
                        live.pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    let at = (text("/metadata/namespace"), text("/metadata/name"));
                    let Some((key, (store, rendered))) = wanted.get_key_value(&at) else {
                        continue;
                    };
                    seen.insert(key);
                    if let Some(h) = health.as_mut() {
                        h.judge(store, kind, &live);
                    }
                    if !comparing.contains(store) {
                        continue;
                    }
                    let rendered = match rendered.body() {
                        Ok(v) => v,
                        Err(e) => {
                            warn!(%kind, name = key.1, error = %e, "cannot read a cached manifest object");
                            continue;
                        }
                    };
                    for field in drifted_fields(&rendered, &live) {
                        drift.entry(store.to_string()).or_default().push(DriftedField {
                            kind: kind.to_string(),
                            name: key.1.clone(),
                            field: Some(field),
                        });
                    }
                }
            };
            let list = |params: ListParams| {
                let request = kube::core::Request::new(path.clone()).list(&params);
                let client = client.clone();
                async move {
                    let request = request.map_err(kube::Error::BuildRequest)?;
                    client.request::<ObjectList<Value>>(request).await
                }
            };
            each_page(&what, HELM_MANAGED_SELECTOR, list, &mut compare).await?;
            for (key, (store, _)) in wanted {
                if !seen.contains(key) {
                    if let Some(h) = health.as_mut() {
                        h.missing(store, kind, &key.1);
                    }
                    if !comparing.contains(store) {
                        continue;
                    }
                    drift.entry(store.to_string()).or_default().push(DriftedField {
                        kind: kind.to_string(),
                        name: key.1.clone(),
                        field: None,
                    });
                }
            }
        }
        let found: BTreeMap<String, Drift> = drift
            .into_iter()
            .map(|(store, mut fields)| {
                fields.sort();
                let mut d = Drift::default();
                fields.into_iter().for_each(|f| d.push(f));
                (store, d)
            })
            .collect();
        info!(
            releases = releases.len(),
            kinds = index.len(),
            drifted = found.len(),
            "drift check"
        );
        let compared = manifests
            .iter()
            .map(|(r, _)| r)
            .filter(|r| comparing.contains(r.store.as_str()));
        self.remember(compare, compared, &found);
        let health = health.map(Judging::finish).unwrap_or_default();
        if judge.is_some()
            && let Ok(mut last) = self.health.lock()
        {
            // A judgement covers every store with a release: the others are gone.
            *last = health.clone();
        }
        Ok(Observation { drift: found, health })
    }

    /// Keeps what a check found for the releases it compared; forgets superseded revisions.
    fn remember<'a>(
        &self,
        releases: &[ReleaseRef],
        compared: impl Iterator<Item = &'a ReleaseRef>,
        found: &BTreeMap<String, Drift>,
    ) {
        let Ok(mut remembered) = self.found.lock() else {
            return;
        };
        let current: HashMap<(&str, &str), u32> = releases
            .iter()
            .map(|r| ((r.namespace.as_str(), r.name.as_str()), r.revision))
            .collect();
        remembered.retain(|(ns, name, revision), _| {
            current
                .get(&(ns.as_str(), name.as_str()))
                .is_none_or(|r| r == revision)
        });
        for r in compared {
            let key = (r.namespace.clone(), r.name.clone(), r.revision);
            match found.get(&r.store) {
                Some(drift) => remembered.insert(key, drift.clone()),
                None => remembered.remove(&key),
            };
        }
    }

    /// What the last check found for `releases` at their current revisions, between checks.
    pub fn last_found(&self, releases: &[ReleaseRef]) -> BTreeMap<String, Drift> {
        let Ok(remembered) = self.found.lock() else {
            return BTreeMap::new();
        };
        releases
            .iter()
            .filter_map(|r| {
                let drift = remembered.get(&(r.namespace.clone(), r.name.clone(), r.revision))?;
                Some((r.store.clone(), drift.clone()))
            })
            .collect()
    }

    /// The decoded releases to compare: from the cache, or read once from their Secrets. Those
    /// that do not decode or are refused are left out (their reasons stay in the cache).
    async fn manifests(
        &self,
        client: &Client,
        releases: &[ReleaseRef],
        generation: u64,
    ) -> Result<Vec<(ReleaseRef, Arc<DecodedRelease>)>> {
        let mut read = Vec::with_capacity(releases.len());
        let mut missing = Vec::new();
        {
            let mut cache = self.manifests.lock().map_err(|_| poisoned())?;
            for r in releases {
                match cache.get_mut(&key_of(r)) {
                    Some(entry) => {
                        entry.used = generation;
                        read.push((r.clone(), entry.release.clone()));
                    }
                    None => missing.push(r.clone()),
                }
            }
        }
        let limit = Arc::new(Semaphore::new(FETCHES_AT_ONCE));
        let mut tasks = JoinSet::new();
        for r in missing {
            let (client, limit) = (client.clone(), limit.clone());
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let read = read_release(&client, &r).await;
                (r, read)
            });
        }
        let mut unreachable = None;
        while let Some(joined) = tasks.join_next().await {
            let Ok((r, fetched)) = joined else { continue };
            match fetched {
                Ok(Some(decoded)) => {
                    self.keep(&r, decoded.clone(), generation);
                    read.push((r, decoded));
                }
                Ok(None) => {
                    debug!(release = %r.name, namespace = %r.namespace, "release revision gone since observed")
                }
                Err(e) if e.is_unreachable() => unreachable = Some(e),
                Err(e) => {
                    warn!(release = %r.name, namespace = %r.namespace, error = %e, "drift of this release not checked")
                }
            }
        }
        if let Some(e) = unreachable {
            return Err(e);
        }
        // A revision superseded by one just checked is gone for good; anything else unused for
        // two checks (a store pruned, suspended, or upgraded meanwhile) is dropped too.
        let latest: HashMap<(&str, &str), u32> = releases
            .iter()
            .map(|r| ((r.namespace.as_str(), r.name.as_str()), r.revision))
            .collect();
        if let Ok(mut cache) = self.manifests.lock() {
            cache.retain(|(ns, name, revision), e| {
                let superseded = latest
                    .get(&(ns.as_str(), name.as_str()))
                    .is_some_and(|newest| newest > revision);
                !superseded && e.used + 1 >= generation
            });
        }
        let mut found: Vec<(ReleaseRef, Arc<DecodedRelease>)> = read
            .into_iter()
            .filter_map(|(r, decoded)| match decoded {
                Ok(release) if release.refused.is_empty() => Some((r, release)),
                _ => {
                    debug!(store = %r.store, "release storage refused; its drift is not compared");
                    None
                }
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }
}

/// `Helm's release Secret <ns>/<name>: its manifest reaches outside <ns>: <first>; … (and N
/// more)`, when the release's manifest names objects a store's release may not hold.
fn confinement_summary(r: &ReleaseRef, release: &DecodedRelease) -> Option<String> {
    if release.refused.is_empty() {
        return None;
    }
    let shown = release.refused.len().min(REFUSED_SHOWN);
    let more = release.refused.len() - shown + release.refused_more;
    let mut why = format!(
        "Helm's release Secret {}/{}: its manifest reaches outside {}: {}",
        r.namespace,
        secret_name(&r.name, r.revision),
        r.namespace,
        release.refused[..shown].join("; ")
    );
    if more > 0 {
        why.push_str(&format!(" (and {more} more)"));
    }
    Some(why)
}

fn poisoned() -> Error {
    Error::Internal("the drift check's cache is unusable after a panic".into())
}

/// One GET of a release's Secret as the store's own identity, decoded off the async runtime:
/// `None` when it is gone; the inner error, why the Secret cannot be used, is kept for the
/// revision (unlike a failed GET, which is tried again).
async fn read_release(client: &Client, r: &ReleaseRef) -> Result<Option<Decoded>> {
    let name = secret_name(&r.name, r.revision);
    let api: Api<Secret> = Api::namespaced(store_client(client, &r.store), &r.namespace);
    let found = api.get_opt(&name).await.map_err(Error::kube(format!(
        "cannot read Helm's release Secret {}/{name}",
        r.namespace
    )))?;
    let Some(secret) = found else { return Ok(None) };
    let unusable = |why: String| format!("Helm's release Secret {}/{name}: {why}", r.namespace);
    let Some(payload) = secret.data.and_then(|mut d| d.remove("release")) else {
        return Ok(Some(Err(unusable("no data.release".into()))));
    };
    // The permit moves into the decode, so a check dropped mid-way frees it only once done.
    let permit = DECODES
        .acquire()
        .await
        .map_err(|_| Error::Internal("the release decoder is closed".into()))?;
    let namespace = r.namespace.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        decode_release(&payload.0, &namespace)
    })
    .await
    .unwrap_or_else(|e| Err(format!("decoding it failed: {e}")));
    let decoded = decoded.and_then(|release| {
        if release.name == r.name && release.version == r.revision {
            Ok(Arc::new(release))
        } else {
            let held = format!("{} v{}", release.name, release.version);
            Err(format!(
                "it holds release {}, not {} v{}",
                printable(&truncate(&held, 80)),
                r.name,
                r.revision
            ))
        }
    });
    Ok(Some(decoded.map_err(unusable)))
}
