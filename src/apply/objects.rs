//! Writes to the Kubernetes API: server-side apply under field manager `storesync`, the
//! credentials Secret, deletions guarded by the object's uid.
use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::desired::{self, CREDENTIAL_KEYS, CREDENTIALS_SECRET};
use crate::desired::{FIELD_MANAGER, LAST_ERROR_ANNOTATION};
use crate::error::{Error, Result};

/// Length of each generated credential: letters and digits only, so it is safe in URLs.
const SECRET_LENGTH: usize = 40;

fn apply_params(dry_run: bool) -> PatchParams {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run { params.dry_run() } else { params }
}

/// Server-side applies a namespaced object.
pub(super) async fn apply_namespaced<K>(client: &Client, obj: &K, dry_run: bool) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let meta = obj.meta();
    let (namespace, name) = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    api.patch(&name, &apply_params(dry_run), &Patch::Apply(obj))
        .await
        .map_err(Error::kube(format!(
            "cannot apply {} {namespace}/{name}",
            K::kind(&())
        )))?;
    Ok(())
}

pub(super) async fn apply_namespace(client: &Client, ns: &Namespace, dry_run: bool) -> Result<()> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(&name, &apply_params(dry_run), &Patch::Apply(ns))
        .await
        .map_err(Error::kube(format!("cannot apply Namespace {name}")))?;
    Ok(())
}

/// Whether a namespace of that name exists without being storesync's: such a namespace is
/// never taken over.
pub(super) async fn is_foreign_namespace(client: &Client, name: &str) -> Result<bool> {
    let api: Api<Namespace> = Api::all(client.clone());
    let found = api
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("cannot read Namespace {name}")))?;
    Ok(found.is_some_and(|ns| {
        ns.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(desired::MANAGED_BY))
            .map(String::as_str)
            != Some(desired::MANAGER)
    }))
}

/// Longest wait for a new RoleBinding to take effect.
const IDENTITY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until the store's helm identity may write in its namespace: RBAC learns a new binding
/// through a cache, and the credentials and helm right after must not meet a stale 403. Asked as
/// the identity itself (a SelfSubjectAccessReview, which every authenticated user may create).
pub(super) async fn await_identity(client: &Client, store: &str) -> Result<()> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let namespace = desired::namespace_of(store);
    let api: Api<SelfSubjectAccessReview> = Api::all(crate::live::store_client(client, store));
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.clone()),
                verb: Some("create".into()),
                resource: Some("secrets".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + IDENTITY_WAIT;
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(Error::kube(format!(
                "cannot ask whether helm's identity may act in {namespace}"
            )))?;
        if answer.status.is_some_and(|s| s.allowed) {
            return Ok(());
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Err(Error::Kube {
                context: format!(
                    "helm's identity {} may not create Secrets in {namespace} {}s after its RoleBinding \
                     was applied; is the ClusterRole it binds there?",
                    desired::tenancy::helm_user(&namespace),
                    IDENTITY_WAIT.as_secs()
                ),
                source: kube::Error::Api(
                    kube::core::Status::failure("access not yet allowed", "Forbidden")
                        .with_code(403)
                        .boxed(),
                ),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(1));
    }
}

/// A random string of letters and digits from the operating system's CSPRNG.
fn generate() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(SECRET_LENGTH);
    let mut buf = [0u8; 64];
    while out.len() < SECRET_LENGTH {
        getrandom::fill(&mut buf)
            .map_err(|e| Error::Internal(format!("the system random generator failed: {e}")))?;
        // Rejection sampling keeps every character equally likely (248 = 62 * 4).
        out.extend(
            buf.iter()
                .filter(|b| **b < 248)
                .map(|b| ALPHABET[usize::from(*b % 62)] as char),
        );
    }
    out.truncate(SECRET_LENGTH);
    Ok(out)
}

