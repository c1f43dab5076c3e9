//! The catalog as untrusted input: bounded parsing, no silent skips in the stores directory,
//! values parents, chart references, and no symbolic link on the way to a store file.
use std::fmt::Write as _;

use crate::common::{Catalog, GitRepo, source_args, store_yaml};
use crate::validate::{assert_invalid, with_bad};
use storesync::config::OutputFormat;

fn with_values(values: &str) -> Catalog {
    with_bad(
        "dune",
        &format!(
            "{}values:\n{values}",
            store_yaml("dune", "woocommerce", "small", "team-a")
        ),
    )
}

#[test]
fn alias_fan_out_is_rejected_before_it_expands() {
    // 40 KB that expands to ~5,000 copies of a 1,000-item list once aliases are resolved.
    let mut text = format!(
        "{}values:\n  x: &a [",
        store_yaml("dune", "woocommerce", "small", "team-a")
    );
    text.push_str(&vec!["1"; 1000].join(","));
    text.push_str("]\n  y: [");
    text.push_str(&vec!["*a"; 5000].join(","));
    text.push_str("]\n");
    assert!(text.len() < 40 * 1024);
    let c = with_bad("dune", &text);
    assert_invalid(&c, "stores/dune.yaml:6:6: error: anchor `&a` is not allowed");
    let outcome = c.validate();
    let findings = outcome.findings();
    assert_eq!(
        findings[1],
        "stores/dune.yaml:7:7: error: alias `*a` is not allowed"
    );
    assert_eq!(findings.len(), 51, "50 findings, then a count of the rest");
    assert_eq!(
        findings[50],
        "stores/dune.yaml:7:154: error: 4951 more findings in this file are not shown"
    );
    assert!(outcome.stderr.contains("hint: write the value out in full"));
}

#[test]
fn an_anchor_alone_is_rejected() {
    assert_invalid(
        &with_values("  storeTitle: &t Dune\n"),
        "stores/dune.yaml:6:15: error: anchor `&t` is not allowed",
    );
}

#[test]
fn tags_are_rejected() {
    let c = with_values("  storeTitle: !!str 12\n  currency: !eur EUR\n");
    assert_invalid(&c, "stores/dune.yaml:6:15: error: tag `!!str` is not allowed");
    assert_invalid(&c, "stores/dune.yaml:7:13: error: tag `!eur` is not allowed");
    assert!(c.validate().stderr.contains("quote the value"));
}

#[test]
fn duplicate_keys_are_rejected_at_the_second_one() {
    let c = with_values("  storeTitle: Dune\n  currency: EUR\n  storeTitle: Evil\n");
    assert_invalid(
        &c,
        "stores/dune.yaml:8:3: error: duplicate key `storeTitle`: it is already set at line 6",
    );
    // Keys compare as text: `1` and "1" are the same key.
    let c = with_values("  admin:\n    1: a\n    \"1\": b\n");
    assert_invalid(
        &c,
        "stores/dune.yaml:8:5: error: duplicate key `1`: it is already set at line 7",
    );
}

#[test]
fn duplicate_quota_key_in_the_platform_file() {
    let c = Catalog::with_valid_stores();
    c.platform(
        "plans:\n  small:\n    quota:\n      requests.cpu: \"1\"\n      requests.memory: 2Gi\n      \
         requests.cpu: \"64\"\n    limitRange:\n      container:\n        default: {}\n        \
         defaultRequest: {}\n        max: {}\n",
    );
    assert_invalid(
        &c,
        "storesync.yaml:6:7: error: duplicate key `requests.cpu`: it is already set at line 4",
    );
}

#[test]
fn deep_nesting_is_rejected() {
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    assert_invalid(
        &with_values(&format!("  storeTitle: {deep}\n")),
        "stores/dune.yaml:6:45: error: maps and lists are nested more than 32 levels deep",
    );
    let deeper = format!("{}1", "- ".repeat(20_000));
    assert_invalid(
        &with_values(&format!("  storeTitle:\n    {deeper}\n")),
        "stores/dune.yaml:7:65: error: maps and lists are nested more than 32 levels deep",
    );
}

#[test]
fn a_store_moved_into_a_subdirectory_is_an_error() {
    let c = Catalog::with_valid_stores();
    std::fs::create_dir(c.path().join("stores/archive")).unwrap();
    std::fs::rename(
        c.path().join("stores/acme.yaml"),
        c.path().join("stores/archive/acme.yaml"),
    )
    .unwrap();
    assert_invalid(
        &c,
        "stores/archive: error: a directory in the stores directory: store files in it would not be read, \
         and their stores would be pruned",
    );
}

