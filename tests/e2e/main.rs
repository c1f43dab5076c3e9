//! End-to-end suite: storesync, run for real, against the Kubernetes cluster of KUBECONFIG.
//!
//! Off unless `STORESYNC_E2E=1`: every cluster test then prints `SKIPPED: ...` and passes. With it
//! set, an unreachable cluster is a failure. storesync always runs as a ServiceAccount bound to
//! deploy/rbac/clusterrole.yaml and the chart's namespaced Role (never as the admin), and helm
//! as each store's `storesync-helm` ServiceAccount (deploy/rbac/store-clusterrole.yaml, bound in
//! the store's namespace only); it syncs commits of a real Git repository and installs the tiny
//! engine chart of tests/e2e/charts/tiny; assertions read the cluster as the admin with kubectl
//! and helm. The tenant scenarios (tenant.rs) act as a store team with `kubectl --as`. One test
//! at a time holds the cluster (a localhost port lock), each test uses its own store names and
//! deletes its namespaces (retired stores' too) and PersistentVolumes even when it fails. A
//! cluster holding stores this suite did not create is refused: use a throwaway one
//! (`scripts/e2e-kind.sh`). See docs/e2e.md.
//!
//! The `offline_*` tests need no cluster and always run: they check the suite's own fixtures
//! (the tiny chart with the values storesync really passes, the catalogs it generates, the
//! chart's Role the suite grants, the release Secrets the tenant scenarios forge).
// Test helpers are `pub` for their sibling scenarios; the public-surface lint is for the library.
#![allow(unreachable_pub)]

mod bench;
mod catalog;
mod cluster;
mod daemon;
mod forge;
mod harness;
mod health;
mod identity;
mod lifecycle;
mod output;
mod process;
mod repair;
mod replicas;
mod retire;
mod rollout;
mod safety;
mod tenant;

use std::process::Command;
use std::time::Duration;

use catalog::{Platform, StoreFile, StoresRepo};
use harness::{helm, path_str, run, storesync_bin, tiny_chart};
use serde_json::Value;

fn storesync_offline(args: &[&str]) -> harness::Output {
    let mut cmd = Command::new(storesync_bin());
    cmd.args(args);
    run(cmd, None, Duration::from_secs(60))
}

/// `storesync plan --offline --output json` of commit `sha` of the repository at `dir`.
fn offline_plan(dir: &str, sha: &str) -> Value {
    storesync_offline(&[
        "plan",
        "--offline",
        "--repo",
        dir,
        "--rev",
        sha,
        "--output",
        "json",
    ])
    .expect_ok()
    .json()
}

/// The catalog the scenarios build validates, and plans the objects they assert on.
#[test]
fn offline_suite_catalogs_validate_and_plan() {
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new("e2e0000-a").value("message", "hi"));
    repo.put(
        &StoreFile::new("e2e0000-b")
            .plan("medium")
            .owner("team-b")
            .protected(),
    );
    let sha = repo.commit("two stores");
    let dir = path_str(repo.path());

    storesync_offline(&["validate", "--repo", dir, "--rev", &sha]).expect_ok();
    let plan = offline_plan(dir, &sha);
    assert_eq!(plan["revision"]["commit"], sha.as_str());
    assert_eq!(plan["summary"]["create"], 2, "{plan:#}");
    for store in ["e2e0000-a", "e2e0000-b"] {
        let entry = plan["stores"]
            .as_array()
            .and_then(|s| s.iter().find(|p| p["store"] == store));
        let changes = entry.map(|e| e["changes"].to_string()).unwrap_or_default();
        for object in [
            "store-quota",
            "store-limits",
            "default-deny",
            "store-credentials",
            "HelmRelease",
        ] {
            assert!(changes.contains(object), "{store} plans no {object}: {changes}");
        }
        assert_eq!(entry.map(|e| &e["engine"]), Some(&Value::from("tiny")));
    }

    // Scenario 8's bad commit: rejected, and the diagnostic names the file and the field.
    let bad = "e2e0000-bad";
    repo.file(
        &format!("stores/{bad}.yaml"),
        &format!("{}colour: red\n", StoreFile::new(bad).yaml()),
    );
    let bad_sha = repo.commit("typo");
    let out = storesync_offline(&["validate", "--repo", dir, "--rev", &bad_sha]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!("stores/{bad}.yaml")) && out.stderr.contains("colour"),
        "{out}"
    );
}

