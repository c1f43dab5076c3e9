//! The planner against hand-built live states.
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, Time};

use super::*;
use crate::desired::{PlatformConfig, RawCatalog, RawContent, RawEntry, load, render};
use crate::live::{LiveRelease, LiveStore};

fn catalog(stores: &[(&str, &str)]) -> Vec<DesiredStore> {
    let entries = stores
        .iter()
        .map(|(name, extra)| RawEntry {
            path: format!("stores/{name}.yaml"),
            name: format!("{name}.yaml"),
            content: RawContent::File(
                format!("name: {name}\nengine: woocommerce\nplan: small\nowner: team-a\n{extra}")
                    .into_bytes(),
            ),
        })
        .collect();
    let raw = RawCatalog {
        platform: None,
        stores_dir: "stores".into(),
        entries: Some(entries),
    };
    let catalog = load(&raw).expect("valid catalog");
    render(&catalog, Some("0123456789abcdef0123456789abcdef01234567"))
}

/// The live state storesync leaves behind after applying `d`, as the API server returns it.
fn applied(d: &DesiredStore) -> LiveStore {
    let server_meta = |mut m: ObjectMeta| {
        m.uid = Some("5f1c".into());
        m.resource_version = Some("12345".into());
        m.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("storesync".into()),
            ..Default::default()
        }]);
        m
    };
    let mut namespace = d.namespace.clone();
    namespace.metadata = server_meta(namespace.metadata);
    namespace
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("kubernetes.io/metadata.name".into(), "x".into());
    namespace.status = Some(Default::default());
    let mut quota = d.quota.clone();
    quota.metadata = server_meta(quota.metadata);
    quota.status = Some(Default::default());
    LiveStore {
        namespace,
        quota: Some(quota),
        limit_range: Some(d.limit_range.clone()),
        network_policies: d.network_policies.clone(),
        service_account: Some(d.service_account.clone()),
        role_binding: Some(d.role_binding.clone()),
        health: None,
        credentials: true,
        release: Some(LiveRelease {
            status: "deployed".into(),
            revision: 1,
            release_hash: Some(d.release_hash.clone()),
            history: vec![(1, "deployed".into())],
            drift: Default::default(),
            refused: None,
        }),
    }
}

/// `spec.hard` of a live store's quota, to edit by hand.
fn quota_hard(live: &mut LiveStore) -> &mut std::collections::BTreeMap<String, Quantity> {
    live.quota
        .as_mut()
        .and_then(|q| q.spec.as_mut())
        .and_then(|s| s.hard.as_mut())
        .expect("an applied quota")
}

fn live_of(stores: &[(&str, LiveStore)]) -> LiveState {
    LiveState {
        stores: stores.iter().map(|(n, l)| (n.to_string(), l.clone())).collect(),
        ..Default::default()
    }
}

fn run(desired: &[DesiredStore], live: &LiveState, options: PlanOptions) -> Plan {
    let revision = Revision {
        commit: None,
        label: "test".into(),
    };
    plan(
        revision,
        desired,
        live,
        &PlatformConfig::default(),
        options,
        false,
    )
}

#[test]
fn applied_store_is_unchanged() {
    let d = catalog(&[("acme", "")]);
    let p = run(&d, &live_of(&[("acme", applied(&d[0]))]), PlanOptions::default());
    assert_eq!(
        p.stores[0].action,
        Action::Unchanged,
        "{:#?}",
        p.stores[0].changes
    );
    assert!(p.stores[0].changes.iter().all(|c| c.action == Action::Unchanged));
    assert_eq!(
        p.summary,
        Summary {
            unchanged: 1,
            ..Default::default()
        }
    );
}

#[test]
fn a_new_commit_alone_changes_nothing() {
    let d = catalog(&[("acme", "")]);
    let mut live = applied(&d[0]);
    let ann = live.namespace.metadata.annotations.as_mut().unwrap();
    ann.insert(
        desired::COMMIT_ANNOTATION.into(),
        "ffffffffffffffffffffffffffffffffffffffff".into(),
    );
    let p = run(&d, &live_of(&[("acme", live)]), PlanOptions::default());
    assert_eq!(p.stores[0].action, Action::Unchanged);
}

