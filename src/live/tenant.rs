//! The store's own identity for the API server: what storesync reads and writes inside a store
//! namespace (Helm's release Secrets, the credentials Secret) goes through a client that
//! impersonates the store's helm ServiceAccount, so RBAC bounds it to that namespace and
//! storesync's own identity needs no Secret rights there.
use hyper::http::{HeaderValue, Request};
use kube::Client;
use kube::client::Body;

use crate::desired::namespace_of;
use crate::desired::tenancy::helm_user;

/// The header the API server reads the impersonated user from.
pub const IMPERSONATE_USER: &str = "impersonate-user";

/// A client acting as store `store`'s helm identity: the same connections as `client`, every
/// request carrying `Impersonate-User: system:serviceaccount:store-<store>:storesync-helm`.
pub fn store_client(client: &Client, store: &str) -> Client {
    let namespace = namespace_of(store);
    let user = HeaderValue::from_str(&helm_user(&namespace)).ok();
    let inner = client.clone();
    let service = tower::service_fn(move |mut request: Request<Body>| {
        let (inner, user) = (inner.clone(), user.clone());
        async move {
            match user {
                Some(user) => {
                    request.headers_mut().insert(IMPERSONATE_USER, user);
                    inner.send(request).await
                }
                // Store names are DNS labels, so this cannot happen; never act as storesync instead.
                None => Err(kube::Error::BuildRequest(kube::core::request::Error::Validation(
                    "store identity is not a valid header value".into(),
                ))),
            }
        }
    });
    Client::new(service, namespace)
}
