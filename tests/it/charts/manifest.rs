//! Reading rendered manifests: dotted-path lookups and the pod spec of every workload kind.

use serde_yaml_ng::Value;

pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

pub fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

pub fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn kind(doc: &Value) -> &str {
    str_at(doc, "kind")
}

pub fn id(doc: &Value) -> String {
    format!("{}/{}", kind(doc), str_at(doc, "metadata.name"))
}

pub fn pod_spec(doc: &Value) -> Option<&Value> {
    match kind(doc) {
        "Deployment" | "StatefulSet" | "Job" | "DaemonSet" | "ReplicaSet" => get(doc, "spec.template.spec"),
        "CronJob" => get(doc, "spec.jobTemplate.spec.template.spec"),
        "Pod" => get(doc, "spec"),
        _ => None,
    }
}

/// (container, is_init) for every container of a pod.
pub fn containers(spec: &Value) -> impl Iterator<Item = (&Value, bool)> {
    let init = seq(spec, "initContainers").iter().map(|c| (c, true));
    init.chain(seq(spec, "containers").iter().map(|c| (c, false)))
}
