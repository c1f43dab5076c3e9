//! `storesync validate`: every kind of bad input gets its own finding at file:line:col, exit
//! code 1, and an invalid catalog renders nothing.
use crate::common;
mod trust;

use common::{Catalog, store_yaml};
use storesync::config::OutputFormat;
use storesync::desired;

/// Validates `catalog`, expects exit code 1 and exactly `expected` as the first finding line.
#[track_caller]
fn assert_invalid(catalog: &Catalog, expected: &str) {
    let outcome = catalog.validate();
    assert_eq!(outcome.code, 1, "exit code; stderr:\n{}", outcome.stderr);
    let findings = outcome.findings();
    assert!(
        findings.contains(&expected),
        "expected finding\n  {expected}\ngot:\n{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("  hint: "),
        "every error carries a hint:\n{}",
        outcome.stderr
    );
    assert!(
        outcome.stdout.is_empty(),
        "nothing on stdout for an invalid catalog: {}",
        outcome.stdout
    );
}

/// A catalog of three valid stores plus one file with `text`.
fn with_bad(stem: &str, text: &str) -> Catalog {
    let c = Catalog::with_valid_stores();
    c.store(stem, text);
    c
}

#[test]
fn example_catalog_is_valid() {
    let args = common::source_args(&common::repo_root().join("stores.example"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = storesync::commands::validate(&args, &[], OutputFormat::Text, &mut out, &mut err).unwrap();
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert!(String::from_utf8_lossy(&out).starts_with("valid: 8 stores in "));
}

#[test]
fn valid_catalog_exits_zero() {
    let outcome = Catalog::with_valid_stores().validate();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stderr, "");
}

#[test]
fn yaml_syntax_error() {
    let c = with_bad(
        "dune",
        "name: dune\nengine: woocommerce\n  plan: small\nowner: team-a\n",
    );
    assert_invalid(
        &c,
        "stores/dune.yaml:3:7: error: mapping values are not allowed in this context",
    );
}

#[test]
fn unterminated_quote() {
    let c = with_bad("dune", "name: \"dune\nengine: woocommerce\n");
    assert_invalid(&c, "stores/dune.yaml:3:1: error: found unexpected end of stream");
}

#[test]
fn tab_indentation() {
    let c = with_bad("dune", "name: dune\n\tengine: woocommerce\n");
    assert_invalid(
        &c,
        "stores/dune.yaml:2:1: error: found a tab character that violates indentation",
    );
}

#[test]
fn wrong_type() {
    let c = with_bad(
        "dune",
        &format!(
            "{}protected: yes\n",
            store_yaml("dune", "woocommerce", "small", "team-a")
        ),
    );
    assert_invalid(
        &c,
        "stores/dune.yaml:5:12: error: protected: invalid type: string \"yes\", expected a boolean",
    );
}

#[test]
fn unknown_field() {
    let c = with_bad(
        "dune",
        "name: dune\nenigne: woocommerce\nplan: small\nowner: team-a\n",
    );
    assert_invalid(
        &c,
        "stores/dune.yaml:2:1: error: unknown field `enigne`, expected one of `name`, `engine`, `plan`, \
         `owner`, `domain`, `protected`, `suspend`, `values`",
    );
}

#[test]
fn missing_required_field() {
    let c = with_bad("dune", "name: dune\nengine: woocommerce\nplan: small\n");
    assert_invalid(&c, "stores/dune.yaml:1:1: error: missing field `owner`");
}

#[test]
fn name_pattern() {
    let c = with_bad("Dune", &store_yaml("Dune", "woocommerce", "small", "team-a"));
    assert_invalid(&c, "stores/Dune.yaml:1:7: error: store name `Dune` is not valid");
}

#[test]
fn name_length() {
    let long = "d".repeat(41);
    let c = with_bad(&long, &store_yaml(&long, "woocommerce", "small", "team-a"));
    assert_invalid(
        &c,
        &format!("stores/{long}.yaml:1:7: error: store name `{long}` is not valid"),
    );
}

#[test]
fn name_differs_from_file_stem() {
    let c = with_bad("dune", &store_yaml("dunes", "woocommerce", "small", "team-a"));
    assert_invalid(
        &c,
        "stores/dune.yaml:1:7: error: store name `dunes` does not match the file name `dune.yaml`",
    );
}

#[test]
fn duplicate_names() {
    let c = Catalog::with_valid_stores();
    c.file(
        "stores/acme.yml",
        store_yaml("acme", "medusa", "small", "team-acme").as_bytes(),
    );
    assert_invalid(
        &c,
        "stores/acme.yml:1:7: error: store `acme` is already defined in stores/acme.yaml",
    );
}

#[test]
fn duplicate_domains() {
    let c = Catalog::with_valid_stores();
    c.store(
        "dune",
        &format!(
            "{}domain: acme.shop.example.com\n",
            store_yaml("dune", "medusa", "small", "team-a")
        ),
    );
    assert_invalid(
        &c,
        "stores/dune.yaml:5:9: error: domain `acme.shop.example.com` is already used by store `acme` (stores/acme.yaml)",
    );
}

#[test]
fn unknown_engine() {
    let c = with_bad("dune", &store_yaml("dune", "magento", "small", "team-a"));
    assert_invalid(&c, "stores/dune.yaml:2:9: error: unknown engine `magento`");
    assert!(
        c.validate()
            .stderr
            .contains("hint: use one of: medusa, woocommerce")
    );
}

#[test]
fn unknown_plan() {
    let c = with_bad("dune", &store_yaml("dune", "medusa", "huge", "team-a"));
    assert_invalid(&c, "stores/dune.yaml:3:7: error: unknown plan `huge`");
}

#[test]
fn value_outside_allowlist() {
    let text = format!(
        "{}values:\n  storeTitle: Dune\n  admin:\n    password: hunter2\n",
        store_yaml("dune", "woocommerce", "small", "team-a")
    );
    let c = with_bad("dune", &text);
    assert_invalid(
        &c,
        "stores/dune.yaml:8:5: error: value `admin.password` is not allowed for engine `woocommerce`",
    );
    let outcome = c.validate();
    assert_eq!(
        outcome.findings().len(),
        1,
        "allowed values pass: {}",
        outcome.stderr
    );
}

#[test]
fn platform_values_cannot_be_set_by_a_store() {
    let text = format!(
        "{}values:\n  ingress:\n    host: evil.example\n",
        store_yaml("dune", "medusa", "small", "team-a")
    );
    assert_invalid(
        &with_bad("dune", &text),
        "stores/dune.yaml:7:5: error: value `ingress.host` is not allowed for engine `medusa`",
    );
}

#[test]
fn max_stores_exceeded() {
    let c = Catalog::with_valid_stores();
    c.platform("baseDomain: shop.example.com\nlimits:\n  maxStores: 2\n");
    assert_invalid(
        &c,
        "storesync.yaml:3:14: error: the catalog has 3 stores; limits.maxStores is 2",
    );
}

#[test]
fn max_stores_per_owner_exceeded() {
    let c = Catalog::new();
    c.platform("limits:\n  maxStoresPerOwner: 2\n");
    for name in ["aaa", "bbb", "ccc", "ddd"] {
        c.store(name, &store_yaml(name, "medusa", "small", "team-busy"));
    }
    c.store("eee", &store_yaml("eee", "medusa", "small", "team-calm"));
    let outcome = c.validate();
    assert_eq!(outcome.code, 1);
    assert_eq!(
        outcome.findings(),
        vec!["stores/ccc.yaml:4:8: error: owner `team-busy` has 4 stores; limits.maxStoresPerOwner is 2"]
    );
}

#[test]
fn readme_and_gitkeep_may_sit_beside_store_files() {
    let c = Catalog::with_valid_stores();
    c.file("stores/README.md", b"# notes\n")
        .file("stores/.gitkeep", b"");
    let outcome = c.validate();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stderr, "", "not even a warning");
}

