//! `storesync plan --offline` against the example catalog: text and JSON compared with reviewed
//! golden files. After an intended change, regenerate with `STORESYNC_BLESS=1` and review the
//! diff of `tests/golden/` before committing it.
use crate::common;

use common::{Catalog, golden, repo_root, source_args};
use storesync::commands;
use storesync::config::OutputFormat;

fn plan_example(output: OutputFormat, diff: bool) -> (u8, String, String) {
    let mut args = source_args(&repo_root().join("stores.example"));
    // A fixed display name, so the golden does not depend on where the repository lives.
    args.repo = repo_root().join("stores.example").display().to_string();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = commands::plan_offline(&args, &[], output, diff, &mut out, &mut err).unwrap();
    let out = String::from_utf8(out)
        .unwrap()
        .replace(&repo_root().display().to_string(), "<repo>");
    (code, out, String::from_utf8(err).unwrap())
}

#[test]
fn text_plan_of_the_example() {
    let (code, out, err) = plan_example(OutputFormat::Text, false);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    golden("plan-offline.txt", &out);
}

#[test]
fn text_plan_with_diffs_of_the_example() {
    let (code, out, _) = plan_example(OutputFormat::Text, true);
    assert_eq!(code, 0);
    golden("plan-offline-diff.txt", &out);
}

#[test]
fn json_plan_of_the_example() {
    let (code, out, _) = plan_example(OutputFormat::Json, false);
    assert_eq!(code, 0);
    golden("plan-offline.json", &out);
}

#[test]
fn json_plan_is_stable_and_ordered() {
    let (_, first, _) = plan_example(OutputFormat::Json, false);
    let (_, second, _) = plan_example(OutputFormat::Json, false);
    assert_eq!(first, second, "the same catalog plans to the same bytes");
    let plan: serde_json::Value = serde_json::from_str(&first).unwrap();
    let names: Vec<&str> = plan["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["store"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "stores in name order");
    let kinds: Vec<&str> = plan["stores"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ResourceQuota",
            "LimitRange",
            "NetworkPolicy",
            "NetworkPolicy",
            "NetworkPolicy",
            "NetworkPolicy",
            "NetworkPolicy",
            "ServiceAccount",
            "RoleBinding",
            "Secret",
            "HelmRelease"
        ],
        "apply order"
    );
    assert_eq!(plan["summary"]["create"], 7);
    assert_eq!(plan["summary"]["skip"], 1, "the suspended store is skipped");
}

#[test]
fn secrets_never_appear_in_plans() {
    let (_, out, _) = plan_example(OutputFormat::Text, true);
    assert!(out.contains("Secret store-acme/store-credentials"));
    assert!(!out.contains("password:"), "no credential value in a plan");
    assert!(
        out.contains("existingSecret: store-credentials"),
        "the release reads the generated Secret"
    );
}

#[test]
fn plan_of_a_commit_carries_the_commit() {
    let mut repo = common::GitRepo::new();
    repo.write(
        "stores/acme.yaml",
        &common::store_yaml("acme", "woocommerce", "small", "team-acme"),
    );
    let sha = repo.commit("Ada", "Add acme");
    let mut args = source_args(repo.path());
    args.rev = Some("HEAD".into());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = commands::plan_offline(&args, &[], OutputFormat::Json, true, &mut out, &mut err).unwrap();
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let plan: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(plan["revision"]["commit"], sha.as_str());
    let namespace_diff = plan["stores"][0]["changes"][0]["diff"].as_str().unwrap();
    assert!(
        namespace_diff.contains(&format!("+    storesync.dev/commit: {sha}")),
        "{namespace_diff}"
    );
}

#[test]
fn suspended_and_protected_stores_in_text() {
    let c = Catalog::new();
    c.store(
        "acme",
        &format!(
            "{}suspend: true\n",
            common::store_yaml("acme", "medusa", "small", "team-a")
        ),
    );
    let outcome = c.plan_offline(OutputFormat::Text);
    assert_eq!(outcome.code, 0);
    assert!(
        outcome
            .stdout
            .contains("# acme skip (medusa, small, owner team-a, acme.shop.example.com): store is suspended")
    );
    assert!(
        outcome
            .stdout
            .ends_with("Plan: 0 to create, 0 to update, 0 to prune, 0 unchanged, 1 skipped.\n")
    );
}
