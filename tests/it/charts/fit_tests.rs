//! The fit rule on hand-made manifests: each part of the worst case counted the way the quota
//! admission counts it.

use super::budget::{Plan, default_plans, plan_from_platform};
use super::fit::{Role, fit};
use super::helm::{repo_root, yaml};
use super::manifest::get;
use super::quantity::{MI, Resources};
use serde_yaml_ng::Value;

fn small() -> Plan {
    default_plans().remove(0)
}

/// A container with `requests` and `limits` as flow mappings ("" leaves them out).
fn container(name: &str, requests: &str, limits: &str) -> String {
    let mut resources = vec![];
    if !requests.is_empty() {
        resources.push(format!("requests: {requests}"));
    }
    if !limits.is_empty() {
        resources.push(format!("limits: {limits}"));
    }
    format!(
        "{{name: {name}, image: x, resources: {{{}}}}}",
        resources.join(", ")
    )
}

fn app(cpu: &str, memory: &str) -> String {
    let r = format!("{{cpu: {cpu}, memory: {memory}}}");
    container("app", &r, &r)
}

/// A workload of `kind` with `spec` fields, `annotations` and a pod of `containers`.
fn workload(kind: &str, name: &str, spec: &str, annotations: &str, containers: &[String]) -> Value {
    yaml(&format!(
        "kind: {kind}\nmetadata: {{name: {name}, annotations: {{{annotations}}}}}\n\
         spec: {{{spec}template: {{spec: {{containers: [{}]}}}}}}",
        containers.join(", ")
    ))
}

fn limits(r: &Resources) -> (f64, f64) {
    (r.limits_cpu_m, r.limits_mem / MI)
}

#[test]
fn only_the_largest_hook_counts_beside_the_long_running_pods() {
    let hook = "helm.sh/hook: post-install";
    let docs = [
        workload(
            "Deployment",
            "web",
            "strategy: {type: Recreate}, ",
            "",
            &[app("200m", "384Mi")],
        ),
        workload("StatefulSet", "db", "", "", &[app("100m", "256Mi")]),
        workload("Job", "setup", "", hook, &[app("300m", "256Mi")]),
        workload("Job", "seed", "", hook, &[app("100m", "512Mi")]),
        workload("Job", "batch", "parallelism: 2, ", "", &[app("50m", "64Mi")]),
    ];
    let fit = fit(&docs, &small());
    assert!(fit.errors.is_empty(), "{}", fit.table("hooks"));
    // 200 + 100 + 2×50 steady, then the larger hook per figure: 300m and 512Mi.
    assert_eq!(limits(&fit.total), (700.0, 384.0 + 256.0 + 128.0 + 512.0));
    assert_eq!(fit.pods, 1 + 1 + 2 + 1);
    let roles: Vec<Role> = fit.lines.iter().map(|l| l.role).collect();
    assert_eq!(
        roles,
        [Role::Steady, Role::Steady, Role::Hook, Role::Hook, Role::Steady]
    );
}

#[test]
fn rolling_updates_surge_unless_max_surge_is_zero_or_the_strategy_is_recreate() {
    let pod = [app("100m", "128Mi")];
    let cases = [
        ("", 1, 1), // Kubernetes default: 25% of one replica, rounded up
        ("replicas: 4, ", 4, 1),
        ("replicas: 5, ", 5, 2),
        (
            "strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}, ",
            1,
            0,
        ),
        ("replicas: 3, strategy: {rollingUpdate: {maxSurge: 2}}, ", 3, 2),
        (
            "replicas: 3, strategy: {rollingUpdate: {maxSurge: '50%'}}, ",
            3,
            2,
        ),
        ("replicas: 3, strategy: {type: Recreate}, ", 3, 0),
    ];
    for (spec, steady, surge) in cases {
        let fit = fit(&[workload("Deployment", "web", spec, "", &pod)], &small());
        assert_eq!(fit.pods, steady + surge, "{spec}\n{}", fit.table(spec));
        assert_eq!(limits(&fit.total).0, 100.0 * (steady + surge) as f64, "{spec}");
        let surged = fit.lines.iter().any(|l| l.role == Role::Surge);
        assert_eq!(surged, surge > 0, "{spec}");
    }
    let set = workload("StatefulSet", "db", "replicas: 3, ", "", &pod);
    assert_eq!(fit(&[set], &small()).pods, 3, "a StatefulSet never surges");
}

#[test]
fn a_pod_takes_the_larger_of_its_init_containers_and_its_app_containers() {
    let pod = |init: &[String], apps: &[String]| {
        yaml(&format!(
            "kind: Deployment\nmetadata: {{name: web}}\nspec: {{strategy: {{type: Recreate}}, template: {{spec: \
             {{initContainers: [{}], containers: [{}]}}}}}}",
            init.join(", "),
            apps.join(", ")
        ))
    };
    let total = |init: &[String], apps: &[String]| limits(&fit(&[pod(init, apps)], &small()).total);
    let (a, b) = (app("200m", "256Mi"), app("300m", "128Mi"));
    // Apps sum to 500m/384Mi; a 400m/512Mi init container raises memory only.
    assert_eq!(
        total(&[app("400m", "512Mi")], &[a.clone(), b.clone()]),
        (500.0, 512.0)
    );
    assert_eq!(
        total(&[app("100m", "64Mi")], &[a.clone(), b.clone()]),
        (500.0, 384.0)
    );
    // Two init containers run one after the other: the larger counts, not their sum.
    assert_eq!(
        total(
            &[app("400m", "64Mi"), app("100m", "450Mi")],
            std::slice::from_ref(&a)
        ),
        (400.0, 450.0)
    );
    // A sidecar (restartPolicy Always) runs beside the app containers and the later inits.
    let sidecar = "{name: proxy, image: x, restartPolicy: Always, resources: \
                   {requests: {cpu: 50m, memory: 32Mi}, limits: {cpu: 50m, memory: 32Mi}}}";
    let init = [sidecar.to_string(), app("600m", "64Mi")];
    assert_eq!(total(&init, &[a]), (650.0, 288.0));
}

