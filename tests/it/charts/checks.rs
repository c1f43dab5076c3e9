//! Render checks: hardening, networking and wiring. Each returns the violations it found, so one
//! run reports all of them.

use super::manifest::{containers, get, id, kind, pod_spec, seq, str_at};
use super::quantity::container_resources;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};

pub const CREDENTIAL_KEYS: [&str; 5] = [
    "admin-password",
    "database-password",
    "database-root-password",
    "jwt-secret",
    "cookie-secret",
];

/// Every pod: hardening, resources, probes, credentials never as literals.
pub fn check_pods(docs: &[Value], engine: bool, errors: &mut Vec<String>) {
    let secret_ish = ["PASSWORD", "SECRET", "TOKEN", "KEY"];
    for doc in docs {
        let Some(spec) = pod_spec(doc) else { continue };
        let owner = id(doc);
        let pod_sc = get(spec, "securityContext");
        if engine && get(spec, "automountServiceAccountToken").and_then(Value::as_bool) != Some(false) {
            errors.push(format!("{owner}: automountServiceAccountToken must be false"));
        }
        if pod_sc
            .and_then(|s| s.get("runAsNonRoot"))
            .and_then(Value::as_bool)
            != Some(true)
        {
            errors.push(format!("{owner}: pod securityContext.runAsNonRoot must be true"));
        }
        if pod_sc.map(|s| str_at(s, "seccompProfile.type")) != Some("RuntimeDefault") {
            errors.push(format!("{owner}: pod seccompProfile must be RuntimeDefault"));
        }
        let secret_volumes: BTreeSet<&str> = seq(spec, "volumes")
            .iter()
            .filter(|v| v.get("secret").is_some())
            .map(|v| str_at(v, "name"))
            .collect();
        for (c, is_init) in containers(spec) {
            let name = format!("{owner} container {}", str_at(c, "name"));
            let sc = c.get("securityContext");
            let flag = |key: &str| sc.and_then(|s| s.get(key)).and_then(Value::as_bool);
            if flag("allowPrivilegeEscalation") != Some(false) {
                errors.push(format!("{name}: allowPrivilegeEscalation must be false"));
            }
            if flag("privileged") == Some(true) {
                errors.push(format!("{name}: must not be privileged"));
            }
            let drops = sc.map(|s| seq(s, "capabilities.drop")).unwrap_or(&[]);
            if !drops.iter().any(|d| d.as_str() == Some("ALL")) {
                errors.push(format!("{name}: capabilities.drop must contain ALL"));
            }
            if engine
                && sc
                    .map(|s| seq(s, "capabilities.add"))
                    .is_some_and(|a| !a.is_empty())
            {
                errors.push(format!("{name}: engine containers add no capabilities"));
            }
            let r = container_resources(c, errors, &owner);
            if r.requests_cpu_m > r.limits_cpu_m || r.requests_mem > r.limits_mem {
                errors.push(format!("{name}: requests exceed limits ({r})"));
            }
            if !is_init && matches!(kind(doc), "Deployment" | "StatefulSet") {
                for probe in ["livenessProbe", "readinessProbe"] {
                    if c.get(probe).is_none() {
                        errors.push(format!("{name}: no {probe}"));
                    }
                }
            }
            let mounts: Vec<(&str, &str)> = seq(c, "volumeMounts")
                .iter()
                .map(|m| (str_at(m, "name"), str_at(m, "mountPath")))
                .collect();
            for env in seq(c, "env") {
                let var = str_at(env, "name");
                let Some(value) = env.get("value") else { continue };
                if !secret_ish.iter().any(|s| var.to_uppercase().contains(s)) {
                    continue;
                }
                // A *_FILE variable holds a path; it must point into a mounted Secret.
                let value = value.as_str().unwrap_or("");
                let in_secret = mounts.iter().any(|(vol, path)| {
                    secret_volumes.contains(vol)
                        && value.starts_with(&format!("{}/", path.trim_end_matches('/')))
                });
                if !(var.ends_with("_FILE") && in_secret) {
                    errors.push(format!("{name}: env {var} is secret-ish but has a literal value"));
                }
            }
        }
    }
}

