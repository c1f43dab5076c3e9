//! Does a rendered chart fit a plan? The worst case the namespace's quota must hold at once:
//! every long-running pod, the largest Helm hook pod (quota accounting lags a hook pod that just
//! finished), and every rollout's surge pods, each pod counted as Kubernetes counts it
//! (max(largest init container, sum of app containers), LimitRange defaults for what a container
//! leaves unset). That total must stay within `BUDGET_SHARE` of each quota figure.

use super::budget::{BUDGET_SHARE, Plan};
use super::manifest::{containers, get, id, kind, pod_spec, seq, str_at};
use super::quantity::{GI, MI, Resources, quantity, scalar};
use serde_yaml_ng::Value;
use std::fmt::Write;

/// How a workload's pods take up quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Runs all the time: Deployments, StatefulSets, Jobs that are not hooks.
    Steady,
    /// A Helm hook (Jobs run one at a time): only the largest counts.
    Hook,
    /// Extra pods of a rolling update, on top of the old ones.
    Surge,
}

/// One row of the budget: a workload's pods in one role.
#[derive(Clone, Debug)]
pub struct Line {
    pub component: String,
    pub role: Role,
    pub pods: usize,
    /// What those pods take together.
    pub total: Resources,
}

pub struct Fit {
    pub plan: Plan,
    pub lines: Vec<Line>,
    /// Steady + surge + the largest hook, per figure.
    pub total: Resources,
    pub pods: usize,
    /// (claim, size) of every PersistentVolumeClaim the release creates.
    pub claims: Vec<(String, f64)>,
    pub errors: Vec<String>,
}

/// The budget of a rendered chart against `plan`.
pub fn fit(docs: &[Value], plan: &Plan) -> Fit {
    let mut errors = vec![];
    let mut lines = vec![];
    for doc in docs {
        let Some(spec) = pod_spec(doc) else { continue };
        let component = id(doc);
        let pod = pod_resources(spec, plan, &component, &mut errors);
        let (steady, surge) = pods_of(doc, &mut errors);
        let hook = get(doc, "metadata.annotations")
            .and_then(|a| a.get("helm.sh/hook"))
            .is_some();
        let role = if hook { Role::Hook } else { Role::Steady };
        let mut push = |role, pods: usize, component: String| {
            let total = pod.scale(pods as f64);
            lines.push(Line {
                component,
                role,
                pods,
                total,
            });
        };
        push(role, steady, component.clone());
        if surge > 0 {
            push(Role::Surge, surge, format!("{component} rollout surge"));
        }
    }
    let (mut total, mut pods) = (Resources::default(), 0);
    let (mut hook, mut hook_pods) = (Resources::default(), 0);
    for line in &lines {
        if line.role == Role::Hook {
            hook = hook.max(line.total);
            hook_pods = hook_pods.max(line.pods);
        } else {
            total = total.add(line.total);
            pods += line.pods;
        }
    }
    let total = total.add(hook);
    let claims = claims(docs);
    let mut fit = Fit {
        plan: plan.clone(),
        lines,
        total,
        pods: pods + hook_pods,
        claims,
        errors,
    };
    fit.check();
    fit
}

/// What one pod takes: max(largest init container, sum of app containers), sidecars (init
/// containers with restartPolicy Always) adding to both while they run.
fn pod_resources(spec: &Value, plan: &Plan, owner: &str, errors: &mut Vec<String>) -> Resources {
    let (mut sidecars, mut init) = (Resources::default(), Resources::default());
    for c in seq(spec, "initContainers") {
        let r = effective_resources(c, plan, owner, errors);
        if str_at(c, "restartPolicy") == "Always" {
            sidecars = sidecars.add(r);
            init = init.max(sidecars);
        } else {
            init = init.max(sidecars.add(r));
        }
    }
    let apps = seq(spec, "containers")
        .iter()
        .map(|c| effective_resources(c, plan, owner, errors))
        .fold(Resources::default(), Resources::add);
    init.max(apps.add(sidecars))
}