/// The values storesync passes to `store`'s release, read from `plan --offline --diff`.
fn release_values(repo: &StoresRepo, sha: &str, store: &str) -> Value {
    let plan = storesync_offline(&[
        "plan",
        "--offline",
        "--diff",
        "--repo",
        path_str(repo.path()),
        "--rev",
        sha,
        "--output",
        "json",
    ])
    .expect_ok()
    .json();
    let diff = plan["stores"]
        .as_array()
        .and_then(|s| s.iter().find(|p| p["store"] == store))
        .and_then(|p| p["changes"].as_array())
        .and_then(|c| c.iter().find(|c| c["kind"] == "HelmRelease"))
        .and_then(|c| c["diff"].as_str())
        .unwrap_or_else(|| panic!("no release diff for {store}: {plan:#}"))
        .to_string();
    let yaml: String = diff
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .map(|l| format!("{}\n", &l[1..]))
        .collect();
    let release: Value =
        serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("release YAML ({e}):\n{yaml}"));
    release["values"].clone()
}

/// `helm template` of the tiny chart for `store`, with `values` files in order (later ones win, as
/// storesync's retirement adds `retired: true` over the release's values).
fn render_tiny(store: &str, values: &[&std::path::Path]) -> harness::Output {
    let ns = harness::namespace(store);
    let mut cmd = Command::new(helm());
    cmd.args(["template", store, path_str(&tiny_chart()), "--namespace", &ns]);
    for file in values {
        cmd.args(["--values", path_str(file)]);
    }
    run(cmd, None, Duration::from_secs(60))
}

/// The objects of a multi-document manifest.
fn documents(manifest: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(manifest)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|d: &Value| d.is_object())
        .collect()
}

/// The tiny chart lints, and renders from exactly the values storesync passes: no Ingress, the
/// credentials read from the store's Secret, the allowlisted message, and small enough for the
/// suite's smallest plan.
#[test]
fn offline_tiny_chart_lints_and_renders_the_engine_contract() {
    let lint = {
        let mut cmd = Command::new(helm());
        cmd.args(["lint", "--strict", path_str(&tiny_chart())]);
        run(cmd, None, Duration::from_secs(60))
    };
    assert!(
        lint.ok(),
        "helm lint failed (helm is $STORESYNC_HELM, tools/bin/helm or PATH; scripts/setup-tools.sh installs it)\n{lint}"
    );

    let store = "e2e0000-render";
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(store).value("message", "rendered"));
    let sha = repo.commit("one store");
    let values = release_values(&repo, &sha, store);
    assert_eq!(
        values["credentials"]["existingSecret"], "store-credentials",
        "{values:#}"
    );
    assert_eq!(
        values["ingress"]["enabled"], true,
        "storesync asks for an Ingress: {values:#}"
    );

    let file = repo.path().join("values.json");
    std::fs::write(&file, values.to_string()).expect("write values");
    let docs = documents(&render_tiny(store, &[&file]).expect_ok().stdout);
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Deployment"],
        "the tiny chart renders only these"
    );

    let config = &docs[0];
    assert_eq!(config["data"]["message"], "rendered");
    assert_eq!(config["data"]["store"], store);
    assert_eq!(config["data"]["plan"], "small");
    let deployment = &docs[1];
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
        "storesync status counts these"
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.k8s.io/pause:3.10");
    let secret = &container["env"][0]["valueFrom"]["secretKeyRef"];
    assert_eq!(
        (&secret["name"], &secret["key"]),
        (&Value::from("store-credentials"), &Value::from("admin-password"))
    );
    let max = Platform::default().container_limits("small").max;
    assert_eq!(
        container["resources"]["limits"]["cpu"], "50m",
        "within the small plan's {max:?}"
    );
    assert_eq!(
        container["resources"]["limits"]["memory"], "32Mi",
        "within the small plan's {max:?}"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        65535
    );
}