#[test]
fn unset_resources_take_the_limit_range_defaults() {
    let docs = [workload(
        "Deployment",
        "web",
        "strategy: {type: Recreate}, ",
        "",
        &[
            container("bare", "", ""),
            container("capped", "", "{cpu: 300m, memory: 256Mi}"),
            container("asks", "{cpu: 50m, memory: 64Mi}", ""),
        ],
    )];
    let fit = fit(&docs, &small());
    assert!(fit.errors.is_empty(), "{:?}", fit.errors);
    // bare: defaultRequest 100m/128Mi, default 500m/512Mi; capped: requests = limits;
    // asks: its requests and the default limits.
    assert_eq!(fit.total.requests_cpu_m, 100.0 + 300.0 + 50.0);
    assert_eq!(fit.total.requests_mem / MI, 128.0 + 256.0 + 64.0);
    assert_eq!(limits(&fit.total), (500.0 + 300.0 + 500.0, 512.0 + 256.0 + 512.0));

    // Without a LimitRange default, a container with no limit is refused by the quota.
    let mut plan = small();
    plan.container_default.limits_mem = f64::INFINITY;
    let fit = super::fit::fit(&docs, &plan);
    assert!(
        fit.errors
            .iter()
            .any(|e| e.contains("container asks: no memory limit")),
        "{:?}",
        fit.errors
    );
    // A request above the LimitRange default limit is refused by LimitRange admission.
    let greedy = workload("Job", "p", "", "", &[container("greedy", "{cpu: 800m}", "")]);
    let fit = super::fit::fit(&[greedy], &small());
    assert!(
        fit.errors
            .iter()
            .any(|e| e.contains("cpu request 800m is above its limit 500m")),
        "{:?}",
        fit.errors
    );
}

#[test]
fn the_worst_case_must_leave_a_fifth_of_every_quota_figure_free() {
    let plan = small();
    // Exactly 80% of requests.memory (2Gi) passes; one MiB more does not.
    let at = |memory: &str| {
        let r = format!("{{cpu: 100m, memory: {memory}}}");
        let c = container("app", &r, "{cpu: 100m, memory: 2Gi}");
        fit(&[workload("StatefulSet", "db", "", "", &[c])], &plan)
    };
    assert!(at("1638.4Mi").errors.is_empty(), "{:?}", at("1638.4Mi").errors);
    let over = at("1639.4Mi");
    assert_eq!(over.errors.len(), 1, "{:?}", over.errors);
    assert!(over.errors[0].starts_with("requests.memory"), "{:?}", over.errors);
    let table = over.table("db");
    assert!(table.contains("headroom (at least 20%)"), "{table}");
    assert!(table.contains("StatefulSet/db"), "{table}");
    // Pods, claims and storage must fit the quota itself.
    let claim = |size: &str| {
        format!("{{metadata: {{name: data}}, spec: {{resources: {{requests: {{storage: {size}}}}}}}}}")
    };
    let set = |replicas: usize, size: &str| {
        let spec = format!("replicas: {replicas}, volumeClaimTemplates: [{}], ", claim(size));
        workload("StatefulSet", "db", &spec, "", &[app("10m", "16Mi")])
    };
    let errors = |doc| fit(&[doc], &plan).errors;
    assert!(errors(set(2, "10Gi")).is_empty());
    assert!(errors(set(3, "5Gi")).is_empty());
    assert!(
        errors(set(1, "11Gi"))
            .iter()
            .any(|e| e.contains("above the LimitRange max 10Gi"))
    );
    assert!(
        errors(set(3, "8Gi"))
            .iter()
            .any(|e| e.starts_with("requests.storage"))
    );
    assert!(
        errors(set(5, "1Gi"))
            .iter()
            .any(|e| e.starts_with("persistentvolumeclaims"))
    );
    assert!(errors(set(11, "1Gi")).iter().any(|e| e.starts_with("pods")));
}

#[test]
fn the_example_platform_file_declares_the_default_plans() {
    let text = std::fs::read_to_string(repo_root().join("stores.example/storesync.yaml")).expect("platform");
    let platform = yaml(&text);
    for plan in default_plans() {
        let node = get(&platform, &format!("plans.{}", plan.name)).expect("plan in stores.example");
        let parsed = plan_from_platform(&plan.name, node).expect("plan parses");
        assert_eq!(format!("{parsed:?}"), format!("{plan:?}"), "plan {}", plan.name);
    }
    assert!(plan_from_platform("x", &yaml("limitRange: {}")).is_err());
}
