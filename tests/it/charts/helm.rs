//! Running the real helm binary: lint and template a chart with a values file on stdin.

use serde_yaml_ng::{Mapping, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("STORESYNC_HELM").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let local = repo_root().join("tools/bin/helm");
    if local.is_file() {
        return local;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        if let Some(found) = std::env::split_paths(&paths)
            .map(|d| d.join("helm"))
            .find(|p| p.is_file())
        {
            return found;
        }
    }
    panic!(
        "helm not found: set STORESYNC_HELM, or run scripts/setup-tools.sh to install it into tools/bin \
         (the chart tests need the real helm binary and do not skip without it)"
    );
}

/// Runs helm with `values` piped as a values file; returns stdout or panics with stderr.
pub fn run_helm(args: &[&str], values: &Value) -> Result<String, String> {
    let mut child = Command::new(helm())
        .args(args)
        .args(["-f", "-"])
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm().display()));
    let yaml = serde_yaml_ng::to_string(values).expect("values serialize");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write values");
    let out = child.wait_with_output().expect("helm finished");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr) + &text(&out.stdout))
    }
}

pub fn render(chart: &str, release: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let args = ["template", release, chart, "--namespace", namespace];
    let out = run_helm(&args, values).unwrap_or_else(|e| panic!("helm template {chart} failed:\n{e}"));
    serde_yaml_ng::Deserializer::from_str(&out)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("helm output is YAML"))
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

pub fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("test YAML")
}

/// The values storesync passes for a store `acme` on `plan`.
pub fn platform_values(plan: &str, tls: bool, issuer: &str, secret_name: &str) -> Value {
    yaml(&format!(
        "store: {{name: acme, owner: team-acme, plan: {plan}}}\n\
         ingress:\n  enabled: true\n  className: nginx\n  host: acme.shop.example\n  \
         tls: {{enabled: {tls}, clusterIssuer: '{issuer}', secretName: '{secret_name}'}}\n\
         credentials: {{existingSecret: store-credentials}}\n"
    ))
}

pub fn chart_path(engine: &str) -> String {
    format!("charts/{engine}")
}

/// Sets a dotted path of a values mapping, creating the mappings on the way.
pub fn set_path(values: &mut Value, path: &str, value: Value) {
    let mut node = values;
    let keys: Vec<&str> = path.split('.').collect();
    for key in &keys[..keys.len() - 1] {
        node = node
            .as_mapping_mut()
            .expect("values are a mapping")
            .entry(Value::from(*key))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    node.as_mapping_mut()
        .expect("values are a mapping")
        .insert(Value::from(keys[keys.len() - 1]), value);
}