#[test]
fn an_upper_case_extension_is_an_error() {
    let c = Catalog::with_valid_stores();
    std::fs::rename(
        c.path().join("stores/corner-books.yaml"),
        c.path().join("stores/corner-books.YAML"),
    )
    .unwrap();
    assert_invalid(
        &c,
        "stores/corner-books.YAML: error: the extension of a store file must be `.yaml` or `.yml`, in lowercase",
    );
    assert!(
        c.validate()
            .stderr
            .contains("hint: rename it to `corner-books.yaml`")
    );
}

#[test]
fn a_hidden_store_file_is_an_error() {
    let c = Catalog::with_valid_stores();
    c.file(
        "stores/.dune-coffee.yaml",
        store_yaml("dune-coffee", "medusa", "small", "team-d").as_bytes(),
    );
    assert_invalid(
        &c,
        "stores/.dune-coffee.yaml: error: a hidden file in the stores directory",
    );
    assert!(
        c.validate()
            .stderr
            .contains("hint: rename it to `dune-coffee.yaml` if it is a store")
    );
}

#[test]
fn a_backup_file_is_an_error() {
    let c = Catalog::with_valid_stores();
    c.file(
        "stores/acme.yaml.bak",
        store_yaml("acme", "woocommerce", "small", "team-acme").as_bytes(),
    );
    assert_invalid(
        &c,
        "stores/acme.yaml.bak: error: not a store file: store files are named `<name>.yaml` or `<name>.yml`",
    );
}

#[test]
fn a_parent_of_allowed_values_must_be_a_map() {
    for (value, column) in [("\"scalar\"", 10), ("null", 10), ("[1]", 10)] {
        assert_invalid(
            &with_values(&format!("  admin: {value}\n")),
            &format!(
                "stores/dune.yaml:6:{column}: error: value `admin` must be a map: engine `woocommerce` \
                 allows only values below it"
            ),
        );
    }
    assert_invalid(
        &with_values("  persistence: null\n"),
        "stores/dune.yaml:6:16: error: value `persistence` must be a map: engine `woocommerce` allows only \
         values below it",
    );
    let outcome = with_values("  admin: {}\n  persistence:\n    wordpress: {size: 5Gi}\n").validate();
    assert_eq!(outcome.code, 0, "an empty map is harmless: {}", outcome.stderr);
}

#[test]
fn chart_references() {
    let platform = |chart: &str| {
        let c = Catalog::new();
        c.platform(&format!(
            "engines:\n  woocommerce:\n    chart: {chart}\n    version: 0.1.0\n"
        ));
        c
    };
    for bad in [
        "/etc/charts/woo",
        "../charts/woo",
        "a/b",
        "oci://user@registry.example/x",
        "oci://host/../x",
    ] {
        assert_invalid(
            &platform(&format!("\"{bad}\"")),
            &format!("storesync.yaml:3:12: error: `{bad}` is not a chart of engine `woocommerce`"),
        );
    }
    assert_eq!(platform("woocommerce").validate().code, 0);
    // A well-formed OCI reference is valid only under a prefix the operator allows, as in `apply`.
    let oci = platform("oci://registry.example.com/charts/woocommerce");
    assert_eq!(oci.validate().code, 1);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let allowed = ["oci://registry.example.com/charts".to_string()];
    let code =
        storesync::commands::validate(&oci.args(), &allowed, OutputFormat::Text, &mut out, &mut err).unwrap();
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
}

/// Every name directly under `dir` longer than 3 characters, to look for in output.
#[cfg(unix)]
fn names_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() > 3)
        .collect()
}

#[cfg(unix)]
#[test]
fn a_symlink_in_the_middle_of_the_stores_dir_reads_nothing_behind_it() {
    let c = Catalog::with_valid_stores();
    c.platform("storesDir: esc/etc\n");
    std::os::unix::fs::symlink("/", c.path().join("esc")).unwrap();
    let outcome = c.validate();
    assert_eq!(outcome.code, 1);
    assert_eq!(
        outcome.findings(),
        vec![
            "esc: error: symbolic links are not allowed in the catalog; the stores directory is reached \
             through this one"
        ]
    );
    let leaked: Vec<String> = names_in(std::path::Path::new("/etc"))
        .into_iter()
        .filter(|n| outcome.stderr.contains(n.as_str()) || outcome.stdout.contains(n.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "names from /etc in the output: {leaked:?}\n{}",
        outcome.stderr
    );

    // A store-like file behind the link is neither listed nor quoted.
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("conf")).unwrap();
    std::fs::write(
        outside.path().join("conf/token.yaml"),
        "name: Secret-Token-4711\nengine: x\nplan: y\nowner: z\n",
    )
    .unwrap();
    let c = Catalog::with_valid_stores();
    c.platform("storesDir: esc/conf\n");
    std::os::unix::fs::symlink(outside.path(), c.path().join("esc")).unwrap();
    let outcome = c.validate();
    assert_eq!(outcome.code, 1);
    for secret in ["Secret-Token-4711", "token"] {
        assert!(!outcome.stderr.contains(secret), "{}", outcome.stderr);
    }
    let plan = c.plan_offline(OutputFormat::Json);
    assert_eq!(plan.code, 1);
    assert!(!plan.stdout.contains("Secret-Token") && !plan.stdout.contains("token.yaml"));
}

