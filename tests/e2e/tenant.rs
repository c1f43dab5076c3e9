//! Tenant isolation (spec, "Tenant isolation"): a store team holding `admin` in its own namespace
//! writes Helm's release storage and its objects' `managedFields`, and nothing of it makes
//! storesync or helm act outside the store's namespace, run helm on a lie, or repair less.
//!
//! Each scenario syncs a store with storesync as its restricted identity, makes the user
//! `tenant-acme` the store namespace's `admin`, sets a victim namespace up as the admin, lets the
//! tenant forge, syncs again, and checks as the admin that nothing outside the store changed.
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::catalog::{Platform, StoreFile, StoresRepo};
use super::cluster::{
    annotations, get, get_with_managed_fields, helm_history, managed_fields, must_get, storesync_events,
    wait_until,
};
use super::forge::{
    Forged, Forgery, TENANT, VICTIM_CONFIG, VICTIM_DEPLOYMENT, VICTIM_IMAGE, VICTIM_NAMESPACE, alias_bomb,
    cluster_rbac_names, create_victim, grant_tenant, latest_revision, manifest_document, outside_objects,
    read_release, release_secret, rollback_hook, tenant_kubectl, victim_job, victim_snapshot,
};
use super::harness::{Suite, namespace, run_measured};
use super::identity::assert_store_identity;
use super::output::Sync;

/// How long `plan` or `apply` of a store with forged release storage may take (spec: decoding is
/// bounded), and how much memory (spec: under 150 MiB with a forged release in every store).
const FORGED_SYNC_BOUND: Duration = Duration::from_secs(60);
const PEAK_MEMORY_KIB: u64 = 150 * 1024;
/// The image of the tiny chart, and one a tenant puts in its place.
const CHART_IMAGE: &str = "registry.k8s.io/pause:3.10";
const TENANT_IMAGE: &str = "registry.k8s.io/pause:3.9";

/// One store (and its bystanders) synced by storesync, with the tenant as its namespace's admin, a
/// victim namespace, and what the admin saw outside the store before any forgery.
struct Acme<'a> {
    suite: &'a Suite,
    store: String,
    ns: String,
    repo: StoresRepo,
    sha: String,
    victim: BTreeMap<String, String>,
    rbac: BTreeSet<String>,
}

