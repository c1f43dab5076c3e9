//! For the tests of this module: an API server holding ConfigMaps of one namespace, with
//! `resourceVersion` checks as the real one does (a replace of an older version is a 409), and a
//! hook called before each replace, so a test can play a successor writing in between.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use kube::client::Body;
use serde_json::{Value, json};

type Hook = Box<dyn FnMut(u32) -> Option<u16> + Send>;

/// The objects by name, a version counter, the replaces answered and a hook: given the count of
/// replaces so far (1-based), it may answer one with a status of its own (409: someone wrote).
pub(super) struct FakeApi {
    objects: Mutex<BTreeMap<String, Value>>,
    version: Mutex<u64>,
    pub(super) replaces: Mutex<u32>,
    before_replace: Mutex<Option<Hook>>,
}

impl FakeApi {
    pub(super) fn new() -> Arc<FakeApi> {
        Arc::new(FakeApi {
            objects: Mutex::default(),
            version: Mutex::new(0),
            replaces: Mutex::new(0),
            before_replace: Mutex::new(None),
        })
    }

    pub(super) fn before_replace(&self, hook: impl FnMut(u32) -> Option<u16> + Send + 'static) {
        *self.before_replace.lock().unwrap() = Some(Box::new(hook));
    }

    pub(super) fn data(&self, name: &str) -> Value {
        self.objects.lock().unwrap()[name]["data"].clone()
    }

    pub(super) fn client(self: &Arc<Self>) -> kube::Client {
        let me = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let me = me.clone();
            async move {
                use http_body_util::BodyExt;
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let name = parts
                    .uri
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let (code, reply) = me.answer(parts.method.as_str(), &name, body);
                let response = Response::builder()
                    .status(StatusCode::from_u16(code).unwrap())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(serde_json::to_vec(&reply).unwrap())))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        kube::Client::new(service, "storesync")
    }

    fn next_version(&self) -> String {
        let mut v = self.version.lock().unwrap();
        *v += 1;
        v.to_string()
    }

    fn answer(&self, method: &str, name: &str, mut body: Value) -> (u16, Value) {
        let status = |code: u16, reason: &str| {
            (
                code,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": reason, "code": code, "message": reason}),
            )
        };
        match method {
            "GET" => match self.objects.lock().unwrap().get(name) {
                Some(obj) => (200, obj.clone()),
                None => status(404, "NotFound"),
            },
            "POST" => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
                if self.objects.lock().unwrap().contains_key(&name) {
                    return status(409, "AlreadyExists");
                }
                body["metadata"]["resourceVersion"] = json!(self.next_version());
                self.objects.lock().unwrap().insert(name, body.clone());
                (201, body)
            }
            "PUT" => {
                let count = {
                    let mut n = self.replaces.lock().unwrap();
                    *n += 1;
                    *n
                };
                let forced = self
                    .before_replace
                    .lock()
                    .unwrap()
                    .as_mut()
                    .and_then(|hook| hook(count));
                if let Some(code) = forced {
                    return status(code, "Conflict");
                }
                let stored = self.objects.lock().unwrap().get(name).cloned();
                let Some(stored) = stored else {
                    return status(404, "NotFound");
                };
                if stored["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"] {
                    return status(409, "Conflict");
                }
                body["metadata"]["resourceVersion"] = json!(self.next_version());
                self.objects
                    .lock()
                    .unwrap()
                    .insert(name.to_string(), body.clone());
                (200, body)
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }
}
