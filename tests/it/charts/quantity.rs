//! Kubernetes quantities and the requests/limits of one container, in cores (milli) and bytes.

use super::manifest::{get, str_at};
use serde_yaml_ng::Value;

pub const GI: f64 = 1024.0 * 1024.0 * 1024.0;
pub const MI: f64 = 1024.0 * 1024.0;

pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a quantity: {other:?}"),
    }
}

/// Parses a Kubernetes quantity into base units (cores for cpu, bytes for memory).
pub fn quantity(q: &str) -> f64 {
    let q = q.trim();
    let suffixes: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", MI),
        ("Gi", GI),
        ("Ti", GI * 1024.0),
        ("Pi", GI * MI),
        ("Ei", GI * GI),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = q.strip_suffix(suffix) {
            return number
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad quantity {q:?}"))
                * factor;
        }
    }
    q.parse::<f64>().unwrap_or_else(|_| panic!("bad quantity {q:?}"))
}

#[derive(Default, Clone, Copy, Debug)]
pub struct Resources {
    pub requests_cpu_m: f64,
    pub requests_mem: f64,
    pub limits_cpu_m: f64,
    pub limits_mem: f64,
}

impl Resources {
    pub fn add(self, o: Resources) -> Resources {
        Resources {
            requests_cpu_m: self.requests_cpu_m + o.requests_cpu_m,
            requests_mem: self.requests_mem + o.requests_mem,
            limits_cpu_m: self.limits_cpu_m + o.limits_cpu_m,
            limits_mem: self.limits_mem + o.limits_mem,
        }
    }
    pub fn max(self, o: Resources) -> Resources {
        Resources {
            requests_cpu_m: self.requests_cpu_m.max(o.requests_cpu_m),
            requests_mem: self.requests_mem.max(o.requests_mem),
            limits_cpu_m: self.limits_cpu_m.max(o.limits_cpu_m),
            limits_mem: self.limits_mem.max(o.limits_mem),
        }
    }
    pub fn scale(self, n: f64) -> Resources {
        Resources {
            requests_cpu_m: self.requests_cpu_m * n,
            requests_mem: self.requests_mem * n,
            limits_cpu_m: self.limits_cpu_m * n,
            limits_mem: self.limits_mem * n,
        }
    }
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requests {:.0}m/{:.0}Mi, limits {:.0}m/{:.0}Mi",
            self.requests_cpu_m,
            self.requests_mem / MI,
            self.limits_cpu_m,
            self.limits_mem / MI
        )
    }
}

pub fn container_resources(c: &Value, errors: &mut Vec<String>, owner: &str) -> Resources {
    let mut read = |path: &str| match get(c, path) {
        Some(v) => quantity(&scalar(v)),
        None => {
            errors.push(format!(
                "{owner}: container {} has no resources.{path}",
                str_at(c, "name")
            ));
            0.0
        }
    };
    Resources {
        requests_cpu_m: read("resources.requests.cpu") * 1000.0,
        requests_mem: read("resources.requests.memory"),
        limits_cpu_m: read("resources.limits.cpu") * 1000.0,
        limits_mem: read("resources.limits.memory"),
    }
}
