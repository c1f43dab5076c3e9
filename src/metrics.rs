//! Prometheus metrics, kept and encoded by `prometheus-client` (OpenMetrics text). Every label
//! value is a fixed `&'static str`, so cardinality is bounded by construction.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::live::health::Health;

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const DURATION_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Every `result` of `storesync_webhook_deliveries_total`.
pub const WEBHOOK_RESULTS: [&str; 8] = [
    "accepted",
    "ignored",
    "duplicate",
    "unauthorized",
    "bad_request",
    "busy",
    "too_large",
    "timeout",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabel {
    health: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HelmLabels {
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedbackLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    event: &'static str,
    result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    syncs: Family<ResultLabel, Counter>,
    plans: Family<ResultLabel, Counter>,
    sync_duration: Histogram,
    store_sync_duration: Histogram,
    stores: Family<StateLabel, Gauge>,
    stores_by_health: Family<HealthLabel, Gauge>,
    helm: Family<HelmLabels, Counter>,
    webhooks: Family<WebhookLabels, Counter>,
    status_posts: Family<ResultLabel, Counter>,
    pr_feedback_writes: Family<FeedbackLabels, Counter>,
    last_success: Gauge<i64>,
    non_fast_forward: Counter,
    git_cache_reclones: Counter,
    drift_repairs: Counter,
    leader: Gauge,
    leader_transitions: Counter,
    rollout_wave: Gauge,
    rollout_waves: Gauge,
    rollout_halted: Gauge,
    rollouts_halted: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let syncs = Family::<ResultLabel, Counter>::default();
        registry.register(
            "storesync_syncs",
            "Syncs of the tracked branch by result",
            syncs.clone(),
        );
        let plans = Family::<ResultLabel, Counter>::default();
        registry.register("storesync_plans", "Pull-request plans by result", plans.clone());
        let sync_duration = Histogram::new(DURATION_BUCKETS);
        registry.register(
            "storesync_sync_duration_seconds",
            "Duration of syncs",
            sync_duration.clone(),
        );
        let store_sync_duration = Histogram::new(DURATION_BUCKETS);
        registry.register(
            "storesync_store_sync_duration_seconds",
            "Time to apply one store: its guardrails and helm upgrade",
            store_sync_duration.clone(),
        );
        let stores = Family::<StateLabel, Gauge>::default();
        registry.register(
            "storesync_stores",
            "Stores by state after the last sync",
            stores.clone(),
        );
        // Its own family: a health label on storesync_stores would count every store twice in
        // the sums that read that gauge by state.
        let stores_by_health = Family::<HealthLabel, Gauge>::default();
        registry.register(
            "storesync_stores_by_health",
            "Stores by health in the daemon's store table (not yet judged: Unknown)",
            stores_by_health.clone(),
        );
        let helm = Family::<HelmLabels, Counter>::default();
        registry.register(
            "storesync_helm_invocations",
            "Helm invocations by operation and result",
            helm.clone(),
        );
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "storesync_webhook_deliveries",
            "Webhook deliveries by event and result",
            webhooks.clone(),
        );
        let status_posts = Family::<ResultLabel, Counter>::default();
        registry.register(
            "storesync_status_posts",
            "Commit status posts by result",
            status_posts.clone(),
        );
        let pr_feedback_writes = Family::<FeedbackLabels, Counter>::default();
        registry.register(
            "storesync_pr_feedback_writes",
            "Pull-request plan comment and check-run writes by kind and result",
            pr_feedback_writes.clone(),
        );
        let last_success = Gauge::<i64>::default();
        registry.register(
            "storesync_last_successful_sync_timestamp_seconds",
            "Unix time of the last successful sync",
            last_success.clone(),
        );
        let non_fast_forward = Counter::default();
        registry.register(
            "storesync_non_fast_forward_syncs",
            "Syncs of a branch head that moved backwards or was rewritten",
            non_fast_forward.clone(),
        );
        let git_cache_reclones = Counter::default();
        registry.register(
            "storesync_git_cache_reclones",
            "Git caches found unusable and cloned again",
            git_cache_reclones.clone(),
        );
        let drift_repairs = Counter::default();
        registry.register(
            "storesync_drift_repairs",
            "Stores whose chart-rendered objects drifted and were put back by helm upgrade",
            drift_repairs.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "storesync_leader",
            "1 while this replica holds the leader Lease (or runs without election)",
            leader.clone(),
        );
        let leader_transitions = Counter::default();
        registry.register(
            "storesync_leader_transitions",
            "Times this replica started or stopped leading",
            leader_transitions.clone(),
        );
        let rollout_wave = Gauge::default();
        registry.register(
            "storesync_rollout_wave",
            "The wave of the rollout in flight being judged (from 1); 0 when none is in flight",
            rollout_wave.clone(),
        );
        let rollout_waves = Gauge::default();
        registry.register(
            "storesync_rollout_waves",
            "Waves of the rollout in flight; 0 when none is in flight",
            rollout_waves.clone(),
        );
        let rollout_halted = Gauge::default();
        registry.register(
            "storesync_rollout_halted",
            "1 while a halted rollout holds updates back (until a commit changes the halted stores)",
            rollout_halted.clone(),
        );
        let rollouts_halted = Counter::default();
        registry.register(
            "storesync_rollouts_halted",
            "Rollouts halted because a wave had more unhealthy stores than rollout.maxUnhealthy",
            rollouts_halted.clone(),
        );
        // Every known series exists from the start at 0, so `increase()` sees its first event.
        for result in ["success", "failure", "error"] {
            let _ = syncs.get_or_create(&ResultLabel { result });
            let _ = plans.get_or_create(&ResultLabel { result });
        }
        let _ = syncs.get_or_create(&ResultLabel { result: "pending" });
        for health in Health::ALL {
            let _ = stores_by_health.get_or_create(&HealthLabel {
                health: health.as_str(),
            });
        }
        for operation in ["upgrade", "rollback", "uninstall", "retire"] {
            for result in ["success", "failure"] {
                let _ = helm.get_or_create(&HelmLabels { operation, result });
            }
        }
        for event in ["push", "pull_request", "ping", "other"] {
            for result in WEBHOOK_RESULTS {
                let _ = webhooks.get_or_create(&WebhookLabels { event, result });
            }
        }
        for result in crate::report::STATUS_POST_RESULTS {
            let _ = status_posts.get_or_create(&ResultLabel { result });
            for part in crate::report::FeedbackPart::ALL {
                let kind = part.label();
                let _ = pr_feedback_writes.get_or_create(&FeedbackLabels { kind, result });
            }
        }
        Metrics {
            registry,
            syncs,
            plans,
            sync_duration,
            store_sync_duration,
            stores,
            stores_by_health,
            helm,
            webhooks,
            status_posts,
            pr_feedback_writes,
            last_success,
            non_fast_forward,
            git_cache_reclones,
            drift_repairs,
            leader,
            leader_transitions,
            rollout_wave,
            rollout_waves,
            rollout_halted,
            rollouts_halted,
        }
    }
}

