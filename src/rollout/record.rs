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
/// The record as JSON, readable with kubectl, while it is small.
const KEY: &str = "rollout.json";
/// The record as gzipped JSON, once it is larger than [`PLAIN_MAX`] (thousands of stores).
const KEY_GZ: &str = "rollout.json.gz";
const PLAIN_MAX: usize = 256 * 1024;
/// Most bytes the ConfigMap holds (the API server refuses objects over 1 MiB).
const MAX_STORED: usize = 900 * 1024;
/// Most bytes a gzipped record may inflate to.
const MAX_JSON: usize = 16 * 1024 * 1024;

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
    let unreadable = |why: String| {
        Error::Unreadable(format!(
            "ConfigMap {what} does not hold a rollout record storesync can read ({why}); delete it to forget \
             every rollout (a halted one included)"
        ))
    };
    let gz = cm.binary_data.as_ref().and_then(|d| d.get(KEY_GZ));
    let plain = cm.data.as_ref().and_then(|d| d.get(KEY));
    let text = match (gz, plain) {
        (Some(bytes), _) if bytes.0.len() > MAX_STORED => {
            return Err(unreadable(format!(
                "{} bytes, more than storesync writes",
                bytes.0.len()
            )));
        }
        (Some(bytes), _) => {
            use std::io::Read;
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(bytes.0.as_slice())
                .take(MAX_JSON as u64 + 1)
                .read_to_end(&mut json)
                .map_err(|e| unreadable(e.to_string()))?;
            if json.len() > MAX_JSON {
                return Err(unreadable(format!("it inflates past {MAX_JSON} bytes")));
            }
            String::from_utf8(json).map_err(|e| unreadable(e.to_string()))?
        }
        (None, Some(text)) if text.len() > MAX_STORED => {
            return Err(unreadable(format!(
                "{} bytes, more than storesync writes",
                text.len()
            )));
        }
        (None, Some(text)) => text.clone(),
        (None, None) => "{}".to_string(),
    };
    serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))
}

/// The record as the ConfigMap holds it: plain JSON while small, gzipped past [`PLAIN_MAX`];
/// an error when even that does not fit a ConfigMap.
fn encode(record: &Record) -> Result<ConfigMap> {
    let text = serde_json::to_string(record).map_err(|source| Error::Output { source })?;
    let mut cm = ConfigMap::default();
    if text.len() <= PLAIN_MAX {
        cm.data = Some(BTreeMap::from([(KEY.to_string(), text)]));
        return Ok(cm);
    }
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zipped = gz
        .write_all(text.as_bytes())
        .and_then(|()| gz.finish())
        .map_err(|e| Error::Io {
            path: ROLLOUT_CONFIGMAP.into(),
            source: e,
        })?;
    if zipped.len() > MAX_STORED {
        return Err(Error::Unreadable(format!(
            "the rollout record is {} bytes compressed, more than a ConfigMap holds: roll the change out in \
             smaller commits",
            zipped.len()
        )));
    }
    cm.binary_data = Some(BTreeMap::from([(
        KEY_GZ.to_string(),
        k8s_openapi::ByteString(zipped),
    )]));
    Ok(cm)
}

/// Writes `record` (server-side apply, storesync's field manager): an empty record is written
/// as `{}` so that the next read says so plainly.
pub async fn write(client: &Client, namespace: &str, record: &Record) -> Result<()> {
    let mut cm = encode(record)?;
    cm.metadata.name = Some(ROLLOUT_CONFIGMAP.into());
    cm.metadata.namespace = Some(namespace.into());
    cm.metadata.labels = Some(BTreeMap::from([(MANAGED_BY.to_string(), MANAGER.to_string())]));
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
        let huge = format!("{{\"x\": \"{}\"}}", "a".repeat(MAX_STORED));
        assert!(matches!(parse("ns", &cm(true, &huge)), Err(Error::Unreadable(_))));
    }

    #[test]
    fn ten_thousand_stores_fit_gzipped_and_read_back() {
        let target = |i: usize| Target {
            store: format!("shop-{i:05}"),
            spec_hash: format!(
                "{:032x}",
                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
            ),
            upgrade: true,
        };
        let waves: Vec<Vec<Target>> = vec![(0..1).map(target).collect(), (1..10_000).map(target).collect()];
        let record = Record {
            run: Some(Run {
                commit: "c".repeat(40),
                waves,
                wave: 0,
                applied_at: 1,
                healthy_since: None,
                started_at: 1,
            }),
            refused: (0..10_000)
                .map(|i| (target(i).store, target(i).spec_hash))
                .collect(),
            halt: None,
        };
        let mut encoded = encode(&record).unwrap();
        let stored = &encoded.binary_data.as_ref().expect("gzipped")[KEY_GZ].0;
        // Both the run and a halt's refusals of 10,000 stores (the hashes hardly compress).
        assert!(stored.len() < MAX_STORED, "{} bytes", stored.len());
        encoded.metadata.labels = Some(BTreeMap::from([(MANAGED_BY.into(), MANAGER.into())]));
        assert_eq!(parse("ns", &encoded).unwrap(), record);

        let small = Record::default();
        let encoded = encode(&small).unwrap();
        assert_eq!(
            encoded.data.as_ref().unwrap()[KEY],
            "{}",
            "a small record stays readable"
        );
    }
}
