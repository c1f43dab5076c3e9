//! Guardrail fit: what every pod that can run at once requests, against a plan's quota and
//! limit range.

use crate::manifest::{containers, get, id, kind, pod_spec, seq, str_at};
use crate::quantity::{GI, Resources, container_resources, quantity, scalar};
use serde_yaml_ng::Value;

/// The guardrails of one plan, as storesync's default platform config sets them.
pub struct Plan {
    pub name: &'static str,
    pub requests_cpu_m: f64,
    pub requests_mem: f64,
    pub limits_cpu_m: f64,
    pub limits_mem: f64,
    pub pods: usize,
    pub pvcs: usize,
    pub storage: f64,
    pub container_max_cpu_m: f64,
    pub container_max_mem: f64,
    pub pvc_max: f64,
}

pub const PLANS: [Plan; 3] = [
    Plan {
        name: "small",
        requests_cpu_m: 1000.0,
        requests_mem: 2.0 * GI,
        limits_cpu_m: 2000.0,
        limits_mem: 4.0 * GI,
        pods: 10,
        pvcs: 4,
        storage: 20.0 * GI,
        container_max_cpu_m: 1000.0,
        container_max_mem: 2.0 * GI,
        pvc_max: 10.0 * GI,
    },
    Plan {
        name: "medium",
        requests_cpu_m: 2000.0,
        requests_mem: 4.0 * GI,
        limits_cpu_m: 4000.0,
        limits_mem: 8.0 * GI,
        pods: 20,
        pvcs: 8,
        storage: 50.0 * GI,
        container_max_cpu_m: 2000.0,
        container_max_mem: 4.0 * GI,
        pvc_max: 25.0 * GI,
    },
    Plan {
        name: "large",
        requests_cpu_m: 4000.0,
        requests_mem: 8.0 * GI,
        limits_cpu_m: 8000.0,
        limits_mem: 16.0 * GI,
        pods: 40,
        pvcs: 16,
        storage: 200.0 * GI,
        container_max_cpu_m: 4000.0,
        container_max_mem: 8.0 * GI,
        pvc_max: 100.0 * GI,
    },
];

/// Pods a workload can run at once in the worst case (rollout surge included).
pub fn worst_case_pods(doc: &Value) -> usize {
    let int = |path: &str, default: i64| get(doc, path).and_then(Value::as_i64).unwrap_or(default);
    match kind(doc) {
        "Deployment" => {
            let replicas = int("spec.replicas", 1);
            let surge = if str_at(doc, "spec.strategy.type") == "Recreate" {
                0
            } else {
                match get(doc, "spec.strategy.rollingUpdate.maxSurge") {
                    Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
                    Some(Value::String(p)) => {
                        let pct: f64 = p.trim_end_matches('%').parse().expect("maxSurge percentage");
                        (replicas as f64 * pct / 100.0).ceil() as i64
                    }
                    _ => (replicas as f64 * 0.25).ceil() as i64, // Kubernetes default 25%
                }
            };
            (replicas + surge) as usize
        }
        "StatefulSet" => int("spec.replicas", 1) as usize,
        "Job" => int("spec.parallelism", 1) as usize,
        other => panic!("no worst-case rule for {other}"),
    }
}

/// Sums what every pod that can run at once requests (init containers per Kubernetes' rule:
/// a pod needs max(sum of app containers, largest init container)).
pub fn budget(docs: &[Value], errors: &mut Vec<String>) -> (Resources, usize, Vec<Resources>) {
    let (mut total, mut pods, mut per_container) = (Resources::default(), 0, vec![]);
    for doc in docs {
        let Some(spec) = pod_spec(doc) else { continue };
        let owner = id(doc);
        let (mut apps, mut init_max) = (Resources::default(), Resources::default());
        for (c, is_init) in containers(spec) {
            let r = container_resources(c, errors, &owner);
            per_container.push(r);
            let sidecar = is_init && str_at(c, "restartPolicy") == "Always";
            if is_init && !sidecar {
                init_max = init_max.max(r)
            } else {
                apps = apps.add(r)
            }
        }
        let n = worst_case_pods(doc);
        pods += n;
        total = total.add(apps.max(init_max).scale(n as f64));
    }
    (total, pods, per_container)
}

pub fn check_budget(docs: &[Value], plan: &Plan, errors: &mut Vec<String>) -> Resources {
    let (total, pods, per_container) = budget(docs, errors);
    let over = |what: &str, have: f64, max: f64, errors: &mut Vec<String>| {
        if have > max + 1e-6 {
            errors.push(format!(
                "{} plan: {what} {have} exceeds {max} ({total})",
                plan.name
            ));
        }
    };
    over(
        "requests.cpu (m)",
        total.requests_cpu_m,
        plan.requests_cpu_m,
        errors,
    );
    over("requests.memory", total.requests_mem, plan.requests_mem, errors);
    over("limits.cpu (m)", total.limits_cpu_m, plan.limits_cpu_m, errors);
    over("limits.memory", total.limits_mem, plan.limits_mem, errors);
    over("pods", pods as f64, plan.pods as f64, errors);
    for r in per_container {
        over(
            "container limit cpu (m)",
            r.limits_cpu_m,
            plan.container_max_cpu_m,
            errors,
        );
        over(
            "container limit memory",
            r.limits_mem,
            plan.container_max_mem,
            errors,
        );
    }
    let claims: Vec<f64> = docs
        .iter()
        .flat_map(|d| match kind(d) {
            "PersistentVolumeClaim" => vec![d],
            "StatefulSet" => seq(d, "spec.volumeClaimTemplates").iter().collect(),
            _ => vec![],
        })
        .map(|pvc| {
            quantity(&scalar(
                get(pvc, "spec.resources.requests.storage").expect("PVC size"),
            ))
        })
        .collect();
    for size in &claims {
        over("PVC size", *size, plan.pvc_max, errors);
    }
    over(
        "persistentvolumeclaims",
        claims.len() as f64,
        plan.pvcs as f64,
        errors,
    );
    over("requests.storage", claims.iter().sum(), plan.storage, errors);
    total
}