impl<'a> Acme<'a> {
    fn start(suite: &'a Suite, bystanders: &[&str]) -> Acme<'a> {
        create_victim(suite);
        let store = suite.store("acme");
        let repo = StoresRepo::new(&Platform::default());
        repo.put(&StoreFile::new(&store).owner("team-acme"));
        for b in bystanders {
            repo.put(&StoreFile::new(b));
        }
        let sha = repo.commit("acme and its neighbours");
        suite.apply(&repo, &sha, &[]).expect_code(0);
        assert_store_identity(&store, VICTIM_NAMESPACE);
        grant_tenant(&store);
        Acme {
            suite,
            ns: namespace(&store),
            store,
            repo,
            sha,
            victim: victim_snapshot(),
            rbac: cluster_rbac_names(),
        }
    }

    fn apply(&self) -> Sync {
        self.suite.apply(&self.repo, &self.sha, &[])
    }

    /// The store's release as a forgery starts from it: its latest revision and decoded body.
    fn latest(&self) -> (u64, Value) {
        let revision = latest_revision(&self.store);
        (revision, read_release(&self.store, revision))
    }

    /// Nothing outside the store's namespace changed: the victim namespace object for object, and
    /// no ClusterRole or ClusterRoleBinding a forgery, storesync or the tenant would name.
    fn assert_outside_unchanged(&self) {
        assert_eq!(
            victim_snapshot(),
            self.victim,
            "something in {VICTIM_NAMESPACE} was created, changed or deleted"
        );
        let rbac = cluster_rbac_names();
        let new: Vec<&String> = rbac.difference(&self.rbac).collect();
        assert!(
            new.is_empty(),
            "cluster-wide RBAC objects appeared during the scenario: {new:?}"
        );
    }

    /// The store failed with a reason naming one of `needles` (case-insensitive) everywhere the
    /// spec says it is reported: the apply output and exit code 3, the namespace's
    /// `storesync.dev/last-error`, and an Event of storesync on the namespace.
    fn assert_refused(&self, sync: &Sync, needles: &[&str]) {
        let (s, ns) = (&self.store, &self.ns);
        let names = |text: &str| {
            let text = text.to_lowercase();
            needles.iter().any(|n| text.contains(&n.to_lowercase()))
        };
        sync.expect_code(3);
        assert_eq!(sync.outcome(s), "failed", "{}", sync.out);
        let detail = sync
            .result_store(s)
            .and_then(|r| r["detail"].as_str())
            .unwrap_or_default();
        assert!(
            names(detail),
            "the result of {s} does not say why (none of {needles:?}): {detail}\n{}",
            sync.out
        );
        let last_error = annotations(&must_get("namespace", None, ns))
            .get("storesync.dev/last-error")
            .cloned()
            .unwrap_or_default();
        assert!(
            names(&last_error),
            "storesync.dev/last-error of {ns} does not say why (none of {needles:?}): {last_error:?}"
        );
        let mut seen = Vec::new();
        wait_until(
            &format!("an Event of storesync on {ns} names one of {needles:?}"),
            Duration::from_secs(15),
            || {
                seen = storesync_events(ns);
                seen.iter().any(|e| names(e["note"].as_str().unwrap_or_default()))
            },
        );
    }
}

/// `storesync plan` or `apply`, timed and measured; fails past the bounds of forged storage.
fn bounded(suite: &Suite, what: &str, args: Vec<String>) -> Sync {
    let mut cmd: Command = suite.storesync_command();
    cmd.args(&args);
    let measured = run_measured(cmd, FORGED_SYNC_BOUND * 2);
    let out = measured.out;
    assert!(
        out.code.is_some() && out.elapsed < FORGED_SYNC_BOUND,
        "`storesync {what}` with a forged release did not finish within {FORGED_SYNC_BOUND:?}\n{out}"
    );
    match measured.peak_kib {
        Some(kib) => {
            println!(
                "[e2e] storesync {what}: {:.1?}, peak memory {} MiB",
                out.elapsed,
                kib / 1024
            );
            assert!(
                kib < PEAK_MEMORY_KIB,
                "`storesync {what}` peaked at {} MiB of memory with a forged release (bound: {} MiB)\n{out}",
                kib / 1024,
                PEAK_MEMORY_KIB / 1024
            );
        }
        None => println!(
            "[e2e] NOTE: storesync {what}: peak memory not checked (no /proc/<pid>/status VmHWM here)"
        ),
    }
    if what == "plan" {
        Sync::plan_only(out)
    } else {
        Sync::new(out)
    }
}

/// (a) The latest release Secret of a store holds an alias bomb (and claims to be what storesync
/// installed): `plan` and `apply` stay within time and memory, the bystander store syncs, and the
/// store is reported with the decode failure; no helm runs for it.
#[test]
fn alias_bomb_in_release_storage_is_refused_within_bounds() {
    let Some(suite) = Suite::start("tenant alias bomb") else {
        return;
    };
    let bystander = suite.store("bystander");
    let acme = Acme::start(&suite, &[&bystander]);
    let (revision, base) = acme.latest();
    let manifest = format!(
        "{}\n{}",
        base["manifest"].as_str().unwrap_or_default(),
        alias_bomb(&format!("{}-bomb", acme.store), 10)
    );
    let mut bomb = Forgery::from_release(&base, revision + 1, "deployed", &manifest);
    // The release hash storesync recorded: the plan then takes the forgery for its own release
    // and compares its objects with the cluster, so plan decodes it as well as apply.
    let labels = release_secret(&acme.store, revision)["metadata"]["labels"].clone();
    if let Some(hash) = labels["storesync.dev/release-hash"].as_str() {
        bomb.extra_labels
            .insert("storesync.dev/release-hash".into(), hash.into());
    }
    let forged = Forged::new(&acme.store);
    forged.write(&bomb);
    let history = helm_history(&acme.store);

    let plan = bounded(&suite, "plan", suite.plan_args(&acme.repo, &acme.sha));
    plan.expect_code(0);
    assert!(
        plan.plan_store(&acme.store).is_some() && plan.plan_store(&bystander).is_some(),
        "the plan lost a store\n{}",
        plan.out
    );
    let sync = bounded(&suite, "apply", suite.apply_args(&acme.repo, &acme.sha, &[]));
    acme.assert_refused(&sync, &["alias", "anchor"]);
    assert_eq!(
        sync.outcome(&bystander),
        "unchanged",
        "one store's forged release held back another\n{}",
        sync.out
    );
    assert_eq!(
        helm_history(&acme.store),
        history,
        "helm ran for a store whose release does not decode"
    );
    acme.assert_outside_unchanged();
}

/// (b) A forged latest revision whose manifest names the victim's Deployment and ConfigMap and a
/// ClusterRoleBinding making the tenant cluster-admin: storesync wants to upgrade the release (the
/// forgery lacks its release hash), refuses before helm runs, and says which object is outside.
#[test]
fn forged_release_reaching_outside_the_store_runs_no_helm() {
    let Some(suite) = Suite::start("tenant forged manifest") else {
        return;
    };
    let acme = Acme::start(&suite, &[]);
    let (revision, base) = acme.latest();
    let forged = Forged::new(&acme.store);
    let binding = forged.cluster_binding(&format!("{}forged-admin", suite.prefix));
    let manifest = format!(
        "{}\n{}",
        base["manifest"].as_str().unwrap_or_default(),
        outside_objects(&binding)
    );
    forged.write(&Forgery::from_release(&base, revision + 1, "deployed", &manifest));
    let history = helm_history(&acme.store);

    let sync = acme.apply();
    acme.assert_refused(&sync, &[VICTIM_NAMESPACE, "ClusterRoleBinding"]);
    assert_eq!(
        helm_history(&acme.store),
        history,
        "helm ran on a release that reaches outside its namespace"
    );
    assert!(
        get("clusterrolebinding", None, &binding).is_none(),
        "ClusterRoleBinding {binding} of the forged release exists: {TENANT} is cluster-admin"
    );
    let deployment = must_get("deployment", Some(VICTIM_NAMESPACE), VICTIM_DEPLOYMENT);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"], VICTIM_IMAGE,
        "the victim's Deployment was rewritten"
    );
    assert_eq!(
        must_get("configmap", Some(VICTIM_NAMESPACE), VICTIM_CONFIG)["data"]["owner"],
        "someone else"
    );
    acme.assert_outside_unchanged();
}