#[test]
fn empty_file() {
    assert_invalid(
        &with_bad("dune", "# retired\n---\n"),
        "stores/dune.yaml:1:1: error: the file is empty",
    );
}

#[test]
fn oversized_file() {
    let text = format!(
        "{}# {}\n",
        store_yaml("dune", "medusa", "small", "team-a"),
        "x".repeat(70_000)
    );
    assert_invalid(
        &with_bad("dune", &text),
        &format!(
            "stores/dune.yaml:1:1: error: the file is {} bytes; files larger than 65536 bytes are not read",
            text.len()
        ),
    );
}

#[test]
fn invalid_domain() {
    let text = format!(
        "{}domain: Dune..example\n",
        store_yaml("dune", "medusa", "small", "team-a")
    );
    assert_invalid(
        &with_bad("dune", &text),
        "stores/dune.yaml:5:9: error: domain `Dune..example` is not a valid host name",
    );
}

#[test]
fn invalid_owner() {
    assert_invalid(
        &with_bad("dune", &store_yaml("dune", "medusa", "small", "team a")),
        "stores/dune.yaml:4:8: error: owner `team a` is not valid",
    );
}

#[test]
fn several_documents_in_one_file() {
    let text = format!(
        "{}---\nname: other\n",
        store_yaml("dune", "medusa", "small", "team-a")
    );
    assert_invalid(
        &with_bad("dune", &text),
        "stores/dune.yaml:5:1: error: a second YAML document starts here",
    );
}

#[test]
fn not_utf8() {
    let c = Catalog::with_valid_stores();
    c.file("stores/dune.yaml", b"name: dune\nowner: caf\xe9\n");
    assert_invalid(&c, "stores/dune.yaml:2:11: error: the file is not valid UTF-8");
}