#[test]
fn drifted_quota_is_an_update_with_a_diff() {
    let d = catalog(&[("acme", "")]);
    let mut live = applied(&d[0]);
    let hard = quota_hard(&mut live);
    hard.insert("requests.cpu".into(), Quantity("64".into()));
    let p = run(&d, &live_of(&[("acme", live)]), PlanOptions::default());
    assert_eq!(p.stores[0].action, Action::Update);
    let changed: Vec<&Change> = p.stores[0]
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].kind, ObjectKind::ResourceQuota);
    let diff = changed[0].diff.as_deref().unwrap();
    assert!(
        diff.contains("-    requests.cpu: '64'\n+    requests.cpu: '1'\n"),
        "{diff}"
    );
}

#[test]
fn plan_change_updates_guardrails_and_not_the_release() {
    let before = catalog(&[("acme", "")]);
    let live = applied(&before[0]);
    let after = {
        let raw_plan = "name: acme\nengine: woocommerce\nplan: medium\nowner: team-a\n";
        let raw = RawCatalog {
            platform: None,
            stores_dir: "stores".into(),
            entries: Some(vec![RawEntry {
                path: "stores/acme.yaml".into(),
                name: "acme.yaml".into(),
                content: RawContent::File(raw_plan.as_bytes().to_vec()),
            }]),
        };
        render(&load(&raw).unwrap(), None)
    };
    let p = run(&after, &live_of(&[("acme", live)]), PlanOptions::default());
    let updated: Vec<ObjectKind> = p.stores[0]
        .changes
        .iter()
        .filter(|c| c.action == Action::Update)
        .map(|c| c.kind)
        .collect();
    // The plan name is a release value too (store.plan), so the chart sees the new size.
    assert_eq!(
        updated,
        vec![
            ObjectKind::Namespace,
            ObjectKind::ResourceQuota,
            ObjectKind::LimitRange,
            ObjectKind::HelmRelease
        ]
    );
}

#[test]
fn server_defaults_are_not_drift() {
    let d = catalog(&[("acme", "")]);
    let mut live = applied(&d[0]);
    live.namespace.metadata.creation_timestamp = Some(Time(Default::default()));
    live.namespace
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("team.example/note".into(), "hi".into());
    let p = run(&d, &live_of(&[("acme", live)]), PlanOptions::default());
    assert_eq!(p.stores[0].action, Action::Unchanged);
}

fn with_retention(retention: &str) -> PlatformConfig {
    let mut platform = PlatformConfig::default();
    platform.prune.retention_text = retention.into();
    platform
}

fn run_with(desired: &[DesiredStore], live: &LiveState, platform: &PlatformConfig) -> Plan {
    let revision = Revision {
        commit: None,
        label: "test".into(),
    };
    plan(revision, desired, live, platform, PlanOptions::default(), false)
}

/// `d` as storesync leaves it once retired at `at`: marked, its release stopped.
fn retired(d: &DesiredStore, at: i64) -> LiveStore {
    let mut live = applied(d);
    let meta = &mut live.namespace.metadata;
    meta.labels
        .as_mut()
        .unwrap()
        .insert(desired::STATE_LABEL.into(), desired::RETIRED_STATE.into());
    let ann = meta.annotations.get_or_insert_default();
    ann.insert(desired::RETIRED_AT_ANNOTATION.into(), crate::text::rfc3339(at));
    ann.insert(desired::RETIRED_BY_ANNOTATION.into(), "feedc0de".repeat(5));
    let release = live.release.as_mut().unwrap();
    release.release_hash = Some(desired::RETIRED_RELEASE_HASH.into());
    release.revision = 2;
    release.history = vec![(1, "superseded".into()), (2, "deployed".into())];
    live
}

const NOW: i64 = 1_796_000_000;
const WEEK: i64 = 168 * 3600;

#[test]
fn a_removed_store_is_retired_with_its_data_kept() {
    let d = catalog(&[("acme", ""), ("bobs", "")]);
    let mut live = live_of(&[("acme", applied(&d[0])), ("bobs", applied(&d[1]))]);
    live.observed_at = NOW;
    let p = run(&d[..1], &live, PlanOptions::default());
    let bobs = p.stores.iter().find(|s| s.store == "bobs").unwrap();
    assert_eq!(bobs.action, Action::Retire);
    let changes: Vec<(ObjectKind, Action)> = bobs.changes.iter().map(|c| (c.kind, c.action)).collect();
    assert_eq!(
        changes,
        vec![
            (ObjectKind::Namespace, Action::Update),
            (ObjectKind::HelmRelease, Action::Update)
        ],
        "marked, then stopped by helm: nothing is deleted"
    );
    assert_eq!(
        bobs.purge_at.as_deref(),
        Some(crate::text::rfc3339(NOW + WEEK).as_str())
    );
    let reason = bobs.reason.as_deref().unwrap();
    assert!(
        reason.contains("purged after 2026-12-") && reason.contains("168h"),
        "{reason}"
    );
    assert_eq!((p.summary.retire, p.summary.prune), (1, 0));
    assert!(p.summary.line().contains("1 to retire"), "{}", p.summary.line());
    assert!(!p.is_blocked());
}