/// Ingress host/class/TLS as passed, Services ClusterIP, and every reference resolves.
pub fn check_networking(
    docs: &[Value],
    tls: bool,
    issuer: &str,
    secret_name: &str,
    errors: &mut Vec<String>,
) {
    let services: BTreeMap<&str, &Value> = docs
        .iter()
        .filter(|d| kind(d) == "Service")
        .map(|d| (str_at(d, "metadata.name"), d))
        .collect();
    for svc in services.values() {
        let t = str_at(svc, "spec.type");
        if !(t.is_empty() || t == "ClusterIP") {
            errors.push(format!(
                "{}: type {t}, only ClusterIP fits the guardrails",
                id(svc)
            ));
        }
        let selector = get(svc, "spec.selector")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        let selects = docs.iter().filter_map(|d| pod_spec(d).map(|_| d)).any(|d| {
            let labels = get(d, "spec.template.metadata.labels").and_then(Value::as_mapping);
            labels.is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
        });
        if selector.is_empty() || !selects {
            errors.push(format!("{}: selector matches no pod template", id(svc)));
        }
    }
    let ingresses: Vec<&Value> = docs.iter().filter(|d| kind(d) == "Ingress").collect();
    if ingresses.len() != 1 {
        errors.push(format!("expected one Ingress, got {}", ingresses.len()));
    }
    for ing in ingresses {
        if str_at(ing, "spec.ingressClassName") != "nginx" {
            errors.push(format!(
                "{}: ingressClassName must be the platform's (nginx)",
                id(ing)
            ));
        }
        for rule in seq(ing, "spec.rules") {
            if str_at(rule, "host") != "acme.shop.example" {
                errors.push(format!("{}: rule host {:?}", id(ing), str_at(rule, "host")));
            }
            for path in seq(rule, "http.paths") {
                let name = str_at(path, "backend.service.name");
                let port = str_at(path, "backend.service.port.name");
                let ok = services
                    .get(name)
                    .is_some_and(|s| seq(s, "spec.ports").iter().any(|p| str_at(p, "name") == port));
                if !ok {
                    errors.push(format!(
                        "{}: path backend {name}:{port} is not a rendered Service port",
                        id(ing)
                    ));
                }
            }
        }
        let tls_entries = seq(ing, "spec.tls");
        let want_secret = if secret_name.is_empty() {
            "acme-tls"
        } else {
            secret_name
        };
        match (tls, tls_entries) {
            (false, []) => {}
            (true, [entry]) => {
                if str_at(entry, "secretName") != want_secret
                    || seq(entry, "hosts").first().and_then(Value::as_str) != Some("acme.shop.example")
                {
                    errors.push(format!(
                        "{}: tls must be {want_secret} for acme.shop.example",
                        id(ing)
                    ));
                }
            }
            _ => errors.push(format!(
                "{}: tls.enabled={tls} but tls is {tls_entries:?}",
                id(ing)
            )),
        }
        // Annotation keys contain dots, so they are looked up directly rather than by path.
        let annotation = get(ing, "metadata.annotations")
            .and_then(|a| a.get("cert-manager.io/cluster-issuer"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let want = if tls { issuer } else { "" };
        if annotation != want {
            errors.push(format!(
                "{}: cluster-issuer annotation {annotation:?}, want {want:?}",
                id(ing)
            ));
        }
    }
}

/// Labels on every object; hook Jobs; Secrets referenced only by the given name and keys.
pub fn check_wiring(docs: &[Value], credentials: &str, errors: &mut Vec<String>) {
    for doc in docs {
        for label in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/managed-by",
        ] {
            if get(doc, "metadata.labels").and_then(|l| l.get(label)).is_none() {
                errors.push(format!("{}: missing label {label}", id(doc)));
            }
        }
        if kind(doc) == "Job" {
            let note = |k: &str| {
                get(doc, "metadata.annotations")
                    .and_then(|a| a.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            if !note("helm.sh/hook").contains("post-install")
                || !note("helm.sh/hook").contains("post-upgrade")
            {
                errors.push(format!("{}: must be a post-install,post-upgrade hook", id(doc)));
            }
            if !note("helm.sh/hook-delete-policy").contains("before-hook-creation") {
                errors.push(format!(
                    "{}: hook-delete-policy must include before-hook-creation",
                    id(doc)
                ));
            }
        }
        let Some(spec) = pod_spec(doc) else { continue };
        let mut refs: Vec<(&str, &str)> = vec![];
        for (c, _) in containers(spec) {
            for env in seq(c, "env") {
                if let Some(r) = get(env, "valueFrom.secretKeyRef") {
                    refs.push((str_at(r, "name"), str_at(r, "key")));
                }
            }
        }
        for vol in seq(spec, "volumes") {
            if let Some(secret) = vol.get("secret") {
                for item in seq(secret, "items") {
                    refs.push((str_at(secret, "secretName"), str_at(item, "key")));
                }
            }
        }
        for (name, key) in refs {
            if name != credentials || !CREDENTIAL_KEYS.contains(&key) {
                errors.push(format!(
                    "{}: references secret {name}/{key}, want {credentials}/<credential key>",
                    id(doc)
                ));
            }
        }
    }
}

pub fn assert_clean(context: &str, errors: Vec<String>) {
    assert!(errors.is_empty(), "{context}:\n  {}", errors.join("\n  "));
}
