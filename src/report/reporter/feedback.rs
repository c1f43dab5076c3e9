//! Pull-request feedback on a queue and a worker of its own, beside the statuses': a comment
//! edit or a check run that waits out GitHub's rate limit never holds up a `storesync/sync`.
//!
//! One slot per pull request holds its newest feedback, so ten pushes in a minute make one write
//! of the last head. A finished plan that a newer head (or the close) displaces from that slot
//! is not lost: it becomes [`FeedbackKind::Outdated`], in a slot of its own head, so that head's
//! check run is still completed with its result while the comment stays the newer one's.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::{
    OnFeedbackResult, RESULT_DROPPED, RESULT_FAILED, RESULT_RETRIED_SUCCESS, RESULT_SUCCESS, ReporterOptions,
    with_retries,
};
use crate::report::pr_feedback::{FeedbackKind, FeedbackPart, PrFeedback, PrWriter};

/// Where feedback waits: the pull request's newest, or an outdated head's check run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Pull(u64),
    Outdated(u64, String),
}

fn slot_of(feedback: &PrFeedback) -> Slot {
    match &feedback.kind {
        FeedbackKind::Outdated(report) => Slot::Outdated(feedback.number, report.sha.clone()),
        _ => Slot::Pull(feedback.number),
    }
}

/// The head `kind` is about, if any.
fn head_of(kind: &FeedbackKind) -> Option<&str> {
    match kind {
        FeedbackKind::Planning { sha } => Some(sha),
        FeedbackKind::Planned(report) | FeedbackKind::Outdated(report) => Some(&report.sha),
        FeedbackKind::Closed { .. } => None,
    }
}

/// What is left to write of `old` once `new_head` (`None`: the close) took its slot: a finished
/// plan of another head still completes its check run.
fn displaced(old: PrFeedback, new_head: Option<&str>) -> Option<PrFeedback> {
    match old.kind {
        FeedbackKind::Planned(report) if new_head != Some(report.sha.as_str()) => Some(PrFeedback {
            number: old.number,
            kind: FeedbackKind::Outdated(report),
        }),
        _ => None,
    }
}

enum Job {
    Write(Slot),
    Flush(oneshot::Sender<()>),
}

/// The feedback queue and its worker; clones share them.
#[derive(Clone)]
pub(super) struct FeedbackQueue {
    jobs: mpsc::Sender<Job>,
    slots: Arc<Mutex<HashMap<Slot, PrFeedback>>>,
    writer: Arc<dyn PrWriter>,
    on_feedback: OnFeedbackResult,
}

impl FeedbackQueue {
    /// Starts the worker; it ends once every clone is dropped and the queue is drained.
    pub(super) fn spawn(
        writer: Arc<dyn PrWriter>,
        on_feedback: OnFeedbackResult,
        options: ReporterOptions,
    ) -> FeedbackQueue {
        let (jobs, mut queue) = mpsc::channel(options.queue.max(1));
        let slots: Arc<Mutex<HashMap<Slot, PrFeedback>>> = Arc::default();
        let (worker_slots, worker_writer, worker_counts) =
            (slots.clone(), writer.clone(), on_feedback.clone());
        tokio::spawn(async move {
            while let Some(job) = queue.recv().await {
                match job {
                    Job::Write(slot) => {
                        let Some(feedback) = lock(&worker_slots).remove(&slot) else {
                            continue;
                        };
                        for part in worker_writer.parts(&feedback) {
                            let label = write_part(worker_writer.as_ref(), &feedback, part, &options).await;
                            worker_counts(part.label(), label);
                        }
                    }
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        FeedbackQueue {
            jobs,
            slots,
            writer,
            on_feedback,
        }
    }

    /// Enqueues `feedback` in its slot, replacing what waits there (see the module).
    pub(super) fn push(&self, feedback: PrFeedback) {
        let number = feedback.number;
        let mut queued = Vec::new();
        {
            let mut slots = lock(&self.slots);
            let slot = slot_of(&feedback);
            let new_head = head_of(&feedback.kind).map(str::to_owned);
            match slots.insert(slot.clone(), feedback) {
                None => queued.push(slot),
                Some(old) => {
                    debug!(pr = number, "pull request feedback replaced by a newer one");
                    if let Some(outdated) = displaced(old, new_head.as_deref()) {
                        let slot = slot_of(&outdated);
                        if slots.insert(slot.clone(), outdated).is_none() {
                            queued.push(slot);
                        }
                    }
                }
            }
        }
        for slot in queued {
            self.enqueue(slot);
        }
    }

    fn enqueue(&self, slot: Slot) {
        let Err(e) = self.jobs.try_send(Job::Write(slot.clone())) else {
            return;
        };
        if let Some(feedback) = lock(&self.slots).remove(&slot) {
            for part in self.writer.parts(&feedback) {
                (self.on_feedback)(part.label(), RESULT_DROPPED);
            }
        }
        warn!(slot = ?slot, error = %e, "pull request feedback dropped");
    }

    /// Waits until everything enqueued so far was written or given up.
    pub(super) async fn flush(&self) -> bool {
        let (done, finished) = oneshot::channel();
        self.jobs.send(Job::Flush(done)).await.is_ok() && finished.await.is_ok()
    }
}

fn lock(slots: &Mutex<HashMap<Slot, PrFeedback>>) -> std::sync::MutexGuard<'_, HashMap<Slot, PrFeedback>> {
    slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes one part, retrying like a status; a part that fails for good is settled (a check run
/// is completed all the same). The outcome label.
async fn write_part(
    writer: &dyn PrWriter,
    feedback: &PrFeedback,
    part: FeedbackPart,
    options: &ReporterOptions,
) -> &'static str {
    let (pr, what) = (feedback.number, part.label());
    let log_retry = |tries, err: &crate::report::NotifyError, wait| {
        debug!(pr, part = what, tries, error = %err, wait = ?wait, "pull request feedback not written, retrying");
    };
    let (tries, result) = with_retries(options, || writer.write(feedback, part), log_retry).await;
    let err = match result {
        Ok(()) => {
            debug!(pr, part = what, tries, "pull request feedback written");
            return if tries == 1 {
                RESULT_SUCCESS
            } else {
                RESULT_RETRIED_SUCCESS
            };
        }
        Err(err) => err,
    };
    warn!(
        pr, part = what, tries, error = %err, kind = err.metric_label(),
        "pull request feedback not written, giving up"
    );
    let why = err.to_string();
    let (_, settled) = with_retries(options, || writer.settle(feedback, part, &why), log_retry).await;
    if let Err(e) = settled {
        warn!(pr, part = what, error = %e, "pull request feedback could not be settled either");
    }
    RESULT_FAILED
}
