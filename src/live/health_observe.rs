//! Observing store health in the drift check's pass over the cluster: the rendered objects'
//! LISTs are shared with the drift comparison, and two more label-selected, cluster-wide LISTs
//! (Pods, for the workloads' stuck containers, and Jobs, the engine charts' setup hooks) are
//! made once per pass, never per store. Pods are kept only as far as the rules read them.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::{ListParams, ObjectList};
use serde_json::{Value, json};

use super::health::{Judge, ObjectHealth, StoreHealth, object_health};
use super::observe::each_page;
use super::release::{DecodedRelease, HELM_MANAGED_SELECTOR, ReleaseRef};
use crate::error::Result;

/// Whose health to judge, and how.
#[derive(Debug, Clone)]
pub struct HealthJudge {
    /// The latest revision of each store's release.
    pub releases: Vec<ReleaseRef>,
    /// Seconds since the epoch.
    pub now: i64,
    /// How long a pod may wait in a stuck state before its workload is Degraded.
    pub grace: Duration,
}

/// Health being judged during one pass.
pub(super) struct Judging {
    now: i64,
    grace: Duration,
    /// namespace -> store, for the stores judged.
    stores: HashMap<String, String>,
    /// Pods of the judged namespaces, reduced to what the rules read.
    pods: HashMap<String, Vec<Value>>,
    objects: BTreeMap<String, Vec<ObjectHealth>>,
    /// Stores whose release storage could not be used: nothing of theirs is judged.
    unread: HashSet<String>,
}

impl Judging {
    pub(super) fn new(judge: &HealthJudge, releases: &[ReleaseRef]) -> Judging {
        let wanted: HashSet<&str> = judge.releases.iter().map(|r| r.store.as_str()).collect();
        Judging {
            now: judge.now,
            grace: judge.grace,
            stores: releases
                .iter()
                .filter(|r| wanted.contains(r.store.as_str()))
                .map(|r| (r.namespace.clone(), r.store.clone()))
                .collect(),
            pods: HashMap::new(),
            objects: judge
                .releases
                .iter()
                .map(|r| (r.store.clone(), Vec::new()))
                .collect(),
            unread: HashSet::new(),
        }
    }

    /// Lists Pods and Jobs once, and notes the stores whose release could not be read.
    pub(super) async fn read(
        &mut self,
        client: &Client,
        manifests: &[(ReleaseRef, Arc<DecodedRelease>)],
    ) -> Result<()> {
        let read: HashSet<&str> = manifests.iter().map(|(r, _)| r.store.as_str()).collect();
        self.unread = self
            .objects
            .keys()
            .filter(|s| !read.contains(s.as_str()))
            .cloned()
            .collect();
        if self.stores.is_empty() {
            return Ok(()); // nothing to judge: no LIST
        }
        let stores = &self.stores;
        let pods = &mut self.pods;
        each_page(
            "pods for the health check",
            HELM_MANAGED_SELECTOR,
            lister(client, "/api/v1/pods"),
            |page: Vec<Value>| {
                for pod in page {
                    let ns = text(&pod, "/metadata/namespace");
                    if stores.contains_key(ns) {
                        pods.entry(ns.to_string()).or_default().push(reduced(&pod));
                    }
                }
            },
        )
        .await?;
        let mut jobs = Vec::new();
        each_page(
            "jobs for the health check",
            HELM_MANAGED_SELECTOR,
            lister(client, "/apis/batch/v1/jobs"),
            |page: Vec<Value>| {
                jobs.extend(
                    page.into_iter()
                        .filter(|j| stores.contains_key(text(j, "/metadata/namespace"))),
                )
            },
        )
        .await?;
        // Setup Jobs are Helm hooks, outside the manifest: every Job of the namespace counts.
        for job in jobs {
            let ns = text(&job, "/metadata/namespace").to_string();
            if let Some(store) = self.stores.get(&ns).cloned() {
                self.judge(&store, "Job", &job);
            }
        }
        Ok(())
    }

    /// Judges a live object of `store`'s release.
    pub(super) fn judge(&mut self, store: &str, kind: &str, live: &Value) {
        let Some(objects) = self.objects.get_mut(store) else {
            return;
        };
        let ns = text(live, "/metadata/namespace");
        let pods: Vec<&Value> = self.pods.get(ns).map(|p| p.iter().collect()).unwrap_or_default();
        let judge = Judge {
            pods: &pods,
            now: self.now,
            grace: self.grace,
        };
        objects.push(object_health(kind, live, &judge));
    }

    /// An object `store`'s release rendered that the cluster does not hold.
    pub(super) fn missing(&mut self, store: &str, kind: &str, name: &str) {
        if let Some(objects) = self.objects.get_mut(store) {
            objects.push(ObjectHealth::missing(kind, name));
        }
    }

    /// Each judged store's health, its objects in a stable order.
    pub(super) fn finish(self) -> BTreeMap<String, StoreHealth> {
        let unread = self.unread;
        self.objects
            .into_iter()
            .map(|(store, mut objects)| {
                if unread.contains(&store) {
                    let why = "its release storage could not be read";
                    return (store, StoreHealth::only(super::health::Health::Unknown, why));
                }
                objects.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
                (store, StoreHealth::of(objects))
            })
            .collect()
    }
}

fn text<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// A pod as far as the health rules read it: name, namespace, creation, owner, template hash,
/// and its containers' waiting states and restarts.
fn reduced(pod: &Value) -> Value {
    let containers = |pointer: &str| -> Value {
        let list = pod.pointer(pointer).and_then(Value::as_array);
        Value::Array(
            list.into_iter()
                .flatten()
                .map(|c| {
                    json!({
                        "restartCount": c.get("restartCount").cloned().unwrap_or(Value::Null),
                        "state": {"waiting": {"reason": c.pointer("/state/waiting/reason").cloned().unwrap_or(Value::Null)}},
                    })
                })
                .collect(),
        )
    };
    json!({
        "metadata": {
            "name": text(pod, "/metadata/name"),
            "namespace": text(pod, "/metadata/namespace"),
            "creationTimestamp": text(pod, "/metadata/creationTimestamp"),
            "labels": {"pod-template-hash": text(pod, "/metadata/labels/pod-template-hash")},
            "ownerReferences": pod.pointer("/metadata/ownerReferences").cloned().unwrap_or(Value::Null),
        },
        "status": {
            "containerStatuses": containers("/status/containerStatuses"),
            "initContainerStatuses": containers("/status/initContainerStatuses"),
        },
    })
}

/// A paginated, raw LIST of `path`.
fn lister(
    client: &Client,
    path: &'static str,
) -> impl FnMut(
    ListParams,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = kube::Result<ObjectList<Value>>> + Send>> {
    let client = client.clone();
    move |params: ListParams| {
        let request = kube::core::Request::new(path).list(&params);
        let client = client.clone();
        Box::pin(async move {
            let request = request.map_err(kube::Error::BuildRequest)?;
            client.request::<ObjectList<Value>>(request).await
        })
    }
}