/// Creates the store's credentials once. An existing Secret is never overwritten, so the
/// credentials of a store never change once generated.
pub(super) async fn create_credentials(client: &Client, store: &str, dry_run: bool) -> Result<()> {
    let namespace = desired::namespace_of(store);
    let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
    for key in CREDENTIAL_KEYS {
        data.insert(key.to_string(), ByteString(generate()?.into_bytes()));
    }
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(CREDENTIALS_SECRET.into()),
            namespace: Some(namespace.clone()),
            labels: Some(desired::labels(store)),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    };
    // Written as the store's own identity: storesync itself has no right to create Secrets.
    let api: Api<Secret> = Api::namespaced(crate::live::store_client(client, store), &namespace);
    let params = PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    match api.create(&params, &secret).await {
        Ok(_) => Ok(()),
        // Created by an earlier, interrupted sync: keep it.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(Error::Kube {
            context: format!("cannot create Secret {namespace}/{CREDENTIALS_SECRET}"),
            source: e,
        }),
    }
}

fn guarded(uid: Option<&str>, dry_run: bool) -> DeleteParams {
    DeleteParams {
        dry_run,
        preconditions: uid.map(|u| Preconditions {
            uid: Some(u.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    }
}

/// Deletes `name` through `api`, guarded by `uid` (an object re-created by someone else since
/// it was observed is refused) and in the background; one already gone is no error. True when
/// this call deleted it. `what` names it in the error (`NetworkPolicy store-acme/allow-dns`).
pub(super) async fn delete_guarded<K>(
    api: &Api<K>,
    name: &str,
    uid: Option<&str>,
    dry_run: bool,
    what: &str,
) -> Result<bool>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &guarded(uid, dry_run)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(Error::Kube {
            context: format!("cannot delete {what}"),
            source: e,
        }),
    }
}

/// Deletes a namespace storesync owns; `uid` guards against deleting a namespace re-created
/// by someone else since it was observed.
pub(super) async fn delete_namespace(
    client: &Client,
    name: &str,
    uid: Option<&str>,
    dry_run: bool,
) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    delete_guarded(&api, name, uid, dry_run, &format!("Namespace {name}"))
        .await
        .map(drop)
}

pub(super) async fn delete_network_policy(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    dry_run: bool,
) -> Result<()> {
    let api: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
        Api::namespaced(client.clone(), namespace);
    let what = format!("NetworkPolicy {namespace}/{name}");
    delete_guarded(&api, name, uid, dry_run, &what).await.map(drop)
}

/// Records (or clears) the last error of a store on its namespace, for `storesync status`.
pub(super) async fn record_error(client: &Client, store: &str, error: Option<&str>) -> Result<()> {
    let name = desired::namespace_of(store);
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = serde_json::json!({ "metadata": { "annotations": { LAST_ERROR_ANNOTATION: error } } });
    let params = PatchParams {
        field_manager: Some("storesync-status".into()),
        ..Default::default()
    };
    api.patch(&name, &params, &Patch::Merge(&patch))
        .await
        .map_err(Error::kube(format!("cannot annotate Namespace {name}")))?;
    Ok(())
}

/// Records what the commit just applied allowed, for the prune breaker of later syncs.
pub async fn record_applied(
    client: &Client,
    namespace: &str,
    applied: &crate::live::AppliedLimits,
) -> Result<()> {
    use crate::live::{APPLIED_CONFIGMAP, COMMIT_KEY, MAX_PRUNES_KEY};
    use k8s_openapi::api::core::v1::ConfigMap;
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(APPLIED_CONFIGMAP.into());
    cm.metadata.namespace = Some(namespace.into());
    cm.metadata.labels = Some(BTreeMap::from([(
        desired::MANAGED_BY.to_string(),
        desired::MANAGER.to_string(),
    )]));
    cm.data = Some(BTreeMap::from([
        (COMMIT_KEY.to_string(), applied.commit.clone()),
        (
            MAX_PRUNES_KEY.to_string(),
            applied.max_prunes_per_sync.to_string(),
        ),
    ]));
    apply_namespaced(client, &cm, false).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_credentials_are_long_url_safe_and_distinct() {
        let a = super::generate().unwrap();
        let b = super::generate().unwrap();
        assert_eq!(a.len(), super::SECRET_LENGTH);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }
}