/// What the retire scenarios rely on in the tiny chart, rendered from the values storesync
/// passes for a store with a claim: live, a ConfigMap, the claim (bound by name to its volume,
/// no storage class) and a Deployment of 1; with `retired: true` over those values (storesync's
/// `--reuse-values` plus its retire file) the same objects, identical but for 0 replicas; a
/// `retired` that is not a boolean fails the render, as in the engine charts.
#[test]
fn offline_tiny_chart_retired_runs_no_pod_and_keeps_the_claim() {
    let store = "e2e0000-retired";
    let volume = "e2e0000-retired-data";
    let repo = StoresRepo::new(&Platform::default());
    repo.put(&StoreFile::new(store).claim(volume));
    let sha = repo.commit("a store with a claim");
    let values = release_values(&repo, &sha, store);
    assert_ne!(
        values["retired"], true,
        "storesync installs a store retired: {values:#}"
    );
    let file = repo.path().join("values.json");
    std::fs::write(&file, values.to_string()).expect("write values");
    let retire = repo.path().join("retire.yaml");
    std::fs::write(&retire, "retired: true\n").expect("write retire values");

    let live = documents(&render_tiny(store, &[&file]).expect_ok().stdout);
    let retired = documents(&render_tiny(store, &[&file, &retire]).expect_ok().stdout);
    let kinds = |docs: &[Value]| -> Vec<String> {
        docs.iter()
            .filter_map(|d| d["kind"].as_str().map(String::from))
            .collect()
    };
    let want = ["ConfigMap", "PersistentVolumeClaim", "Deployment"];
    assert_eq!(kinds(&live), want);
    assert_eq!(kinds(&retired), want, "a retired store keeps its objects");

    let claim = &live[1];
    assert_eq!(claim["metadata"]["name"], format!("{store}-data"));
    assert_eq!(claim["spec"]["volumeName"], volume);
    assert_eq!(
        claim["spec"]["storageClassName"], "",
        "a default storage class must not take the claim"
    );
    assert_eq!(live[0], retired[0], "the ConfigMap changes when retired");
    assert_eq!(live[1], retired[1], "the claim changes when retired");
    assert_eq!(live[2]["spec"]["replicas"], 1);
    assert_eq!(retired[2]["spec"]["replicas"], 0, "a retired store runs a pod");
    let mut stopped = live[2].clone();
    stopped["spec"]["replicas"] = Value::from(0);
    assert_eq!(stopped, retired[2], "retiring changes more than the replicas");

    let quoted = repo.path().join("quoted.yaml");
    std::fs::write(&quoted, "retired: \"false\"\n").expect("write values");
    let out = render_tiny(store, &[&file, &quoted]);
    assert!(
        !out.ok() && out.stderr.contains("retired must be true or false"),
        "a quoted \"false\" must fail the render, never stop or start a store by accident\n{out}"
    );
}

/// The suite's platform config says `prune.retention` only when a scenario sets it, and declares
/// every engine of `Platform::engines` on the tiny chart; such a catalog validates and plans,
/// a store's engine and claim included.
#[test]
fn offline_platform_retention_and_engines_reach_storesync_yaml() {
    let config =
        |p: &Platform| -> Value { serde_yaml_ng::from_str(&p.yaml()).expect("storesync.yaml is YAML") };
    let default = config(&Platform::default());
    assert!(default["prune"].is_null(), "{default:#}");
    assert_eq!(
        default["engines"]
            .as_object()
            .map(|e| e.keys().cloned().collect::<Vec<_>>()),
        Some(vec![catalog::TINY.to_string()])
    );

    let platform = Platform {
        engines: vec![catalog::TINY, "tiny-b"],
        ..Platform::with_retention("5s")
    };
    let written = config(&platform);
    assert_eq!(written["prune"]["retention"], "5s", "{written:#}");
    assert_eq!(written["engines"]["tiny-b"], written["engines"]["tiny"]);
    assert_eq!(
        config(&Platform::with_retention("0s"))["prune"]["retention"],
        "0s"
    );

    let repo = StoresRepo::new(&platform);
    let store = "e2e0000-other";
    repo.put(&StoreFile::new(store).engine("tiny-b").claim("e2e0000-other-data"));
    let sha = repo.commit("a store of the second engine, with a claim");
    let dir = path_str(repo.path());
    storesync_offline(&["validate", "--repo", dir, "--rev", &sha]).expect_ok();
    let values = release_values(&repo, &sha, store);
    assert_eq!(
        values["persistence"],
        serde_json::json!({ "enabled": true, "volumeName": "e2e0000-other-data" }),
        "{values:#}"
    );
    let plan = offline_plan(dir, &sha);
    let entry = plan["stores"]
        .as_array()
        .and_then(|s| s.iter().find(|p| p["store"] == store))
        .cloned()
        .unwrap_or_default();
    assert_eq!(entry["engine"], "tiny-b", "{plan:#}");

    // A retention storesync cannot read is an invalid catalog, not a silent default.
    repo.platform(&Platform::with_retention("a while"));
    let bad = repo.commit("an unreadable retention");
    let out = storesync_offline(&["validate", "--repo", dir, "--rev", &bad]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("retention"), "{out}");
}