#[cfg(unix)]
#[test]
fn a_symlinked_stores_dir_at_a_commit_is_an_error() {
    let mut repo = GitRepo::new();
    repo.write(
        "stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "small", "team-acme"),
    );
    repo.write("storesync.yaml", "storesDir: stores-link\n");
    std::os::unix::fs::symlink("stores", repo.path().join("stores-link")).unwrap();
    repo.commit("Alice", "Point the catalog at a link");
    let tree = repo.repo.head().unwrap().peel_to_tree().unwrap();
    assert_eq!(
        tree.get_name("stores-link").unwrap().filemode(),
        0o120000,
        "committed as a link"
    );
    std::fs::remove_file(repo.path().join("stores-link")).unwrap();
    std::fs::create_dir(repo.path().join("stores-link")).unwrap();

    let mut args = source_args(repo.path());
    args.rev = Some("HEAD".into());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = storesync::commands::validate(&args, &[], OutputFormat::Text, &mut out, &mut err).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with(
            "stores-link: error: symbolic links are not allowed in the catalog; the stores directory is \
             reached through this one\n"
        ),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_in_the_middle_at_a_commit_is_an_error() {
    let mut repo = GitRepo::new();
    repo.write(
        "real/stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "small", "team-acme"),
    );
    repo.write("storesync.yaml", "storesDir: esc/stores\n");
    std::os::unix::fs::symlink("real", repo.path().join("esc")).unwrap();
    repo.commit("Alice", "Reach the stores through a link");
    let mut args = source_args(repo.path());
    args.rev = Some("HEAD".into());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = storesync::commands::validate(&args, &[], OutputFormat::Text, &mut out, &mut err).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, 1, "{err}");
    let mut expected = String::new();
    writeln!(
        expected,
        "esc: error: symbolic links are not allowed in the catalog; the stores directory is reached through \
         this one"
    )
    .unwrap();
    assert!(err.starts_with(&expected), "{err}");
}

#[cfg(unix)]
#[test]
fn a_stores_dir_outside_the_catalog_is_not_read() {
    for (dir, column) in [("/etc", 12), ("../..", 12)] {
        let c = Catalog::with_valid_stores();
        c.platform(&format!("storesDir: \"{dir}\"\n"));
        let outcome = c.validate();
        assert_eq!(outcome.code, 1);
        assert_eq!(
            outcome.findings(),
            vec![format!(
                "storesync.yaml:1:{column}: error: `{dir}` is not a relative directory inside the catalog"
            )],
            "nothing under {dir} is listed"
        );
    }
}

#[test]
fn findings_quote_catalog_text_with_its_control_characters_escaped() {
    let c = Catalog::with_valid_stores();
    // YAML's "\e" is ESC: `ESC[2J` clears the screen of whoever reads the finding.
    c.store(
        "acme",
        "name: acme\nengine: woocommerce\nplan: \"\\e[2J\\e[31mfree\"\nowner: team-acme\n",
    );
    let outcome = c.validate();
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        !outcome.stderr.contains('\u{1b}'),
        "raw ESC in {:?}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("\\u{1b}[2J"), "{}", outcome.stderr);
    let plan = c.plan_offline(OutputFormat::Text);
    assert!(!plan.stderr.contains('\u{1b}') && !plan.stdout.contains('\u{1b}'));
}

#[test]
fn validate_plan_and_apply_judge_an_oci_chart_alike() {
    let c = Catalog::with_valid_stores();
    c.platform(
        "engines:\n  woocommerce:\n    chart: oci://evil.example/charts/woocommerce\n    version: 0.1.0\n  medusa:\n    chart: medusa\n    version: 0.1.0\n",
    );
    let run = |allowed: &[String]| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let validate =
            storesync::commands::validate(&c.args(), allowed, OutputFormat::Text, &mut out, &mut err)
                .unwrap();
        let (mut out, mut err2) = (Vec::new(), Vec::new());
        let plan = storesync::commands::plan_offline(
            &c.args(),
            allowed,
            OutputFormat::Text,
            false,
            &mut out,
            &mut err2,
        )
        .unwrap();
        (validate, plan, String::from_utf8(err).unwrap())
    };
    let (validate, plan, err) = run(&[]);
    assert_eq!((validate, plan), (1, 1), "refused without a prefix: {err}");
    assert!(
        err.contains("storesync.yaml:3:12: error: engine `woocommerce`: chart"),
        "{err}"
    );
    assert!(
        err.contains("not under an OCI prefix this storesync allows (none are allowed)"),
        "{err}"
    );
    let (validate, plan, err) = run(&["oci://evil.example/charts".to_string()]);
    assert_eq!((validate, plan), (0, 0), "allowed with the prefix: {err}");
}
