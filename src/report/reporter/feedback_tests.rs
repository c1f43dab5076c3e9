//! Pull-request feedback through the status queue: in order with statuses, one write per pull
//! request however often it was pushed, nothing written after a close.
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use super::*;
use crate::report::pr_feedback::{PlanReport, PlanResult};
use crate::report::{CommitStatus, PLAN_CONTEXT, StatusState};

/// Holds the first status post until released, so the queue fills behind it.
struct Held(tokio::sync::Semaphore, tokio::sync::Notify);

impl Notifier for Held {
    fn post(&self, _: &CommitStatus) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>> {
        Box::pin(async move {
            self.1.notify_one();
            self.0.acquire().await.unwrap().forget();
            Ok(())
        })
    }
}

#[derive(Default)]
struct Recorded(Mutex<Vec<String>>);

impl PrWriter for Recorded {
    fn parts(&self, _: &PrFeedback) -> Vec<FeedbackPart> {
        vec![FeedbackPart::Comment]
    }

    fn write(
        &self,
        f: &PrFeedback,
        _: FeedbackPart,
    ) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>> {
        let what = match &f.kind {
            FeedbackKind::Planning { sha } => format!("#{} planning {sha}", f.number),
            FeedbackKind::Planned(r) => format!("#{} planned {}", f.number, r.sha),
            FeedbackKind::Closed { merged } => format!("#{} closed merged={merged}", f.number),
        };
        self.0.lock().unwrap().push(what);
        Box::pin(std::future::ready(Ok(())))
    }
}

fn planned(number: u64, sha: &str) -> PrFeedback {
    PrFeedback {
        number,
        kind: FeedbackKind::Planned(Box::new(PlanReport::new(
            sha.into(),
            String::new(),
            false,
            PlanResult::Failed("x".into()),
        ))),
    }
}

fn setup() -> (StatusReporter, Arc<Held>, Arc<Recorded>) {
    let held = Arc::new(Held(tokio::sync::Semaphore::new(0), tokio::sync::Notify::new()));
    let recorded = Arc::new(Recorded::default());
    let options = ReporterOptions {
        first_backoff: Duration::from_millis(1),
        ..Default::default()
    };
    let reporter = StatusReporter::spawn_full(
        held.clone(),
        Some(recorded.clone()),
        Arc::new(|_| {}),
        Arc::new(|_, _| {}),
        options,
    );
    (reporter, held, recorded)
}

#[tokio::test]
async fn ten_pushes_make_one_write_of_the_last_head() {
    let (reporter, held, recorded) = setup();
    reporter.send(CommitStatus::new(
        "a".repeat(40),
        PLAN_CONTEXT,
        StatusState::Success,
        "",
        None,
    ));
    held.1.notified().await;
    for i in 0..10 {
        reporter.feedback(planned(7, &format!("head{i}")));
    }
    reporter.feedback(planned(8, "other"));
    held.0.add_permits(10);
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert_eq!(
        *recorded.0.lock().unwrap(),
        ["#7 planned head9", "#8 planned other"]
    );
}

#[tokio::test]
async fn a_plan_finishing_after_the_close_is_not_written_until_reopened() {
    let (reporter, held, recorded) = setup();
    held.0.add_permits(10);
    reporter.feedback(PrFeedback {
        number: 3,
        kind: FeedbackKind::Planning { sha: "a".into() },
    });
    assert!(reporter.flush(Duration::from_secs(5)).await);
    reporter.feedback(PrFeedback {
        number: 3,
        kind: FeedbackKind::Closed { merged: false },
    });
    assert!(reporter.flush(Duration::from_secs(5)).await);
    reporter.feedback(planned(3, "a"));
    assert!(reporter.flush(Duration::from_secs(5)).await);
    // Reopened: a new plan starts and is written.
    reporter.feedback(PrFeedback {
        number: 3,
        kind: FeedbackKind::Planning { sha: "b".into() },
    });
    reporter.feedback(planned(3, "b"));
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert_eq!(
        *recorded.0.lock().unwrap(),
        ["#3 planning a", "#3 closed merged=false", "#3 planned b"]
    );
}

#[tokio::test]
async fn without_a_writer_feedback_is_ignored() {
    let reporter = StatusReporter::spawn(Arc::new(crate::report::LogNotifier), Arc::new(|_| {}));
    reporter.feedback(planned(1, "a"));
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert!(slots_lock(&reporter.slots).pending.is_empty());
}

/// Writes a comment and a check run; the comment fails once with a 500, the check run is
/// refused (403) every time.
#[derive(Default)]
struct Parts(Mutex<Vec<&'static str>>);

impl PrWriter for Parts {
    fn parts(&self, _: &PrFeedback) -> Vec<FeedbackPart> {
        vec![FeedbackPart::Comment, FeedbackPart::CheckRun]
    }

    fn write(
        &self,
        _: &PrFeedback,
        part: FeedbackPart,
    ) -> Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + '_>> {
        let mut tried = self.0.lock().unwrap();
        tried.push(part.label());
        let result = match part {
            FeedbackPart::Comment if tried.len() == 1 => Err(NotifyError::Server {
                status: 500,
                message: "boom".into(),
                retry_after: None,
            }),
            FeedbackPart::Comment => Ok(()),
            FeedbackPart::CheckRun => Err(NotifyError::Rejected {
                status: 403,
                message: "Resource not accessible by integration".into(),
            }),
        };
        Box::pin(std::future::ready(result))
    }
}

type Counted = Arc<Mutex<Vec<(&'static str, &'static str)>>>;

fn counting(notifier: Arc<dyn Notifier>, writer: Arc<Parts>, queue: usize) -> (StatusReporter, Counted) {
    let counted: Counted = Arc::default();
    let sink = counted.clone();
    let options = ReporterOptions {
        queue,
        first_backoff: Duration::from_millis(1),
        ..Default::default()
    };
    let reporter = StatusReporter::spawn_full(
        notifier,
        Some(writer),
        Arc::new(|_| {}),
        Arc::new(move |kind, result| sink.lock().unwrap().push((kind, result))),
        options,
    );
    (reporter, counted)
}

#[tokio::test]
async fn each_part_is_retried_and_counted_on_its_own() {
    let writer = Arc::new(Parts::default());
    let (reporter, counted) = counting(Arc::new(crate::report::LogNotifier), writer.clone(), 16);
    reporter.feedback(planned(9, "a"));
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert_eq!(
        *counted.lock().unwrap(),
        [("comment", "retried_success"), ("check_run", "failed")]
    );
    // The refused check run is not retried, and its refusal does not write the comment again.
    assert_eq!(*writer.0.lock().unwrap(), ["comment", "comment", "check_run"]);
}

#[tokio::test]
async fn feedback_that_finds_the_queue_full_is_counted_dropped_per_part() {
    let held = Arc::new(Held(tokio::sync::Semaphore::new(0), tokio::sync::Notify::new()));
    let (reporter, counted) = counting(held.clone(), Arc::new(Parts::default()), 1);
    reporter.send(CommitStatus::new(
        "a".repeat(40),
        PLAN_CONTEXT,
        StatusState::Success,
        "",
        None,
    ));
    // The worker holds the status; the queue takes #1; #2 has no room.
    held.1.notified().await;
    reporter.feedback(planned(1, "a"));
    reporter.feedback(planned(2, "b"));
    assert_eq!(
        *counted.lock().unwrap(),
        [("comment", "dropped"), ("check_run", "dropped")]
    );
    held.0.add_permits(10);
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert_eq!(counted.lock().unwrap().len(), 4, "#1 written after all");
}
