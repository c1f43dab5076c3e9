//! Posting statuses in the background: a bounded queue, one worker, retries with backoff.
//! Pull-request feedback (comments, check runs) has a queue and a worker of its own
//! ([`feedback`]), so however slow, refused or rate-limited it is, it never holds up a status.
mod feedback;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::pr_feedback::{PrFeedback, PrWriter};
use super::{CommitStatus, Notifier, NotifyError};
use feedback::FeedbackQueue;

/// Outcome labels passed to `on_result`.
pub const RESULT_SUCCESS: &str = "success";
pub const RESULT_RETRIED_SUCCESS: &str = "retried_success";
pub const RESULT_FAILED: &str = "failed";
pub const RESULT_DROPPED: &str = "dropped";

/// How the reporter retries and queues.
#[derive(Debug, Clone)]
pub struct ReporterOptions {
    /// Statuses waiting to be posted; one more is dropped (logged and counted). Pull-request
    /// feedback has a queue as long of its own.
    pub queue: usize,
    /// Tries per status, the first included.
    pub attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub first_backoff: Duration,
    /// No wait is longer, whatever the provider asks (a rate limit reset can be an hour away).
    pub max_wait: Duration,
    /// One try that takes longer is a retryable [`NotifyError::Timeout`].
    pub attempt_timeout: Duration,
}

