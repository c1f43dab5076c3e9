//! The rendered pull-request comment against reviewed golden files
//! (`tests/golden/pr-comment-*.md`); after an intended change, regenerate with
//! `STORESYNC_BLESS=1` and review the diff before committing. The goldens hold U+2060 WORD
//! JOINER (invisible) wherever catalog text would have linked: `pr-comment-hostile*.md`.
use storesync::desired::Diagnostic;
use storesync::plan::{Action, Change, ObjectKind, Plan, StorePlan, Summary};
use storesync::report::comment::*;
use storesync::report::inert::WORD_JOINER;
use storesync::report::{PlanReport, PlanResult};
use storesync::source::Revision;

use crate::common::fake_github_pr::render::{Linked, links};
use crate::common::golden;

const SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

fn ctx() -> CommentContext<'static> {
    CommentContext {
        number: 12,
        sha: SHA,
        repo_url: "https://github.com/acme-platform/stores",
        catalog_dir: "",
        from_fork: false,
    }
}

fn store(name: &str, action: Action, owner: &str, changes: Vec<Change>, reason: Option<&str>) -> StorePlan {
    StorePlan {
        store: name.into(),
        action,
        owner: Some(owner.into()),
        engine: Some("woocommerce".into()),
        plan: Some("small".into()),
        domain: None,
        spec_hash: None,
        reason: reason.map(String::from),
        retired_at: None,
        retired_by: None,
        purge_at: None,
        wave: None,
        changes,
    }
}

fn change(kind: ObjectKind, name: &str, action: Action, diff: Option<&str>) -> Change {
    Change {
        kind,
        namespace: (kind != ObjectKind::Namespace).then(|| format!("store-{name}")),
        name: name.into(),
        action,
        diff: diff.map(String::from),
        reason: None,
        drift: None,
    }
}

fn plan(stores: Vec<StorePlan>, blocked: Vec<String>, unchanged: usize) -> Plan {
    let mut summary = Summary {
        unchanged,
        ..Summary::default()
    };
    for s in &stores {
        match s.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Prune => summary.prune += 1,
            Action::Blocked => summary.blocked += 1,
            Action::Skip => summary.skip += 1,
            Action::Unchanged => summary.unchanged += 1,
            Action::Retire => summary.retire += 1,
            Action::Restore => summary.restore += 1,
            Action::Purge => summary.purge += 1,
            Action::Retired => summary.retired += 1,
        }
    }
    Plan {
        revision: Revision {
            commit: Some(SHA.into()),
            label: SHA[..12].into(),
        },
        offline: false,
        summary,
        stores,
        blocked,
    }
}

fn example_plan() -> Plan {
    let quota = "--- live\n+++ desired\n@@ -3,4 +3,4 @@\n spec:\n   hard:\n-    cpu: '2'\n+    cpu: '4'\n";
    plan(
        vec![
            store(
                "acme",
                Action::Create,
                "team-acme",
                vec![change(ObjectKind::Namespace, "store-acme", Action::Create, None)],
                None,
            ),
            store(
                "bobs-bikes",
                Action::Update,
                "@team-bikes | <b>x</b>",
                vec![
                    Change {
                        namespace: Some("store-bobs-bikes".into()),
                        ..change(
                            ObjectKind::ResourceQuota,
                            "store-quota",
                            Action::Update,
                            Some(quota),
                        )
                    },
                    change(
                        ObjectKind::HelmRelease,
                        "bobs-bikes",
                        Action::Update,
                        Some("-replicas: 1\n+replicas: 2\n```\n"),
                    ),
                ],
                None,
            ),
            store(
                "old-shop",
                Action::Purge,
                "team-old",
                vec![change(
                    ObjectKind::Namespace,
                    "store-old-shop",
                    Action::Prune,
                    None,
                )],
                Some(
                    "retired at 2026-11-29T10:00:00Z by 0123456789ab; prune.retention (168h) passed at 2026-12-06T10:00:00Z",
                ),
            ),
            store(
                "corner-books",
                Action::Retire,
                "team-books",
                vec![change(
                    ObjectKind::Namespace,
                    "store-corner-books",
                    Action::Update,
                    None,
                )],
                Some(
                    "its file is gone: stopped (no pod, no Ingress), its namespace, claims, credentials and release history kept; purged after 2026-12-13T10:00:00Z (prune.retention 168h), unless its file comes back",
                ),
            ),
            store(
                "gone-shop",
                Action::Blocked,
                "team-gone",
                Vec::new(),
                Some("prune breaker: too many stores would go at once"),
            ),
        ],
        vec!["3 stores would be pruned; limits.maxPrunesPerSync is 2: no store is pruned".into()],
        40,
    )
}

#[test]
fn summary_names_what_changes_and_the_unchanged() {
    let p = plan(Vec::new(), Vec::new(), 40);
    assert_eq!(summary_line(&p.summary), "40 unchanged");
    let s = Summary {
        create: 2,
        prune: 1,
        unchanged: 40,
        ..Summary::default()
    };
    assert_eq!(summary_line(&s), "2 to create, 1 to prune, 40 unchanged");
}

