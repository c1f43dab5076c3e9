//! Which stores a rollout updates, and in which wave: fixed by the plan alone, so the order is
//! the same in `plan`, the pull-request comment and the sync that carries it out. Canaries
//! first, each wave of them alone, then the other updated stores by name, in cumulative shares.
use std::collections::BTreeMap;

use serde::Serialize;

use super::{Action, ObjectKind, Plan, StorePlan};
use crate::desired::model::RolloutConfig;

/// A store's place in a rollout: wave `index` (from 1) of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Wave {
    pub index: usize,
    pub of: usize,
    /// The wave of the canaries.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
}

impl std::fmt::Display for Wave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wave {}/{}", self.index, self.of)?;
        if self.canary {
            f.write_str(" (canary)")?;
        }
        Ok(())
    }
}

/// Whether the store's update is one a rollout waves: a helm upgrade the catalog asks for or
/// a guardrail change. A create, a restore, a prune, a drift repair or the repair of a release
/// left failed or pending never waits for a wave.
pub fn is_waved(sp: &StorePlan) -> bool {
    if sp.action != Action::Update {
        return false;
    }
    sp.changes.iter().any(|c| match c.kind {
        ObjectKind::ResourceQuota | ObjectKind::LimitRange | ObjectKind::NetworkPolicy => {
            !matches!(c.action, Action::Unchanged | Action::Skip)
        }
        ObjectKind::HelmRelease => asked_upgrade(c),
        _ => false,
    })
}

/// Whether `c` is a helm upgrade the catalog asks for (not a repair of drift or of a release
/// left failed or pending).
fn asked_upgrade(c: &super::Change) -> bool {
    c.kind == ObjectKind::HelmRelease
        && c.action == Action::Update
        && c.reason.as_deref() == Some(super::CHANGED_REASON)
}

/// Whether a waved update of `sp` upgrades its release (else it changes guardrails only).
pub fn upgrades_release(sp: &StorePlan) -> bool {
    is_waved(sp) && sp.changes.iter().any(asked_upgrade)
}

/// The waves of `stores` (the updates a rollout carries, with nothing else to go by than their
/// names): the canaries among them, in the order `rollout.canaries` lists them, then the rest
/// sorted by name, split at the cumulative shares (each wave at least one store, empty waves
/// dropped). Empty when fewer than two stores are updated: no rollout.
pub fn split<'a>(stores: &[&'a str], config: &RolloutConfig) -> Vec<Vec<&'a str>> {
    if stores.len() < 2 {
        return Vec::new();
    }
    let mut waves = Vec::new();
    let canaries: Vec<&'a str> = config
        .canaries
        .iter()
        .filter_map(|c| stores.iter().find(|s| **s == c.as_str()).copied())
        .collect();
    if !canaries.is_empty() {
        waves.push(canaries.clone());
    }
    let mut rest: Vec<&'a str> = stores.iter().copied().filter(|s| !canaries.contains(s)).collect();
    rest.sort_unstable();
    rest.dedup();
    let n = rest.len();
    let mut taken = 0;
    for share in config.shares() {
        // Cumulative: ceil(share × n), so that 1% of 10 stores is one store, not none.
        let upto = (n * share as usize).div_ceil(100).clamp(taken, n);
        if upto > taken {
            waves.push(rest[taken..upto].to_vec());
            taken = upto;
        }
    }
    if taken < n {
        // Shares that do not reach 100% never reach a valid catalog; nothing is left out anyway.
        waves.push(rest[taken..].to_vec());
    }
    waves
}

/// Each store's place in `waves`; the first wave is the canaries' when all its stores are
/// canaries of `config`.
pub fn places<S: AsRef<str>>(waves: &[Vec<S>], config: Option<&RolloutConfig>) -> BTreeMap<String, Wave> {
    let of = waves.len();
    let canaries = waves.first().is_some_and(|w| {
        config.is_some_and(|c| w.iter().all(|s| c.canaries.iter().any(|n| n == s.as_ref())))
    });
    let mut place = BTreeMap::new();
    for (i, wave) in waves.iter().enumerate() {
        for store in wave {
            let wave = Wave {
                index: i + 1,
                of,
                canary: canaries && i == 0,
            };
            place.insert(store.as_ref().to_string(), wave);
        }
    }
    place
}

/// Puts each waved store's wave on `plan`, when the plan updates two stores or more.
pub fn assign(plan: &mut Plan, config: &RolloutConfig) {
    let waved: Vec<String> = plan
        .stores
        .iter()
        .filter(|s| is_waved(s))
        .map(|s| s.store.clone())
        .collect();
    let names: Vec<&str> = waved.iter().map(String::as_str).collect();
    let place = places(&split(&names, config), Some(config));
    for s in &mut plan.stores {
        s.wave = place.get(&s.store).copied();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::model::Scalar;

    fn config(canaries: &[&str], shares: &[&str]) -> RolloutConfig {
        RolloutConfig {
            canaries: canaries.iter().map(|s| s.to_string()).collect(),
            waves: shares.iter().map(|s| Scalar::Text(s.to_string())).collect(),
            max_unhealthy: Scalar::Number(0),
            health_timeout: "10m".into(),
            soak: "2m".into(),
            on_failure: Default::default(),
        }
    }

    #[test]
    fn canaries_alone_then_shares_of_the_rest_by_name() {
        let names: Vec<String> = (0..10).map(|i| format!("shop-{i:02}")).collect();
        let mut stores: Vec<&str> = names.iter().map(String::as_str).collect();
        stores.reverse();
        let waves = split(
            &stores,
            &config(&["shop-07", "shop-03", "gone"], &["25%", "100%"]),
        );
        assert_eq!(
            waves,
            vec![
                vec!["shop-07", "shop-03"],
                vec!["shop-00", "shop-01"],
                vec!["shop-02", "shop-04", "shop-05", "shop-06", "shop-08", "shop-09"],
            ],
            "canaries in their listed order, then 25% of the 8 others (2), then the rest"
        );
    }

    #[test]
    fn small_rollouts_round_up_and_drop_empty_waves() {
        let stores = ["a", "b", "c"];
        assert_eq!(
            split(&stores, &config(&[], &["1%", "2%", "50%", "100%"])),
            vec![vec!["a"], vec!["b"], vec!["c"]],
            "1% of 3 is one store; 2% adds none and is dropped; 50% of 3 is 2"
        );
        assert!(
            split(&["a"], &config(&["a"], &["100%"])).is_empty(),
            "one update: no rollout"
        );
        assert_eq!(
            split(&["a", "b"], &config(&["a", "b"], &["100%"])),
            vec![vec!["a", "b"]],
            "only canaries: one wave"
        );
    }
}
