//! Observing the cluster: one label-selected, cluster-wide, paginated LIST per kind, never one
//! call per store. Helm releases are read from the metadata of Helm's release Secrets (labels
//! only: the release payloads are large; the drift check reads one per revision, see
//! [`super::drift`]), and no other Secret's data is read.
use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, ObjectList, PartialObjectMeta};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tracing::{instrument, warn};

use super::{LiveRelease, LiveState, LiveStore};
use crate::desired::tenancy::{HELM_ROLE_BINDING, HELM_SERVICE_ACCOUNT};
use crate::desired::{CREDENTIALS_SECRET, MANAGED_BY, MANAGER, RELEASE_HASH_LABEL, STORE_LABEL};
use crate::error::{Error, Result};

/// Label selector of everything storesync owns.
pub fn owned_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

/// Helm's own label on its release Secrets.
pub const HELM_RELEASE_SELECTOR: &str = "owner=helm";
const PAGE: u32 = 500;

/// Every object of a label-selected, paginated LIST, collected.
pub(super) async fn pages<T, F, Fut>(what: &str, selector: &str, list: F) -> Result<Vec<T>>
where
    T: Clone + DeserializeOwned + Debug,
    F: FnMut(ListParams) -> Fut,
    Fut: std::future::Future<Output = kube::Result<ObjectList<T>>>,
{
    let mut items = Vec::new();
    each_page(what, selector, list, |page| items.extend(page)).await?;
    Ok(items)
}

/// A label-selected LIST, page by page, so a caller can look at each page and drop it.
pub(super) async fn each_page<T, F, Fut>(
    what: &str,
    selector: &str,
    mut list: F,
    mut each: impl FnMut(Vec<T>),
) -> Result<()>
where
    T: Clone + DeserializeOwned + Debug,
    F: FnMut(ListParams) -> Fut,
    Fut: std::future::Future<Output = kube::Result<ObjectList<T>>>,
{
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().labels(selector).limit(PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = list(params)
            .await
            .map_err(Error::kube(format!("cannot list {what}")))?;
        each(page.items);
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(()),
        }
    }
}

async fn list_all<K>(client: &Client, what: &str, selector: &str) -> Result<Vec<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::all(client.clone());
    pages(what, selector, |p| {
        let api = api.clone();
        async move { api.list(&p).await }
    })
    .await
}

async fn list_secret_metadata(
    client: &Client,
    what: &str,
    selector: &str,
) -> Result<Vec<PartialObjectMeta<Secret>>> {
    let api: Api<Secret> = Api::all(client.clone());
    pages(what, selector, |p| {
        let api = api.clone();
        async move { api.list_metadata(&p).await }
    })
    .await
}

/// What the LISTs of one observation found, before it is grouped by store.
#[derive(Debug, Default)]
pub struct Listed {
    pub namespaces: Vec<Namespace>,
    pub quotas: Vec<ResourceQuota>,
    pub limit_ranges: Vec<LimitRange>,
    pub policies: Vec<NetworkPolicy>,
    pub service_accounts: Vec<ServiceAccount>,
    pub role_bindings: Vec<RoleBinding>,
    pub credentials: Vec<PartialObjectMeta<Secret>>,
    pub releases: Vec<PartialObjectMeta<Secret>>,
}

/// Everything storesync owns, by store.
#[instrument(skip_all)]
pub async fn observe(client: &Client) -> Result<LiveState> {
    let owned = owned_selector();
    // All LISTs run at once, and all are awaited: when several fail, the error reported is the
    // first in this order, so the same failure always reads the same.
    let (namespaces, quotas, limit_ranges, policies, service_accounts, role_bindings, credentials, releases) = tokio::join!(
        list_all::<Namespace>(client, "namespaces", &owned),
        list_all::<ResourceQuota>(client, "resource quotas", &owned),
        list_all::<LimitRange>(client, "limit ranges", &owned),
        list_all::<NetworkPolicy>(client, "network policies", &owned),
        list_all::<ServiceAccount>(client, "service accounts", &owned),
        list_all::<RoleBinding>(client, "role bindings", &owned),
        list_secret_metadata(client, "credentials secrets", &owned),
        list_secret_metadata(client, "helm releases", HELM_RELEASE_SELECTOR),
    );
    let observed_at = crate::text::unix_now();
    let mut live = assemble(Listed {
        namespaces: namespaces?,
        quotas: quotas?,
        limit_ranges: limit_ranges?,
        policies: policies?,
        service_accounts: service_accounts?,
        role_bindings: role_bindings?,
        credentials: credentials?,
        releases: releases?,
    });
    live.observed_at = observed_at;
    Ok(live)
}