impl Metrics {
    /// This replica started (true) or stopped leading; a repeat of the same value is no change.
    pub fn set_leader(&self, leading: bool) {
        let value = i64::from(leading);
        if self.leader.set(value) != value {
            self.leader_transitions.inc();
        }
    }

    /// Where the rollout stands after a sync (`None`: none configured or recorded), and whether
    /// this sync halted one.
    pub fn set_rollout(&self, progress: Option<&crate::rollout::Progress>, halted_now: bool) {
        use crate::rollout::Progress;
        let (wave, of) = match progress {
            Some(Progress::InFlight { wave, of, .. }) => (*wave, *of),
            _ => (0, 0),
        };
        self.rollout_wave.set(i64::try_from(wave).unwrap_or(i64::MAX));
        self.rollout_waves.set(i64::try_from(of).unwrap_or(i64::MAX));
        self.rollout_halted
            .set(i64::from(matches!(progress, Some(Progress::Halted(_)))));
        if halted_now {
            self.rollouts_halted.inc();
        }
    }

    /// `result`: success, failure (invalid catalog, blocked prune, a store failed), error, or
    /// pending (a rollout in flight; storesync works, so it counts as a success's time).
    pub fn sync_finished(&self, result: &'static str, seconds: f64, unix_now: u64) {
        self.syncs.get_or_create(&ResultLabel { result }).inc();
        self.sync_duration.observe(seconds);
        if result == "success" || result == "pending" {
            self.last_success.set(i64::try_from(unix_now).unwrap_or(i64::MAX));
        }
    }

