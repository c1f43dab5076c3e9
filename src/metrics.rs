//! Prometheus metrics in the text exposition format. Every label value is a fixed
//! `&'static str`, so cardinality is bounded by construction.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    syncs: Mutex<BTreeMap<&'static str, u64>>,
    plans: Mutex<BTreeMap<&'static str, u64>>,
    sync_duration: Mutex<Histogram>,
    stores: Mutex<BTreeMap<&'static str, u64>>,
    helm: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    webhooks: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    status_posts: Mutex<BTreeMap<&'static str, u64>>,
    last_success: AtomicU64,
    non_fast_forward: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_insert(0) += 1;
    }
}

impl Metrics {
    /// `result`: success, failure (invalid catalog, blocked prune, a store failed) or error.
    pub fn sync_finished(&self, result: &'static str, seconds: f64, unix_now: u64) {
        bump(&self.syncs, result);
        if let Ok(mut h) = self.sync_duration.lock() {
            if h.counts.is_empty() {
                h.counts = vec![0; DURATION_BUCKETS.len()];
            }
            for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
        if result == "success" {
            self.last_success.store(unix_now, Ordering::Relaxed);
        }
    }

    /// A sync of a branch head that is not a descendant of the head synced before it.
    pub fn non_fast_forward_sync(&self) {
        self.non_fast_forward.fetch_add(1, Ordering::Relaxed);
    }

    pub fn plan_finished(&self, result: &'static str) {
        bump(&self.plans, result);
    }

    /// Replaces the per-state store counts.
    pub fn set_stores(&self, counts: &[(&'static str, u64)]) {
        if let Ok(mut m) = self.stores.lock() {
            m.clear();
            m.extend(counts.iter().copied());
        }
    }

    pub fn helm_invoked(&self, operation: &'static str, ok: bool) {
        bump(&self.helm, (operation, if ok { "success" } else { "failure" }));
    }

    pub fn webhook(&self, event: &'static str, result: &'static str) {
        bump(&self.webhooks, (event, result));
    }

    pub fn status_post(&self, result: &'static str) {
        bump(&self.status_posts, result);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter1 = |out: &mut String,
                        name: &str,
                        help: &str,
                        label: &str,
                        map: &Mutex<BTreeMap<&'static str, u64>>,
                        kind: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if let Ok(m) = map.lock() {
                for (k, v) in m.iter() {
                    let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
                }
            }
        };
        let counter2 = |out: &mut String,
                        name: &str,
                        help: &str,
                        labels: (&str, &str),
                        map: &Mutex<BTreeMap<(&'static str, &'static str), u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            if let Ok(m) = map.lock() {
                for ((a, b), v) in m.iter() {
                    let _ = writeln!(out, "{name}{{{}=\"{a}\",{}=\"{b}\"}} {v}", labels.0, labels.1);
                }
            }
        };
        counter1(
            &mut out,
            "storesync_syncs_total",
            "Syncs of the tracked branch by result.",
            "result",
            &self.syncs,
            "counter",
        );
        counter1(
            &mut out,
            "storesync_plans_total",
            "Pull-request plans by result.",
            "result",
            &self.plans,
            "counter",
        );
        let _ = writeln!(
            out,
            "# HELP storesync_sync_duration_seconds Duration of syncs.\n# TYPE storesync_sync_duration_seconds histogram"
        );
        if let Ok(h) = self.sync_duration.lock() {
            for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
                let c = h.counts.get(i).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "storesync_sync_duration_seconds_bucket{{le=\"{bound}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "storesync_sync_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "storesync_sync_duration_seconds_sum {}", h.sum);
            let _ = writeln!(out, "storesync_sync_duration_seconds_count {}", h.count);
        }
        counter1(
            &mut out,
            "storesync_stores",
            "Stores by state after the last sync.",
            "state",
            &self.stores,
            "gauge",
        );
        counter2(
            &mut out,
            "storesync_helm_invocations_total",
            "Helm invocations by operation and result.",
            ("operation", "result"),
            &self.helm,
        );
        counter2(
            &mut out,
            "storesync_webhook_deliveries_total",
            "Webhook deliveries by event and result.",
            ("event", "result"),
            &self.webhooks,
        );
        counter1(
            &mut out,
            "storesync_status_posts_total",
            "Commit status posts by result.",
            "result",
            &self.status_posts,
            "counter",
        );
        let _ = writeln!(
            out,
            "# HELP storesync_last_successful_sync_timestamp_seconds Unix time of the last successful sync.\n\
             # TYPE storesync_last_successful_sync_timestamp_seconds gauge\n\
             storesync_last_successful_sync_timestamp_seconds {}",
            self.last_success.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP storesync_non_fast_forward_syncs_total Syncs of a branch head that moved backwards or was rewritten.\n\
             # TYPE storesync_non_fast_forward_syncs_total counter\n\
             storesync_non_fast_forward_syncs_total {}",
            self.non_fast_forward.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.sync_finished("success", 0.7, 1_790_000_000);
        m.sync_finished("failure", 42.0, 1_790_000_100);
        m.helm_invoked("upgrade", true);
        m.webhook("push", "accepted");
        m.set_stores(&[("applied", 3), ("failed", 1)]);
        let text = m.render();
        assert!(
            text.contains("storesync_syncs_total{result=\"success\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("storesync_sync_duration_seconds_bucket{le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("storesync_sync_duration_seconds_bucket{le=\"60\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("storesync_sync_duration_seconds_count 2\n"));
        assert!(
            text.contains("storesync_helm_invocations_total{operation=\"upgrade\",result=\"success\"} 1\n")
        );
        assert!(text.contains("storesync_webhook_deliveries_total{event=\"push\",result=\"accepted\"} 1\n"));
        assert!(text.contains("storesync_stores{state=\"failed\"} 1\n"));
        assert!(
            text.contains("storesync_last_successful_sync_timestamp_seconds 1790000000\n"),
            "only successes count"
        );
    }
}