#[test]
fn with_no_retention_a_removed_store_is_pruned_release_first() {
    let d = catalog(&[("acme", ""), ("bobs", "")]);
    let live = live_of(&[("acme", applied(&d[0])), ("bobs", applied(&d[1]))]);
    let p = run_with(&d[..1], &live, &with_retention("0s"));
    let bobs = p.stores.iter().find(|s| s.store == "bobs").unwrap();
    assert_eq!(bobs.action, Action::Prune);
    let kinds: Vec<ObjectKind> = bobs.changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![ObjectKind::HelmRelease, ObjectKind::Namespace]);
    assert_eq!(p.summary.prune, 1);
    assert!(!p.is_blocked());
}

#[test]
fn a_retired_store_waits_for_its_purge_then_is_purged() {
    let d = catalog(&[("acme", "")]);
    let mut live = live_of(&[("acme", retired(&d[0], NOW - WEEK + 60))]);
    live.observed_at = NOW;
    let p = run(&[], &live, PlanOptions::default());
    assert_eq!(p.stores[0].action, Action::Retired);
    assert!(p.stores[0].changes.is_empty());
    assert_eq!(
        p.stores[0].purge_at.as_deref(),
        Some(crate::text::rfc3339(NOW + 60).as_str())
    );
    assert_eq!(p.summary.retired, 1);
    assert!(!p.is_blocked());

    live.observed_at = NOW + 60;
    let p = run(&[], &live, PlanOptions::default());
    assert_eq!(p.stores[0].action, Action::Purge);
    let kinds: Vec<ObjectKind> = p.stores[0].changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![ObjectKind::HelmRelease, ObjectKind::Namespace]);
    assert!(p.stores[0].reason.as_deref().unwrap().contains("passed at"));

    // A longer retention in a later commit holds the purge back again.
    let p = run_with(&[], &live, &with_retention("30d"));
    assert_eq!(p.stores[0].action, Action::Retired);
    // Without a known time of observation, nothing is purged.
    live.observed_at = 0;
    assert_eq!(
        run(&[], &live, PlanOptions::default()).stores[0].action,
        Action::Retired
    );
}