/// A container's requests and limits after defaulting: a request left out is the limit if one is
/// set, else the LimitRange's defaultRequest; a limit left out is the LimitRange's default.
/// Checks the LimitRange's admission: request ≤ limit ≤ max.
pub fn effective_resources(c: &Value, plan: &Plan, owner: &str, errors: &mut Vec<String>) -> Resources {
    let name = format!("{owner} container {}", str_at(c, "name"));
    let set = |path: &str| get(c, path).map(|v| quantity(&scalar(v)));
    let mut one = |what: &str, scale: f64, default_request: f64, default_limit: f64, max: f64| {
        let set_limit = set(&format!("resources.limits.{what}")).map(|q| q * scale);
        let set_request = set(&format!("resources.requests.{what}")).map(|q| q * scale);
        let limit = set_limit.unwrap_or(default_limit);
        let request = set_request.or(set_limit).unwrap_or(default_request);
        if limit.is_infinite() {
            errors.push(format!(
                "{name}: no {what} limit and the LimitRange has no default, so the quota refuses the pod"
            ));
            return (request, limit);
        }
        if exceeds(request, limit) {
            let (request, limit) = (show(what, request), show(what, limit));
            errors.push(format!(
                "{name}: {what} request {request} is above its limit {limit}"
            ));
        }
        if exceeds(limit, max) {
            errors.push(format!(
                "{name}: {what} limit {} is above the LimitRange max {} of plan {}",
                show(what, limit),
                show(what, max),
                plan.name
            ));
        }
        (request, limit)
    };
    let d = &plan.container_default;
    let m = &plan.container_max;
    let (requests_cpu_m, limits_cpu_m) = one("cpu", 1000.0, d.requests_cpu_m, d.limits_cpu_m, m.limits_cpu_m);
    let (requests_mem, limits_mem) = one("memory", 1.0, d.requests_mem, d.limits_mem, m.limits_mem);
    Resources {
        requests_cpu_m,
        requests_mem,
        limits_cpu_m,
        limits_mem,
    }
}

/// Requests and limits of every container of a render, named by workload and container.
pub fn container_sizes(docs: &[Value], plan: &Plan, errors: &mut Vec<String>) -> Vec<(String, Resources)> {
    let mut out = vec![];
    for doc in docs {
        let Some(spec) = pod_spec(doc) else { continue };
        for (c, _) in containers(spec) {
            let name = format!("{} container {}", id(doc), str_at(c, "name"));
            out.push((name, effective_resources(c, plan, &id(doc), errors)));
        }
    }
    out
}

/// (pods that run all the time, extra pods during a rollout) of a workload.
fn pods_of(doc: &Value, errors: &mut Vec<String>) -> (usize, usize) {
    let int = |path: &str, default: i64| get(doc, path).and_then(Value::as_i64).unwrap_or(default);
    match kind(doc) {
        "Deployment" => {
            let replicas = int("spec.replicas", 1).max(0) as usize;
            if str_at(doc, "spec.strategy.type") == "Recreate" {
                return (replicas, 0);
            }
            let surge = match get(doc, "spec.strategy.rollingUpdate.maxSurge") {
                Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
                Some(Value::String(p)) => match p.trim_end_matches('%').parse::<f64>() {
                    Ok(pct) if p.ends_with('%') => (replicas as f64 * pct / 100.0).ceil() as usize,
                    _ => {
                        errors.push(format!(
                            "{}: maxSurge {p:?} is not a number or percentage",
                            id(doc)
                        ));
                        replicas
                    }
                },
                // Kubernetes' default maxSurge is 25%, rounded up.
                _ => (replicas as f64 * 0.25).ceil() as usize,
            };
            (replicas, surge)
        }
        // A StatefulSet replaces pods one by one and never surges.
        "StatefulSet" => (int("spec.replicas", 1).max(0) as usize, 0),
        "Job" => (int("spec.parallelism", 1).max(0) as usize, 0),
        "CronJob" => (int("spec.jobTemplate.spec.parallelism", 1).max(0) as usize, 0),
        "Pod" => (1, 0),
        other => {
            errors.push(format!("{}: no budget rule for kind {other}", id(doc)));
            (1, 0)
        }
    }
}

