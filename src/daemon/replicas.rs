//! Working beside other replicas through the cluster: the election, the records the leader
//! shares and the others serve, and pushes a non-leader accepted, handed to the leader.
//!
//! What the leader reads back from `storesync-requests` is untrusted input: whoever can write
//! that ConfigMap could otherwise have the leader post `success` on any commit (a pull
//! request's head included). A push handed over is taken only as a commit id reachable from
//! the tracked branch's head as fetched; anything else is dropped with a warning.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use super::leader::{self, ElectionSettings};
use super::persist::{Shared, Store};
use super::{Context, Reason, SyncTrigger, blocking, now};
use crate::source::tracked::is_strict_ancestor;
use crate::text::truncate;
use crate::untrusted::printable;

/// How often the leader looks for pushes other replicas accepted (a push syncs within 2 s).
pub(super) const REQUEST_POLL: Duration = Duration::from_millis(500);
/// How often a replica that does not lead reads the leader's records.
pub(super) const RELOAD: Duration = Duration::from_secs(2);

/// How a daemon shares with other replicas; absent, it keeps everything in memory.
pub struct Replicas {
    pub namespace: String,
    pub election: Option<ElectionSettings>,
    store: Store,
    /// The records changed and are to be written.
    changed: Notify,
    /// The version of the records last read or written, so an unchanged object is not parsed.
    version: std::sync::Mutex<Option<String>>,
}

impl Replicas {
    pub fn new(client: kube::Client, namespace: String, election: Option<ElectionSettings>) -> Replicas {
        Replicas {
            store: Store::new(client, &namespace),
            namespace,
            election,
            changed: Notify::new(),
            version: std::sync::Mutex::default(),
        }
    }

    /// The daemon recorded something: the leader writes it out.
    pub fn records_changed(&self) {
        self.changed.notify_one();
    }

    /// Takes the records stored in the cluster (at startup, on becoming leader, and on every
    /// look of a non-leader).
    pub async fn load(&self, ctx: &Context) -> crate::error::Result<()> {
        let Some((shared, version)) = self.store.read().await? else {
            return Ok(());
        };
        let Ok(mut seen) = self.version.lock() else {
            return Ok(());
        };
        if seen.as_deref() == Some(version.as_str()) {
            return Ok(());
        }
        *seen = Some(version);
        drop(seen);
        debug!(leader = %shared.leader, "records read from the cluster");
        ctx.state.adopt(shared.records);
        Ok(())
    }

    /// Writes the records, when this replica leads.
    pub async fn save(&self, ctx: &Context) {
        if !ctx.leader.is_leader() {
            return;
        }
        let shared = Shared {
            leader: ctx.leader.identity().to_string(),
            written: now(),
            records: ctx.state.records(),
        };
        if let Err(e) = self.store.write(&shared, &ctx.leader.gate()).await {
            warn!(error = %e, "cannot share the sync history; pages of other replicas and of a restart lag behind");
        }
    }

    /// A replica that does not lead accepted a push: the leader hears of it through the cluster.
    pub fn forward(&self, sha: String) {
        let store = self.store.clone();
        tokio::spawn(async move {
            let at = k8s_openapi::jiff::Timestamp::now().to_string();
            match store.request_sync(&sha, &at).await {
                Ok(()) => info!(%sha, "push handed to the leader"),
                Err(e) => {
                    warn!(error = %e, %sha, "cannot hand the push to the leader; its next poll syncs the branch")
                }
            }
        });
    }
}

/// Runs beside the sync loop until `shutdown`: follows leadership, reads or writes the
/// records, takes pushes handed over by other replicas.
pub(super) async fn coordinate(ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let Some(replicas) = &ctx.replicas else { return };
    let mut leadership = ctx.leader.subscribe();
    let mut was_leading = false;
    let mut unready = false;
    loop {
        let leading = ctx.leader.is_leader();
        if leading && !was_leading {
            // The history goes on from where the previous leader left it.
            if let Err(e) = replicas.load(&ctx).await {
                warn!(error = %e, "cannot read the shared history; starting from this replica's own");
            }
            if ctx.leader.is_elected() {
                ctx.syncs.push(SyncTrigger {
                    reason: Reason::Elected,
                    sha: None,
                });
            }
        }
        was_leading = leading;
        let wait = if leading {
            if ctx.leader.is_elected() {
                match replicas.store.take_requests().await {
                    Ok(requested) => {
                        for sha in on_the_branch(&ctx, requested).await {
                            info!(%sha, "push accepted by another replica: sync queued");
                            ctx.push_received(sha);
                        }
                    }
                    Err(e) => warn!(error = %e, "cannot read the pushes other replicas accepted"),
                }
            }
            REQUEST_POLL
        } else {
            // Ready while the cluster answers: every replica takes webhooks.
            match replicas.load(&ctx).await {
                Ok(()) if unready => {
                    unready = false;
                    ctx.state.set_ready();
                }
                Ok(()) => {}
                Err(e) => {
                    if e.is_unreachable() {
                        unready = true;
                        ctx.state.set_unready();
                    }
                    warn!(error = %e, "cannot read the leader's records");
                }
            }
            RELOAD
        };
        let save = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = replicas.changed.notified(), if leading => true,
            _ = leadership.changed() => false,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        if save {
            replicas.save(&ctx).await;
        }
    }
}