/// (c) A Secret labelled `pending-upgrade` over a release that says `deployed`: the labels lie,
/// so storesync does not roll back (no new revision) and says why.
#[test]
fn pending_label_over_a_deployed_release_is_not_rolled_back() {
    let Some(suite) = Suite::start("tenant pending label") else {
        return;
    };
    let acme = Acme::start(&suite, &[]);
    let (revision, base) = acme.latest();
    let manifest = base["manifest"].as_str().unwrap_or_default().to_string();
    let mut lie = Forgery::from_release(&base, revision + 1, "deployed", &manifest);
    lie.label_status = "pending-upgrade".into();
    let forged = Forged::new(&acme.store);
    forged.write(&lie);
    let history = helm_history(&acme.store);

    let sync = acme.apply();
    acme.assert_refused(&sync, &["pending-upgrade"]);
    let after = helm_history(&acme.store);
    assert_eq!(
        after, history,
        "storesync acted on a pending label the release contradicts (a rollback or upgrade ran)"
    );
    acme.assert_outside_unchanged();
}

/// (d) A genuinely pending latest revision whose rollback target (a forged earlier, superseded
/// revision) holds a Job in the victim namespace, in its manifest and as a rollback hook: nothing
/// is created there, and the store is refused or fails.
#[test]
fn rollback_target_reaching_outside_creates_nothing_there() {
    let Some(suite) = Suite::start("tenant rollback target") else {
        return;
    };
    let acme = Acme::start(&suite, &[]);
    let (revision, base) = acme.latest();
    let own = base["manifest"].as_str().unwrap_or_default().to_string();
    let (job, hook) = (
        format!("{}forged-job", suite.prefix),
        format!("{}forged-hook", suite.prefix),
    );
    let target_manifest = format!("{own}\n{}", manifest_document("job.yaml", &victim_job(&job)));
    let mut target = Forgery::from_release(&base, revision + 1, "superseded", &target_manifest);
    target.body["hooks"] = json!([rollback_hook("hook.yaml", &victim_job(&hook))]);
    let pending = Forgery::from_release(&base, revision + 2, "pending-upgrade", &own);
    let forged = Forged::new(&acme.store);
    forged.write(&target);
    forged.write(&pending);

    let sync = acme.apply();
    sync.expect_code(3);
    assert_eq!(
        sync.outcome(&acme.store),
        "failed",
        "a rollback to a revision reaching outside was not refused\n{}",
        sync.out
    );
    for name in [&job, &hook] {
        assert!(
            get("job", Some(VICTIM_NAMESPACE), name).is_none(),
            "Job {VICTIM_NAMESPACE}/{name} of the rollback target was created"
        );
    }
    acme.assert_outside_unchanged();
}