fn claims(docs: &[Value]) -> Vec<(String, f64)> {
    let size = |pvc: &Value| {
        get(pvc, "spec.resources.requests.storage").map_or(f64::INFINITY, |q| quantity(&scalar(q)))
    };
    let mut out = vec![];
    for doc in docs {
        match kind(doc) {
            "PersistentVolumeClaim" => out.push((id(doc), size(doc))),
            "StatefulSet" => {
                let replicas = get(doc, "spec.replicas").and_then(Value::as_i64).unwrap_or(1);
                for template in seq(doc, "spec.volumeClaimTemplates") {
                    for i in 0..replicas {
                        let name = str_at(template, "metadata.name");
                        let claim = format!("{name}-{}-{i}", str_at(doc, "metadata.name"));
                        out.push((format!("PersistentVolumeClaim/{claim}"), size(template)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `have > max`, forgiving the rounding of quantities such as 1638.4Mi.
fn exceeds(have: f64, max: f64) -> bool {
    have > max * (1.0 + 1e-9)
}

const FIGURES: [&str; 4] = ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];

fn figures(r: &Resources) -> [f64; 4] {
    [r.requests_cpu_m, r.requests_mem, r.limits_cpu_m, r.limits_mem]
}

fn show(what: &str, value: f64) -> String {
    if value.is_infinite() {
        return "unbounded".into();
    }
    let (n, unit) = match what {
        "cpu" | "requests.cpu" | "limits.cpu" => (value, "m"),
        "storage" => (value / GI, "Gi"),
        _ => (value / MI, "Mi"),
    };
    if (n - n.round()).abs() < 1e-6 {
        format!("{n:.0}{unit}")
    } else {
        format!("{n:.1}{unit}")
    }
}

impl Fit {
    /// Free share of each quota figure in the worst case, in percent.
    pub fn headroom(&self) -> [f64; 4] {
        let (total, quota) = (figures(&self.total), figures(&self.plan.quota));
        std::array::from_fn(|i| 100.0 * (1.0 - total[i] / quota[i]))
    }

    fn check(&mut self) {
        let plan = &self.plan;
        let (total, quota) = (figures(&self.total), figures(&plan.quota));
        for (i, figure) in FIGURES.iter().enumerate() {
            if exceeds(total[i], BUDGET_SHARE * quota[i]) {
                self.errors.push(format!(
                    "{figure}: worst case {} is over {:.0}% of the quota ({} of {})",
                    show(figure, total[i]),
                    BUDGET_SHARE * 100.0,
                    show(figure, BUDGET_SHARE * quota[i]),
                    show(figure, quota[i]),
                ));
            }
        }
        if self.pods > plan.pods {
            let pods = (self.pods, plan.pods);
            self.errors
                .push(format!("pods: {} at once, the quota allows {}", pods.0, pods.1));
        }
        let storage: f64 = self.claims.iter().map(|(_, s)| s).sum();
        if self.claims.len() > plan.pvcs {
            let n = self.claims.len();
            self.errors.push(format!(
                "persistentvolumeclaims: {n}, the quota allows {}",
                plan.pvcs
            ));
        }
        if exceeds(storage, plan.storage) {
            self.errors.push(format!(
                "requests.storage: {}, the quota allows {}",
                show("storage", storage),
                show("storage", plan.storage)
            ));
        }
        for (claim, size) in &self.claims {
            if exceeds(*size, plan.pvc_max) {
                self.errors.push(format!(
                    "{claim}: {} is above the LimitRange max {}",
                    show("storage", *size),
                    show("storage", plan.pvc_max)
                ));
            }
        }
    }

    /// The budget as a table: each component, the total, the quota and the headroom.
    pub fn table(&self, title: &str) -> String {
        let mut out = format!(
            "{title} on plan {} (worst case must stay within {:.0}% of the quota):\n",
            self.plan.name,
            BUDGET_SHARE * 100.0
        );
        let width = self
            .lines
            .iter()
            .map(|l| l.component.len() + 7)
            .max()
            .unwrap_or(0)
            .max(38);
        let row = |out: &mut String, name: &str, pods: String, cells: [String; 4]| {
            let [a, b, c, d] = cells;
            let _ = writeln!(out, "  {name:<width$} {pods:>4} {a:>13} {b:>16} {c:>11} {d:>14}");
        };
        let cells = |r: &Resources| -> [String; 4] {
            let f = figures(r);
            std::array::from_fn(|i| show(FIGURES[i], f[i]))
        };
        let head = FIGURES.map(String::from);
        row(&mut out, "component", "pods".into(), head);
        let hooks: Vec<&Line> = self.lines.iter().filter(|l| l.role == Role::Hook).collect();
        for line in &self.lines {
            let name = match line.role {
                Role::Hook => format!("{} (hook)", line.component),
                _ => line.component.clone(),
            };
            row(&mut out, &name, line.pods.to_string(), cells(&line.total));
        }
        if hooks.len() > 1 {
            let largest = hooks.iter().fold(Resources::default(), |m, l| m.max(l.total));
            let pods = hooks.iter().map(|l| l.pods).max().unwrap_or(0);
            row(
                &mut out,
                "hooks: the largest per figure counts",
                pods.to_string(),
                cells(&largest),
            );
        }
        row(&mut out, "total", self.pods.to_string(), cells(&self.total));
        row(
            &mut out,
            "quota",
            self.plan.pods.to_string(),
            cells(&self.plan.quota),
        );
        let headroom = self.headroom().map(|h| format!("{h:.1}%"));
        let name = format!("headroom (at least {:.0}%)", (1.0 - BUDGET_SHARE) * 100.0);
        row(&mut out, &name, String::new(), headroom);
        for error in &self.errors {
            let _ = writeln!(out, "  ! {error}");
        }
        out
    }

    /// The row of charts/README.md's fit table: each figure as total / quota (headroom).
    pub fn readme_row(&self, engine: &str) -> String {
        let (total, quota) = (figures(&self.total), figures(&self.plan.quota));
        let headroom = self.headroom();
        let mut row = format!("| {engine} | {} |", self.plan.name);
        for i in 0..4 {
            let (t, q) = (show(FIGURES[i], total[i]), show(FIGURES[i], quota[i]));
            let _ = write!(row, " {t} / {q} ({:.0}% free) |", headroom[i].floor());
        }
        let _ = write!(row, " {} / {} |", self.pods, self.plan.pods);
        let storage: f64 = self.claims.iter().map(|(_, s)| s).sum();
        let (used, quota) = (show("storage", storage), show("storage", self.plan.storage));
        let _ = write!(
            row,
            " {} / {}, {used} / {quota} |",
            self.claims.len(),
            self.plan.pvcs
        );
        row
    }
}
