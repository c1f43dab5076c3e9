//! What a rollout remembers between syncs, in the cluster (ConfigMap `storesync-rollout` of
//! storesync's namespace): the run in flight and the updates a halted run refused. Syncs,
//! restarts and a new leader read it, so a halted commit is never retried and a run goes on
//! where it stood. Read like every record of storesync's: one it did not write, or cannot read,
//! stops the sync instead of being taken for "no rollout".
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use crate::desired::{FIELD_MANAGER, MANAGED_BY, MANAGER};
use crate::error::{Error, Result};

pub const ROLLOUT_CONFIGMAP: &str = "storesync-rollout";
const KEY: &str = "rollout.json";
/// Largest record read: 10,000 stores of targets fit many times over.
const MAX_RECORD_BYTES: usize = 900 * 1024;

/// A store a run updates, and the spec it updates it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub store: String,
    pub spec_hash: String,
    /// Whether the update upgrades the store's release (else it changes guardrails only, which
    /// a rollback of the release would not undo).
    #[serde(default)]
    pub upgrade: bool,
}

/// A rollout in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The commit whose updates it carries.
    pub commit: String,
    pub waves: Vec<Vec<Target>>,
    /// The wave applied last (from 0), being judged.
    pub wave: usize,
    /// When that wave's updates were applied (seconds since the epoch).
    pub applied_at: i64,
    /// Since when every store of that wave is Healthy, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<i64>,
    pub started_at: i64,
}

impl Run {
    /// Stores of waves up to the current one: updated.
    pub fn updated(&self) -> usize {
        self.waves.iter().take(self.wave + 1).map(Vec::len).sum()
    }

    pub fn total(&self) -> usize {
        self.waves.iter().map(Vec::len).sum()
    }
}

/// Why the last run halted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Halt {
    pub commit: String,
    /// The wave that failed, from 1, of `of`.
    pub wave: usize,
    pub of: usize,
    /// The first store of it that was not Healthy, and why.
    pub store: String,
    pub reason: String,
    pub at: i64,
}

impl Halt {
    /// `commit 0123456789ab`, or `the work tree` (a local catalog applied from disk).
    pub fn of_commit(&self) -> String {
        match self.commit.as_str() {
            "" => "the work tree".into(),
            c => format!("commit {}", c.get(..12).unwrap_or(c)),
        }
    }

    /// `rollout halted at wave 1/3: acme unhealthy: Deployment acme-web CrashLoopBackOff`.
    pub fn line(&self) -> String {
        format!(
            "rollout halted at wave {}/{}: {} unhealthy: {}",
            self.wave, self.of, self.store, self.reason
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// Updates a halted run refused, by store: the spec hash not to apply again. A store leaves
    /// this list once a commit asks for another spec (a fix or a revert).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt: Option<Halt>,
}

impl Record {
    pub fn is_empty(&self) -> bool {
        self.run.is_none() && self.refused.is_empty() && self.halt.is_none()
    }
}

/// The record in `namespace`; an empty one when there is none.
pub async fn read(client: &Client, namespace: &str) -> Result<Record> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let found = api.get_opt(ROLLOUT_CONFIGMAP).await.map_err(Error::kube(format!(
        "cannot read the rollout record {namespace}/{ROLLOUT_CONFIGMAP}"
    )))?;
    match found {
        None => Ok(Record::default()),
        Some(cm) => parse(namespace, &cm),
    }
}

fn parse(namespace: &str, cm: &ConfigMap) -> Result<Record> {
    let what = format!("{namespace}/{ROLLOUT_CONFIGMAP}");
    crate::live::check_record_owned(cm, namespace, ROLLOUT_CONFIGMAP, "its rollouts")?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .map(String::as_str)
        .unwrap_or("{}");
    if text.len() > MAX_RECORD_BYTES {
        return Err(Error::Unreadable(format!(
            "ConfigMap {what} holds a record of {} bytes, more than storesync writes; delete it to forget \
             every rollout (a halted one included)",
            text.len()
        )));
    }
    serde_json::from_str(text).map_err(|e| {
        Error::Unreadable(format!(
            "ConfigMap {what} does not hold a rollout record storesync can read ({e}); delete it to forget \
             every rollout (a halted one included)"
        ))
    })
}

/// Writes `record` (server-side apply, storesync's field manager), or deletes nothing: an
/// empty record is written as `{}` so that the next read says so plainly.
pub async fn write(client: &Client, namespace: &str, record: &Record) -> Result<()> {
    let text = serde_json::to_string(record).map_err(|source| Error::Output { source })?;
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(ROLLOUT_CONFIGMAP.into());
    cm.metadata.namespace = Some(namespace.into());
    cm.metadata.labels = Some(BTreeMap::from([(MANAGED_BY.to_string(), MANAGER.to_string())]));
    cm.data = Some(BTreeMap::from([(KEY.to_string(), text)]));
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(ROLLOUT_CONFIGMAP, &params, &Patch::Apply(&cm))
        .await
        .map_err(Error::kube(format!(
            "cannot record the rollout in {namespace}/{ROLLOUT_CONFIGMAP}"
        )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(owned: bool, text: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        if owned {
            cm.metadata.labels = Some(BTreeMap::from([(MANAGED_BY.into(), MANAGER.into())]));
        }
        cm.data = Some(BTreeMap::from([(KEY.into(), text.into())]));
        cm
    }

    #[test]
    fn a_record_reads_back_and_a_foreign_or_garbled_one_stops_the_sync() {
        let record = Record {
            refused: BTreeMap::from([("acme".into(), "abc".into())]),
            ..Default::default()
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(parse("ns", &cm(true, &text)).unwrap(), record);
        assert_eq!(parse("ns", &cm(true, "{}")).unwrap(), Record::default());
        assert!(matches!(parse("ns", &cm(false, &text)), Err(Error::NotOwned(_))));
        assert!(matches!(
            parse("ns", &cm(true, "{\"run\": 3}")),
            Err(Error::Unreadable(_))
        ));
        let huge = format!("{{\"x\": \"{}\"}}", "a".repeat(MAX_RECORD_BYTES));
        assert!(matches!(parse("ns", &cm(true, &huge)), Err(Error::Unreadable(_))));
    }
}
