//! The fake API server's view of the recording helm's files: Helm's release Secrets as a LIST
//! and a GET return them, and the journal of release changes applied as Helm would apply them
//! (objects replaced with server defaults, those gone from the chart deleted).
use std::path::PathBuf;

use serde_json::{Value, json};

use super::fake_cluster::{FakeCluster, Key};
use super::fake_release as release;

impl FakeCluster {
    pub(super) fn helm_release_secrets(&self) -> Vec<Value> {
        let mut items = Vec::new();
        let Ok(dir) = std::fs::read_dir(&self.releases) else {
            return items;
        };
        for entry in dir.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some((ns, name)) = file.split_once("__") else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines() {
                let mut parts = line.split_whitespace();
                let (Some(rev), Some(status)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let mut labels = json!({"owner": "helm", "name": name, "status": status, "version": rev});
                if let Some(hash) = parts.next().filter(|h| *h != "-") {
                    labels["storesync.dev/release-hash"] = json!(hash);
                }
                items.push(json!({"metadata": {
                    "name": format!("sh.helm.release.v1.{name}.v{rev}"), "namespace": ns, "labels": labels,
                }}));
            }
        }
        items
    }

    /// The fake helm's directory: releases, manifests and the journal.
    pub(super) fn helm_dir(&self) -> PathBuf {
        self.releases.parent().map(PathBuf::from).unwrap_or_default()
    }

    pub(super) fn manifest(&self, namespace: &str, name: &str, revision: &str) -> Option<String> {
        let path = self
            .helm_dir()
            .join(format!("manifests/{namespace}__{name}__{revision}.yaml"));
        std::fs::read_to_string(path)
            .ok()
            .map(|m| release::manifest_without_hooks(&m))
    }

    /// Applies the release changes the fake helm journaled since the last request.
    pub(super) fn apply_helm_journal(&self) {
        let path = self.helm_dir().join("journal");
        let size = std::fs::metadata(&path).map(|m| m.len() as usize).unwrap_or(0);
        if size <= self.state.lock().unwrap().journal_read {
            return;
        }
        let journal = std::fs::read_to_string(&path).unwrap_or_default();
        let new: Vec<String> = {
            let mut s = self.state.lock().unwrap();
            let start = s.journal_read.min(journal.len());
            s.journal_read = journal.len();
            journal[start..].lines().map(String::from).collect()
        };
        for line in new {
            let parts: Vec<&str> = line.split(' ').collect();
            let [op, ns, name, revision] = parts[..] else {
                continue;
            };
            let objects = match op {
                "apply" => self
                    .manifest(ns, name, revision)
                    .map(|m| release::objects_as_applied(&m, ns))
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let mut s = self.state.lock().unwrap();
            let mut keys = Vec::new();
            for (plural, obj_ns, mut obj) in objects {
                let key: Key = (
                    plural,
                    obj_ns,
                    obj["metadata"]["name"].as_str().unwrap_or_default().into(),
                );
                s.revision += 1;
                let uid = s.objects.get(&key).map_or_else(
                    || json!(format!("uid-{}", s.revision)),
                    |o| o["metadata"]["uid"].clone(),
                );
                let generation = s
                    .objects
                    .get(&key)
                    .and_then(|o| o["metadata"]["generation"].as_i64());
                obj["metadata"]["uid"] = uid;
                obj["metadata"]["resourceVersion"] = json!(s.revision.to_string());
                // `helm --wait` returned: the workloads rolled out and the claims are bound.
                obj["metadata"]["generation"] = json!(generation.unwrap_or(0) + 1);
                settled(&key.0, &mut obj);
                // An image tagged `crashloop` starts and dies, again and again: its workload
                // never becomes available, and its pod waits in CrashLoopBackOff.
                if let Some(pod) = crash_looping_pod(&key.0, &mut obj) {
                    let pod_key: Key = (
                        "pods".into(),
                        key.1.clone(),
                        pod["metadata"]["name"].as_str().unwrap_or_default().into(),
                    );
                    s.revision += 1;
                    s.objects.insert(pod_key, pod);
                } else if key.0 == "deployments" {
                    s.objects.remove(&(
                        "pods".to_string(),
                        key.1.clone(),
                        format!("{}-5f7b8c9d6e-x7k2p", key.2),
                    ));
                }
                let claims = claims_of_stateful_set(&key.0, &obj);
                s.objects.insert(key.clone(), obj);
                keys.push(key);
                // The StatefulSet controller creates a claim per template and ordinal, and
                // keeps it when the set scales down or goes (its default retention policy).
                for (claim_ns, claim) in claims {
                    let claim_key: Key = (
                        "persistentvolumeclaims".into(),
                        claim_ns,
                        claim["metadata"]["name"].as_str().unwrap_or_default().into(),
                    );
                    if !s.objects.contains_key(&claim_key) {
                        s.revision += 1;
                        let mut claim = claim;
                        claim["metadata"]["uid"] = json!(format!("uid-{}", s.revision));
                        claim["metadata"]["resourceVersion"] = json!(s.revision.to_string());
                        s.objects.insert(claim_key, claim);
                    }
                }
            }
            let before = s
                .release_objects
                .insert((ns.to_string(), name.to_string()), keys.clone())
                .unwrap_or_default();
            for gone in before.iter().filter(|k| !keys.contains(k)) {
                s.objects.remove(gone);
            }
        }
    }

    pub(super) fn release_secret(&self, namespace: &str, name: &str) -> Option<Value> {
        let rest = name.strip_prefix("sh.helm.release.v1.")?;
        let (release, revision) = rest.rsplit_once(".v")?;
        let history = std::fs::read_to_string(self.releases.join(format!("{namespace}__{release}"))).ok()?;
        let status = history.lines().find_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(revision)).then(|| parts.next().unwrap_or_default().to_string())
        })?;
        let manifest = self.manifest(namespace, release, revision).unwrap_or_default();
        Some(release::release_secret(
            namespace,
            release,
            revision.parse().ok()?,
            &status,
            &manifest,
        ))
    }
}

