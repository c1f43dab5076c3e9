//! What replicas share through the cluster, in the daemon's namespace:
//! - `storesync-state`: the records (last syncs, commit results, stores, last verdict), written
//!   by the leader after each sync and read by every replica, so pages survive a restart or a
//!   failover. Bounded below the API server's 1 MiB object limit.
//! - `storesync-requests`: pushes accepted by a replica that does not lead, for the leader to
//!   sync (the `storesync.dev/requested-at` annotation says when the last one came).
//! - beside the records in `storesync-state`, the pull requests every replica plans (`pulls.rs`):
//!   the newest head started of each and whether it is closed, so replicas agree.
//!
//! Every write replaces the object guarded by the `resourceVersion` read, and the leader's write
//! of the records checks that it still leads before every attempt: a write of a replica that
//! stopped leading loses against its successor's, and is not retried over it.
#[cfg(test)]
mod fake_api;
mod pulls;
#[cfg(test)]
mod write_tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::state::Records;
use crate::apply::WriteGate;
use crate::desired::{MANAGED_BY, MANAGER};
use crate::error::{Error, Result};
use crate::text::truncate;
use crate::untrusted::printable;

pub const STATE_CONFIGMAP: &str = "storesync-state";
pub const REQUESTS_CONFIGMAP: &str = "storesync-requests";
pub const REQUESTED_AT_ANNOTATION: &str = "storesync.dev/requested-at";
const RECORDS_KEY: &str = "records.json";
const SEQUENCE_KEY: &str = "sequence";
const HANDLED_KEY: &str = "handled";
const COMMITS_KEY: &str = "commits";

/// Largest serialized records: under the 1 MiB object limit, with room for the metadata and
/// the pull requests' record (`pulls::MAX_PULLS_BYTES`).
pub(super) const MAX_RECORDS_BYTES: usize = 1000 * 1024 - pulls::MAX_PULLS_BYTES;
/// Longest plan text kept per commit record, and longest description or finding.
const MAX_PLAN_TEXT: usize = 16 * 1024;
const MAX_LINE: usize = 1024;
const MAX_FINDINGS: usize = 50;
/// Pushes a non-leader keeps waiting in `storesync-requests`.
const MAX_REQUESTS: usize = 64;

/// The records as stored, with the replica that wrote them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shared {
    /// Holder identity of the writer.
    pub leader: String,
    /// Unix seconds.
    pub written: u64,
    pub records: Records,
}

/// The records in at most `limit` bytes of JSON: long texts cut, then the oldest commit
/// results dropped (they are the large ones), then the oldest syncs.
pub(super) fn encode(shared: &Shared, limit: usize) -> String {
    let mut s = shared.clone();
    for c in &mut s.records.commits {
        c.plan = truncate(&c.plan, MAX_PLAN_TEXT);
        c.description = truncate(&c.description, MAX_LINE);
        c.errors.truncate(MAX_FINDINGS);
        for e in &mut c.errors {
            *e = truncate(e, MAX_LINE);
        }
    }
    for r in &mut s.records.syncs {
        r.description = truncate(&r.description, MAX_LINE);
    }
    let mut total = json_len(&s);
    let commit_sizes: Vec<usize> = s.records.commits.iter().map(json_len).collect();
    let sync_sizes: Vec<usize> = s.records.syncs.iter().map(json_len).collect();
    let (mut drop_commits, mut drop_syncs) = (0, 0);
    while total > limit && drop_commits < commit_sizes.len() {
        total -= commit_sizes[drop_commits];
        drop_commits += 1;
    }
    while total > limit && drop_syncs < sync_sizes.len() {
        total -= sync_sizes[drop_syncs];
        drop_syncs += 1;
    }
    s.records.commits.drain(..drop_commits);
    s.records.syncs.drain(..drop_syncs);
    serde_json::to_string(&s).unwrap_or_default()
}

/// Serialized length of one entry and its separating comma.
fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0) + 1
}

