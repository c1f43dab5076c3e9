//! The trigger queues of the daemon. Syncs: latest wins — triggers that arrive while a sync runs
//! coalesce into one follow-up sync, none is lost. Plans: one pending plan per pull request,
//! bounded in number, served by their own workers so they never hold up a sync; beside them, what
//! this replica knows of each pull request (the newest head started, closed or not: `pulls.rs`).
mod pulls;

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use tracing::{info, warn};

use pulls::Pulls;

/// What asked for a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    Startup,
    Poll,
    Webhook,
    FileWatch,
    /// A sync that ended in `error`, tried again after a backoff.
    Retry,
    /// This replica became the leader.
    Elected,
    /// The drift comparison fell due (`--drift-interval`), whatever the poll interval.
    Drift,
    /// A rollout in flight is looked at again.
    Rollout,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::Poll => "poll",
            Reason::Webhook => "webhook",
            Reason::FileWatch => "file-watch",
            Reason::Retry => "retry",
            Reason::Elected => "elected",
            Reason::Drift => "drift",
            Reason::Rollout => "rollout",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTrigger {
    pub reason: Reason,
    /// The commit a push announced; the sync reads the branch head, which is at least as new.
    pub sha: Option<String>,
}

#[derive(Default)]
struct SyncInner {
    pending: Option<SyncTrigger>,
    /// Triggers received since the queue was made.
    received: u64,
    /// Triggers folded into a pending one.
    coalesced: u64,
    closed: bool,
}

/// A single-slot, latest-wins queue of sync triggers.
#[derive(Default)]
pub struct SyncQueue {
    inner: Mutex<SyncInner>,
    notify: Notify,
}

