//! What storesync's `/metrics` exports, read from the exposition itself: the metric families of
//! `Metrics::default().render()`, and their labels and label values once every recording call
//! has been made with every value the daemon passes.

use std::collections::{BTreeMap, BTreeSet};

use storesync::apply::HelmOp;
use storesync::live::health::Health;
use storesync::metrics::Metrics;
use storesync::report::{
    FeedbackPart, RESULT_DROPPED, RESULT_FAILED, RESULT_RETRIED_SUCCESS, RESULT_SUCCESS,
};

/// Labels Prometheus attaches to every scraped series (the target's, not the exporter's).
pub const TARGET_LABELS: [&str; 3] = ["job", "instance", "namespace"];

// The values the daemon records, where src/ has no public constant for them: src/daemon/sync_job.rs
// and plan_job.rs (results), src/daemon/state.rs (states), src/server/mod.rs (webhooks). Healths
// are `Health::ALL` (src/live/health.rs).
const SYNC_RESULTS: [&str; 3] = ["success", "failure", "error"];
const STORE_STATES: [&str; 9] = [
    "in-sync",
    "applied",
    "failed",
    "blocked",
    "suspended",
    "pruned",
    "terminating",
    "pending",
    "skipped",
];
const WEBHOOK_EVENTS: [&str; 4] = ["ping", "push", "pull_request", "other"];
const WEBHOOK_RESULTS: [&str; 5] = ["accepted", "unauthorized", "duplicate", "bad_request", "ignored"];

/// One series name a query may use: its labels and the values each label takes.
#[derive(Debug, Default)]
pub struct Series {
    pub labels: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug)]
pub struct Exported {
    /// By the name a query uses: `_total` for counters, `_bucket`/`_sum`/`_count` for histograms.
    pub series: BTreeMap<String, Series>,
    /// Family names from the `# TYPE` lines of a fresh exposition.
    pub families: BTreeSet<String>,
}

impl Exported {
    pub fn read() -> Exported {
        let families = type_lines(&Metrics::default().render());
        let text = every_series().render();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        for sample in &scrape.samples {
            let names: Vec<String> = match &sample.value {
                prometheus_parse::Value::Histogram(_) => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|suffix| format!("{}{suffix}", sample.metric))
                    .collect(),
                _ => vec![sample.metric.clone()],
            };
            for name in names {
                let entry = series.entry(name.clone()).or_default();
                for (label, value) in sample.labels.iter() {
                    entry
                        .labels
                        .entry(label.clone())
                        .or_default()
                        .insert(value.clone());
                }
                if name.ends_with("_bucket") {
                    entry.labels.entry("le".into()).or_default();
                }
            }
        }
        for family in &families {
            assert!(
                series.keys().any(|s| s
                    .strip_prefix(family.as_str())
                    .is_some_and(|rest| { ["", "_total", "_bucket", "_sum", "_count"].contains(&rest) })),
                "metric family {family} has no series in the exercised exposition: record it in \
                 every_series() (tests/it/ops/exported.rs) so its labels are known"
            );
        }
        Exported { series, families }
    }

    /// The exported series a query name stands for, with the family it belongs to.
    pub fn get(&self, name: &str) -> Option<&Series> {
        self.series.get(name)
    }

    /// The family a series name belongs to.
    pub fn family_of(&self, name: &str) -> Option<&String> {
        self.families.iter().find(|f| {
            name.strip_prefix(f.as_str())
                .is_some_and(|rest| ["", "_total", "_bucket", "_sum", "_count"].contains(&rest))
        })
    }
}

/// `# TYPE <name> <type>` names: every family is declared even before anything is recorded.
fn type_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// A registry in which every family has a series for every label value the daemon records.
fn every_series() -> Metrics {
    let m = Metrics::default();
    for result in SYNC_RESULTS {
        m.sync_finished(result, 1.0, 1_790_000_000);
        m.plan_finished(result);
    }
    m.set_stores(&STORE_STATES.map(|s| (s, 1)));
    m.set_store_health(Health::ALL.map(Some));
    for op in [HelmOp::Upgrade, HelmOp::Rollback, HelmOp::Uninstall] {
        m.helm_invoked(op.label(), true);
        m.helm_invoked(op.label(), false);
    }
    for event in WEBHOOK_EVENTS {
        for result in WEBHOOK_RESULTS {
            m.webhook(event, result);
        }
    }
    for result in [
        RESULT_SUCCESS,
        RESULT_RETRIED_SUCCESS,
        RESULT_FAILED,
        RESULT_DROPPED,
    ] {
        m.status_post(result);
        for part in FeedbackPart::ALL {
            m.pr_feedback_write(part.label(), result);
        }
    }
    m.non_fast_forward_sync();
    m.git_cache_recloned();
    m
}