fn owned_configmap(name: &str, namespace: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some([(MANAGED_BY.to_string(), MANAGER.to_string())].into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The two ConfigMaps of one namespace.
#[derive(Clone)]
pub(super) struct Store {
    api: Api<ConfigMap>,
    namespace: String,
}

/// Attempts at a read-modify-write that keeps losing races.
const ATTEMPTS: usize = 5;

impl Store {
    pub(super) fn new(client: Client, namespace: &str) -> Store {
        Store {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
        }
    }

    fn what(&self, name: &str) -> String {
        format!("ConfigMap {}/{name}", self.namespace)
    }

    /// The shared records and the object's version; `None` before the leader's first write.
    pub(super) async fn read(&self) -> Result<Option<(Shared, String)>> {
        let what = self.what(STATE_CONFIGMAP);
        let Some(cm) = self
            .api
            .get_opt(STATE_CONFIGMAP)
            .await
            .map_err(Error::kube(format!("cannot read {what}")))?
        else {
            return Ok(None);
        };
        let version = cm.metadata.resource_version.clone().unwrap_or_default();
        // Made by a replica that recorded a pull request before the leader's first write.
        let Some(text) = cm.data.and_then(|d| d.get(RECORDS_KEY).cloned()) else {
            return Ok(None);
        };
        let shared = serde_json::from_str(&text).map_err(|e| {
            Error::Unreadable(format!(
                "{what} has unreadable {RECORDS_KEY} ({e}); the leader writes it anew after its next sync"
            ))
        })?;
        Ok(Some((shared, version)))
    }

    /// Writes the records (bounded), over whatever version is stored now, while `leading` is
    /// open: it is checked before every attempt, so a replica that lost the Lease while its
    /// write met a conflict (its successor's write) gives up instead of writing over it.
    pub(super) async fn write(&self, shared: &Shared, leading: &WriteGate) -> Result<()> {
        let text = encode(shared, MAX_RECORDS_BYTES);
        let what = self.what(STATE_CONFIGMAP);
        let written = self
            .modify_while(
                STATE_CONFIGMAP,
                || leading.is_open(),
                |cm| {
                    cm.data
                        .get_or_insert_default()
                        .insert(RECORDS_KEY.into(), text.clone());
                },
            )
            .await
            .map_err(Error::kube(format!("cannot write {what}")))?;
        match written {
            Some(_) => Ok(()),
            None => Err(Error::Refused(format!(
                "{what} not written: this replica no longer leads, and its successor's records stand"
            ))),
        }
    }

    /// Read, change, replace guarded by the version read; created when missing; retried when
    /// another replica wrote in between.
    async fn modify(
        &self,
        name: &str,
        change: impl FnMut(&mut ConfigMap),
    ) -> std::result::Result<ConfigMap, kube::Error> {
        let written = self.modify_while(name, || true, change).await?;
        Ok(written.unwrap_or_default())
    }

    /// Like [`Store::modify`], asking `may_write` before every attempt, the first and each
    /// retry after a conflict; `None` once it says no, with nothing written.
    async fn modify_while(
        &self,
        name: &str,
        may_write: impl Fn() -> bool,
        mut change: impl FnMut(&mut ConfigMap),
    ) -> std::result::Result<Option<ConfigMap>, kube::Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if !may_write() {
                return Ok(None);
            }
            let result = match self.api.get_opt(name).await? {
                Some(mut cm) => {
                    change(&mut cm);
                    self.api.replace(name, &PostParams::default(), &cm).await
                }
                None => {
                    let mut cm = owned_configmap(name, &self.namespace);
                    change(&mut cm);
                    self.api.create(&PostParams::default(), &cm).await
                }
            };
            match result {
                Err(e) if is_conflict(&e) && attempt < ATTEMPTS => continue,
                other => return other.map(Some),
            }
        }
    }

    /// Asks the leader to sync: appends `sha` to the waiting pushes.
    pub(super) async fn request_sync(&self, sha: &str, at: &str) -> Result<()> {
        let what = self.what(REQUESTS_CONFIGMAP);
        self.modify(REQUESTS_CONFIGMAP, |cm| {
            // The time of the last request, for people (`kubectl describe`), as Flux's
            // requestedAt.
            cm.metadata
                .annotations
                .get_or_insert_default()
                .insert(REQUESTED_AT_ANNOTATION.into(), at.into());
            let data = cm.data.get_or_insert_default();
            // Counters that do not add up (planted, or at the end of u64) start over instead of
            // wrapping to a number the leader takes as handled, which would end forwarding.
            let sequence = match counters(data).and_then(|(sequence, _)| next_sequence(sequence)) {
                Some(next) => next,
                None => {
                    data.clear();
                    1
                }
            };
            let mut lines: Vec<String> = data
                .get(COMMITS_KEY)
                .map(|c| c.lines().map(String::from).collect())
                .unwrap_or_default();
            lines.push(format!("{sequence} {sha}"));
            let skip = lines.len().saturating_sub(MAX_REQUESTS);
            data.insert(COMMITS_KEY.into(), lines[skip..].join("\n"));
            data.insert(SEQUENCE_KEY.into(), sequence.to_string());
        })
        .await
        .map(drop)
        .map_err(Error::kube(format!("cannot write {what}")))
    }

    /// The pushes not handled yet, oldest first, marked handled.
    pub(super) async fn take_requests(&self) -> Result<Vec<String>> {
        let what = self.what(REQUESTS_CONFIGMAP);
        let Some(cm) = self
            .api
            .get_opt(REQUESTS_CONFIGMAP)
            .await
            .map_err(Error::kube(format!("cannot read {what}")))?
        else {
            return Ok(Vec::new());
        };
        let data = cm.data.clone().unwrap_or_default();
        let mut cm = cm;
        let shas = match counters(&data).filter(|(sequence, _)| in_range(*sequence)) {
            Some((sequence, handled)) if sequence <= handled => return Ok(Vec::new()),
            Some((sequence, handled)) => {
                let data = cm.data.get_or_insert_default();
                data.insert(HANDLED_KEY.into(), sequence.to_string());
                pending(data, handled, sequence)
            }
            None => {
                // Cleared, so the next push handed over starts the counters anew.
                warn!("{what} has counters that do not add up: its requests are dropped");
                cm.data = None;
                Vec::new()
            }
        };
        match self
            .api
            .replace(REQUESTS_CONFIGMAP, &PostParams::default(), &cm)
            .await
        {
            Ok(_) => Ok(shas),
            // A push came in between: it is read again with the next look.
            Err(e) if is_conflict(&e) => Ok(Vec::new()),
            Err(e) => Err(Error::kube(format!("cannot write {what}"))(e)),
        }
    }
}