/// The image the store's Deployment runs.
fn image(acme: &Acme<'_>) -> String {
    must_get("deployment", Some(&acme.ns), &acme.store)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `apply` repairs the image the tenant changed: planned as a drift update, helm upgraded once.
fn assert_image_repaired(acme: &Acme<'_>, claim: &str) {
    let revisions = helm_history(&acme.store).len();
    let sync = acme.apply();
    sync.expect_code(0);
    let release = sync.change(&acme.store, "HelmRelease", &acme.store);
    assert_eq!(
        release["action"], "update",
        "an image changed under {claim} is not planned as drift: {release}\n{}",
        sync.out
    );
    assert_eq!(
        image(acme),
        CHART_IMAGE,
        "the image changed under {claim} was not repaired\n{}",
        sync.out
    );
    assert_eq!(
        helm_history(&acme.store).len(),
        revisions + 1,
        "the repair is not one helm upgrade"
    );
}

/// (e) The tenant changes the store's image and claims the field for an autoscaler: through a
/// server-side apply as `kube-controller-manager`, then with a managedFields entry that claims all
/// of `spec` through the `scale` subresource. Only `spec.replicas` is ever exempt: both are
/// repaired to the chart's image.
#[test]
fn managed_fields_claims_do_not_shield_an_image_change() {
    let Some(suite) = Suite::start("tenant managedFields") else {
        return;
    };
    let acme = Acme::start(&suite, &[]);
    assert_eq!(image(&acme), CHART_IMAGE);

    // As kube-controller-manager, taking the field from helm.
    let change = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": acme.store, "namespace": acme.ns },
        "spec": { "template": { "spec": { "containers": [{ "name": "pause", "image": TENANT_IMAGE }] } } },
    });
    tenant_kubectl(
        &[
            "apply",
            "--server-side",
            "--field-manager=kube-controller-manager",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&change.to_string()),
    )
    .expect_ok();
    let claimed =
        get_with_managed_fields("deployment", Some(&acme.ns), &acme.store).expect("the store's Deployment");
    assert_eq!(image(&acme), TENANT_IMAGE);
    assert!(
        managed_fields(&claimed)
            .iter()
            .any(|f| f["manager"] == "kube-controller-manager" && f["operation"] == "Apply"),
        "the tenant's apply did not record kube-controller-manager as a manager: {:#?}",
        managed_fields(&claimed)
    );
    assert_image_repaired(&acme, "kube-controller-manager");

    // Through the scale subresource: the image changed, then every claim replaced by one entry
    // owning all of `spec`.
    tenant_kubectl(
        &[
            "set",
            "image",
            &format!("deployment/{}", acme.store),
            &format!("pause={TENANT_IMAGE}"),
            "-n",
            &acme.ns,
        ],
        None,
    )
    .expect_ok();
    let claim = json!([{
        "op": "replace",
        "path": "/metadata/managedFields",
        "value": [{
            "manager": "e2e-autoscaler",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "subresource": "scale",
            "fieldsType": "FieldsV1",
            "fieldsV1": { "f:spec": {} },
        }],
    }]);
    tenant_kubectl(
        &[
            "patch",
            "deployment",
            &acme.store,
            "-n",
            &acme.ns,
            "--type=json",
            "-p",
            &claim.to_string(),
        ],
        None,
    )
    .expect_ok();
    let claimed =
        get_with_managed_fields("deployment", Some(&acme.ns), &acme.store).expect("the store's Deployment");
    // The Deployment controller may add its own entries meanwhile (status, revision annotation);
    // what counts is that the forged one is the only claim on `spec`.
    let entries = managed_fields(&claimed);
    let on_spec: Vec<&Value> = entries
        .iter()
        .filter(|e| e["fieldsV1"].get("f:spec").is_some())
        .collect();
    assert!(
        image(&acme) == TENANT_IMAGE
            && on_spec.len() == 1
            && on_spec[0]["subresource"] == "scale"
            && on_spec[0]["fieldsV1"]["f:spec"] == json!({}),
        "the API server did not keep the tenant's claim, so the scenario cannot test it: {entries:#?}"
    );
    assert_image_repaired(&acme, "a scale-subresource claim on spec");
    acme.assert_outside_unchanged();
}