/// Groups the listed objects by store. Pure, so it is tested without a cluster.
pub fn assemble(listed: Listed) -> LiveState {
    let Listed {
        namespaces,
        quotas,
        limit_ranges,
        policies,
        service_accounts,
        role_bindings,
        credentials,
        releases,
    } = listed;
    let mut stores: BTreeMap<String, LiveStore> = BTreeMap::new();
    // namespace name -> store name
    let mut by_namespace: BTreeMap<String, String> = BTreeMap::new();
    for ns in namespaces {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let Some(store) = ns
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(STORE_LABEL))
            .cloned()
        else {
            warn!(namespace = %name, "namespace is labelled as managed by storesync but names no store; ignored");
            continue;
        };
        by_namespace.insert(name, store.clone());
        stores.insert(
            store,
            LiveStore {
                namespace: ns,
                ..Default::default()
            },
        );
    }
    let store_of = |namespace: &Option<String>| namespace.as_ref().and_then(|n| by_namespace.get(n)).cloned();
    for q in quotas {
        if let Some(s) = store_of(&q.metadata.namespace).and_then(|s| stores.get_mut(&s))
            && q.metadata.name.as_deref() == Some(crate::desired::QUOTA_NAME)
        {
            s.quota = Some(q);
        }
    }
    for l in limit_ranges {
        if let Some(s) = store_of(&l.metadata.namespace).and_then(|s| stores.get_mut(&s))
            && l.metadata.name.as_deref() == Some(crate::desired::LIMITS_NAME)
        {
            s.limit_range = Some(l);
        }
    }
    for p in policies {
        if let Some(s) = store_of(&p.metadata.namespace).and_then(|s| stores.get_mut(&s)) {
            s.network_policies.push(p);
        }
    }
    for a in service_accounts {
        if let Some(s) = store_of(&a.metadata.namespace).and_then(|s| stores.get_mut(&s))
            && a.metadata.name.as_deref() == Some(HELM_SERVICE_ACCOUNT)
        {
            s.service_account = Some(a);
        }
    }
    for b in role_bindings {
        if let Some(s) = store_of(&b.metadata.namespace).and_then(|s| stores.get_mut(&s))
            && b.metadata.name.as_deref() == Some(HELM_ROLE_BINDING)
        {
            s.role_binding = Some(b);
        }
    }
    for c in credentials {
        if let Some(s) = store_of(&c.metadata.namespace).and_then(|s| stores.get_mut(&s))
            && c.metadata.name.as_deref() == Some(CREDENTIALS_SECRET)
        {
            s.credentials = true;
        }
    }
    // Helm keeps one Secret per release revision: labels name, status, version.
    // (store, release name) -> revisions as (revision, status, release hash)
    type Revisions = Vec<(u32, String, Option<String>)>;
    let mut revisions: BTreeMap<(String, String), Revisions> = BTreeMap::new();
    for r in releases {
        let Some(store) = store_of(&r.metadata.namespace) else {
            continue;
        };
        let labels = r.metadata.labels.unwrap_or_default();
        let (Some(name), Some(status), Some(version)) =
            (labels.get("name"), labels.get("status"), labels.get("version"))
        else {
            continue;
        };
        let Ok(version) = version.parse::<u32>() else {
            continue;
        };
        revisions.entry((store, name.clone())).or_default().push((
            version,
            status.clone(),
            labels.get(RELEASE_HASH_LABEL).cloned(),
        ));
    }
    for ((store, name), mut history) in revisions {
        // The store's own release is named after the store; other releases are not storesync's.
        if store != name {
            continue;
        }
        history.sort_by_key(|(v, _, _)| *v);
        let Some(s) = stores.get_mut(&store) else { continue };
        let (revision, status, release_hash) = history.last().cloned().unwrap_or_default();
        s.release = Some(LiveRelease {
            status,
            revision,
            release_hash,
            history: history.into_iter().map(|(v, st, _)| (v, st)).collect(),
            drift: Default::default(),
            refused: None,
        });
    }
    for s in stores.values_mut() {
        s.network_policies
            .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
    LiveState {
        stores,
        applied: None,
        observed_at: 0,
        health_fresh: false,
    }
}

/// Ready workloads over all workloads, per namespace.
pub async fn readiness(client: &Client) -> Result<BTreeMap<String, (usize, usize)>> {
    let params = ListParams::default().labels("app.kubernetes.io/managed-by=Helm");
    let deployments = Api::<Deployment>::all(client.clone())
        .list(&params)
        .await
        .map_err(Error::kube("cannot list deployments"))?;
    let statefulsets = Api::<StatefulSet>::all(client.clone())
        .list(&params)
        .await
        .map_err(Error::kube("cannot list statefulsets"))?;
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for d in deployments.items {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
        let e = out.entry(d.metadata.namespace.unwrap_or_default()).or_default();
        e.1 += 1;
        e.0 += usize::from(ready >= want);
    }
    for s in statefulsets.items {
        let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = s.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
        let e = out.entry(s.metadata.namespace.unwrap_or_default()).or_default();
        e.1 += 1;
        e.0 += usize::from(ready >= want);
    }
    Ok(out)
}