/// When `obj` is a Deployment whose image is tagged `crashloop`: its status as its controller
/// reports a rollout that never becomes available, and the pod that keeps crashing.
fn crash_looping_pod(plural: &str, obj: &mut Value) -> Option<Value> {
    if plural != "deployments" {
        return None;
    }
    let containers = obj["spec"]["template"]["spec"]["containers"].as_array()?.clone();
    let bad = containers
        .iter()
        .find(|c| c["image"].as_str().is_some_and(|i| i.ends_with(":crashloop")))?;
    obj["status"]["readyReplicas"] = json!(0);
    obj["status"]["availableReplicas"] = json!(0);
    let (name, ns) = (
        obj["metadata"]["name"].as_str().unwrap_or_default().to_string(),
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    let now = storesync::text::unix_now();
    Some(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{name}-5f7b8c9d6e-x7k2p"), "namespace": ns,
            "creationTimestamp": storesync::text::rfc3339(now - 600),
            "labels": {"app.kubernetes.io/managed-by": "Helm", "pod-template-hash": "5f7b8c9d6e"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{name}-5f7b8c9d6e"), "uid": "rs-1", "controller": true}],
        },
        "status": {"phase": "Running", "containerStatuses": [{"name": bad["name"], "ready": false,
            "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    }))
}

/// The claims a StatefulSet's controller creates: `<template>-<set>-<ordinal>`, bound.
fn claims_of_stateful_set(plural: &str, obj: &Value) -> Vec<(String, Value)> {
    if plural != "statefulsets" {
        return Vec::new();
    }
    let (set, ns) = (
        obj["metadata"]["name"].as_str().unwrap_or_default(),
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
    );
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let templates = obj["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for template in templates {
        let name = template["metadata"]["name"].as_str().unwrap_or_default();
        for ordinal in 0..replicas {
            out.push((
                ns.to_string(),
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": format!("{name}-{set}-{ordinal}"), "namespace": ns,
                        "labels": template["metadata"]["labels"].clone()},
                    "spec": template["spec"].clone(), "status": {"phase": "Bound"}}),
            ));
        }
    }
    out
}

/// An object as its controllers leave it once `helm --wait` returned: every replica updated and
/// ready, a claim bound.
fn settled(plural: &str, obj: &mut Value) {
    let generation = obj["metadata"]["generation"].clone();
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    match plural {
        "deployments" => {
            obj["status"] = json!({"observedGeneration": generation, "replicas": replicas,
                "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
        }
        "statefulsets" => {
            obj["status"] = json!({"observedGeneration": generation, "replicas": replicas,
                "updatedReplicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas,
                "currentRevision": "rev-1", "updateRevision": "rev-1"});
        }
        "persistentvolumeclaims" => obj["status"] = json!({"phase": "Bound"}),
        _ => {}
    }
}