/// A full commit id as GitHub names one: 40 lowercase hexadecimal digits.
fn is_commit_id(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `sha` is `head` or one of its ancestors (so the sync of `head` covers it).
fn reachable(repo: &git2::Repository, head: &str, sha: &str) -> bool {
    sha == head || is_strict_ancestor(repo, sha, head)
}

/// The pushes handed over that the leader may answer for: commit ids reachable from the head of
/// the tracked branch, fetched now (a push is on the branch before its webhook is sent; the
/// sync fetches again, which finds nothing new). The rest are dropped with a warning, all of
/// them when the branch cannot be read (the next poll syncs it).
async fn on_the_branch(ctx: &Context, requested: Vec<String>) -> Vec<String> {
    let (ids, malformed): (Vec<String>, Vec<String>) = requested.into_iter().partition(|v| is_commit_id(v));
    for value in malformed {
        warn!(value = %printable(&truncate(&value, 100)), "dropped a push handed over that is not a commit id");
    }
    if ids.is_empty() {
        return ids;
    }
    let tracked = ctx.settings.tracked.clone();
    let judged = blocking(move || {
        let opened = tracked.open()?;
        let head = tracked.head(&opened)?;
        Ok(ids
            .into_iter()
            .map(|sha| (reachable(&opened.repo, &head, &sha), sha))
            .collect::<Vec<_>>())
    })
    .await;
    match judged {
        Ok(judged) => judged
            .into_iter()
            .filter_map(|(on_branch, sha)| {
                if !on_branch {
                    warn!(%sha, "dropped a push handed over whose commit is not on the tracked branch");
                }
                on_branch.then_some(sha)
            })
            .collect(),
        Err(e) => {
            warn!(error = %printable(&e.to_string()), "cannot read the tracked branch to check the pushes handed over: dropped; the next poll syncs it");
            Vec::new()
        }
    }
}

/// The election task: stopped with the daemon, or aborted with it when the daemon's task is
/// (a killed process renews nothing).
pub(super) struct Election(Option<tokio::task::JoinHandle<()>>);

impl Election {
    /// Waits for the elector to release the Lease and end; one that takes longer than `within`
    /// (an API server that does not answer) is aborted.
    pub(super) async fn finish(mut self, within: Duration) {
        if let Some(task) = self.0.as_mut()
            && tokio::time::timeout(within, task).await.is_ok()
        {
            self.0 = None;
        } else if self.0.is_some() {
            warn!("the leader Lease could not be released in time; a successor waits for it to expire");
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Starts the election, when there is one; it stops (releasing the Lease) when `stop` turns
/// true, which the daemon does once its in-flight sync is done.
pub(super) fn elect(ctx: &Arc<Context>, stop: watch::Receiver<bool>) -> Election {
    let Some(settings) = ctx.replicas.as_ref().and_then(|r| r.election.clone()) else {
        return Election(None);
    };
    Election(Some(tokio::spawn(leader::run(
        ctx.applier.client.clone(),
        settings,
        ctx.leader.clone(),
        ctx.metrics.clone(),
        stop,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_full_lowercase_commit_ids_are_taken() {
        assert!(is_commit_id(&"0123456789abcdef".repeat(3)[..40]));
        for bad in [
            "",
            "0123abc",
            &"A".repeat(40),
            &"g".repeat(40),
            &"a".repeat(41),
            &"a".repeat(64),
            &format!("{} ", "a".repeat(39)),
            "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        ] {
            assert!(!is_commit_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_commit_is_reachable_from_its_descendants_only() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let sig = git2::Signature::now("Ada", "ada@example.com").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let commit = |parents: &[&git2::Commit<'_>], message: &str| {
            let id = repo.commit(None, &sig, &sig, message, &tree, parents).unwrap();
            repo.find_commit(id).unwrap()
        };
        let base = commit(&[], "base");
        let head = commit(&[&base], "on the branch");
        let pull = commit(&[&base], "a pull request's head");
        let (base, head, pull) = (
            base.id().to_string(),
            head.id().to_string(),
            pull.id().to_string(),
        );
        assert!(reachable(&repo, &head, &head));
        assert!(reachable(&repo, &head, &base));
        assert!(
            !reachable(&repo, &head, &pull),
            "a sibling of the head is not on the branch"
        );
        assert!(
            !reachable(&repo, &base, &head),
            "a descendant of the head is not behind it"
        );
        assert!(!reachable(&repo, &head, &"1".repeat(40)), "an unknown commit");
    }
}
