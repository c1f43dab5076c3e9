//! `storesync history`: the audit trail of one store in a repository the test builds.
use crate::common;

use common::{GitRepo, source_args, store_yaml};
use storesync::commands;
use storesync::config::OutputFormat;

fn history(repo: &std::path::Path, store: &str, rev: Option<&str>) -> (u8, serde_json::Value, String) {
    let mut args = source_args(repo);
    args.rev = rev.map(String::from);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = commands::history(store, &args, OutputFormat::Json, &mut out, &mut err).unwrap();
    let json = if out.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&out).unwrap()
    };
    (code, json, String::from_utf8(err).unwrap())
}

/// add acme-old, edit it, rename it to acme (file and name), edit, delete; plus noise.
fn build() -> (GitRepo, Vec<String>) {
    let mut repo = GitRepo::new();
    let mut shas = Vec::new();
    let old = "name: acme-old\nengine: woocommerce\nplan: small\nowner: team-acme\nvalues:\n  storeTitle: Acme\n  currency: EUR\n";
    repo.write("stores/acme-old.yaml", old);
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    shas.push(repo.commit("Ada", "Add acme-old and bobs"));
    repo.write(
        "stores/acme-old.yaml",
        &old.replace("plan: small", "plan: medium"),
    );
    shas.push(repo.commit("Ben", "Grow acme-old to medium"));
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "large", "team-bikes"),
    );
    repo.commit("Cy", "Grow bobs (unrelated)");
    repo.remove("stores/acme-old.yaml");
    repo.write(
        "stores/acme.yaml",
        &old.replace("plan: small", "plan: medium")
            .replace("acme-old", "acme"),
    );
    shas.push(repo.commit("Dee", "Rename acme-old to acme"));
    repo.write(
        "stores/acme.yaml",
        &old.replace("plan: small", "plan: large")
            .replace("acme-old", "acme"),
    );
    shas.push(repo.commit("Eve", "Grow acme to large"));
    repo.remove("stores/acme.yaml");
    shas.push(repo.commit("Fay", "Retire acme"));
    (repo, shas)
}

#[test]
fn every_step_newest_first_through_rename_and_delete() {
    let (repo, shas) = build();
    let (code, entries, err) = history(repo.path(), "acme", None);
    assert_eq!(code, 0, "{err}");
    let entries = entries.as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["commit"].as_str().unwrap(),
                e["change"].as_str().unwrap(),
                e["author"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (shas[4].as_str(), "deleted", "Fay"),
            (shas[3].as_str(), "modified", "Eve"),
            (shas[2].as_str(), "renamed", "Dee"),
            (shas[1].as_str(), "modified", "Ben"),
            (shas[0].as_str(), "added", "Ada"),
        ],
        "the unrelated commit to bobs is not listed"
    );
    assert_eq!(entries[2]["old_path"], "stores/acme-old.yaml");
    assert_eq!(entries[2]["new_path"], "stores/acme.yaml");
    assert_eq!(entries[0]["subject"], "Retire acme");
    assert_eq!(entries[0]["email"], "fay@example.com");
    assert!(entries[0]["date"].as_str().unwrap().ends_with('Z'));
    assert!(entries[0]["diff"].as_str().unwrap().contains("+++ /dev/null"));
    assert!(
        entries[1]["diff"]
            .as_str()
            .unwrap()
            .contains("-plan: medium\n+plan: large\n"),
        "{}",
        entries[1]["diff"]
    );
    assert!(
        entries[3]["diff"]
            .as_str()
            .unwrap()
            .contains("-plan: small\n+plan: medium\n")
    );
    assert!(entries[4]["diff"].as_str().unwrap().contains("--- /dev/null"));
}

#[test]
fn history_at_an_older_revision() {
    let (repo, shas) = build();
    let (code, entries, _) = history(repo.path(), "acme-old", Some(&shas[1]));
    assert_eq!(code, 0);
    let changes: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, vec!["modified", "added"]);
}

#[test]
fn catalog_in_a_subfolder_with_its_own_stores_dir() {
    let mut repo = GitRepo::new();
    repo.write("README.md", "platform monorepo\n");
    repo.write("platform/catalog/storesync.yaml", "storesDir: shops\n");
    repo.write(
        "platform/catalog/shops/acme.yaml",
        &store_yaml("acme", "medusa", "small", "team-a"),
    );
    repo.write("other/shops/acme.yaml", "not the catalog\n");
    let sha = repo.commit("Ada", "Add acme");
    let (code, entries, err) = history(&repo.path().join("platform/catalog"), "acme", None);
    assert_eq!(code, 0, "{err}");
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["commit"], sha.as_str());
    assert_eq!(entries[0]["new_path"], "platform/catalog/shops/acme.yaml");
}

