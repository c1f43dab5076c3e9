//! What the fake API server does for coordination between replicas: replace (PUT) of any
//! object guarded by `resourceVersion` (409 Conflict when stale, as the real one answers), the
//! same guard on merge patches that carry one, and clients that can be cut off from the server
//! one at a time (a replica partitioned away while the others still reach it).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use super::fake_cluster::{FakeCluster, status};

/// 409 when `body` names a `resourceVersion` other than the stored object's.
pub(super) fn precondition(
    existing: &Value,
    body: &Value,
    plural: &str,
    name: &str,
) -> Result<(), (u16, Value)> {
    let Some(wanted) = body["metadata"]["resourceVersion"].as_str() else {
        return Ok(());
    };
    if existing["metadata"]["resourceVersion"].as_str() == Some(wanted) {
        return Ok(());
    }
    Err(status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again"
        ),
    ))
}

/// A replica's own connection to the fake API server, which a test can cut (refused), make
/// hang (no answer ever) and restore.
#[derive(Clone, Default)]
pub struct Link {
    cut: Arc<AtomicBool>,
    hung: Arc<AtomicBool>,
}

impl Link {
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    pub fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.hung.store(false, Ordering::SeqCst);
    }
}

impl FakeCluster {
    /// PUT: the whole object replaced, when it exists and the version read is still current.
    pub(super) fn replace(&self, plural: &str, ns: &str, name: &str, mut body: Value) -> (u16, Value) {
        let mut s = self.state.lock().unwrap();
        let key = (plural.to_string(), ns.to_string(), name.to_string());
        let Some(existing) = s.objects.get(&key) else {
            return status(404, "NotFound", &format!("{plural} \"{name}\" not found"));
        };
        if let Err(e) = precondition(existing, &body, plural, name) {
            return e;
        }
        body["metadata"]["uid"] = existing["metadata"]["uid"].clone();
        if !ns.is_empty() {
            body["metadata"]["namespace"] = json!(ns);
        }
        s.revision += 1;
        body["metadata"]["resourceVersion"] = json!(s.revision.to_string());
        s.objects.insert(key, body.clone());
        (200, body)
    }

    /// A client whose requests fail as refused while `link` is cut; others are not affected.
    pub fn client_over(&self, link: &Link) -> kube::Client {
        let inner = self.client();
        let (cut, hung) = (link.cut.clone(), link.hung.clone());
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let (inner, cut, hung) = (inner.clone(), cut.clone(), hung.clone());
            async move {
                if hung.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                if cut.load(Ordering::SeqCst) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "connection refused",
                    ));
                }
                inner.send(req).await.map_err(std::io::Error::other)
            }
        });
        kube::Client::new(service, "default")
    }

    /// The Lease `name` in `namespace`, as stored.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.get("leases", namespace, name)
    }
}
