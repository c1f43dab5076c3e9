//! The pull requests replicas plan, shared in `storesync-state` beside the records (key
//! `pulls.json`): for each, the sequence number of the newest head whose plan started on any
//! replica, and whether it was closed. Any replica writes it (a plan runs where its webhook
//! arrived), each change a read-modify-write guarded by the version read, so a late delivery to
//! one replica sees the close another took, and an older head planned on one replica never
//! replaces the newer head another planned. Read back like any input: bounded, the counter
//! checked (never wrapped), entries out of range dropped with a warning.
use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{STATE_CONFIGMAP, Store};
use crate::error::{Error, Result};

/// Room the record may take in `storesync-state` (the records get the rest).
pub(in crate::daemon) const MAX_PULLS_BYTES: usize = 24 * 1024;
const PULLS_KEY: &str = "pulls.json";
/// Pull requests remembered; the ones whose newest plan started longest ago go first.
const MAX_PULLS: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullsRecord {
    /// The last sequence number handed out.
    sequence: u64,
    pulls: Vec<Pull>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Pull {
    number: u64,
    /// Sequence number of the newest plan started (or of the close).
    head: u64,
    closed: bool,
}

impl PullsRecord {
    /// The record stored in `cm`, checked: unreadable, or a counter at the end of its range,
    /// starts anew; entries numbered past the counter, or repeated, are dropped.
    fn read(cm: &ConfigMap) -> PullsRecord {
        let Some(text) = cm.data.as_ref().and_then(|d| d.get(PULLS_KEY)) else {
            return PullsRecord::default();
        };
        let record = match serde_json::from_str::<PullsRecord>(text) {
            Ok(record) if record.sequence.checked_add(1).is_some() => record,
            Ok(_) | Err(_) => {
                warn!("{STATE_CONFIGMAP} has an unreadable or out-of-range {PULLS_KEY}: started anew");
                return PullsRecord::default();
            }
        };
        let mut pulls: Vec<Pull> = Vec::with_capacity(record.pulls.len().min(MAX_PULLS));
        for pull in record.pulls {
            if pull.head > record.sequence || pulls.iter().any(|p| p.number == pull.number) {
                warn!(
                    pr = pull.number,
                    "{STATE_CONFIGMAP}: an out-of-range pull request entry was dropped"
                );
                continue;
            }
            pulls.push(pull);
        }
        let mut checked = PullsRecord {
            sequence: record.sequence,
            pulls,
        };
        checked.bound();
        checked
    }

    fn write(&self, cm: &mut ConfigMap) {
        let text = serde_json::to_string(self).unwrap_or_default();
        cm.data.get_or_insert_default().insert(PULLS_KEY.into(), text);
    }

    fn get(&self, number: u64) -> Option<Pull> {
        self.pulls.iter().find(|p| p.number == number).copied()
    }

    /// Sets `number`'s entry to a new sequence number, which it returns. The counter never
    /// wraps: once spent, the record starts anew.
    fn set(&mut self, number: u64, closed: bool) -> u64 {
        let head = match self
            .sequence
            .checked_add(1)
            .filter(|n| n.checked_add(1).is_some())
        {
            Some(next) => next,
            None => {
                warn!("{STATE_CONFIGMAP}: the pull requests' counter is spent: started anew");
                *self = PullsRecord::default();
                1
            }
        };
        self.sequence = head;
        self.pulls.retain(|p| p.number != number);
        self.pulls.push(Pull { number, head, closed });
        self.bound();
        head
    }

    fn bound(&mut self) {
        if self.pulls.len() > MAX_PULLS {
            self.pulls.sort_by_key(|p| std::cmp::Reverse(p.head));
            self.pulls.truncate(MAX_PULLS);
        }
    }
}

impl Store {
    async fn read_pulls(&self) -> Result<PullsRecord> {
        let what = self.what(STATE_CONFIGMAP);
        let cm = self
            .api
            .get_opt(STATE_CONFIGMAP)
            .await
            .map_err(Error::kube(format!("cannot read {what}")))?;
        Ok(cm.as_ref().map(PullsRecord::read).unwrap_or_default())
    }

    /// A plan of pull request `number` starts: its sequence number among every replica's, or
    /// `None` when the pull request was closed and this is no reopen (nothing is written then).
    pub(in crate::daemon) async fn start_pull(&self, number: u64, reopened: bool) -> Result<Option<u64>> {
        if !reopened && self.read_pulls().await?.get(number).is_some_and(|p| p.closed) {
            return Ok(None);
        }
        let what = self.what(STATE_CONFIGMAP);
        let mut started = None;
        self.modify(STATE_CONFIGMAP, |cm| {
            let mut record = PullsRecord::read(cm);
            started = if !reopened && record.get(number).is_some_and(|p| p.closed) {
                None
            } else {
                Some(record.set(number, false))
            };
            record.write(cm);
        })
        .await
        .map_err(Error::kube(format!("cannot write {what}")))?;
        Ok(started)
    }

    /// Pull request `number` was closed: no replica plans it until it is reopened, and no plan
    /// under way is written.
    pub(in crate::daemon) async fn close_pull(&self, number: u64) -> Result<()> {
        let what = self.what(STATE_CONFIGMAP);
        self.modify(STATE_CONFIGMAP, |cm| {
            let mut record = PullsRecord::read(cm);
            record.set(number, true);
            record.write(cm);
        })
        .await
        .map(drop)
        .map_err(Error::kube(format!("cannot write {what}")))
    }

    /// Whether the plan `head` of pull request `number` is still the newest started on any
    /// replica, and the pull request open. One forgotten (hundreds of newer ones since) is.
    pub(in crate::daemon) async fn is_current_pull(&self, number: u64, head: u64) -> Result<bool> {
        let record = self.read_pulls().await?;
        Ok(record.get(number).is_none_or(|p| !p.closed && p.head == head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm_with(text: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.data
            .get_or_insert_default()
            .insert(PULLS_KEY.into(), text.into());
        cm
    }

    #[test]
    fn the_record_is_bounded_and_fits_its_room() {
        let mut record = PullsRecord {
            sequence: u64::MAX - 2 * MAX_PULLS as u64 - 10,
            pulls: Vec::new(),
        };
        for n in 0..(2 * MAX_PULLS as u64) {
            record.set(u64::MAX - n, n % 2 == 0);
        }
        assert_eq!(record.pulls.len(), MAX_PULLS);
        let mut cm = ConfigMap::default();
        record.write(&mut cm);
        let text = &cm.data.as_ref().unwrap()[PULLS_KEY];
        assert!(text.len() <= MAX_PULLS_BYTES, "{} bytes", text.len());
        assert_eq!(PullsRecord::read(&cm), record, "read back as written");
        assert!(
            record.get(u64::MAX - 2 * MAX_PULLS as u64 + 1).is_some(),
            "the newest stay"
        );
    }

    #[test]
    fn what_is_read_back_is_checked() {
        assert_eq!(PullsRecord::read(&cm_with("{not json")), PullsRecord::default());
        let spent = format!(r#"{{"sequence":{},"pulls":[]}}"#, u64::MAX);
        assert_eq!(PullsRecord::read(&cm_with(&spent)), PullsRecord::default());
        let forged = r#"{"sequence":5,"pulls":[{"number":1,"head":9,"closed":false},
            {"number":2,"head":4,"closed":true},{"number":2,"head":3,"closed":false}]}"#;
        let record = PullsRecord::read(&cm_with(forged));
        assert_eq!(record.get(1), None, "numbered past the counter");
        assert_eq!(
            record.get(2),
            Some(Pull {
                number: 2,
                head: 4,
                closed: true
            })
        );
    }

    #[test]
    fn a_spent_counter_starts_anew_instead_of_wrapping() {
        let mut record = PullsRecord {
            sequence: u64::MAX - 1,
            pulls: vec![Pull {
                number: 3,
                head: 1,
                closed: true,
            }],
        };
        assert_eq!(record.set(4, false), 1);
        assert_eq!(record.sequence, 1);
        assert_eq!(record.pulls.len(), 1);
    }
}