/// The suite's platform config says `rollout` and the engines' `values` only when a scenario sets
/// them, as written; such a catalog validates, every store's release gets the engine value (a
/// store's own value wins), and creating stores puts none of them in a wave. A canary without a
/// store file is an invalid catalog.
#[test]
fn offline_platform_rollout_and_engine_values_reach_storesync_yaml() {
    use serde_json::json;
    let config =
        |p: &Platform| -> Value { serde_yaml_ng::from_str(&p.yaml()).expect("storesync.yaml is YAML") };
    let default = config(&Platform::default());
    assert!(
        default["rollout"].is_null() && default["engines"][catalog::TINY]["values"].is_null(),
        "{default:#}"
    );

    let (canary, other, own) = ("e2e0000-canary", "e2e0000-other", "e2e0000-own");
    let platform = Platform {
        engine_values: json!({ "message": "from the platform" })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        rollout: Some(catalog::Rollout {
            canaries: vec![canary.to_string()],
            waves: vec!["50%", "100%"],
            max_unhealthy: 0,
            health_timeout: "40s",
            soak: "5s",
            on_failure: "rollback",
        }),
        ..Platform::default()
    };
    let written = config(&platform);
    assert_eq!(
        written["rollout"],
        json!({
            "canaries": [canary],
            "waves": ["50%", "100%"],
            "maxUnhealthy": 0,
            "healthTimeout": "40s",
            "soak": "5s",
            "onFailure": "rollback",
        }),
        "{written:#}"
    );
    assert_eq!(
        written["engines"][catalog::TINY]["values"],
        json!({ "message": "from the platform" })
    );

    let repo = StoresRepo::new(&platform);
    repo.put(&StoreFile::new(canary))
        .put(&StoreFile::new(other))
        .put(&StoreFile::new(own).value("message", "its own"));
    let sha = repo.commit("three stores under a rollout");
    let dir = path_str(repo.path());
    storesync_offline(&["validate", "--repo", dir, "--rev", &sha]).expect_ok();
    for store in [canary, other] {
        assert_eq!(
            release_values(&repo, &sha, store)["message"],
            "from the platform",
            "{store}"
        );
    }
    assert_eq!(release_values(&repo, &sha, own)["message"], "its own");
    let plan = offline_plan(dir, &sha);
    for entry in plan["stores"].as_array().into_iter().flatten() {
        assert_eq!(entry["action"], "create", "{entry}");
        assert!(entry["wave"].is_null(), "a create waits for a wave: {entry}");
    }

    repo.remove(canary);
    let bad = repo.commit("the canary's file is gone");
    let out = storesync_offline(&["validate", "--repo", dir, "--rev", &bad]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("canary `{canary}` is not a store of the catalog")),
        "{out}"
    );
}

