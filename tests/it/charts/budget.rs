//! The guardrails of a plan: its ResourceQuota and LimitRange, as storesync's built-in platform
//! sets them (copied here, so the chart tests do not depend on the code they check) or as a
//! platform file (`storesync.yaml`) declares them.

use super::manifest::get;
use super::quantity::{Resources, quantity, scalar};
use serde_yaml_ng::Value;

/// Share of each ResourceQuota figure a chart may use in its worst case; the rest absorbs quota
/// accounting that lags pods that just finished.
pub const BUDGET_SHARE: f64 = 0.8;

/// The guardrails of one plan, in millicores and bytes.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    /// ResourceQuota `requests.cpu`, `requests.memory`, `limits.cpu`, `limits.memory`.
    pub quota: Resources,
    pub pods: usize,
    pub pvcs: usize,
    pub storage: f64,
    /// LimitRange `max` of a container (cpu in `limits_cpu_m`, memory in `limits_mem`).
    pub container_max: Resources,
    /// LimitRange `defaultRequest` (requests) and `default` (limits) of a container.
    pub container_default: Resources,
    pub pvc_max: f64,
}

/// One plan of src/desired/defaults.rs, in the words of that file.
struct Size {
    name: &'static str,
    cpu: &'static str,
    memory: &'static str,
    limits_cpu: &'static str,
    limits_memory: &'static str,
    pods: usize,
    pvcs: usize,
    storage: &'static str,
    container_cpu: &'static str,
    container_memory: &'static str,
    pvc_max: &'static str,
}

const SIZES: [Size; 3] = [
    Size {
        name: "small",
        cpu: "1",
        memory: "2Gi",
        limits_cpu: "2",
        limits_memory: "4Gi",
        pods: 10,
        pvcs: 4,
        storage: "20Gi",
        container_cpu: "1",
        container_memory: "2Gi",
        pvc_max: "10Gi",
    },
    Size {
        name: "medium",
        cpu: "2",
        memory: "4Gi",
        limits_cpu: "4",
        limits_memory: "8Gi",
        pods: 20,
        pvcs: 8,
        storage: "50Gi",
        container_cpu: "2",
        container_memory: "4Gi",
        pvc_max: "25Gi",
    },
    Size {
        name: "large",
        cpu: "4",
        memory: "8Gi",
        limits_cpu: "8",
        limits_memory: "16Gi",
        pods: 40,
        pvcs: 16,
        storage: "200Gi",
        container_cpu: "4",
        container_memory: "8Gi",
        pvc_max: "100Gi",
    },
];

/// Every plan takes the same LimitRange defaults (src/desired/defaults.rs).
const DEFAULT_LIMIT: (&str, &str) = ("500m", "512Mi");
const DEFAULT_REQUEST: (&str, &str) = ("100m", "128Mi");

fn cpu_m(q: &str) -> f64 {
    quantity(q) * 1000.0
}

/// storesync's built-in plans, smallest first.
pub fn default_plans() -> Vec<Plan> {
    SIZES
        .iter()
        .map(|s| Plan {
            name: s.name.into(),
            quota: Resources {
                requests_cpu_m: cpu_m(s.cpu),
                requests_mem: quantity(s.memory),
                limits_cpu_m: cpu_m(s.limits_cpu),
                limits_mem: quantity(s.limits_memory),
            },
            pods: s.pods,
            pvcs: s.pvcs,
            storage: quantity(s.storage),
            container_max: Resources {
                limits_cpu_m: cpu_m(s.container_cpu),
                limits_mem: quantity(s.container_memory),
                ..Resources::default()
            },
            container_default: Resources {
                requests_cpu_m: cpu_m(DEFAULT_REQUEST.0),
                requests_mem: quantity(DEFAULT_REQUEST.1),
                limits_cpu_m: cpu_m(DEFAULT_LIMIT.0),
                limits_mem: quantity(DEFAULT_LIMIT.1),
            },
            pvc_max: quantity(s.pvc_max),
        })
        .collect()
}

/// A plan as a platform file declares it: `plans.<name>` with `quota` and `limitRange`.
/// A figure the file leaves out is unbounded (infinite), a default it leaves out is absent
/// (infinite too: the budget then reports the container that would need it).
pub fn plan_from_platform(name: &str, node: &Value) -> Result<Plan, String> {
    if get(node, "quota").and_then(Value::as_mapping).is_none() {
        return Err(format!("plan {name} has no quota mapping"));
    }
    // Quota keys contain dots, so the figure is a plain key under a dotted parent path.
    let read = |parent: &str, key: &str| {
        get(node, parent)
            .and_then(|p| p.get(key))
            .map_or(f64::INFINITY, |v| quantity(&scalar(v)))
    };
    let count = |key: &str| {
        let n = read("quota", key);
        if n.is_finite() { n as usize } else { usize::MAX }
    };
    let (quota, max) = ("quota", "limitRange.container.max");
    let (default, request) = (
        "limitRange.container.default",
        "limitRange.container.defaultRequest",
    );
    let mut container_default = Resources {
        requests_cpu_m: read(request, "cpu") * 1000.0,
        requests_mem: read(request, "memory"),
        limits_cpu_m: read(default, "cpu") * 1000.0,
        limits_mem: read(default, "memory"),
    };
    // Kubernetes defaults a LimitRange's defaultRequest to its default.
    if container_default.requests_cpu_m.is_infinite() {
        container_default.requests_cpu_m = container_default.limits_cpu_m;
    }
    if container_default.requests_mem.is_infinite() {
        container_default.requests_mem = container_default.limits_mem;
    }
    Ok(Plan {
        name: name.into(),
        quota: Resources {
            requests_cpu_m: read(quota, "requests.cpu") * 1000.0,
            requests_mem: read(quota, "requests.memory"),
            limits_cpu_m: read(quota, "limits.cpu") * 1000.0,
            limits_mem: read(quota, "limits.memory"),
        },
        pods: count("pods"),
        pvcs: count("persistentvolumeclaims"),
        storage: read(quota, "requests.storage"),
        container_max: Resources {
            limits_cpu_m: read(max, "cpu") * 1000.0,
            limits_mem: read(max, "memory"),
            ..Resources::default()
        },
        container_default,
        pvc_max: read("limitRange.persistentVolumeClaim.max", "storage"),
    })
}