    /// One store applied (created or updated), whatever the outcome.
    pub fn store_synced(&self, seconds: f64) {
        self.store_sync_duration.observe(seconds);
    }

    /// A sync of a branch head that is not a descendant of the head synced before it.
    pub fn non_fast_forward_sync(&self) {
        self.non_fast_forward.inc();
    }

    /// A Git cache that was found unusable and cloned again.
    pub fn git_cache_recloned(&self) {
        self.git_cache_reclones.inc();
    }

    /// A store's drifted chart-rendered objects put back by `helm upgrade`.
    pub fn drift_repaired(&self) {
        self.drift_repairs.inc();
    }

    pub fn plan_finished(&self, result: &'static str) {
        self.plans.get_or_create(&ResultLabel { result }).inc();
    }

    /// Replaces the store gauge: states absent from `counts` are dropped.
    pub fn set_stores(&self, counts: &[(&'static str, u64)]) {
        self.stores.clear();
        for (state, n) in counts {
            self.stores
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Sets the stores-per-health gauge from the health of every store in the table, `None`
    /// (not judged yet) counting as Unknown. Every health has its series, 0 when no store has it.
    pub fn set_store_health(&self, healths: impl IntoIterator<Item = Option<Health>>) {
        let mut counts = [0i64; Health::ALL.len()];
        for health in healths {
            let health = health.unwrap_or(Health::Unknown);
            if let Some(i) = Health::ALL.iter().position(|h| *h == health) {
                counts[i] = counts[i].saturating_add(1);
            }
        }
        for (health, n) in Health::ALL.iter().zip(counts) {
            self.stores_by_health
                .get_or_create(&HealthLabel {
                    health: health.as_str(),
                })
                .set(n);
        }
    }

    pub fn helm_invoked(&self, operation: &'static str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.helm.get_or_create(&HelmLabels { operation, result }).inc();
    }

    pub fn webhook(&self, event: &'static str, result: &'static str) {
        self.webhooks
            .get_or_create(&WebhookLabels { event, result })
            .inc();
    }

    pub fn status_post(&self, result: &'static str) {
        self.status_posts.get_or_create(&ResultLabel { result }).inc();
    }

    /// One part of pull-request feedback (`comment`, `check_run`) written, given up on or
    /// dropped; `result` as for [`Metrics::status_post`].
    pub fn pr_feedback_write(&self, kind: &'static str, result: &'static str) {
        self.pr_feedback_writes
            .get_or_create(&FeedbackLabels { kind, result })
            .inc();
    }

    /// The exposition, OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(m: &Metrics) -> prometheus_parse::Scrape {
        let text = m.render();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines).expect("a valid exposition")
    }

    fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => f64::NAN,
            })
    }

    #[test]
    fn every_health_has_a_store_count_and_unjudged_stores_are_unknown() {
        let m = Metrics::default();
        let health =
            |s: &prometheus_parse::Scrape, h: &str| value(s, "storesync_stores_by_health", &[("health", h)]);
        let fresh = parsed(&m);
        for h in Health::ALL {
            assert_eq!(
                health(&fresh, h.as_str()),
                Some(0.0),
                "{h} is there from the start"
            );
        }
        m.set_store_health([
            Some(Health::Degraded),
            None,
            Some(Health::Healthy),
            Some(Health::Unknown),
            Some(Health::Healthy),
        ]);
        let s = parsed(&m);
        assert_eq!(health(&s, "Healthy"), Some(2.0));
        assert_eq!(health(&s, "Degraded"), Some(1.0));
        assert_eq!(
            health(&s, "Unknown"),
            Some(2.0),
            "a store not judged yet counts as Unknown"
        );
        assert_eq!(health(&s, "Missing"), Some(0.0));
        let series = s
            .samples
            .iter()
            .filter(|x| x.metric == "storesync_stores_by_health")
            .count();
        assert_eq!(series, Health::ALL.len(), "one series per health, no other");

        m.set_stores(&[("in-sync", 1)]);
        m.set_store_health([Some(Health::Healthy)]);
        let s = parsed(&m);
        assert_eq!(
            health(&s, "Degraded"),
            Some(0.0),
            "a health no store has any more reads 0, not absent"
        );
        assert_eq!(health(&s, "Healthy"), Some(1.0));
        assert_eq!(
            value(&s, "storesync_stores", &[("state", "in-sync")]),
            Some(1.0),
            "the health gauge leaves the state gauge alone"
        );
    }

    #[test]
    fn a_real_parser_reads_every_metric() {
        let m = Metrics::default();
        m.sync_finished("success", 0.7, 1_790_000_000);
        m.sync_finished("failure", 42.0, 1_790_000_100);
        m.plan_finished("success");
        m.set_stores(&[("in-sync", 3), ("failed", 1)]);
        m.set_stores(&[("in-sync", 4)]);
        m.helm_invoked("upgrade", true);
        m.helm_invoked("upgrade", false);
        m.webhook("push", "accepted");
        m.webhook("push", "accepted");
        m.status_post("success");
        m.pr_feedback_write("check_run", "failed");
        m.non_fast_forward_sync();
        m.git_cache_recloned();
        m.drift_repaired();
        m.drift_repaired();
        m.set_leader(true);
        m.set_leader(true);
        m.set_leader(false);
        m.set_leader(true);
        let s = parsed(&m);
        assert_eq!(
            value(&s, "storesync_syncs_total", &[("result", "success")]),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "storesync_syncs_total", &[("result", "failure")]),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "storesync_plans_total", &[("result", "success")]),
            Some(1.0)
        );
        assert_eq!(value(&s, "storesync_stores", &[("state", "in-sync")]), Some(4.0));
        assert_eq!(
            value(&s, "storesync_stores", &[("state", "failed")]),
            None,
            "a state gone from the last sync is gone from the gauge"
        );
        assert_eq!(
            value(
                &s,
                "storesync_helm_invocations_total",
                &[("operation", "upgrade"), ("result", "failure")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &s,
                "storesync_webhook_deliveries_total",
                &[("event", "push"), ("result", "accepted")]
            ),
            Some(2.0)
        );
        assert_eq!(
            value(&s, "storesync_status_posts_total", &[("result", "success")]),
            Some(1.0)
        );
        let feedback = |kind, result| {
            value(
                &s,
                "storesync_pr_feedback_writes_total",
                &[("kind", kind), ("result", result)],
            )
        };
        assert_eq!(feedback("check_run", "failed"), Some(1.0));
        assert_eq!(feedback("comment", "dropped"), Some(0.0), "pre-created at 0");
        assert_eq!(feedback("comment", "failed"), Some(0.0));
        assert_eq!(
            value(&s, "storesync_last_successful_sync_timestamp_seconds", &[]),
            Some(1_790_000_000.0)
        );
        assert_eq!(
            value(&s, "storesync_non_fast_forward_syncs_total", &[]),
            Some(1.0)
        );
        assert_eq!(value(&s, "storesync_git_cache_reclones_total", &[]), Some(1.0));
        assert_eq!(value(&s, "storesync_drift_repairs_total", &[]), Some(2.0));
        assert_eq!(value(&s, "storesync_leader", &[]), Some(1.0));
        assert_eq!(
            value(&s, "storesync_leader_transitions_total", &[]),
            Some(3.0),
            "leading again while leading is no transition"
        );
        let histogram = s
            .samples
            .iter()
            .find(|x| x.metric == "storesync_sync_duration_seconds")
            .expect("the duration histogram");
        let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
            panic!("not a histogram: {:?}", histogram.value)
        };
        let le = |bound: f64| buckets.iter().find(|b| b.less_than == bound).map(|b| b.count);
        assert_eq!(le(0.5), Some(0.0));
        assert_eq!(le(1.0), Some(1.0));
        assert_eq!(le(60.0), Some(2.0));
        assert!(
            m.render().ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
    }
}
