//! What Helm and the API server make of a rendered chart, for the fake API server: the objects
//! as stored (YAML read as Helm reads it, server defaults filled in, fields owned by manager
//! `helm`), and the release Secret with its manifest encoded as Helm encodes it; and release
//! Secrets as a store's team can forge them in its namespace.
#![allow(dead_code)]

use std::io::Write;

use base64::Engine;
use serde_json::{Map, Value, json};

/// The plural of a kind the engine charts render.
pub fn plural_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "Service" => "services",
        "ConfigMap" => "configmaps",
        "Ingress" => "ingresses",
        "PersistentVolumeClaim" => "persistentvolumeclaims",
        "Secret" => "secrets",
        "Job" => "jobs",
        _ => return None,
    })
}

/// `helm template` output less its hooks: what Helm keeps as a release's manifest.
pub fn manifest_without_hooks(rendered: &str) -> String {
    let mut docs: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in rendered.lines() {
        if line == "---" {
            docs.push(std::mem::take(&mut current));
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push(current);
    docs.into_iter()
        .filter(|d| !d.contains("helm.sh/hook:"))
        .collect()
}

/// Plain scalars YAML 1.1 reads as octal numbers (`defaultMode: 0440` is 288), as Helm reads them.
fn yaml11(manifest: &str) -> String {
    manifest
        .lines()
        .map(|line| {
            let Some((key, value)) = line.split_once(": ") else {
                return line.to_string();
            };
            let v = value.trim();
            if v.len() > 1 && v.starts_with('0') && v.chars().all(|c| ('0'..='7').contains(&c)) {
                let n = i64::from_str_radix(&v[1..], 8).unwrap_or_default();
                format!("{key}: {n}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The objects of `manifest` as the API server stores them once Helm applied them.
pub fn objects_as_applied(manifest: &str, namespace: &str) -> Vec<(String, String, Value)> {
    use serde::Deserialize;
    let text = yaml11(manifest);
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let Ok(mut obj) = Value::deserialize(doc) else {
            continue;
        };
        let Some(plural) = obj["kind"].as_str().and_then(plural_of) else {
            continue;
        };
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or(namespace)
            .to_string();
        let fields = fields_v1(&obj);
        obj["metadata"]["namespace"] = json!(ns);
        obj["metadata"]["annotations"]["meta.helm.sh/release-namespace"] = json!(ns);
        obj["metadata"]["managedFields"] = json!([{
            "manager": "helm", "operation": "Apply", "apiVersion": obj["apiVersion"], "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }]);
        obj["metadata"]["creationTimestamp"] = json!("2026-11-22T00:00:00Z");
        obj["metadata"]["generation"] = json!(1);
        server_defaults(&mut obj);
        out.push((plural.to_string(), ns, obj));
    }
    out
}

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(key).or_insert(value);
    }
}

/// What a real API server fills in for the kinds the charts render.
fn server_defaults(obj: &mut Value) {
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    match kind.as_str() {
        "Deployment" | "StatefulSet" => {
            let spec = &mut obj["spec"];
            set_default(spec, "revisionHistoryLimit", json!(10));
            if kind == "Deployment" {
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
            } else {
                set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                if let Some(claims) = spec["volumeClaimTemplates"].as_array_mut() {
                    for c in claims {
                        set_default(c, "apiVersion", json!("v1"));
                        set_default(c, "kind", json!("PersistentVolumeClaim"));
                        set_default(&mut c["spec"], "volumeMode", json!("Filesystem"));
                        c["status"] = json!({"phase": "Pending"});
                    }
                }
            }
            let pod = &mut spec["template"]["spec"];
            set_default(pod, "dnsPolicy", json!("ClusterFirst"));
            set_default(pod, "restartPolicy", json!("Always"));
            set_default(pod, "schedulerName", json!("default-scheduler"));
            set_default(pod, "terminationGracePeriodSeconds", json!(30));
            for list in ["containers", "initContainers"] {
                for c in pod[list].as_array_mut().into_iter().flatten() {
                    set_default(c, "imagePullPolicy", json!("IfNotPresent"));
                    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                    set_default(c, "terminationMessagePolicy", json!("File"));
                    for p in c["ports"].as_array_mut().into_iter().flatten() {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
            let replicas = spec["replicas"].clone();
            obj["status"] = json!({"replicas": replicas, "readyReplicas": replicas, "observedGeneration": 1});
        }
        "Service" => {
            let spec = &mut obj["spec"];
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            set_default(spec, "clusterIP", json!("10.96.12.34"));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, "protocol", json!("TCP"));
                let port = p["port"].clone();
                set_default(p, "targetPort", port);
            }
            obj["status"] = json!({"loadBalancer": {}});
        }
        "PersistentVolumeClaim" => {
            set_default(&mut obj["spec"], "volumeMode", json!("Filesystem"));
            obj["status"] = json!({"phase": "Bound"});
        }
        "Ingress" => obj["status"] = json!({"loadBalancer": {}}),
        _ => {}
    }
}

/// The `fieldsV1` set of every field `obj` sets, keyed as the API server keys list entries.
fn fields_v1(obj: &Value) -> Value {
    fn walk(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (format!("f:{k}"), walk(v)))
                    .collect::<Map<String, Value>>(),
            ),
            Value::Array(items) => {
                let key = |e: &Value| -> Option<Value> {
                    for k in [
                        &["containerPort", "protocol"][..],
                        &["port", "protocol"],
                        &["name"],
                        &["mountPath"],
                    ] {
                        if e.get(k[0]).is_some() {
                            let mut key = Map::new();
                            for f in k {
                                key.insert(f.to_string(), e.get(*f).cloned().unwrap_or(json!("TCP")));
                            }
                            return Some(Value::Object(key));
                        }
                    }
                    None
                };
                if items.is_empty() || items.iter().any(|e| key(e).is_none()) {
                    return json!({});
                }
                let mut out = Map::new();
                for e in items {
                    let mut fields = walk(e);
                    fields["."] = json!({});
                    out.insert(format!("k:{}", key(e).unwrap_or_default()), fields);
                }
                Value::Object(out)
            }
            _ => json!({}),
        }
    }
    let mut fields = walk(obj);
    if let Some(m) = fields.as_object_mut() {
        m.remove("f:apiVersion");
        m.remove("f:kind");
        m.remove("f:status");
    }
    fields
}

/// Helm's release Secret for a revision: `data.release` is base64 of gzip of the release JSON,
/// and base64 again as Secret data on the wire.
pub fn release_secret(namespace: &str, name: &str, revision: u32, status: &str, manifest: &str) -> Value {
    let release = json!({
        "name": name, "namespace": namespace, "version": revision,
        "info": {"status": status}, "manifest": manifest,
        "config": {}, "chart": {"metadata": {"name": "chart"}},
    });
    let payload = gzipped(&[release.to_string().as_bytes()]);
    forged_release_secret(namespace, name, revision, status, &payload)
}

/// Gzip of `parts` one after the other, streamed: a bomb is never held decompressed.
pub fn gzipped(parts: &[&[u8]]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for part in parts {
        gz.write_all(part).expect("gzip");
    }
    gz.finish().expect("gzip")
}

/// A Secret named and labelled as Helm's storage of `revision` of release `name`, as anyone
/// who may write Secrets in `namespace` can create one: `payload` is what Helm base64-encodes
/// into `data.release` (gzip of the release JSON, or anything else).
pub fn forged_release_secret(
    namespace: &str,
    name: &str,
    revision: u32,
    status: &str,
    payload: &[u8],
) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {
            "name": format!("sh.helm.release.v1.{name}.v{revision}"), "namespace": namespace,
            "labels": {"owner": "helm", "name": name, "status": status, "version": revision.to_string()},
        },
        "data": {"release": b64.encode(b64.encode(payload))},
    })
}

/// A gzipped release JSON of `name` at `revision` whose manifest, once decompressed, is
/// `manifest_bytes` bytes of one character: a few hundred KiB for hundreds of MiB.
pub fn gzip_bomb(name: &str, revision: u32, manifest_bytes: usize) -> Vec<u8> {
    let head =
        format!(r#"{{"name":"{name}","version":{revision},"info":{{"status":"deployed"}},"manifest":""#);
    let chunk = vec![b'x'; 1 << 20];
    let mut parts: Vec<&[u8]> = vec![head.as_bytes()];
    parts.extend(std::iter::repeat_n(&chunk[..], manifest_bytes >> 20));
    parts.push(br#""}"#);
    gzipped(&parts)
}

/// A 20 KB manifest whose ConfigMap expands to billions of strings through aliases.
pub fn alias_bomb_manifest() -> String {
    let mut data = String::from("  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let prev = format!("*l{}", i - 1);
        data.push_str(&format!("  l{i}: &l{i} [{}]\n", [prev.as_str(); 9].join(", ")));
    }
    while data.len() < 20_000 {
        data.push_str(&format!("  x{}: *l8\n", data.len()));
    }
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\n  labels:\n    app.kubernetes.io/managed-by: Helm\ndata:\n{data}"
    )
}
