//! A scenario-driven fake Kubernetes API server, in process: it keeps objects in memory,
//! answers LIST (label selectors, metadata-only lists), server-side apply, create, merge patch
//! and delete the way the real one does for what storesync uses, and records every request so
//! tests assert the exact calls (method, URI with query, body).
//!
//! Helm releases come from the fake helm (`FakeHelm`): it writes one file per release, and a
//! metadata LIST of Helm's release Secrets (`owner=helm`) reads them back; a GET of one release
//! Secret carries the revision's manifest encoded as Helm encodes it. What each upgrade rendered
//! is applied, before the next request is answered, as Helm would: objects replaced with the
//! server's defaults and `managedFields` of manager `helm`, objects gone from the chart deleted.
#![allow(dead_code)]

use super::fake_coordination as coordination;
use super::fake_rbac as rbac;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, exactly as sent.
    pub uri: String,
    pub body: Option<Value>,
    /// The user the request impersonated (`Impersonate-User`), if any.
    pub impersonate: Option<String>,
}

impl Recorded {
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    /// `METHOD uri`, for compact assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.uri)
    }
}

pub(super) type Key = (String, String, String); // (plural, namespace, name)
type Objects = BTreeMap<Key, Value>;

/// A way the API server fails, for the fault tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No answer at all: the connection is refused.
    Unreachable,
    /// 500 Internal Server Error to every request.
    ServerError,
    /// Reads answer; every write finds the connection refused (the server goes away mid-sync).
    UnreachableForWrites,
}

#[derive(Default)]
pub(super) struct State {
    fault: Option<Fault>,
    pub(super) objects: BTreeMap<Key, Value>,
    requests: Vec<Recorded>,
    pub(super) revision: u64,
    /// Namespaces deleted go Terminating instead of disappearing.
    slow_namespace_deletion: bool,
    /// Authorization decisions a RoleBinding write takes to reach RBAC's cache (0: at once).
    rbac_lag: usize,
    /// Decisions left before the last RoleBinding write is seen.
    rbac_stale: usize,
    /// Bytes of the fake helm's journal already applied.
    pub(super) journal_read: usize,
    /// Objects each release applied last: (namespace, name) -> keys.
    pub(super) release_objects: BTreeMap<(String, String), Vec<Key>>,
}

#[derive(Clone)]
pub struct FakeCluster {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) releases: PathBuf,
}

