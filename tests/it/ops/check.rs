//! Checks a PromQL expression against what storesync exports: every metric is exported (or is
//! Prometheus's own `up`), every matcher and grouping label is one the series carry, and every
//! literal label value is one the daemon records.

use std::collections::BTreeSet;

use super::exported::{Exported, TARGET_LABELS};
use super::promql::{literal_values, reads};

/// The problems of `expr`, each naming `place` (where the expression lives).
pub fn check_expr(place: &str, expr: &str, exported: &Exported) -> Vec<String> {
    let reads = match reads(expr) {
        Ok(r) => r,
        Err(e) => return vec![format!("{place}: {e}")],
    };
    let mut errors = Vec::new();
    if reads.selectors.is_empty() {
        errors.push(format!("{place}: reads no metric: {expr:?}"));
    }
    let mut in_scope: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
    for s in &reads.selectors {
        if s.metric == "up" {
            for m in &s.matchers {
                if !TARGET_LABELS.contains(&m.label.as_str()) {
                    errors.push(format!("{place}: up has no label {:?}", m.label));
                }
            }
            continue;
        }
        let Some(series) = exported.get(&s.metric) else {
            errors.push(format!(
                "{place}: {} is not exported by storesync (exported: {})",
                s.metric,
                exported.series.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        };
        in_scope.extend(series.labels.keys().map(String::as_str));
        for m in &s.matchers {
            if TARGET_LABELS.contains(&m.label.as_str()) {
                continue;
            }
            let Some(known) = series.labels.get(&m.label) else {
                errors.push(format!(
                    "{place}: {} has no label {:?} (its labels: {:?})",
                    s.metric,
                    m.label,
                    series.labels.keys().collect::<Vec<_>>()
                ));
                continue;
            };
            if known.is_empty() {
                continue;
            }
            for value in literal_values(m).unwrap_or_default() {
                if !known.contains(value) {
                    errors.push(format!(
                        "{place}: {}{{{}}} never takes the value {value:?} (it takes {known:?})",
                        s.metric, m.label
                    ));
                }
            }
        }
    }
    for label in &reads.grouping {
        if !in_scope.contains(label.as_str()) {
            errors.push(format!(
                "{place}: groups or matches on {label:?}, which none of its series carry"
            ));
        }
    }
    errors
}
