//! What the fake API server does for coordination between replicas: replace (PUT) of any
//! object guarded by `resourceVersion` (409 Conflict when stale, as the real one answers), the
//! same guard on merge patches that carry one, and clients that can be cut off from the server
//! one at a time (a replica partitioned away while the others still reach it), or whose Lease
//! writes are answered late (done at once by the server, the answer held back on the way).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
/// hang (no answer ever), slow down and restore.
#[derive(Clone, Default)]
pub struct Link {
    cut: Arc<AtomicBool>,
    hung: Arc<AtomicBool>,
    late: Arc<Mutex<LateWrites>>,
}

/// Lease writes whose answers are held back: by how long, and when each one answered so was
/// sent (in the test's time, paused or not).
#[derive(Default)]
struct LateWrites {
    delay: Option<Duration>,
    sent: Vec<tokio::time::Instant>,
}

impl Link {
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    pub fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
    }

    /// Every Lease write (PUT, POST) from now on is done by the server at once and answered
    /// `delay` later.
    pub fn answer_lease_writes_after(&self, delay: Duration) {
        self.late.lock().unwrap().delay = Some(delay);
    }

    /// When the Lease writes that were answered late were sent, oldest first.
    pub fn late_lease_writes(&self) -> Vec<tokio::time::Instant> {
        self.late.lock().unwrap().sent.clone()
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.hung.store(false, Ordering::SeqCst);
        self.late.lock().unwrap().delay = None;
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
        let link = link.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let (inner, link) = (inner.clone(), link.clone());
            async move {
                if link.hung.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                if link.cut.load(Ordering::SeqCst) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "connection refused",
                    ));
                }
                let lease_write = req.method() != http::Method::GET && req.uri().path().contains("/leases");
                let delay = lease_write.then(|| link.late.lock().unwrap().delay).flatten();
                let sent = tokio::time::Instant::now();
                let answer = inner.send(req).await.map_err(std::io::Error::other)?;
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                    link.late.lock().unwrap().sent.push(sent);
                }
                Ok(answer)
            }
        });
        kube::Client::new(service, "default")
    }

    /// The Lease `name` in `namespace`, as stored.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.get("leases", namespace, name)
    }
}