#[test]
fn text_output_reads_like_a_log() {
    let (repo, shas) = build();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = commands::history(
        "acme",
        &source_args(repo.path()),
        OutputFormat::Text,
        &mut out,
        &mut err,
    )
    .unwrap();
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with(&format!(
            "commit {}\nAuthor: Fay <fay@example.com>\nDate:   ",
            shas[4]
        )),
        "{text}"
    );
    assert!(
        text.contains("\n    Rename acme-old to acme\n\nrenamed stores/acme-old.yaml -> stores/acme.yaml\n"),
        "{text}"
    );
}

#[test]
fn unknown_store_has_no_history() {
    let (repo, _) = build();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = commands::history(
        "zzz",
        &source_args(repo.path()),
        OutputFormat::Text,
        &mut out,
        &mut err,
    )
    .unwrap();
    assert_eq!(code, 1);
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "no commit touched store `zzz` (looked in stores/)\n"
    );
}

#[test]
fn catalog_read_at_a_revision_ignores_the_work_tree() {
    let (repo, shas) = build();
    // An uncommitted edit is seen without --rev and not with it.
    repo.write(
        "stores/bobs.yaml",
        "name: bobs\nengine: nope\nplan: small\nowner: team-bikes\n",
    );
    let mut args = source_args(repo.path());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        commands::validate(&args, &[], OutputFormat::Text, &mut out, &mut err).unwrap(),
        1
    );
    args.rev = Some(shas[4].clone());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        commands::validate(&args, &[], OutputFormat::Text, &mut out, &mut err).unwrap(),
        0
    );
    assert!(String::from_utf8(out).unwrap().starts_with("valid: 1 stores in "));
}

#[test]
fn a_url_is_cloned_into_the_cache_and_fetched_again() {
    let (mut repo, _) = build();
    repo.write(
        "stores/dune.yaml",
        &store_yaml("dune", "medusa", "small", "team-d"),
    );
    repo.commit("Gus", "Add dune");
    // The tracked branch of a file:// remote.
    let head = repo.repo.head().unwrap().shorthand().unwrap().to_string();
    let cache = tempfile::tempdir().unwrap();
    let mut args = source_args(repo.path());
    args.repo = format!("file://{}", repo.path().display());
    args.branch = head;
    args.cache_dir = Some(cache.path().to_path_buf());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = commands::validate(&args, &[], OutputFormat::Text, &mut out, &mut err).unwrap();
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert!(String::from_utf8(out).unwrap().starts_with("valid: 2 stores in "));

    repo.write("stores/eel.yaml", &store_yaml("eel", "medusa", "small", "team-e"));
    repo.commit("Hal", "Add eel");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        commands::validate(&args, &[], OutputFormat::Text, &mut out, &mut err).unwrap(),
        0
    );
    assert!(
        String::from_utf8(out).unwrap().starts_with("valid: 3 stores in "),
        "the second read fetched the new commit"
    );
    // The lock file beside the repository is not a cache of its own.
    let entries: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries.iter().filter(|p| p.is_dir()).count(),
        1,
        "one cache repository per URL: {entries:?}"
    );
}

#[test]
fn text_output_escapes_control_characters_and_json_keeps_the_data() {
    let mut repo = GitRepo::new();
    let file = format!(
        "{}# \x1b[2J cleared\n",
        store_yaml("acme", "medusa", "small", "team-a")
    );
    repo.write("stores/acme.yaml", &file);
    let author = "Ada\x1b]0;pwned\x07\u{202e}";
    repo.commit(author, "Add acme \x1b[31mred\x1b[0m\rforged");

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = commands::history(
        "acme",
        &source_args(repo.path()),
        OutputFormat::Text,
        &mut out,
        &mut err,
    )
    .unwrap();
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    for raw in ['\x1b', '\x07', '\r', '\u{202e}'] {
        assert!(!text.contains(raw), "{raw:?} in {text:?}");
    }
    assert!(
        text.contains(
            "Author: Ada\\u{1b}]0;pwned\\u{7}\\u{202e} <ada\\u{1b}]0;pwned\\u{7}\\u{202e}@example.com>"
        ),
        "{text}"
    );
    assert!(
        text.contains("    Add acme \\u{1b}[31mred\\u{1b}[0m\\u{d}forged\n"),
        "{text}"
    );
    assert!(
        text.contains("+# \\u{1b}[2J cleared\n"),
        "the diff's lines too: {text}"
    );

    let (code, json, _) = history(repo.path(), "acme", None);
    assert_eq!(code, 0);
    assert_eq!(json[0]["author"], author, "JSON carries the data as it is");
    assert!(json[0]["diff"].as_str().unwrap().contains("# \x1b[2J cleared"));
}