impl Default for ReporterOptions {
    /// 1024 queued; 5 tries, 0.5 s, 1 s, 2 s, 4 s apart; waits capped at 60 s; 30 s per try.
    fn default() -> Self {
        ReporterOptions {
            queue: 1024,
            attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl ReporterOptions {
    /// The wait after the `failures`-th failed try (1-based), unless the provider said otherwise.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.first_backoff.saturating_mul(factor).min(self.max_wait)
    }
}

enum Job {
    Post(CommitStatus),
    Flush(oneshot::Sender<()>),
}

type OnResult = Arc<dyn Fn(&'static str) + Send + Sync>;
/// Called with a part's `kind` label and a result label.
type OnFeedbackResult = Arc<dyn Fn(&'static str, &'static str) + Send + Sync>;

/// Posts statuses in the background, one at a time and in the order sent (so a `pending` never
/// lands after its `success`). Retries with exponential backoff on retryable errors, honouring
/// the provider's Retry-After (capped); gives up on permanent ones. Every final outcome is
/// logged and passed to `on_result` as one of `success`, `retried_success`, `failed`, or
/// `dropped` when the queue is full. Pull-request feedback goes to its own worker. Clones share
/// the queues and workers.
#[derive(Clone)]
pub struct StatusReporter {
    jobs: mpsc::Sender<Job>,
    on_result: OnResult,
    /// Without a writer, feedback is ignored.
    feedback: Option<FeedbackQueue>,
}

impl std::fmt::Debug for StatusReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusReporter")
            .field("queued", &(self.jobs.max_capacity() - self.jobs.capacity()))
            .finish_non_exhaustive()
    }
}

impl StatusReporter {
    /// Starts the worker with [`ReporterOptions::default`]. Needs a tokio runtime.
    pub fn spawn(notifier: Arc<dyn Notifier>, on_result: Arc<dyn Fn(&'static str) + Send + Sync>) -> Self {
        Self::spawn_with(notifier, on_result, ReporterOptions::default())
    }

    /// Starts the worker. It ends once every clone of the reporter is dropped and the queue is
    /// drained. Needs a tokio runtime.
    pub fn spawn_with(
        notifier: Arc<dyn Notifier>,
        on_result: Arc<dyn Fn(&'static str) + Send + Sync>,
        options: ReporterOptions,
    ) -> Self {
        Self::spawn_full(notifier, None, on_result, Arc::new(|_, _| {}), options)
    }

    /// Like [`StatusReporter::spawn_with`], and writes pull-request feedback with `pr_writer` on
    /// a worker of its own (without one, [`StatusReporter::feedback`] does nothing).
    /// `on_result` counts statuses; `on_feedback` each part of feedback written, given up on or
    /// dropped, with its kind ([`super::FeedbackPart::label`]) and the same result labels.
    pub fn spawn_full(
        notifier: Arc<dyn Notifier>,
        pr_writer: Option<Arc<dyn PrWriter>>,
        on_result: Arc<dyn Fn(&'static str) + Send + Sync>,
        on_feedback: Arc<dyn Fn(&'static str, &'static str) + Send + Sync>,
        options: ReporterOptions,
    ) -> Self {
        let (jobs, mut queue) = mpsc::channel(options.queue.max(1));
        let feedback = pr_writer.map(|writer| FeedbackQueue::spawn(writer, on_feedback, options.clone()));
        let worker_result = on_result.clone();
        tokio::spawn(async move {
            while let Some(job) = queue.recv().await {
                match job {
                    Job::Post(status) => {
                        let label = post_with_retries(notifier.as_ref(), &status, &options).await;
                        worker_result(label);
                    }
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        StatusReporter {
            jobs,
            on_result,
            feedback,
        }
    }

    /// Enqueues feedback for a pull request and returns at once. It replaces feedback of the
    /// same pull request still waiting; a finished plan it displaces still completes its own
    /// head's check run ([`feedback`]).
    pub fn feedback(&self, feedback: PrFeedback) {
        if let Some(queue) = &self.feedback {
            queue.push(feedback);
        }
    }

    /// Enqueues `status` and returns at once.
    pub fn send(&self, status: CommitStatus) {
        if let Err(err) = self.jobs.try_send(Job::Post(status)) {
            let (why, job) = match err {
                mpsc::error::TrySendError::Full(job) => ("the queue is full", job),
                mpsc::error::TrySendError::Closed(job) => ("the reporter has stopped", job),
            };
            if let Job::Post(status) = job {
                warn!(
                    sha = %status.sha,
                    context = status.context,
                    state = %status.state,
                    "commit status dropped: {why}"
                );
            }
            (self.on_result)(RESULT_DROPPED);
        }
    }

    /// Waits until every status and every piece of feedback sent so far was written or given
    /// up, for at most `timeout`. False when the time ran out (or a worker is gone).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let statuses = async {
            let (done, finished) = oneshot::channel();
            self.jobs.send(Job::Flush(done)).await.is_ok() && finished.await.is_ok()
        };
        let feedback = async {
            match &self.feedback {
                Some(queue) => queue.flush().await,
                None => true,
            }
        };
        let both = async {
            let (statuses, feedback) = tokio::join!(statuses, feedback);
            statuses && feedback
        };
        tokio::time::timeout(timeout, both).await.unwrap_or(false)
    }
}

type Attempt<'a> = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;

/// Tries `attempt` until it succeeds, fails for good, or `options.attempts` tries are spent:
/// each try bounded by `attempt_timeout`, a retryable error waited out for the provider's
/// Retry-After (capped at `max_wait`) or the backoff, each wait told to `on_retry`. The tries
/// made and the outcome.
async fn with_retries<'a>(
    options: &ReporterOptions,
    mut attempt: impl FnMut() -> Attempt<'a>,
    on_retry: impl Fn(u32, &NotifyError, Duration),
) -> (u32, Result<(), NotifyError>) {
    let attempts = options.attempts.max(1);
    let mut tries = 0;
    loop {
        tries += 1;
        let err = match tokio::time::timeout(options.attempt_timeout, attempt()).await {
            Ok(Ok(())) => return (tries, Ok(())),
            Ok(Err(err)) => err,
            Err(_) => NotifyError::Timeout(options.attempt_timeout),
        };
        if !err.is_retryable() || tries >= attempts {
            return (tries, Err(err));
        }
        let wait = err
            .retry_after()
            .map_or_else(|| options.backoff(tries), |asked| asked.min(options.max_wait));
        on_retry(tries, &err, wait);
        tokio::time::sleep(wait).await;
    }
}

/// Posts one status, retrying; returns the outcome label.
async fn post_with_retries(
    notifier: &dyn Notifier,
    status: &CommitStatus,
    options: &ReporterOptions,
) -> &'static str {
    let (tries, result) = with_retries(
        options,
        || notifier.post(status),
        |tries, err, wait| {
            debug!(
                sha = %status.sha, context = status.context, tries, error = %err, wait = ?wait,
                "commit status not posted, retrying"
            );
        },
    )
    .await;
    match result {
        Ok(()) if tries == 1 => {
            debug!(sha = %status.sha, context = status.context, state = %status.state, "commit status posted");
            RESULT_SUCCESS
        }
        Ok(()) => {
            info!(
                sha = %status.sha, context = status.context, state = %status.state, tries,
                "commit status posted after retries"
            );
            RESULT_RETRIED_SUCCESS
        }
        Err(err) => {
            warn!(
                sha = %status.sha,
                context = status.context,
                state = %status.state,
                tries,
                error = %err,
                kind = err.metric_label(),
                "commit status not posted, giving up"
            );
            RESULT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::*;
    use crate::report::{LogNotifier, SYNC_CONTEXT, StatusState};

    #[test]
    fn backoff_doubles_and_is_capped() {
        let o = ReporterOptions::default();
        let waits: Vec<_> = (1..=5).map(|n| o.backoff(n)).collect();
        let ms = |m| Duration::from_millis(m);
        assert_eq!(waits, [ms(500), ms(1000), ms(2000), ms(4000), ms(8000)]);
        assert_eq!(o.backoff(40), Duration::from_secs(60));
    }
    /// Answers from a script, records what it was asked, and can hold a post until released.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<(), NotifyError>>>,
        posted: Mutex<Vec<(String, StatusState)>>,
        entered: Notify,
        gate: Option<tokio::sync::Semaphore>,
    }

    impl Scripted {
        fn answering(answers: Vec<Result<(), NotifyError>>) -> Self {
            Scripted {
                answers: Mutex::new(answers.into()),
                ..Default::default()
            }
        }
    }

    impl Notifier for Scripted {
        fn post(
            &self,
            status: &CommitStatus,
        ) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>> {
            let status = status.clone();
            Box::pin(async move {
                self.entered.notify_one();
                if let Some(gate) = &self.gate {
                    gate.acquire().await.unwrap().forget();
                }
                self.posted.lock().unwrap().push((status.sha, status.state));
                self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()))
            })
        }
    }

    fn recorder() -> (Arc<Mutex<Vec<&'static str>>>, OnResult) {
        let labels = Arc::new(Mutex::new(Vec::new()));
        let sink = labels.clone();
        (labels, Arc::new(move |label| sink.lock().unwrap().push(label)))
    }

    fn fast() -> ReporterOptions {
        ReporterOptions {
            first_backoff: Duration::from_millis(1),
            ..Default::default()
        }
    }

    fn server_error() -> Result<(), NotifyError> {
        Err(NotifyError::Server {
            status: 500,
            message: "boom".into(),
            retry_after: None,
        })
    }

    fn status(n: usize, state: StatusState) -> CommitStatus {
        CommitStatus::new(format!("{n:040}"), SYNC_CONTEXT, state, "", None)
    }

    #[tokio::test]
    async fn posts_in_order_and_reports_each_outcome() {
        let notifier = Arc::new(Scripted::answering(vec![
            Ok(()),
            server_error(),
            server_error(),
            Ok(()),
            Err(NotifyError::Rejected {
                status: 422,
                message: "no".into(),
            }),
            server_error(),
            server_error(),
            server_error(),
            server_error(),
            server_error(),
        ]));
        let (labels, on_result) = recorder();
        let reporter = StatusReporter::spawn_with(notifier.clone(), on_result, fast());
        reporter.send(status(1, StatusState::Pending));
        reporter.send(status(1, StatusState::Success));
        reporter.send(status(2, StatusState::Pending));
        reporter.send(status(3, StatusState::Error));
        assert!(reporter.flush(Duration::from_secs(5)).await);

        assert_eq!(
            *labels.lock().unwrap(),
            ["success", "retried_success", "failed", "failed"]
        );
        let posted = notifier.posted.lock().unwrap();
        let order: Vec<_> = posted
            .iter()
            .map(|(sha, state)| (sha[38..].to_string(), *state))
            .collect();
        use StatusState::*;
        let expected = [
            ("01", Pending),
            ("01", Success),
            ("01", Success),
            ("01", Success),
            ("02", Pending),
        ];
        assert_eq!(order[..5], expected.map(|(s, st)| (s.to_string(), st)));
        // A permanent error is tried once; a retryable one `attempts` (5) times.
        assert_eq!(order.len(), 5 + 5);
        assert!(
            order[5..]
                .iter()
                .all(|(sha, state)| sha == "03" && *state == Error)
        );
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_capped() {
        let notifier = Arc::new(Scripted::answering(vec![Err(NotifyError::RateLimited {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(3600)),
        })]));
        let (labels, on_result) = recorder();
        let options = ReporterOptions {
            max_wait: Duration::from_millis(200),
            ..fast()
        };
        let reporter = StatusReporter::spawn_with(notifier, on_result, options);
        let started = std::time::Instant::now();
        reporter.send(status(1, StatusState::Pending));
        assert!(reporter.flush(Duration::from_secs(5)).await);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "waited {took:?}");
        assert!(took < Duration::from_secs(3), "waited {took:?}");
        assert_eq!(*labels.lock().unwrap(), ["retried_success"]);
    }

    #[tokio::test]
    async fn a_hanging_post_times_out_and_is_retried() {
        struct Hangs(Mutex<u32>);
        impl Notifier for Hangs {
            fn post(
                &self,
                _: &CommitStatus,
            ) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>> {
                let first = {
                    let mut calls = self.0.lock().unwrap();
                    *calls += 1;
                    *calls == 1
                };
                Box::pin(async move {
                    if first {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                })
            }
        }
        let (labels, on_result) = recorder();
        let options = ReporterOptions {
            attempt_timeout: Duration::from_millis(50),
            ..fast()
        };
        let reporter = StatusReporter::spawn_with(Arc::new(Hangs(Mutex::new(0))), on_result, options);
        reporter.send(status(1, StatusState::Pending));
        assert!(reporter.flush(Duration::from_secs(5)).await);
        assert_eq!(*labels.lock().unwrap(), ["retried_success"]);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let notifier = Arc::new(Scripted {
            gate: Some(tokio::sync::Semaphore::new(0)),
            ..Default::default()
        });
        let (labels, on_result) = recorder();
        let options = ReporterOptions { queue: 1, ..fast() };
        let reporter = StatusReporter::spawn_with(notifier.clone(), on_result, options);

        reporter.send(status(1, StatusState::Pending));
        // The worker holds the first; the queue holds one more; a third has no room.
        notifier.entered.notified().await;
        reporter.send(status(2, StatusState::Pending));
        reporter.send(status(3, StatusState::Pending));
        assert_eq!(*labels.lock().unwrap(), ["dropped"]);
        // Flush cannot finish while the post is held.
        assert!(!reporter.flush(Duration::from_millis(50)).await);

        notifier.gate.as_ref().unwrap().add_permits(10);
        assert!(reporter.flush(Duration::from_secs(5)).await);
        assert_eq!(*labels.lock().unwrap(), ["dropped", "success", "success"]);
        let posted: Vec<_> = notifier
            .posted
            .lock()
            .unwrap()
            .iter()
            .map(|(sha, _)| sha.clone())
            .collect();
        assert_eq!(posted, [format!("{:040}", 1), format!("{:040}", 2)]);
    }

    #[tokio::test]
    async fn log_notifier_always_succeeds() {
        let (labels, on_result) = recorder();
        let reporter = StatusReporter::spawn(Arc::new(LogNotifier), on_result);
        reporter.send(status(1, StatusState::Pending));
        assert!(reporter.flush(Duration::from_secs(5)).await);
        assert_eq!(*labels.lock().unwrap(), ["success"]);
    }
}

#[cfg(test)]
mod feedback_tests;