#[test]
fn plan_comment_matches_its_golden() {
    let body = render(&ctx(), &Outcome::Planned(&example_plan()));
    assert!(body.starts_with(MARKER), "{body}");
    assert!(body.contains(SHA));
    assert!(!body.contains("@team"), "no mention: {body}");
    golden("pr-comment-plan.md", &body);
}

#[test]
fn retired_stores_waiting_for_their_purge_are_counted_not_listed() {
    let plan = plan(
        vec![
            store("acme", Action::Create, "team-a", Vec::new(), None),
            store(
                "old-shop",
                Action::Retired,
                "team-old",
                Vec::new(),
                Some("retired at 2026-12-01T10:00:00Z; purged after 2026-12-08T10:00:00Z"),
            ),
        ],
        Vec::new(),
        3,
    );
    let body = render(&ctx(), &Outcome::Planned(&plan));
    assert!(
        body.contains("**Plan:** 1 to create, 1 retired, 3 unchanged"),
        "{body}"
    );
    assert!(!body.contains("old-shop"), "{body}");
}

#[test]
fn a_rollout_shows_each_store_s_wave_before_merge() {
    use storesync::plan::waves::Wave;
    let update = |name: &str, wave: Option<Wave>| StorePlan {
        wave,
        ..store(
            name,
            Action::Update,
            "team-a",
            vec![change(ObjectKind::HelmRelease, name, Action::Update, None)],
            None,
        )
    };
    let wave = |index, canary| Some(Wave { index, of: 3, canary });
    let plan = plan(
        vec![
            update("acme", wave(2, false)),
            update("bobs", wave(3, false)),
            update("flagship", wave(1, true)),
            store(
                "new-shop",
                Action::Create,
                "team-n",
                vec![change(
                    ObjectKind::Namespace,
                    "store-new-shop",
                    Action::Create,
                    None,
                )],
                None,
            ),
        ],
        Vec::new(),
        10,
    );
    let body = render(&ctx(), &Outcome::Planned(&plan));
    assert!(
        body.contains("| flagship | update | wave 1/3 (canary) |"),
        "{body}"
    );
    assert!(
        body.contains("| new-shop | create | – |"),
        "creates never wait: {body}"
    );
    golden("pr-comment-rollout.md", &body);
}

#[test]
fn findings_comment_links_each_line_of_the_head() {
    let findings = vec![
        Diagnostic::error("stores/acme.yaml", (3, 7), "unknown field `colour`").hint("did you mean `color`?"),
        Diagnostic::error(
            "stores/bad name.yml",
            (0, 0),
            "a store file must be named <name>.yaml",
        ),
        Diagnostic::warning("storesync.yaml", (12, 1), "plan `huge` is not used by any store"),
    ];
    let ctx = CommentContext {
        catalog_dir: "catalog/",
        from_fork: true,
        ..ctx()
    };
    let body = render(&ctx, &Outcome::Invalid(&findings));
    assert!(
        body.contains(&format!(
            "[catalog/stores/acme.yaml:3:7](https://github.com/acme-platform/stores/blob/{SHA}/catalog/stores/acme.yaml#L3)"
        )),
        "{body}"
    );
    assert!(body.contains("catalog/stores/bad%20name.yml)"), "{body}");
    golden("pr-comment-invalid.md", &body);
}

#[test]
fn failure_comment_matches_its_golden() {
    let body = render(&ctx(), &Outcome::Failed("the cluster did not answer within 60s"));
    golden("pr-comment-error.md", &body);
}

#[test]
fn closing_marks_the_comment_once_and_keeps_the_plan() {
    let body = render(&ctx(), &Outcome::Planned(&example_plan()));
    let closed = mark_closed(&body, true);
    assert!(
        closed.starts_with(&format!("{MARKER}\n{CLOSED_MARKER}\n")),
        "{closed}"
    );
    assert!(closed.contains("was merged"), "{closed}");
    assert!(closed.contains(SHA));
    assert_eq!(mark_closed(&closed, false), closed, "marked once");
    golden("pr-comment-closed.md", &closed);
}

#[test]
fn a_huge_diff_is_cut_last_and_said_so() {
    // 3 MB of diff over 30 stores.
    let line = format!("+    {}\n", "x".repeat(95));
    let big: String = line.repeat(1_000);
    let stores = (0..30)
        .map(|i| {
            let name = format!("store-{i:02}");
            let c = change(ObjectKind::HelmRelease, &name, Action::Update, Some(&big));
            store(&name, Action::Update, "team", vec![c], None)
        })
        .collect();
    let p = plan(stores, Vec::new(), 5);
    let body = render(&ctx(), &Outcome::Planned(&p));
    let n = body.chars().count();
    assert!(n <= BUDGET_CHARS && n > BUDGET_CHARS - 2_000, "{n}");
    assert!(
        body.contains("Diffs cut to stay under GitHub's 65536-character comment limit"),
        "{body}"
    );
    assert!(
        body.contains("(diff cut here"),
        "the store that did not fit is cut at a line"
    );
    // Every store is still in the table: diffs are what is cut.
    for i in 0..30 {
        assert!(body.contains(&format!("| store-{i:02} | update |")), "{i}");
    }
    assert!(body.ends_with("</sub>\n"), "the footer survives");
    let closed = mark_closed(&body, false);
    assert!(closed.chars().count() <= MAX_COMMENT_CHARS);
}