impl SyncQueue {
    pub fn push(&self, trigger: SyncTrigger) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.closed {
                return;
            }
            inner.received += 1;
            // A trigger naming a commit wins over one that does not, whatever the order.
            let keep_sha = inner.pending.as_ref().and_then(|p| p.sha.clone());
            if inner.pending.is_some() {
                inner.coalesced += 1;
            }
            let sha = trigger.sha.clone().or(keep_sha);
            inner.pending = Some(SyncTrigger { sha, ..trigger });
        }
        self.notify.notify_one();
    }

    /// The next trigger; `None` once the queue is closed and empty.
    pub async fn next(&self) -> Option<SyncTrigger> {
        next_from(&self.inner, &self.notify, |i| i.pending.take(), |i| i.closed).await
    }

    /// Stops accepting triggers; a pending one is dropped (shutdown).
    pub fn close(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.closed = true;
            inner.pending = None;
        }
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// (received, coalesced) so far.
    pub fn counts(&self) -> (u64, u64) {
        self.inner
            .lock()
            .map(|i| (i.received, i.coalesced))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTrigger {
    pub number: u64,
    pub sha: String,
    pub from_fork: bool,
    /// A `reopened` delivery: the only one that plans a pull request seen closed.
    pub reopened: bool,
}

#[derive(Default)]
struct PlanInner {
    pending: VecDeque<PlanTrigger>,
    closed: bool,
    pulls: Pulls,
}

/// Pending pull-request plans: one per pull request (a newer head replaces an older one),
/// at most `capacity`; the oldest is dropped, and said so, when full. A closed pull request
/// gets no plan until it is reopened, and only the newest head started is written
/// ([`PlanQueue::start`], [`PlanQueue::if_current`]).
pub struct PlanQueue {
    inner: Mutex<PlanInner>,
    notify: Notify,
    capacity: usize,
}

impl PlanQueue {
    pub fn new(capacity: usize) -> PlanQueue {
        PlanQueue {
            inner: Mutex::new(PlanInner::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues a plan, unless the pull request was closed and this is not a reopen (a late
    /// delivery): that changes nothing.
    pub fn push(&self, mut trigger: PlanTrigger) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.closed {
                return;
            }
            if trigger.reopened {
                inner.pulls.reopen(trigger.number);
            } else if inner.pulls.is_closed(trigger.number) {
                info!(pr = trigger.number, sha = %trigger.sha, "pull request closed: a late delivery plans nothing");
                return;
            }
            // The worker must still hear of a reopen a newer head replaced (for the replicas).
            let replaced_reopen = inner
                .pending
                .iter()
                .any(|p| p.number == trigger.number && p.reopened);
            trigger.reopened |= replaced_reopen;
            inner.pending.retain(|p| p.number != trigger.number);
            if inner.pending.len() >= self.capacity
                && let Some(dropped) = inner.pending.pop_front()
            {
                warn!(pr = dropped.number, sha = %dropped.sha, "too many pending plans; dropping the oldest");
            }
            inner.pending.push_back(trigger);
        }
        self.notify.notify_one();
    }

    /// Pull request `number` was closed: its pending plan is dropped, no plan of it starts until
    /// it is reopened, none under way is written; `then` runs under the same lock, so nothing
    /// a plan writes through [`PlanQueue::if_current`] comes after it.
    pub fn close_pull(&self, number: u64, then: impl FnOnce()) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.pending.retain(|p| p.number != number);
        inner.pulls.close(number);
        then();
    }

    /// A plan of `trigger`'s head starts: its sequence number, or `None` when the pull request
    /// was closed since (and this is no reopen).
    pub fn start(&self, trigger: &PlanTrigger) -> Option<u64> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if trigger.reopened {
            inner.pulls.reopen(trigger.number);
        }
        inner.pulls.start(trigger.number)
    }

    /// Runs `then` (writing the plan's feedback) only while plan `seq` of pull request `number`
    /// is the newest started and the pull request open, under the lock [`PlanQueue::close_pull`]
    /// takes; whether it ran.
    pub fn if_current(&self, number: u64, seq: u64, then: impl FnOnce()) -> bool {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = inner.pulls.is_current(number, seq);
        if current {
            then();
        }
        current
    }

    pub async fn next(&self) -> Option<PlanTrigger> {
        next_from(&self.inner, &self.notify, |i| i.pending.pop_front(), |i| i.closed).await
    }

    pub fn close(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.closed = true;
            inner.pending.clear();
        }
        self.notify.notify_waiters();
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.pending.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Waits until `take` yields an item; `None` once `closed` holds and nothing is left.
async fn next_from<S, T>(
    state: &Mutex<S>,
    notify: &Notify,
    take: impl Fn(&mut S) -> Option<T>,
    closed: impl Fn(&S) -> bool,
) -> Option<T> {
    loop {
        {
            let Ok(mut state) = state.lock() else { return None };
            if let Some(item) = take(&mut state) {
                return Some(item);
            }
            if closed(&state) {
                return None;
            }
        }
        notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(sha: &str) -> SyncTrigger {
        SyncTrigger {
            reason: Reason::Webhook,
            sha: Some(sha.into()),
        }
    }

    #[tokio::test]
    async fn triggers_during_a_sync_coalesce_into_the_newest() {
        let q = SyncQueue::default();
        for i in 0..50 {
            q.push(webhook(&format!("sha{i}")));
        }
        assert_eq!(q.next().await, Some(webhook("sha49")));
        assert_eq!(q.counts(), (50, 49));
        // Nothing else is pending.
        let next = tokio::time::timeout(std::time::Duration::from_millis(50), q.next()).await;
        assert!(next.is_err(), "exactly one follow-up");
    }

    #[tokio::test]
    async fn a_poll_after_a_push_keeps_the_pushed_commit() {
        let q = SyncQueue::default();
        q.push(webhook("abc"));
        q.push(SyncTrigger {
            reason: Reason::Poll,
            sha: None,
        });
        assert_eq!(
            q.next().await,
            Some(SyncTrigger {
                reason: Reason::Poll,
                sha: Some("abc".into())
            })
        );
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_and_close_ends_it() {
        let q = std::sync::Arc::new(SyncQueue::default());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.push(webhook("x"));
        assert_eq!(waiter.await.unwrap(), Some(webhook("x")));
        q.close();
        assert_eq!(q.next().await, None);
    }

    #[tokio::test]
    async fn plans_keep_one_per_pull_request_and_are_bounded() {
        let q = PlanQueue::new(2);
        q.push(PlanTrigger {
            number: 1,
            sha: "a".into(),
            from_fork: false,
            reopened: false,
        });
        q.push(PlanTrigger {
            number: 1,
            sha: "b".into(),
            from_fork: false,
            reopened: false,
        });
        assert_eq!(q.len(), 1);
        q.push(PlanTrigger {
            number: 2,
            sha: "c".into(),
            from_fork: false,
            reopened: false,
        });
        q.push(PlanTrigger {
            number: 3,
            sha: "d".into(),
            from_fork: true,
            reopened: false,
        });
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await.unwrap().number, 2, "the oldest (PR 1) was dropped");
        assert_eq!(q.next().await.unwrap().sha, "d");
        q.push(PlanTrigger {
            number: 4,
            sha: "e".into(),
            from_fork: false,
            reopened: false,
        });
        let mut closed_now = false;
        q.close_pull(4, || closed_now = true);
        assert!(closed_now);
        assert!(q.is_empty(), "a closed pull request's plan is dropped");
    }

    fn trigger(number: u64, sha: &str, reopened: bool) -> PlanTrigger {
        PlanTrigger {
            number,
            sha: sha.into(),
            from_fork: false,
            reopened,
        }
    }

    #[tokio::test]
    async fn a_closed_pull_request_plans_nothing_until_reopened() {
        let q = PlanQueue::new(8);
        let started = q.start(&trigger(5, "a", false)).unwrap();
        q.close_pull(5, || {});
        assert!(!q.if_current(5, started, || panic!("written after the close")));
        q.push(trigger(5, "late", false));
        assert!(q.is_empty(), "a late synchronize is dropped");
        assert_eq!(q.start(&trigger(5, "late", false)), None);
        q.push(trigger(5, "b", true));
        q.push(trigger(5, "c", false));
        let next = q.next().await.unwrap();
        assert_eq!(
            (next.sha.as_str(), next.reopened),
            ("c", true),
            "the reopen is kept"
        );
        let seq = q.start(&next).unwrap();
        let mut written = false;
        assert!(q.if_current(5, seq, || written = true) && written);
    }

    #[test]
    fn only_the_newest_head_started_is_written() {
        let q = PlanQueue::new(8);
        let older = q.start(&trigger(9, "a", false)).unwrap();
        let newer = q.start(&trigger(9, "b", false)).unwrap();
        assert!(q.if_current(9, newer, || {}));
        assert!(
            !q.if_current(9, older, || {}),
            "an older head finishing last is dropped"
        );
    }
}