/// The Role the suite grants is the chart's, rendered for the suite's namespace: the Lease
/// `storesync` (get, update; create) and storesync's own ConfigMaps, and nothing else.
#[test]
fn offline_chart_role_is_the_lease_and_configmaps_of_the_suite_namespace() {
    let role = identity::chart_role();
    assert_eq!(role["apiVersion"], "rbac.authorization.k8s.io/v1", "{role:#}");
    assert_eq!(role["metadata"]["namespace"], harness::E2E_NAMESPACE, "{role:#}");
    let mut grants: Vec<String> = Vec::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        };
        let names = match list("resourceNames") {
            n if n.is_empty() => vec!["*".to_string()],
            n => n,
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    for name in &names {
                        grants.push(format!("{group}/{resource}/{name}: {verb}"));
                    }
                }
            }
        }
    }
    grants.sort();
    let lease = |verb: &str, name: &str| format!("coordination.k8s.io/leases/{name}: {verb}");
    for want in [
        lease("create", "*"),
        lease("get", "storesync"),
        lease("update", "storesync"),
    ] {
        assert!(
            grants.contains(&want),
            "the chart's Role lacks {want}: {grants:#?}"
        );
    }
    let other: Vec<&String> = grants
        .iter()
        .filter(|g| !g.starts_with("coordination.k8s.io/leases/") && !g.starts_with("/configmaps/"))
        .collect();
    assert!(
        other.is_empty(),
        "the chart's Role grants more than its Lease and ConfigMaps: {other:?}"
    );
}

/// The release Secrets the tenant scenarios forge are Helm's storage format (type, labels,
/// base64 of gzipped JSON under the API's base64), and their payloads are what the scenarios
/// claim: an alias bomb that is valid YAML, objects outside the store in the victim namespace.
#[test]
fn offline_forged_release_secrets_are_helm_storage() {
    use serde_json::json;
    let store = "e2e0000-acme";
    let base = json!({
        "name": store,
        "namespace": harness::namespace(store),
        "version": 1,
        "info": { "status": "deployed", "description": "Install complete" },
        "chart": { "metadata": { "name": "tiny", "version": "0.1.0" } },
        "manifest": "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: e2e0000-acme\n",
    });
    let bomb = forge::alias_bomb("e2e0000-acme-bomb", 10);
    let mut forged = forge::Forgery::from_release(&base, 2, "deployed", &bomb);
    forged.label_status = "pending-upgrade".into();
    let secret = forged.secret(store);
    assert_eq!(secret["type"], "helm.sh/release.v1");
    assert_eq!(secret["metadata"]["name"], "sh.helm.release.v1.e2e0000-acme.v2");
    assert_eq!(secret["metadata"]["namespace"], "store-e2e0000-acme");
    assert_eq!(
        secret["metadata"]["labels"],
        json!({ "name": store, "owner": "helm", "status": "pending-upgrade", "version": "2" })
    );
    let body = forge::decode_release(secret["data"]["release"].as_str().unwrap_or_default());
    assert_eq!(body, forged.body);
    assert_eq!(
        (&body["version"], &body["info"]["status"]),
        (&json!(2), &json!("deployed"))
    );
    assert_eq!(body["manifest"], bomb.as_str());

    // The bomb parses (without expanding) as 10 anchors and 9 aliases per level: 9^10 strings.
    let mut parser = yaml_rust2::parser::Parser::new_from_str(&bomb);
    let (mut anchors, mut aliases) = (0, 0);
    loop {
        let (event, _) = parser
            .next_token()
            .unwrap_or_else(|e| panic!("the bomb is not YAML: {e}\n{bomb}"));
        match event {
            yaml_rust2::parser::Event::StreamEnd => break,
            yaml_rust2::parser::Event::Alias(_) => aliases += 1,
            yaml_rust2::parser::Event::SequenceStart(anchor, _) if anchor > 0 => anchors += 1,
            _ => {}
        }
    }
    assert_eq!((anchors, aliases), (10, 81), "{bomb}");

    let outside: Vec<Value> =
        serde_yaml_ng::Deserializer::from_str(&forge::outside_objects("e2e0000-forged"))
            .map(|d| serde::Deserialize::deserialize(d).expect("a manifest document"))
            .collect();
    let found: Vec<(String, String)> = outside
        .iter()
        .map(|o| {
            let text = |v: &Value| v.as_str().unwrap_or("<cluster>").to_string();
            (text(&o["kind"]), text(&o["metadata"]["namespace"]))
        })
        .collect();
    let victim = forge::VICTIM_NAMESPACE.to_string();
    assert_eq!(
        found,
        [
            ("Deployment".to_string(), victim.clone()),
            ("ConfigMap".to_string(), victim),
            ("ClusterRoleBinding".to_string(), "<cluster>".to_string()),
        ]
    );
    assert_eq!(outside[2]["roleRef"]["name"], "cluster-admin");
    assert_eq!(outside[2]["subjects"][0]["name"], forge::TENANT);
}