/// `(sequence, handled)` when both read as numbers (absent: 0) and no more were handled than
/// requested; `None` for anything else.
fn counters(data: &BTreeMap<String, String>) -> Option<(u64, u64)> {
    let number = |key| data.get(key).map_or(Some(0), |v: &String| v.parse::<u64>().ok());
    let (sequence, handled) = (number(SEQUENCE_KEY)?, number(HANDLED_KEY)?);
    (handled <= sequence).then_some((sequence, handled))
}

/// Whether another sequence number can follow `n`: 2^64−1 cannot, so it is never valid.
fn in_range(n: u64) -> bool {
    n.checked_add(1).is_some()
}

/// The sequence number after `sequence`, when it is in range (checked: never a wrap to a number
/// below what the leader handled).
fn next_sequence(sequence: u64) -> Option<u64> {
    sequence.checked_add(1).filter(|next| in_range(*next))
}

/// The values of the lines numbered in `(handled, sequence]`; a line that is not `<n> <value>`
/// or is numbered past `sequence` is dropped with a warning.
fn pending(data: &BTreeMap<String, String>, handled: u64, sequence: u64) -> Vec<String> {
    let lines = data.get(COMMITS_KEY).map(|c| c.lines()).into_iter().flatten();
    let mut values = Vec::new();
    for line in lines {
        match line.split_once(' ').map(|(n, value)| (n.parse::<u64>(), value)) {
            Some((Ok(n), _)) if n <= handled => {}
            Some((Ok(n), value)) if n <= sequence => values.push(value.to_string()),
            _ => {
                warn!(line = %printable(&truncate(line, 100)), "dropped a malformed or out-of-range request in {REQUESTS_CONFIGMAP}")
            }
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::{CommitKind, CommitRecord, Reason, ResultState, SyncRecord};

    fn commit(i: usize, plan_bytes: usize) -> CommitRecord {
        CommitRecord {
            sha: format!("{i:040x}"),
            kind: CommitKind::Sync,
            pull_request: None,
            finished: i as u64,
            state: ResultState::Success,
            description: "applied 1, pruned 0, unchanged 0".into(),
            plan: "x".repeat(plan_bytes),
            report: None,
            errors: vec!["e".repeat(5000); 80],
        }
    }

    fn sync(i: usize) -> SyncRecord {
        SyncRecord {
            sha: Some(format!("{i:040x}")),
            reason: Reason::Poll,
            started: i as u64,
            seconds: 1.5,
            state: ResultState::Success,
            description: "d".repeat(3000),
            non_fast_forward: false,
        }
    }

    #[test]
    fn records_fit_in_a_configmap_and_the_newest_are_kept() {
        let shared = Shared {
            leader: "storesync-0_ab12".into(),
            written: 1,
            records: Records {
                syncs: (0..50).map(sync).collect(),
                commits: (0..200).map(|i| commit(i, 100_000)).collect(),
                stores: Vec::new(),
                last_result: None,
            },
        };
        let text = encode(&shared, MAX_RECORDS_BYTES);
        assert!(text.len() <= MAX_RECORDS_BYTES, "{} bytes", text.len());
        let back: Shared = serde_json::from_str(&text).unwrap();
        let kept = &back.records.commits;
        assert!(!kept.is_empty() && kept.len() < 200, "{} kept", kept.len());
        assert_eq!(
            kept.last().unwrap().sha,
            format!("{:040x}", 199),
            "the newest stays"
        );
        assert!(
            kept.iter()
                .all(|c| c.plan.len() <= MAX_PLAN_TEXT + 4 && c.errors.len() <= MAX_FINDINGS)
        );
        assert_eq!(back.records.syncs.len(), 50, "syncs are small: all kept");
        assert!(back.records.syncs[0].description.len() <= MAX_LINE + 4);
    }

    #[test]
    fn small_records_round_trip_unchanged() {
        let shared = Shared {
            leader: "a".into(),
            written: 7,
            records: Records {
                syncs: vec![SyncRecord {
                    description: "ok".into(),
                    non_fast_forward: true,
                    ..sync(1)
                }],
                commits: vec![CommitRecord {
                    errors: vec!["stores/a.yaml:1:1: bad".into()],
                    ..commit(1, 10)
                }],
                stores: Vec::new(),
                last_result: None,
            },
        };
        let back: Shared = serde_json::from_str(&encode(&shared, MAX_RECORDS_BYTES)).unwrap();
        assert_eq!(back, shared);
    }

    #[test]
    fn an_unknown_state_is_refused_not_invented() {
        let text = r#"{"leader":"a","written":1,"records":{"syncs":[{"sha":null,"reason":"poll","started":1,
            "seconds":1.0,"state":"exploded","description":""}],"commits":[],"stores":[],"lastResult":null}}"#;
        let err = serde_json::from_str::<Shared>(text).unwrap_err().to_string();
        assert!(err.contains("exploded"), "{err}");
    }

    #[test]
    fn request_counters_never_wrap() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let max = u64::MAX.to_string();
        assert_eq!(counters(&data(&[])), Some((0, 0)));
        assert_eq!(counters(&data(&[(SEQUENCE_KEY, "3"), (HANDLED_KEY, "4")])), None);
        assert_eq!(counters(&data(&[(SEQUENCE_KEY, "-1")])), None);
        assert_eq!(next_sequence(u64::MAX - 2), Some(u64::MAX - 1));
        assert_eq!(next_sequence(u64::MAX - 1), None, "2^64−1 could not be followed");
        assert!(!in_range(u64::MAX));
        let lines = format!("1 a\n2 b\nthree c\n4 d\n{max} e\n3");
        assert_eq!(pending(&data(&[(COMMITS_KEY, &lines)]), 1, 4), ["b", "d"]);
    }
}