#[cfg(unix)]
#[test]
fn symlinks_are_rejected() {
    let c = Catalog::with_valid_stores();
    std::os::unix::fs::symlink("/etc/hostname", c.path().join("stores/dune.yaml")).unwrap();
    assert_invalid(
        &c,
        "stores/dune.yaml:1:1: error: symbolic links are not allowed in the catalog",
    );
}

#[test]
fn missing_stores_directory() {
    let c = Catalog::with_valid_stores();
    c.platform("storesDir: shops\n");
    assert_invalid(&c, "shops: error: the stores directory does not exist");
}

#[test]
fn platform_unknown_field() {
    let c = Catalog::with_valid_stores();
    c.platform("baseDomain: shop.example.com\nmaxStores: 10\n");
    assert_invalid(
        &c,
        "storesync.yaml:2:1: error: unknown field `maxStores`, expected one of `baseDomain`, `ingressClass`, \
         `ingressNamespace`, `storesDir`, `tls`, `plans`, `engines`, `limits`, `prune`, `rollout`, `driftPolicy`",
    );
}

#[test]
fn platform_invalid_quantity_and_allowlist() {
    let c = Catalog::with_valid_stores();
    c.platform(
        "plans:\n  small:\n    quota:\n      requests.cpu: lots\n    limitRange:\n      container:\n        \
         default: {}\n        defaultRequest: {}\n        max: {}\nengines:\n  woocommerce:\n    chart: woocommerce\n    \
         version: 0.1.0\n    valuesAllowlist: [credentials.existingSecret]\n",
    );
    let outcome = c.validate();
    assert_eq!(outcome.code, 1);
    assert_eq!(
        outcome.findings(),
        vec![
            "storesync.yaml:4:21: error: `lots` is not a valid quantity for requests.cpu",
            "storesync.yaml:14:23: error: `credentials.existingSecret` is set by storesync and cannot be allowlisted",
        ]
    );
}

#[test]
fn platform_invalid_base_domain() {
    let c = Catalog::with_valid_stores();
    c.platform("baseDomain: localhost\n");
    assert_invalid(
        &c,
        "storesync.yaml:1:13: error: `localhost` is not a valid domain",
    );
}

#[test]
fn all_errors_are_reported_in_one_pass() {
    let c = Catalog::with_valid_stores();
    c.store("dune", &store_yaml("dune", "magento", "huge", "team-a"));
    c.store("eel", "name: eel\n");
    let findings: Vec<String> = c.validate().findings().iter().map(|s| s.to_string()).collect();
    assert_eq!(
        findings,
        vec![
            "stores/dune.yaml:2:9: error: unknown engine `magento`",
            "stores/dune.yaml:3:7: error: unknown plan `huge`",
            "stores/eel.yaml:1:1: error: missing field `engine`",
        ]
    );
}

#[test]
fn one_bad_file_among_good_ones_renders_nothing() {
    let c = with_bad("dune", &store_yaml("dune", "magento", "small", "team-a"));
    let snapshot = storesync::source::read(&c.args().location(), None, &Default::default()).unwrap();
    assert_eq!(
        snapshot.raw.entries.as_ref().map(Vec::len),
        Some(4),
        "all four files were read"
    );
    assert!(
        desired::load(&snapshot.raw).is_err(),
        "no catalog, hence nothing to render"
    );

    let plan = c.plan_offline(OutputFormat::Json);
    assert_eq!(plan.code, 1);
    let verdict: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(verdict["valid"], false);
    assert!(
        verdict.get("stores").is_none(),
        "an invalid catalog prints no plan: {}",
        plan.stdout
    );
    assert_eq!(verdict["diagnostics"][0]["message"], "unknown engine `magento`");
    assert!(
        plan.stderr
            .contains("stores/dune.yaml:2:9: error: unknown engine `magento`")
    );
}

#[test]
fn binary_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_storesync");
    let good = Catalog::with_valid_stores();
    let bad = with_bad("dune", "name: dune\n");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    assert_eq!(
        run(&["validate", "--repo", good.path().to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let out = run(&["validate", "--repo", bad.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stores/dune.yaml:1:1: error: missing field `engine`")
    );
    assert_eq!(run(&["validate", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(
        run(&["history", "Not_A_Store", "--repo", good.path().to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn retiring_a_store_is_never_a_store_value() {
    // The engine charts stop a store with `retired`; only storesync sets it.
    let c = Catalog::with_valid_stores();
    c.platform("engines:\n  woocommerce:\n    chart: woocommerce\n    version: 0.1.0\n    valuesAllowlist: [retired]\n");
    assert_invalid(
        &c,
        "storesync.yaml:5:23: error: `retired` is set by storesync and cannot be allowlisted",
    );
}
