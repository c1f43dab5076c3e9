//! Pull-request feedback on its own worker: never in front of a status, one write per pull
//! request however often it was pushed, a displaced plan still completing its own check run.
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use super::*;
use crate::report::pr_feedback::{FeedbackKind, FeedbackPart, PlanReport, PlanResult};
use crate::report::{CommitStatus, LogNotifier, PLAN_CONTEXT, StatusState};

type Written = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'static>>;

/// Records what it writes; holds every write while `held` has no permits and `holding` is set.
struct Recorded {
    written: Mutex<Vec<String>>,
    held: tokio::sync::Semaphore,
    holding: bool,
    entered: tokio::sync::Notify,
}

impl Recorded {
    fn new(holding: bool) -> Arc<Recorded> {
        Arc::new(Recorded {
            written: Mutex::default(),
            held: tokio::sync::Semaphore::new(0),
            holding,
            entered: tokio::sync::Notify::new(),
        })
    }

    fn written(&self) -> Vec<String> {
        self.written.lock().unwrap().clone()
    }
}

fn describe(f: &PrFeedback) -> String {
    match &f.kind {
        FeedbackKind::Planning { sha } => format!("#{} planning {sha}", f.number),
        FeedbackKind::Planned(r) => format!("#{} planned {}", f.number, r.sha),
        FeedbackKind::Outdated(r) => format!("#{} outdated {}", f.number, r.sha),
        FeedbackKind::Closed { merged } => format!("#{} closed merged={merged}", f.number),
    }
}

impl PrWriter for Arc<Recorded> {
    fn parts(&self, _: &PrFeedback) -> Vec<FeedbackPart> {
        vec![FeedbackPart::Comment]
    }

    fn write(&self, f: &PrFeedback, _: FeedbackPart) -> Written {
        let (me, what) = (self.clone(), describe(f));
        Box::pin(async move {
            me.entered.notify_one();
            if me.holding {
                me.held.acquire().await.unwrap().forget();
            }
            me.written.lock().unwrap().push(what);
            Ok(())
        })
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

fn reporter(notifier: Arc<dyn Notifier>, writer: Arc<dyn PrWriter>) -> StatusReporter {
    let options = ReporterOptions {
        first_backoff: Duration::from_millis(1),
        ..Default::default()
    };
    StatusReporter::spawn_full(
        notifier,
        Some(writer),
        Arc::new(|_| {}),
        Arc::new(|_, _| {}),
        options,
    )
}

fn plan_status() -> CommitStatus {
    CommitStatus::new("a".repeat(40), PLAN_CONTEXT, StatusState::Success, "", None)
}

#[tokio::test]
async fn a_status_is_never_held_up_by_feedback() {
    let writer = Recorded::new(true);
    let statuses = Arc::new(Mutex::new(0));
    struct Counting(Arc<Mutex<usize>>);
    impl Notifier for Counting {
        fn post(&self, _: &CommitStatus) -> Written {
            *self.0.lock().unwrap() += 1;
            Box::pin(std::future::ready(Ok(())))
        }
    }
    let reporter = reporter(Arc::new(Counting(statuses.clone())), Arc::new(writer.clone()));
    reporter.feedback(planned(1, "a"));
    writer.entered.notified().await;
    reporter.send(plan_status());
    reporter.send(plan_status());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while *statuses.lock().unwrap() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "statuses waited for the feedback"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !reporter.flush(Duration::from_millis(50)).await,
        "the feedback is still held"
    );
    writer.held.add_permits(10);
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert_eq!(writer.written(), ["#1 planned a"]);
}

#[tokio::test]
async fn ten_pushes_make_one_write_of_the_last_head_and_the_others_complete_their_runs() {
    let writer = Recorded::new(true);
    let reporter = reporter(Arc::new(LogNotifier), Arc::new(writer.clone()));
    reporter.feedback(planned(1, "first"));
    writer.entered.notified().await;
    for i in 0..10 {
        reporter.feedback(planned(7, &format!("head{i}")));
    }
    reporter.feedback(planned(8, "other"));
    writer.held.add_permits(100);
    assert!(reporter.flush(Duration::from_secs(5)).await);
    let written = writer.written();
    // One comment write for #7, of its last head; each displaced head's own check run still
    // completes (here: an `outdated` write), never its comment.
    let mut expected = vec!["#1 planned first".to_string(), "#7 planned head9".into()];
    expected.extend((0..9).map(|i| format!("#7 outdated head{i}")));
    expected.push("#8 planned other".into());
    assert_eq!(written, expected);
}

#[tokio::test]
async fn a_close_displaces_a_plan_and_a_same_head_start_does_not() {
    let writer = Recorded::new(true);
    let reporter = reporter(Arc::new(LogNotifier), Arc::new(writer.clone()));
    reporter.feedback(planned(1, "first"));
    writer.entered.notified().await;
    reporter.feedback(planned(3, "a"));
    reporter.feedback(PrFeedback {
        number: 3,
        kind: FeedbackKind::Closed { merged: true },
    });
    reporter.feedback(planned(4, "b"));
    reporter.feedback(PrFeedback {
        number: 4,
        kind: FeedbackKind::Planning { sha: "b".into() },
    });
    writer.held.add_permits(100);
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert_eq!(
        writer.written(),
        [
            "#1 planned first",
            "#3 closed merged=true",
            "#3 outdated a",
            "#4 planning b"
        ]
    );
}

#[tokio::test]
async fn without_a_writer_feedback_is_ignored() {
    let reporter = StatusReporter::spawn(Arc::new(LogNotifier), Arc::new(|_| {}));
    reporter.feedback(planned(1, "a"));
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert!(reporter.feedback.is_none());
}

/// Writes a comment and a check run; the comment fails once with a 500, the check run is
/// refused (403) every time and then settled.
#[derive(Default)]
struct Parts(Mutex<Vec<&'static str>>);

impl PrWriter for Arc<Parts> {
    fn parts(&self, _: &PrFeedback) -> Vec<FeedbackPart> {
        vec![FeedbackPart::Comment, FeedbackPart::CheckRun]
    }

    fn write(&self, _: &PrFeedback, part: FeedbackPart) -> Written {
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
                status: 422,
                message: "Validation Failed".into(),
            }),
        };
        Box::pin(std::future::ready(result))
    }

    fn settle(&self, _: &PrFeedback, part: FeedbackPart, why: &str) -> Written {
        assert_eq!(why, "rejected (HTTP 422): Validation Failed");
        self.0.lock().unwrap().push(match part {
            FeedbackPart::CheckRun => "settle check_run",
            FeedbackPart::Comment => "settle comment",
        });
        Box::pin(std::future::ready(Ok(())))
    }
}