#[test]
fn thousands_of_findings_stay_under_the_limit() {
    let findings: Vec<Diagnostic> = (1..=5_000)
        .map(|i| Diagnostic::error(format!("stores/s{i}.yaml"), (i, 1), "x".repeat(80)))
        .collect();
    let body = render(&ctx(), &Outcome::Invalid(&findings));
    assert!(body.chars().count() <= BUDGET_CHARS);
    assert!(
        body.contains("more: run `storesync validate` to see them all"),
        "{body}"
    );
}

#[test]
fn escaping_leaves_no_markup() {
    assert_eq!(
        escape("a|b <i>@x</i> [l](u) `c`\nd"),
        format!("a\\|b &lt;i&gt;@{WORD_JOINER}x&lt;/i&gt; \\[l\\](u) \\`c\\` d")
    );
}

/// What a fork's pull request can put in the catalog to make storesync's comment ping, cross
/// reference or link: each phrase GitHub would link as it stands.
const HOSTILE: [&str; 9] = [
    "@acme/everyone",
    "cc @mallory",
    "see #4242",
    "acme-platform/billing#77",
    "GH-99",
    "https://evil.example/pay",
    "www.evil.example",
    "mallory@evil.example",
    "octocat@6dcb09b5b5",
];

/// Only storesync's own links: the heading's reference to the pull request itself (#12).
fn assert_links_nothing_of_the_catalog(markdown: &str) {
    let linked = links(markdown);
    assert_eq!(linked, [Linked::Reference("#12".into())], "{markdown}");
}

fn hostile_plan() -> Plan {
    let mut owner_store = store(
        "bobs-bikes",
        Action::Create,
        &format!("{} {}", HOSTILE[0], HOSTILE[1]),
        Vec::new(),
        None,
    );
    owner_store.engine = Some(HOSTILE[5].into());
    owner_store.plan = Some(HOSTILE[6].into());
    let blocked = store(
        "gone-shop",
        Action::Blocked,
        "team-gone",
        Vec::new(),
        Some(&format!("{} {}", HOSTILE[2], HOSTILE[3])),
    );
    plan(
        vec![owner_store, blocked],
        vec![format!("{} {} {}", HOSTILE[4], HOSTILE[7], HOSTILE[8])],
        3,
    )
}

#[test]
fn hostile_catalog_text_neither_mentions_references_nor_links() {
    // The escaping storesync used before: GitHub decodes it and links all the same.
    let old_escaping = "&#64;acme/everyone \\#4242 acme-platform/billing\\#77";
    assert_eq!(
        links(old_escaping).len(),
        3,
        "the renderer links what GitHub links"
    );
    for phrase in HOSTILE {
        assert!(!links(phrase).is_empty(), "GitHub links {phrase}");
    }

    let body = render(&ctx(), &Outcome::Planned(&hostile_plan()));
    assert_links_nothing_of_the_catalog(&body);
    golden("pr-comment-hostile.md", &body);

    let findings: Vec<Diagnostic> = HOSTILE
        .iter()
        .map(|phrase| Diagnostic::error("stores/acme.yaml", (4, 8), format!("owner {phrase}")).hint(*phrase))
        .collect();
    let body = render(&ctx(), &Outcome::Invalid(&findings));
    assert_links_nothing_of_the_catalog(&body);
    golden("pr-comment-hostile-invalid.md", &body);

    let failed = render(&ctx(), &Outcome::Failed(&HOSTILE.join(" ")));
    assert_links_nothing_of_the_catalog(&failed);
}

#[test]
fn hostile_text_in_the_check_run_neither_mentions_references_nor_links() {
    let findings: Vec<Diagnostic> = HOSTILE
        .iter()
        .map(|phrase| Diagnostic::error(format!("stores/{phrase}.yaml"), (1, 1), *phrase).hint(*phrase))
        .collect();
    let report = PlanReport::new(SHA.into(), String::new(), false, PlanResult::Invalid(findings));
    assert_links_nothing_of_the_catalog(&report.check_summary(12, "https://github.com/acme-platform/stores"));
    let title = report.title();
    assert!(links(&title).is_empty(), "{title}");
    for note in report.annotations() {
        // Plain text, not Markdown: nothing there may link either.
        assert!(links(&note.title).is_empty(), "{}", note.title);
        assert!(links(&note.message).is_empty(), "{}", note.message);
    }
}
