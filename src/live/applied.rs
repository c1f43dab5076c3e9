//! What the last successfully applied commit allowed, as recorded in the cluster: the prune
//! breaker of a sync never trusts only the commit it guards.
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use serde::Serialize;

use crate::desired::{MANAGED_BY, MANAGER};
use crate::error::{Error, Result};

/// The ConfigMap, in storesync's own namespace, that holds the applied values.
pub const APPLIED_CONFIGMAP: &str = "storesync-applied";
pub const COMMIT_KEY: &str = "lastAppliedCommit";
pub const MAX_PRUNES_KEY: &str = "maxPrunesPerSync";

/// `limits.maxPrunesPerSync` at the last commit applied without failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedLimits {
    /// Full commit id; empty for a work tree applied from disk.
    pub commit: String,
    pub max_prunes_per_sync: usize,
}

/// Reads the recorded values from `namespace`: `None` before the first successful sync. An
/// unreadable, foreign or garbled record is an error, never "nothing recorded": that would let
/// the synced commit lift its own breaker.
pub async fn read_applied(client: &Client, namespace: &str) -> Result<Option<AppliedLimits>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let found = api.get_opt(APPLIED_CONFIGMAP).await.map_err(Error::kube(format!(
        "cannot read the prune breaker's record {namespace}/{APPLIED_CONFIGMAP}"
    )))?;
    let Some(cm) = found else { return Ok(None) };
    parse(namespace, &cm).map(Some)
}

/// A record storesync keeps in a ConfigMap of its namespace is trusted only when it carries
/// storesync's label: one storesync did not write (`name` in `namespace`, kept `what_for`) is
/// an error, never read.
pub fn check_record_owned(cm: &ConfigMap, namespace: &str, name: &str, what_for: &str) -> Result<()> {
    let owned = cm
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == MANAGER);
    if owned {
        return Ok(());
    }
    Err(Error::NotOwned(format!(
        "ConfigMap {namespace}/{name} exists but is not managed by storesync; delete or rename it so that \
         storesync can record {what_for} there"
    )))
}

fn parse(namespace: &str, cm: &ConfigMap) -> Result<AppliedLimits> {
    let what = format!("{namespace}/{APPLIED_CONFIGMAP}");
    check_record_owned(cm, namespace, APPLIED_CONFIGMAP, "its prune breaker")?;
    let data = cm.data.clone().unwrap_or_default();
    let max = data
        .get(MAX_PRUNES_KEY)
        .and_then(|v| v.parse::<usize>().ok())
        .ok_or_else(|| {
            Error::Unreadable(format!(
                "ConfigMap {what} has no valid {MAX_PRUNES_KEY}; fix or delete it (the next sync records it again)"
            ))
        })?;
    Ok(AppliedLimits {
        commit: data.get(COMMIT_KEY).cloned().unwrap_or_default(),
        max_prunes_per_sync: max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cm(labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
        let map = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let mut cm = ConfigMap::default();
        cm.metadata.labels = Some(map(labels));
        cm.data = Some(map(data));
        cm
    }

    #[test]
    fn reads_a_record_of_storesync() {
        let c = cm(
            &[(MANAGED_BY, MANAGER)],
            &[(COMMIT_KEY, "abc"), (MAX_PRUNES_KEY, "3")],
        );
        assert_eq!(
            parse("ns", &c).unwrap(),
            AppliedLimits {
                commit: "abc".into(),
                max_prunes_per_sync: 3
            }
        );
    }

    #[test]
    fn refuses_a_foreign_or_garbled_record() {
        let foreign = cm(&[], &[(MAX_PRUNES_KEY, "1000")]);
        assert!(matches!(parse("ns", &foreign), Err(Error::NotOwned(_))));
        let garbled = cm(&[(MANAGED_BY, MANAGER)], &[(MAX_PRUNES_KEY, "-1")]);
        assert!(parse("ns", &garbled).is_err());
    }
}