#[test]
fn purges_are_bounded_per_sync_the_longest_retired_first() {
    let names: Vec<String> = (0..7).map(|i| format!("shop-{i}")).collect();
    let stores: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
    let d = catalog(&stores);
    let mut live = LiveState {
        // shop-6 was retired first, shop-0 last.
        stores: d
            .iter()
            .enumerate()
            .map(|(i, s)| (s.store.name.clone(), retired(s, NOW - 2 * WEEK + i as i64 * -60)))
            .collect(),
        ..Default::default()
    };
    live.observed_at = NOW;
    let p = run(&[], &live, PlanOptions::default());
    assert_eq!((p.summary.purge, p.summary.retired), (5, 2));
    let waiting: Vec<&str> = p
        .stores
        .iter()
        .filter(|s| s.action == Action::Retired)
        .map(|s| s.store.as_str())
        .collect();
    assert_eq!(waiting, ["shop-0", "shop-1"]);
    assert!(
        p.stores[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("at most 5 purges per sync"),
        "{:?}",
        p.stores[0].reason
    );
    assert!(
        p.blocked.is_empty(),
        "purges beyond the bound wait; they block nothing"
    );
}

#[test]
fn a_retired_store_whose_release_runs_is_stopped_again() {
    let d = catalog(&[("acme", "")]);
    let mut live = retired(&d[0], NOW - 60);
    // The retiring upgrade failed: the release still holds the store's own values.
    live.release.as_mut().unwrap().status = "failed".into();
    let mut live = live_of(&[("acme", live)]);
    live.observed_at = NOW;
    let p = run(&[], &live, PlanOptions::default());
    assert_eq!(p.stores[0].action, Action::Retire);
    let changes: Vec<(ObjectKind, Action)> = p.stores[0].changes.iter().map(|c| (c.kind, c.action)).collect();
    assert_eq!(
        changes,
        vec![
            (ObjectKind::Namespace, Action::Unchanged),
            (ObjectKind::HelmRelease, Action::Update)
        ]
    );
    assert!(p.stores[0].reason.as_deref().unwrap().contains("stopped again"));
    // Stopping it again is no new retirement: the breaker does not count it.
    assert!(p.blocked.is_empty());
}

#[test]
fn a_retirement_without_a_readable_time_is_stamped_again_never_purged() {
    let d = catalog(&[("acme", "")]);
    let mut l = retired(&d[0], 0);
    l.namespace
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(desired::RETIRED_AT_ANNOTATION.into(), "last tuesday".into());
    let mut live = live_of(&[("acme", l)]);
    live.observed_at = NOW;
    let p = run_with(&[], &live, &with_retention("0s"));
    assert_eq!(p.stores[0].action, Action::Retire);
    assert!(p.stores[0].reason.as_deref().unwrap().contains("stamped again"));
}

#[test]
fn a_retired_store_whose_file_is_back_is_restored() {
    let d = catalog(&[("acme", "")]);
    let mut live = live_of(&[("acme", retired(&d[0], NOW - 60))]);
    live.observed_at = NOW;
    let p = run(&d, &live, PlanOptions::default());
    let s = &p.stores[0];
    assert_eq!(s.action, Action::Restore, "{s:#?}");
    let changed: Vec<ObjectKind> = s
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
        .map(|c| c.kind)
        .collect();
    assert_eq!(
        changed,
        vec![ObjectKind::Namespace, ObjectKind::HelmRelease],
        "the marks come off and the release gets the store's values back; credentials are kept"
    );
    assert!(
        s.changes
            .iter()
            .any(|c| c.kind == ObjectKind::Secret && c.action == Action::Unchanged)
    );
    assert_eq!(
        s.retired_at.as_deref(),
        Some(crate::text::rfc3339(NOW - 60).as_str())
    );
    assert_eq!(p.summary.restore, 1);
}

#[test]
fn a_file_of_another_engine_waits_for_the_purge_of_the_retired_store() {
    let d = catalog(&[("acme", "")]);
    let mut live = live_of(&[("acme", retired(&d[0], NOW - 60))]);
    live.observed_at = NOW;
    let raw = RawCatalog {
        platform: None,
        stores_dir: "stores".into(),
        entries: Some(vec![RawEntry {
            path: "stores/acme.yaml".into(),
            name: "acme.yaml".into(),
            content: RawContent::File(b"name: acme\nengine: medusa\nplan: small\nowner: team-a\n".to_vec()),
        }]),
    };
    let medusa = render(&load(&raw).expect("valid"), None);
    let p = run(&medusa, &live, PlanOptions::default());
    let s = &p.stores[0];
    assert_eq!(s.action, Action::Blocked);
    let reason = s.reason.as_deref().unwrap();
    let purge = crate::text::rfc3339(NOW - 60 + WEEK);
    assert!(
        reason.starts_with("stores/acme.yaml: `engine: medusa` is not valid yet") && reason.contains(&purge),
        "{reason}"
    );
    assert!(s.changes.is_empty(), "nothing of the retired store is touched");
    assert!(p.is_blocked());
}

#[test]
fn retired_stores_do_not_count_as_live_for_the_breaker() {
    let d = catalog(&[("aaa", ""), ("bbb", ""), ("old", "")]);
    let mut live = live_of(&[
        ("aaa", applied(&d[0])),
        ("bbb", applied(&d[1])),
        ("old", retired(&d[2], NOW - 60)),
    ]);
    live.observed_at = NOW;
    let p = run(&[], &live, PlanOptions::default());
    assert_eq!(
        (p.summary.retire, p.summary.blocked, p.summary.retired),
        (0, 2, 1)
    );
    assert!(
        p.blocked[0].starts_with("every live store (2) would be pruned"),
        "{:?}",
        p.blocked
    );
}

#[test]
fn protected_store_is_never_pruned() {
    let d = catalog(&[("acme", "protected: true\n")]);
    let p = run(&[], &live_of(&[("acme", applied(&d[0]))]), PlanOptions::default());
    assert_eq!(p.stores[0].action, Action::Skip);
    assert!(p.stores[0].changes.is_empty());
    assert!(p.stores[0].reason.as_deref().unwrap().contains("protected"));
    assert!(!p.is_blocked(), "keeping a protected store is not a failure");
}

#[test]
fn terminating_namespace_is_not_recreated_or_pruned_again() {
    let d = catalog(&[("acme", ""), ("bobs", "")]);
    let mut terminating = applied(&d[0]);
    terminating.namespace.metadata.deletion_timestamp = Some(Time(Default::default()));
    let mut gone = applied(&d[1]);
    gone.namespace.metadata.deletion_timestamp = Some(Time(Default::default()));
    let p = run(
        &d[..1],
        &live_of(&[("acme", terminating), ("bobs", gone)]),
        PlanOptions::default(),
    );
    assert_eq!(
        p.stores[0].action,
        Action::Blocked,
        "acme is wanted but still being deleted"
    );
    assert!(p.stores[0].changes.is_empty());
    assert_eq!(p.stores[1].action, Action::Skip, "bobs deletion is in progress");
}

#[test]
fn prune_breaker_blocks_every_prune() {
    let names: Vec<String> = (0..7).map(|i| format!("shop-{i}")).collect();
    let stores: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
    let d = catalog(&stores);
    let live = LiveState {
        stores: d.iter().map(|s| (s.store.name.clone(), applied(s))).collect(),
        ..Default::default()
    };
    let p = run(&d[..1], &live, PlanOptions::default());
    assert_eq!(p.summary.prune, 0);
    assert_eq!(p.summary.blocked, 6);
    assert_eq!(
        p.blocked,
        vec!["6 stores would be pruned; limits.maxPrunesPerSync is 5: no store is pruned"]
    );
    assert!(p.is_blocked());
}

#[test]
fn no_prune_skips() {
    let d = catalog(&[("acme", "")]);
    let p = run(
        &[],
        &live_of(&[("acme", applied(&d[0]))]),
        PlanOptions {
            no_prune: true,
            ..Default::default()
        },
    );
    assert_eq!(p.stores[0].action, Action::Skip);
    assert!(!p.is_blocked());
}

#[test]
fn suspended_store_is_left_alone() {
    let d = catalog(&[("acme", "suspend: true\n")]);
    let mut live = applied(&d[0]);
    live.quota = None;
    let p = run(&d, &live_of(&[("acme", live)]), PlanOptions::default());
    assert_eq!(p.stores[0].action, Action::Skip);
    assert!(p.stores[0].changes.is_empty());
}

#[test]
fn stuck_or_changed_release_is_an_update() {
    let d = catalog(&[("acme", "")]);
    let mut stuck = applied(&d[0]);
    stuck.release.as_mut().unwrap().status = "pending-upgrade".into();
    let p = run(&d, &live_of(&[("acme", stuck)]), PlanOptions::default());
    let release = p.stores[0].changes.last().unwrap();
    assert_eq!(
        (release.kind, release.action),
        (ObjectKind::HelmRelease, Action::Update)
    );
    assert_eq!(
        release.reason.as_deref(),
        Some("release status is pending-upgrade")
    );

    let mut changed = applied(&d[0]);
    changed.release.as_mut().unwrap().release_hash = Some("older".into());
    let p = run(&d, &live_of(&[("acme", changed)]), PlanOptions::default());
    assert_eq!(p.stores[0].changes.last().unwrap().action, Action::Update);
}

#[test]
fn stale_network_policy_is_pruned() {
    let d = catalog(&[("acme", "")]);
    let mut live = applied(&d[0]);
    let mut old = live.network_policies[0].clone();
    old.metadata.name = Some("allow-http-egress".into());
    live.network_policies.push(NetworkPolicy { ..old });
    let p = run(&d, &live_of(&[("acme", live)]), PlanOptions::default());
    let pruned: Vec<&str> = p.stores[0]
        .changes
        .iter()
        .filter(|c| c.action == Action::Prune)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(pruned, vec!["allow-http-egress"]);
    assert_eq!(p.stores[0].action, Action::Update);
}

#[test]
fn missing_credentials_are_created_without_data() {
    let d = catalog(&[("acme", "")]);
    let mut live = applied(&d[0]);
    live.credentials = false;
    live.release = None;
    let p = run(
        &d,
        &live_of(&[("acme", live)]),
        PlanOptions {
            create_diffs: true,
            ..Default::default()
        },
    );
    let secret = p.stores[0]
        .changes
        .iter()
        .find(|c| c.kind == ObjectKind::Secret)
        .unwrap();
    assert_eq!(secret.action, Action::Create);
    assert_eq!(secret.diff, None);
}

#[test]
fn quantities_rewritten_by_the_server_are_not_drift() {
    let d = catalog(&[("acme", "")]);
    let mut live = applied(&d[0]);
    let hard = quota_hard(&mut live);
    // Desired says 2Gi and 1; the server may say 2048Mi and 1000m.
    hard.insert("requests.memory".into(), Quantity("2048Mi".into()));
    hard.insert("requests.cpu".into(), Quantity("1000m".into()));
    let p = run(&d, &live_of(&[("acme", live)]), PlanOptions::default());
    assert_eq!(
        p.stores[0].action,
        Action::Unchanged,
        "{:#?}",
        p.stores[0].changes
    );
}

#[test]
fn quantity_values() {
    use super::diff::quantity_nanos as q;
    assert_eq!(q("1"), q("1000m"));
    assert_eq!(q("0.5"), q("500m"));
    assert_eq!(q("1Gi"), q("1024Mi"));
    assert_eq!(q("1k"), q("1e3"));
    assert_eq!(q("1.5Gi"), Some(1_610_612_736_000_000_000));
    assert_ne!(q("1G"), q("1Gi"));
    assert_eq!(q("Container"), None);
    assert_eq!(q("1.2.3"), None);
    assert_eq!(q("0.0.0.0/0"), None);
}

#[test]
fn missing_credentials_of_an_installed_store_block_it() {
    let d = catalog(&[("acme", "")]);
    let mut live = applied(&d[0]);
    live.credentials = false;
    let p = run(&d, &live_of(&[("acme", live)]), PlanOptions::default());
    assert_eq!(p.stores[0].action, Action::Blocked);
    assert!(
        p.stores[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("restore it from a backup")
    );
    assert!(p.is_blocked());
}

#[test]
fn prune_all_counts_only_stores_that_would_really_go() {
    let d = catalog(&[("aaa", ""), ("bbb", ""), ("keep", "protected: true\n")]);
    let live = live_of(&[
        ("aaa", applied(&d[0])),
        ("bbb", applied(&d[1])),
        ("keep", applied(&d[2])),
    ]);
    // A protected store stays, so the platform is not emptied: two retirements are within the limit.
    let p = run(&[], &live, PlanOptions::default());
    assert_eq!((p.summary.retire, p.summary.skip), (2, 1), "{:?}", p.blocked);
    assert!(p.blocked.is_empty());

    let live = live_of(&[("aaa", applied(&d[0])), ("bbb", applied(&d[1]))]);
    let p = run(&[], &live, PlanOptions::default());
    assert_eq!((p.summary.retire, p.summary.blocked), (0, 2));
    assert!(
        p.blocked[0].starts_with("every live store (2) would be pruned"),
        "{:?}",
        p.blocked
    );
    let allowed = PlanOptions {
        allow_prune_all: true,
        ..PlanOptions::default()
    };
    assert_eq!(run(&[], &live, allowed).summary.retire, 2);
}

#[test]
fn the_recorded_limit_holds_when_it_is_the_lower() {
    let d = catalog(&[("aaa", ""), ("bbb", ""), ("ccc", "")]);
    let mut live = live_of(&[
        ("aaa", applied(&d[0])),
        ("bbb", applied(&d[1])),
        ("ccc", applied(&d[2])),
    ]);
    live.applied = Some(crate::live::AppliedLimits {
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        max_prunes_per_sync: 1,
    });
    let p = run(&d[..1], &live, PlanOptions::default());
    assert_eq!(p.summary.retire, 0);
    assert!(
        p.blocked[0].starts_with(
            "2 stores would be pruned; the limit is 1 (limits.maxPrunesPerSync at the last applied commit 0123456789ab;"
        ),
        "{:?}",
        p.blocked
    );
    // A higher recorded limit never raises the commit's own.
    live.applied.as_mut().unwrap().max_prunes_per_sync = 100;
    let p = run(&d[..1], &live, PlanOptions::default());
    assert_eq!(p.summary.retire, 2, "5 at this commit, 100 recorded: 2 may go");
}

/// A release whose chart-rendered objects changed in the cluster.
fn drifted(d: &DesiredStore) -> LiveStore {
    use crate::live::{Drift, DriftedField};
    let mut live = applied(d);
    live.release.as_mut().unwrap().drift = Drift {
        fields: vec![
            DriftedField {
                kind: "ConfigMap".into(),
                name: "acme-apache".into(),
                field: Some(r#"data["php.ini"]"#.into()),
            },
            DriftedField {
                kind: "Deployment".into(),
                name: "acme-wordpress".into(),
                field: Some("spec.replicas".into()),
            },
        ],
        more: 0,
    };
    live
}

fn plan_with(d: &[DesiredStore], live: &LiveState, policy: crate::desired::model::DriftPolicy) -> Plan {
    let platform = PlatformConfig {
        drift_policy: policy,
        ..PlatformConfig::default()
    };
    let revision = Revision {
        commit: None,
        label: "test".into(),
    };
    plan(revision, d, live, &platform, PlanOptions::default(), false)
}

#[test]
fn drift_of_chart_rendered_objects_upgrades_the_release_and_says_where() {
    use crate::desired::model::DriftPolicy;
    let d = catalog(&[("acme", "")]);
    let p = plan_with(&d, &live_of(&[("acme", drifted(&d[0]))]), DriftPolicy::Repair);
    assert_eq!(p.stores[0].action, Action::Update);
    let changed: Vec<&Change> = p.stores[0]
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(
        (changed[0].kind, changed[0].action),
        (ObjectKind::HelmRelease, Action::Update)
    );
    assert_eq!(
        changed[0].reason.as_deref(),
        Some(r#"drift: ConfigMap acme-apache data["php.ini"]; Deployment acme-wordpress spec.replicas"#)
    );
    let text = render_text(&p, "stores");
    assert!(
        text.contains("~ acme update (woocommerce, small, owner team-a, acme.shop.example.com)\n    ~ HelmRelease store-acme/acme (drift: ConfigMap acme-apache data[\"php.ini\"]; Deployment acme-wordpress spec.replicas)\n"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&render_json(&p).unwrap()).unwrap();
    let release = &json["stores"][0]["changes"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(release["kind"], "HelmRelease");
    assert_eq!(
        release["drift"]["fields"][1],
        serde_json::json!({"kind": "Deployment", "name": "acme-wordpress", "field": "spec.replicas"})
    );
}

#[test]
fn drift_under_report_policy_is_shown_and_left_alone() {
    use crate::desired::model::DriftPolicy;
    let d = catalog(&[("acme", "")]);
    let p = plan_with(&d, &live_of(&[("acme", drifted(&d[0]))]), DriftPolicy::Report);
    let s = &p.stores[0];
    assert_eq!(s.action, Action::Skip);
    let reason = s.reason.as_deref().unwrap();
    assert!(
        reason.starts_with("drift, reported only (driftPolicy: report): ConfigMap acme-apache"),
        "{reason}"
    );
    assert_eq!(p.summary.skip, 1);
    let release = s.changes.last().unwrap();
    assert_eq!(
        (release.kind, release.action),
        (ObjectKind::HelmRelease, Action::Skip)
    );
    assert!(
        render_text(&p, "stores").contains("# acme skip"),
        "shown in the plan"
    );

    // With a guardrail to update too, the store is updated and the release still left alone.
    let mut live = drifted(&d[0]);
    quota_hard(&mut live).insert("pods".into(), Quantity("99".into()));
    let p = plan_with(&d, &live_of(&[("acme", live)]), DriftPolicy::Report);
    assert_eq!(p.stores[0].action, Action::Update);
    assert_eq!(p.stores[0].changes.last().unwrap().action, Action::Skip);
}

#[test]
fn drift_is_not_looked_at_when_the_release_changes_anyway() {
    let d = catalog(&[("acme", "values:\n  storeTitle: New\n")]);
    let before = catalog(&[("acme", "")]);
    let p = run(
        &d,
        &live_of(&[("acme", drifted(&before[0]))]),
        PlanOptions::default(),
    );
    let release = p.stores[0].changes.last().unwrap();
    assert_eq!(
        release.reason.as_deref(),
        Some("chart, version or values changed since the last upgrade")
    );
    assert!(release.drift.is_none());
}

#[test]
fn an_actions_word_is_its_json() {
    for action in [
        Action::Create,
        Action::Update,
        Action::Unchanged,
        Action::Prune,
        Action::Skip,
        Action::Blocked,
    ] {
        assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
    }
}