fn kind_of(plural: &str) -> (&'static str, &'static str) {
    match plural {
        "namespaces" => ("v1", "Namespace"),
        "resourcequotas" => ("v1", "ResourceQuota"),
        "limitranges" => ("v1", "LimitRange"),
        "secrets" => ("v1", "Secret"),
        "networkpolicies" => ("networking.k8s.io/v1", "NetworkPolicy"),
        "deployments" => ("apps/v1", "Deployment"),
        "statefulsets" => ("apps/v1", "StatefulSet"),
        "configmaps" => ("v1", "ConfigMap"),
        "services" => ("v1", "Service"),
        "persistentvolumeclaims" => ("v1", "PersistentVolumeClaim"),
        "ingresses" => ("networking.k8s.io/v1", "Ingress"),
        "events" => ("events.k8s.io/v1", "Event"),
        "leases" => ("coordination.k8s.io/v1", "Lease"),
        "serviceaccounts" => ("v1", "ServiceAccount"),
        "rolebindings" => ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        "jobs" => ("batch/v1", "Job"),
        "pods" => ("v1", "Pod"),
        _ => ("v1", "Unknown"),
    }
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    let labels = &obj["metadata"]["labels"];
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => labels[k].as_str() == Some(v),
            None => labels.get(term).is_some(),
        })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| decode(v))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn merge_maps(existing: &Value, incoming: &Value) -> Value {
    let mut out = existing.as_object().cloned().unwrap_or_default();
    if let Some(m) = incoming.as_object() {
        for (k, v) in m {
            if v.is_null() {
                out.remove(k);
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn refused() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")
}

/// A JSON merge patch (RFC 7386): maps merge, `null` removes, anything else replaces.
fn merge_patch_into(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch_into(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

pub(super) fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

impl FakeCluster {
    /// A cluster with its `default` namespace, as every real one has.
    pub fn new(releases: PathBuf) -> FakeCluster {
        let cluster = FakeCluster {
            state: Arc::new(Mutex::new(State::default())),
            releases,
        };
        cluster.insert("namespaces", "", json!({"metadata": {"name": "default"}}));
        cluster
    }

    /// A kube client that talks to this fake.
    pub fn client(&self) -> kube::Client {
        let me = self.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let me = me.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let accept = parts
                    .headers
                    .get("accept")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let impersonate = parts
                    .headers
                    .get("impersonate-user")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                let uri = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let body: Option<Value> = if bytes.is_empty() {
                    None
                } else {
                    serde_json::from_slice(&bytes).ok()
                };
                // The fake helm takes the API server down mid-operation by leaving this file.
                let fault = if me.helm_dir().join("cluster-down").exists() {
                    Some(Fault::Unreachable)
                } else {
                    me.state.lock().unwrap().fault
                };
                let write = parts.method != http::Method::GET;
                match fault {
                    Some(Fault::Unreachable) => return Err(refused()),
                    Some(Fault::UnreachableForWrites) if write => return Err(refused()),
                    _ => {}
                }
                let (code, reply) = match fault {
                    Some(Fault::ServerError) => status(500, "InternalError", "etcdserver: request timed out"),
                    _ => me.handle(parts.method.as_str(), &uri, &accept, body, impersonate),
                };
                let response = Response::builder()
                    .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(
                        serde_json::to_vec(&reply).unwrap_or_default(),
                    )))
                    .expect("response");
                Ok::<_, std::io::Error>(response)
            }
        });
        kube::Client::new(service, "default")
    }

    /// From now on the API server fails this way (`None`: it answers again).
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().fault = fault;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Every write to the cluster's objects. Events are left out: they record what happened
    /// and change nothing; [`FakeCluster::events`] has them.
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_write() && !r.uri.contains("/events.k8s.io/"))
            .collect()
    }

    /// The Events stored now, in every namespace: (namespace, Event).
    pub fn events(&self) -> Vec<(String, Value)> {
        let s = self.state.lock().unwrap();
        s.objects
            .iter()
            .filter(|((plural, _, _), _)| plural == "events")
            .map(|((_, ns, _), e)| (ns.clone(), e.clone()))
            .collect()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// RoleBinding writes take effect only after `decisions` more impersonated requests, as
    /// RBAC's informer cache lags behind a write on a real API server.
    pub fn rbac_lag(&self, decisions: usize) {
        self.state.lock().unwrap().rbac_lag = decisions;
    }

    pub fn slow_namespace_deletion(&self) {
        self.state.lock().unwrap().slow_namespace_deletion = true;
    }

    /// Puts an object in place as if someone else had created it.
    pub fn insert(&self, plural: &str, namespace: &str, mut obj: Value) {
        let mut s = self.state.lock().unwrap();
        s.revision += 1;
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        obj["metadata"]["uid"] = json!(format!("uid-{}", s.revision));
        obj["metadata"]["resourceVersion"] = json!(s.revision.to_string());
        if !namespace.is_empty() {
            obj["metadata"]["namespace"] = json!(namespace);
        }
        s.objects.insert((plural.into(), namespace.into(), name), obj);
    }

    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.apply_helm_journal();
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&(plural.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// Deletes a stored object as someone else would (`kubectl delete`).
    pub fn remove(&self, plural: &str, namespace: &str, name: &str) {
        self.apply_helm_journal();
        let mut s = self.state.lock().unwrap();
        s.objects.remove(&(plural.into(), namespace.into(), name.into()));
    }

    /// Names of the stored objects of a kind in a namespace, sorted.
    pub fn names(&self, plural: &str, namespace: &str) -> Vec<String> {
        self.apply_helm_journal();
        let s = self.state.lock().unwrap();
        s.objects
            .keys()
            .filter(|(p, n, _)| p == plural && n == namespace)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// Changes a stored object in place (drift made by hand).
    pub fn edit(&self, plural: &str, namespace: &str, name: &str, f: impl FnOnce(&mut Value)) {
        self.apply_helm_journal();
        let mut s = self.state.lock().unwrap();
        if let Some(obj) = s.objects.get_mut(&(plural.into(), namespace.into(), name.into())) {
            f(obj);
        }
    }

    fn handle(
        &self,
        method: &str,
        uri: &str,
        accept: &str,
        body: Option<Value>,
        impersonate: Option<String>,
    ) -> (u16, Value) {
        self.apply_helm_journal();
        self.state.lock().unwrap().requests.push(Recorded {
            method: method.into(),
            uri: uri.into(),
            body: body.clone(),
            impersonate: impersonate.clone(),
        });
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let rest = path
            .strip_prefix("/api/v1/")
            .or_else(|| path.strip_prefix("/apis/").and_then(|p| p.splitn(3, '/').nth(2)));
        let Some(rest) = rest else {
            return status(404, "NotFound", "unknown path");
        };
        let seg: Vec<&str> = rest.split('/').collect();
        // (plural, namespace, name)
        let (plural, ns, name) = match seg.as_slice() {
            ["namespaces"] => ("namespaces", "", None),
            ["namespaces", n] => ("namespaces", "", Some(*n)),
            ["namespaces", ns, plural] => (*plural, *ns, None),
            ["namespaces", ns, plural, name] => (*plural, *ns, Some(*name)),
            [plural] => (*plural, "", None),
            _ => return status(404, "NotFound", "unknown path"),
        };
        let dry_run = query_param(query, "dryRun").is_some();
        if plural == "rolebindings" && method != "GET" {
            let mut s = self.state.lock().unwrap();
            s.rbac_stale = s.rbac_lag;
        }
        // RBAC decides from the bindings as stored, unless its cache has yet to catch up.
        let stale = {
            let mut s = self.state.lock().unwrap();
            let stale = s.rbac_stale > 0 && impersonate.is_some();
            s.rbac_stale -= usize::from(stale);
            stale
        };
        let decide = |f: &dyn Fn(&Objects) -> (u16, Value)| {
            let s = self.state.lock().unwrap();
            if stale {
                let mut objects = s.objects.clone();
                objects.retain(|(p, _, _), _| p != "rolebindings");
                f(&objects)
            } else {
                f(&s.objects)
            }
        };
        // Anyone may ask what they may do; the answer is the RBAC decision for that identity.
        if plural == "selfsubjectaccessreviews" && method == "POST" {
            return decide(&|objects| {
                let mut review = body.clone().unwrap_or_default();
                review["status"]["allowed"] =
                    json!(rbac::allows(objects, impersonate.as_deref(), &review["spec"]));
                (201, review)
            });
        }
        if let Some(user) = &impersonate {
            let (code, refused) = decide(&|objects| match rbac::authorize(
                objects, user, method, plural, ns, name,
            ) {
                Ok(()) => (200, Value::Null),
                Err(refused) => refused,
            });
            if code != 200 {
                return (code, refused);
            }
        }
        match (method, name) {
            ("GET", None) => self.list(plural, ns, query, accept),
            // A release Secret written into the namespace (by a tenant) wins over the fake helm's.
            ("GET", Some(name))
                if plural == "secrets"
                    && name.starts_with("sh.helm.release.v1.")
                    && self.get(plural, ns, name).is_none() =>
            {
                match self.release_secret(ns, name) {
                    Some(o) => (200, o),
                    None => status(404, "NotFound", &format!("secrets \"{name}\" not found")),
                }
            }
            ("GET", Some(name)) => match self.get(plural, ns, name) {
                Some(o) => (200, o),
                None => status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
            },
            ("PATCH", Some(name))
                if query_param(query, "fieldManager").is_some() && query_param(query, "force").is_some() =>
            {
                self.apply(plural, ns, name, body.unwrap_or_default(), dry_run)
            }
            ("PATCH", Some(name)) => self.merge_patch(plural, ns, name, body.unwrap_or_default(), dry_run),
            ("PUT", Some(name)) => self.replace(plural, ns, name, body.unwrap_or_default()),
            ("POST", None) => self.create(plural, ns, body.unwrap_or_default(), dry_run),
            ("DELETE", Some(name)) => self.delete(plural, ns, name, body, dry_run),
            _ => status(405, "MethodNotAllowed", "not supported by the fake"),
        }
    }

    fn list(&self, plural: &str, ns: &str, query: &str, accept: &str) -> (u16, Value) {
        let selector = query_param(query, "labelSelector").unwrap_or_default();
        let (api_version, kind) = kind_of(plural);
        let mut items: Vec<Value> = {
            let s = self.state.lock().unwrap();
            s.objects
                .iter()
                .filter(|((p, n, _), _)| p == plural && (ns.is_empty() || n == ns))
                .map(|(_, o)| o.clone())
                .collect()
        };
        if plural == "secrets" {
            items.extend(self.helm_release_secrets());
        }
        items.retain(|o| matches_selector(o, &selector));
        if accept.contains("PartialObjectMetadata") {
            let items: Vec<Value> = items
                .into_iter()
                .map(|o| json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"]}))
                .collect();
            return (
                200,
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": items}),
            );
        }
        (
            200,
            json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items}),
        )
    }

    fn namespace_usable(&self, ns: &str) -> Result<(), (u16, Value)> {
        match self.get("namespaces", "", ns) {
            None => Err(status(404, "NotFound", &format!("namespaces \"{ns}\" not found"))),
            Some(n) if n["metadata"]["deletionTimestamp"].is_string() => Err(status(
                403,
                "Forbidden",
                &format!("namespace {ns} is being terminated"),
            )),
            Some(_) => Ok(()),
        }
    }

    fn apply(&self, plural: &str, ns: &str, name: &str, body: Value, dry_run: bool) -> (u16, Value) {
        if !ns.is_empty()
            && let Err(e) = self.namespace_usable(ns)
        {
            return e;
        }
        let mut s = self.state.lock().unwrap();
        let key = (plural.to_string(), ns.to_string(), name.to_string());
        let mut obj = body;
        match s.objects.get(&key) {
            Some(existing) => {
                // Fields of other managers (labels, annotations) stay; storesync's are replaced.
                let meta = &existing["metadata"];
                obj["metadata"]["uid"] = meta["uid"].clone();
                obj["metadata"]["labels"] = merge_maps(&meta["labels"], &obj["metadata"]["labels"]);
                obj["metadata"]["annotations"] =
                    merge_maps(&meta["annotations"], &obj["metadata"]["annotations"]);
                if meta["deletionTimestamp"].is_string() {
                    obj["metadata"]["deletionTimestamp"] = meta["deletionTimestamp"].clone();
                }
            }
            None => {
                obj["metadata"]["uid"] = json!(format!("uid-{}", s.revision + 1));
            }
        }
        if dry_run {
            return (200, obj);
        }
        s.revision += 1;
        obj["metadata"]["resourceVersion"] = json!(s.revision.to_string());
        s.objects.insert(key, obj.clone());
        (200, obj)
    }

    fn merge_patch(&self, plural: &str, ns: &str, name: &str, body: Value, dry_run: bool) -> (u16, Value) {
        let mut s = self.state.lock().unwrap();
        s.revision += 1;
        let rv = s.revision;
        let mut scratch: Option<Value>;
        let found = match dry_run {
            // A dry run answers what the patch would make, and stores nothing.
            true => {
                scratch = s.objects.get(&(plural.into(), ns.into(), name.into())).cloned();
                scratch.as_mut()
            }
            false => s.objects.get_mut(&(plural.into(), ns.into(), name.into())),
        };
        let Some(obj) = found else {
            return status(404, "NotFound", &format!("{plural} \"{name}\" not found"));
        };
        if let Err(e) = coordination::precondition(obj, &body, plural, name) {
            return e;
        }
        // A uid in a patch is a precondition: the API server refuses to patch another object
        // of the same name.
        if let Some(uid) = body["metadata"]["uid"].as_str()
            && obj["metadata"]["uid"].as_str() != Some(uid)
        {
            return status(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {plural} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    obj["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            );
        }
        merge_patch_into(obj, &body);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        (200, obj.clone())
    }

    fn create(&self, plural: &str, ns: &str, mut body: Value, dry_run: bool) -> (u16, Value) {
        if let Err(e) = self.namespace_usable(ns) {
            return e;
        }
        // The API server counts an Event's note in bytes.
        if plural == "events" && body["note"].as_str().is_some_and(|n| n.len() > 1024) {
            return status(
                422,
                "Invalid",
                "Event.events.k8s.io is invalid: note: Too long: may not be more than 1024 bytes",
            );
        }
        let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let mut s = self.state.lock().unwrap();
        let key = (plural.to_string(), ns.to_string(), name.clone());
        if s.objects.contains_key(&key) {
            return status(
                409,
                "AlreadyExists",
                &format!("{plural} \"{name}\" already exists"),
            );
        }
        if dry_run {
            return (201, body);
        }
        s.revision += 1;
        body["metadata"]["uid"] = json!(format!("uid-{}", s.revision));
        body["metadata"]["resourceVersion"] = json!(s.revision.to_string());
        s.objects.insert(key, body.clone());
        (201, body)
    }

    fn delete(&self, plural: &str, ns: &str, name: &str, body: Option<Value>, dry_run: bool) -> (u16, Value) {
        let mut s = self.state.lock().unwrap();
        let key = (plural.to_string(), ns.to_string(), name.to_string());
        let Some(existing) = s.objects.get(&key).cloned() else {
            return status(404, "NotFound", &format!("{plural} \"{name}\" not found"));
        };
        if let Some(uid) = body.as_ref().and_then(|b| b["preconditions"]["uid"].as_str())
            && existing["metadata"]["uid"].as_str() != Some(uid)
        {
            return status(
                409,
                "Conflict",
                "Precondition failed: UID in precondition does not match",
            );
        }
        if dry_run {
            return (200, existing);
        }
        if plural == "namespaces" {
            if s.slow_namespace_deletion {
                if let Some(o) = s.objects.get_mut(&key) {
                    o["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:00Z");
                }
            } else {
                s.objects.retain(|(_, n, _), _| n != name);
                s.objects.remove(&key);
            }
        } else {
            s.objects.remove(&key);
        }
        (200, existing)
    }
}
