//! Helm's release storage, read the way Helm reads it: revision `<rev>` of release `<name>` is
//! the Secret `sh.helm.release.v1.<name>.v<rev>` in the release's namespace, whose
//! `data.release` is base64 of gzip of the release JSON (Kubernetes adds its own base64 on the
//! wire). Its `manifest` field is the YAML stream of the objects the chart rendered, hooks left
//! out. Only that field is kept; chart-rendered Secrets are dropped unread.
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::Deserialize;
use serde_json::Value;

use crate::desired::MANAGED_BY;

/// What the charts label their objects with (`app.kubernetes.io/managed-by: {{ .Release.Service }}`):
/// the drift check lists live objects by it.
pub const HELM_MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=Helm";
/// Gzip's magic bytes, as Helm checks them before decompressing.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
/// Largest release JSON decompressed (Kubernetes caps a Secret at 1 MiB compressed).
const MAX_RELEASE_BYTES: u64 = 64 << 20;

/// The name of the Secret holding `revision` of release `name`.
pub fn secret_name(name: &str, revision: u32) -> String {
    format!("sh.helm.release.v1.{name}.v{revision}")
}

/// One object of a release manifest, kept compressed: a drift check holds every release's
/// objects between checks.
#[derive(Debug, Clone)]
pub struct RenderedObject {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    gzipped: Box<[u8]>,
}

impl RenderedObject {
    /// The object as the chart rendered it.
    pub fn body(&self) -> Result<Value, String> {
        let mut text = Vec::new();
        GzDecoder::new(&self.gzipped[..])
            .read_to_end(&mut text)
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&text).map_err(|e| e.to_string())
    }

    /// Bytes held for this object.
    pub fn held_bytes(&self) -> usize {
        self.gzipped.len() + self.api_version.len() + self.kind.len() + self.namespace.len() + self.name.len()
    }
}

#[derive(Deserialize)]
struct ReleaseJson {
    #[serde(default)]
    manifest: String,
}

/// The manifest of a release from its Secret's `data.release` (Kubernetes' base64 already undone).
pub fn manifest_of(payload: &[u8]) -> Result<String, String> {
    use base64::Engine;
    let text: Vec<u8> = payload
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| format!("data.release is not base64: {e}"))?;
    let json = if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        GzDecoder::new(&bytes[..])
            .take(MAX_RELEASE_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| format!("data.release is not valid gzip: {e}"))?;
        out
    } else {
        bytes
    };
    let release: ReleaseJson =
        serde_json::from_slice(&json).map_err(|e| format!("data.release is not a Helm release: {e}"))?;
    Ok(release.manifest)
}

/// The objects of a manifest that a drift check can compare: those carrying Helm's managed-by
/// label (the LIST finds no other), Secrets left out. `namespace` is the release's, for objects
/// that name none.
pub fn objects_of(manifest: &str, namespace: &str) -> Result<Vec<RenderedObject>, String> {
    use serde::Deserialize as _;
    let (label, helm) = HELM_MANAGED_SELECTOR
        .split_once('=')
        .unwrap_or((MANAGED_BY, "Helm"));
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(manifest).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| format!("manifest document {}: {e}", i + 1))?;
        let Some(kind) = value.get("kind").and_then(Value::as_str) else {
            continue; // an empty document (a template that rendered nothing)
        };
        if kind == "Secret"
            || value.pointer("/metadata/labels").and_then(|l| l.get(label)) != Some(&Value::from(helm))
        {
            continue;
        }
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(value.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        out.push(RenderedObject {
            api_version: text(value.get("apiVersion")),
            kind: kind.to_string(),
            namespace: value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace)
                .to_string(),
            name: text(value.pointer("/metadata/name")),
            gzipped: gz.finish().map_err(|e| e.to_string())?.into_boxed_slice(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// `data.release` as Helm writes it: base64 of gzip of the release JSON.
    fn encoded(release: &Value) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(release.to_string().as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD
            .encode(gz.finish().unwrap())
            .into_bytes()
    }

    const MANIFEST: &str = "---\n# Source: woocommerce/templates/wordpress-deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: acme-wordpress\n  labels:\n    app.kubernetes.io/managed-by: Helm\nspec:\n  replicas: 1\n  template:\n    spec:\n      volumes:\n        - name: creds\n          secret:\n            defaultMode: 0440\n---\n# Source: woocommerce/templates/secret.yaml\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: acme-credentials\n  labels:\n    app.kubernetes.io/managed-by: Helm\ndata:\n  password: c2VjcmV0\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unlabelled\n  namespace: elsewhere\n";

    #[test]
    fn reads_the_manifest_of_a_release_as_helm_stores_it() {
        let release = json_release();
        assert_eq!(manifest_of(&encoded(&release)).unwrap(), MANIFEST);
        // Helm reads uncompressed payloads too.
        let plain = base64::engine::general_purpose::STANDARD.encode(release.to_string());
        assert_eq!(manifest_of(plain.as_bytes()).unwrap(), MANIFEST);
        assert!(manifest_of(b"%%%").unwrap_err().contains("not base64"));
        let garbled = base64::engine::general_purpose::STANDARD.encode(b"\x1f\x8b\x08garbage");
        assert!(manifest_of(garbled.as_bytes()).unwrap_err().contains("gzip"));
    }

    fn json_release() -> Value {
        serde_json::json!({"name": "acme", "version": 3, "manifest": MANIFEST,
            "chart": {"templates": [{"name": "t", "data": "eA=="}]}, "config": {"store": {"name": "acme"}}})
    }

    #[test]
    fn keeps_labelled_objects_other_than_secrets() {
        let objects = objects_of(MANIFEST, "store-acme").unwrap();
        let names: Vec<(&str, &str, &str)> = objects
            .iter()
            .map(|o| (o.kind.as_str(), o.namespace.as_str(), o.name.as_str()))
            .collect();
        assert_eq!(names, [("Deployment", "store-acme", "acme-wordpress")]);
        let body = objects[0].body().unwrap();
        assert_eq!(body["spec"]["replicas"], 1);
        // Kept as read; the comparison reads it as Helm does (YAML 1.1 octal: 288).
        let mode = body.pointer("/spec/template/spec/volumes/0/secret/defaultMode");
        assert_eq!(mode, Some(&Value::from("0440")));
    }
}