type Counted = Arc<Mutex<Vec<(&'static str, &'static str)>>>;

fn counting(writer: Arc<dyn PrWriter>, queue: usize) -> (StatusReporter, Counted) {
    let counted: Counted = Arc::default();
    let sink = counted.clone();
    let options = ReporterOptions {
        queue,
        first_backoff: Duration::from_millis(1),
        ..Default::default()
    };
    let reporter = StatusReporter::spawn_full(
        Arc::new(LogNotifier),
        Some(writer),
        Arc::new(|_| {}),
        Arc::new(move |kind, result| sink.lock().unwrap().push((kind, result))),
        options,
    );
    (reporter, counted)
}

#[tokio::test]
async fn each_part_is_retried_counted_and_settled_on_its_own() {
    let writer = Arc::new(Parts::default());
    let (reporter, counted) = counting(Arc::new(writer.clone()), 16);
    reporter.feedback(planned(9, "a"));
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert_eq!(
        *counted.lock().unwrap(),
        [("comment", "retried_success"), ("check_run", "failed")]
    );
    // The refused check run is not retried, its refusal costs the comment nothing, and it is
    // settled (completed with a short summary) once.
    assert_eq!(
        *writer.0.lock().unwrap(),
        ["comment", "comment", "check_run", "settle check_run"]
    );
}

#[tokio::test]
async fn feedback_that_finds_its_queue_full_is_counted_dropped_per_part() {
    struct Held(tokio::sync::Semaphore, tokio::sync::Notify);
    impl PrWriter for Arc<Held> {
        fn parts(&self, _: &PrFeedback) -> Vec<FeedbackPart> {
            vec![FeedbackPart::Comment, FeedbackPart::CheckRun]
        }
        fn write(&self, _: &PrFeedback, _: FeedbackPart) -> Written {
            let me = self.clone();
            Box::pin(async move {
                me.1.notify_one();
                me.0.acquire().await.unwrap().forget();
                Ok(())
            })
        }
    }
    let held = Arc::new(Held(tokio::sync::Semaphore::new(0), tokio::sync::Notify::new()));
    let (reporter, counted) = counting(Arc::new(held.clone()), 1);
    reporter.feedback(planned(1, "a"));
    // The worker holds #1; the queue takes #2; #3 has no room.
    held.1.notified().await;
    reporter.feedback(planned(2, "b"));
    reporter.feedback(planned(3, "c"));
    assert_eq!(
        *counted.lock().unwrap(),
        [("comment", "dropped"), ("check_run", "dropped")]
    );
    held.0.add_permits(10);
    assert!(reporter.flush(Duration::from_secs(5)).await);
    assert_eq!(counted.lock().unwrap().len(), 6, "#1 and #2 written after all");
}
