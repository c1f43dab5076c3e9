//! Helm's release storage, read the way Helm reads it: revision `<rev>` of release `<name>` is
//! the Secret `sh.helm.release.v1.<name>.v<rev>` in the release's namespace, whose
//! `data.release` is base64 of gzip of the release JSON (Kubernetes adds its own base64 on the
//! wire). Its `manifest` field is the YAML stream of the objects the chart rendered, hooks left
//! out.
//!
//! A store's team can write that Secret, so it is decoded as hostile input, within bounds: at
//! most [`MAX_RELEASE_BYTES`] decompressed, streamed (never allocating past the bound); only
//! name, version, `info.status` and the manifest are read from the JSON; the manifest is scanned
//! for anchors, aliases, tags, depth and size before any value is built, then read one document
//! at a time; and every object it names is checked against the store's confinement.
use std::io::{self, Read};

use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::{DeflateDecoder, GzDecoder};
use flate2::write::DeflateEncoder;
use serde::Deserialize;
use serde_json::Value;

use crate::desired::MANAGED_BY;
use crate::desired::scan_manifest;
use crate::desired::tenancy::confinement;
use crate::text::truncate;
use crate::untrusted::printable;

/// What the charts label their objects with (`app.kubernetes.io/managed-by: {{ .Release.Service }}`):
/// the drift check lists live objects by it.
pub const HELM_MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=Helm";
/// Largest release JSON decoded, decompressed: the chart's templates and files are in it too
/// (base64), about 150 KB with the manifest for the Medusa chart.
pub const MAX_RELEASE_BYTES: usize = 8 << 20;
/// Largest manifest read, about 50 times an engine chart's (Medusa: 42 KB): decoding costs about
/// 17 ms a MiB (scan, serde, compression), so this bounds a decode's time.
pub const MAX_MANIFEST_BYTES: usize = 2 << 20;
/// Most documents a manifest may hold, about 45 times an engine chart's (Medusa: 11): each
/// object kept costs about 50 µs to compress, however small.
pub const MAX_MANIFEST_DOCUMENTS: usize = 500;
/// Most YAML nodes (scalars, maps, lists) a manifest may hold, about 55 times an engine
/// chart's (Medusa: 1,800): bounds the values built from a manifest of small nodes.
pub const MAX_MANIFEST_NODES: usize = 100_000;
/// Gzip's magic bytes, as Helm checks them before decompressing.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
/// Confinement violations listed per release; the rest are counted.
const MAX_REFUSED: usize = 20;
/// Characters of tenant-written text (kinds, names) kept in a message.
const MAX_SHOWN: usize = 120;

/// A revision of a store's release: what the drift check compares and health judges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseRef {
    pub store: String,
    pub namespace: String,
    pub name: String,
    pub revision: u32,
}

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
    deflated: Box<[u8]>,
}

impl RenderedObject {
    /// The object as the chart rendered it.
    pub fn body(&self) -> Result<Value, String> {
        let mut text = Vec::new();
        DeflateDecoder::new(&self.deflated[..])
            .read_to_end(&mut text)
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&text).map_err(|e| e.to_string())
    }

    /// Bytes held for this object.
    pub fn held_bytes(&self) -> usize {
        self.deflated.len()
            + self.api_version.len()
            + self.kind.len()
            + self.namespace.len()
            + self.name.len()
    }
}

/// A release revision as decoded from its Secret.
#[derive(Debug, Clone, Default)]
pub struct DecodedRelease {
    /// The release's name and version as its body says (the Secret's name may say otherwise).
    pub name: String,
    pub version: u32,
    /// `info.status` of the body: deployed, failed, superseded, pending-upgrade, ...
    pub status: String,
    /// The objects a drift check can compare: those carrying Helm's managed-by label (the LIST
    /// finds no other), Secrets left out (their data is never kept).
    pub objects: Vec<RenderedObject>,
    /// The first objects of the manifest that a store's release may not hold, as
    /// `Deployment kube-system/coredns: <why>`; empty when the manifest stays in the store.
    pub refused: Vec<String>,
    /// Objects refused beyond those listed.
    pub refused_more: usize,
}

impl DecodedRelease {
    /// Bytes held for this release's objects.
    pub fn held_bytes(&self) -> usize {
        self.objects.iter().map(RenderedObject::held_bytes).sum()
    }

    /// Checks one object of the manifest against the store's confinement; keeps it, compressed
    /// with `deflate`, when a drift check can compare it.
    fn add(
        &mut self,
        document: usize,
        value: Value,
        namespace: &str,
        deflate: &mut DeflateEncoder<Vec<u8>>,
    ) -> Result<(), String> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let Some(kind) = value.get("kind").and_then(Value::as_str) else {
            if !value.is_null() {
                self.refuse(format!(
                    "document {document}: not a Kubernetes object (it has no kind)"
                ));
            }
            return Ok(()); // an empty document (a template that rendered nothing)
        };
        let api_version = text(value.get("apiVersion"));
        let name = text(value.pointer("/metadata/name"));
        // A namespace that is not text is no namespace of the store's.
        let named = match value.pointer("/metadata/namespace") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(ns)) => ns.clone(),
            Some(other) => other.to_string(),
        };
        if let Some(why) = confinement(&api_version, kind, &named, namespace) {
            let object = if named.is_empty() {
                format!("{kind} {name}")
            } else {
                format!("{kind} {named}/{name}")
            };
            self.refuse(format!("{}: {}", shown(&object), shown(&why)));
        }
        let (label, helm) = HELM_MANAGED_SELECTOR
            .split_once('=')
            .unwrap_or((MANAGED_BY, "Helm"));
        if kind == "Secret"
            || value.pointer("/metadata/labels").and_then(|l| l.get(label)) != Some(&Value::from(helm))
        {
            return Ok(());
        }
        // Compressed straight from the value: no second copy of a large object as text.
        serde_json::to_writer(&mut *deflate, &value).map_err(|e| e.to_string())?;
        let deflated = deflate.reset(Vec::new()).map_err(|e| e.to_string())?;
        self.objects.push(RenderedObject {
            api_version,
            kind: kind.to_string(),
            namespace: if named.is_empty() {
                namespace.to_string()
            } else {
                named
            },
            name,
            deflated: deflated.into_boxed_slice(),
        });
        Ok(())
    }

    fn refuse(&mut self, why: String) {
        if self.refused.len() < MAX_REFUSED {
            self.refused.push(why);
        } else {
            self.refused_more += 1;
        }
    }
}

/// Tenant-written text for a message: printable, and short.
fn shown(text: &str) -> String {
    printable(&truncate(text, MAX_SHOWN)).into_owned()
}

#[derive(Deserialize)]
struct ReleaseJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: u32,
    #[serde(default)]
    info: Info,
    #[serde(default)]
    manifest: String,
}

#[derive(Deserialize, Default)]
struct Info {
    #[serde(default)]
    status: String,
}

/// Decodes a release from its Secret's `data.release` (Kubernetes' base64 already undone), for
/// the store namespace `namespace`. Blocking and CPU-bound (up to tens of milliseconds): run it
/// off the async runtime.
pub fn decode_release(payload: &[u8], namespace: &str) -> Result<DecodedRelease, String> {
    let json = release_json(payload)?;
    let release: ReleaseJson =
        serde_json::from_slice(&json).map_err(|e| format!("data.release is not a Helm release: {e}"))?;
    drop(json);
    if release.manifest.len() > MAX_MANIFEST_BYTES {
        return Err(format!(
            "manifest is larger than {} MiB",
            MAX_MANIFEST_BYTES >> 20
        ));
    }
    scan_manifest(&release.manifest, MAX_MANIFEST_DOCUMENTS, MAX_MANIFEST_NODES)
        .map_err(|e| format!("manifest, {e}"))?;
    let mut decoded = DecodedRelease {
        name: release.name,
        version: release.version,
        status: release.info.status,
        ..Default::default()
    };
    // One compressor for every object: setting one up costs more than a small object's data;
    // the fast level halves the time incompressible (hostile) text takes, for 8% more memory.
    let mut deflate = DeflateEncoder::new(Vec::new(), Compression::fast());
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(&release.manifest).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| format!("manifest document {}: {e}", i + 1))?;
        decoded.add(i + 1, value, namespace, &mut deflate)?;
    }
    Ok(decoded)
}

/// The release JSON: base64, then gzip when it starts with gzip's magic (Helm reads
/// uncompressed payloads too), streamed and cut at [`MAX_RELEASE_BYTES`] either way.
fn release_json(payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut text = base64::read::DecoderReader::new(Unwrapped(payload), &STANDARD);
    let mut magic = [0u8; GZIP_MAGIC.len()];
    let mut head = 0;
    while head < magic.len() {
        match text.read(&mut magic[head..]) {
            Ok(0) => break,
            Ok(n) => head += n,
            Err(e) => return Err(format!("data.release is not base64: {e}")),
        }
    }
    let stream = (&magic[..head]).chain(text);
    let read = if magic[..head] == GZIP_MAGIC {
        read_bounded(GzDecoder::new(stream))
    } else {
        read_bounded(stream)
    };
    read.map_err(|e| {
        if e.get_ref().is_some_and(|inner| inner.is::<base64::DecodeError>()) {
            format!("data.release is not base64: {e}")
        } else {
            format!("data.release is not valid gzip: {e}")
        }
    })?
}

/// All of `reader`, or an error once it passes [`MAX_RELEASE_BYTES`]; never allocates past it.
fn read_bounded(reader: impl Read) -> io::Result<Result<Vec<u8>, String>> {
    let mut reader = reader.take(MAX_RELEASE_BYTES as u64 + 1);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(Ok(out)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if out.len() + n > MAX_RELEASE_BYTES {
            return Ok(Err(format!(
                "release is larger than {} MiB decompressed",
                MAX_RELEASE_BYTES >> 20
            )));
        }
        // Doubling, but capped at the bound rather than past it.
        if out.capacity() < out.len() + n {
            out.reserve_exact(out.len().max(n).min(MAX_RELEASE_BYTES - out.len()));
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Base64 text with its line breaks and spaces skipped, as a reader.
struct Unwrapped<'a>(&'a [u8]);

impl Read for Unwrapped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < buf.len() {
            let blank = self.0.iter().take_while(|b| b.is_ascii_whitespace()).count();
            self.0 = &self.0[blank..];
            let run = self
                .0
                .iter()
                .take(buf.len() - written)
                .take_while(|b| !b.is_ascii_whitespace())
                .count();
            if run == 0 {
                break;
            }
            buf[written..written + run].copy_from_slice(&self.0[..run]);
            written += run;
            self.0 = &self.0[run..];
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// `data.release` as Helm writes it: base64 of gzip of the release JSON.
    fn encoded(release: &Value) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(release.to_string().as_bytes()).unwrap();
        STANDARD.encode(gz.finish().unwrap()).into_bytes()
    }

    const MANIFEST: &str = "---\n# Source: woocommerce/templates/wordpress-deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: acme-wordpress\n  labels:\n    app.kubernetes.io/managed-by: Helm\nspec:\n  replicas: 1\n  template:\n    spec:\n      volumes:\n        - name: creds\n          secret:\n            defaultMode: 0440\n---\n# Source: woocommerce/templates/secret.yaml\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: acme-credentials\n  labels:\n    app.kubernetes.io/managed-by: Helm\ndata:\n  password: c2VjcmV0\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unlabelled\n  namespace: elsewhere\n";

    fn json_release(manifest: &str) -> Value {
        serde_json::json!({"name": "acme", "version": 3, "info": {"status": "deployed", "notes": "x"},
            "manifest": manifest, "chart": {"templates": [{"name": "t", "data": "eA=="}]},
            "config": {"store": {"name": "acme"}}})
    }

    #[test]
    fn reads_a_release_as_helm_stores_it() {
        let release = json_release(MANIFEST);
        let decoded = decode_release(&encoded(&release), "store-acme").unwrap();
        assert_eq!(
            (decoded.name.as_str(), decoded.version, decoded.status.as_str()),
            ("acme", 3, "deployed")
        );
        // Refused, and still listed with the comparable objects (a caller compares none of them).
        assert_eq!(
            decoded.refused,
            ["ConfigMap elsewhere/unlabelled: ConfigMap is in namespace elsewhere, outside store-acme"]
        );
        // Helm reads uncompressed payloads too, and the base64 may be wrapped.
        let plain = STANDARD.encode(release.to_string());
        let wrapped: Vec<u8> = plain
            .as_bytes()
            .chunks(76)
            .flat_map(|line| line.iter().copied().chain(*b"\r\n"))
            .collect();
        let decoded = decode_release(&wrapped, "store-acme").unwrap();
        assert_eq!((decoded.version, decoded.objects.len()), (3, 1));
        assert!(
            decode_release(b"%%%", "store-acme")
                .unwrap_err()
                .contains("not base64")
        );
        let garbled = STANDARD.encode(b"\x1f\x8b\x08garbage");
        let why = decode_release(garbled.as_bytes(), "store-acme").unwrap_err();
        assert!(why.contains("not valid gzip"), "{why}");
        let not_json = STANDARD.encode(b"[1, 2]");
        let why = decode_release(not_json.as_bytes(), "store-acme").unwrap_err();
        assert!(why.starts_with("data.release is not a Helm release"), "{why}");
    }

    #[test]
    fn keeps_labelled_objects_other_than_secrets() {
        let objects = decode_release(&encoded(&json_release(MANIFEST)), "store-acme")
            .unwrap()
            .objects;
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

    #[test]
    fn objects_outside_the_store_are_refused_and_listed() {
        let mut manifest = String::from(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: coredns, namespace: kube-system}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: \"own\\e[2J\"}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: store-acme}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: n, namespace: 7}\n---\n[1, 2]\n",
        );
        for i in 0..30 {
            manifest.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: x}}\n"
            ));
        }
        let decoded = decode_release(&encoded(&json_release(&manifest)), "store-acme").unwrap();
        assert_eq!(
            decoded.refused[..4],
            [
                "Deployment kube-system/coredns: Deployment is in namespace kube-system, outside store-acme",
                "ClusterRoleBinding own\\u{1b}[2J: ClusterRoleBinding (rbac.authorization.k8s.io/v1) is not a kind a store's release may hold",
                "ConfigMap 7/n: ConfigMap is in namespace 7, outside store-acme",
                "document 5: not a Kubernetes object (it has no kind)",
            ]
        );
        assert_eq!((decoded.refused.len(), decoded.refused_more), (MAX_REFUSED, 14));
    }

    #[test]
    fn hostile_payloads_fail_within_bounds() {
        let decode = |release: &Value| decode_release(&encoded(release), "store-acme");
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
        let why = decode(&json_release(bomb)).unwrap_err();
        assert_eq!(why, "manifest, line 1, column 4: anchor `&a` is not allowed");

        // Zeros compress about a thousandfold: 9 MiB of them is under 10 KiB of gzip.
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(br#"{"manifest": ""#).unwrap();
        gz.write_all(&vec![b'0'; MAX_RELEASE_BYTES + 1]).unwrap();
        let payload = STANDARD.encode(gz.finish().unwrap());
        let why = decode_release(payload.as_bytes(), "store-acme").unwrap_err();
        assert_eq!(why, "release is larger than 8 MiB decompressed");
        let plain = STANDARD.encode(vec![b' '; MAX_RELEASE_BYTES + 1]);
        let why = decode_release(plain.as_bytes(), "store-acme").unwrap_err();
        assert_eq!(why, "release is larger than 8 MiB decompressed");

        let many = "---\na: 1\n".repeat(MAX_MANIFEST_DOCUMENTS + 1);
        let why = decode(&json_release(&many)).unwrap_err();
        assert_eq!(why, "manifest, line 1001, column 1: more than 500 YAML documents");
        let wide = format!("a: [{}]\n", "1,".repeat(MAX_MANIFEST_NODES));
        let why = decode(&json_release(&wide)).unwrap_err();
        assert!(why.ends_with("more than 100000 YAML nodes"), "{why}");
        let long = format!("a: {}\n", "x".repeat(MAX_MANIFEST_BYTES));
        assert_eq!(
            decode(&json_release(&long)).unwrap_err(),
            "manifest is larger than 2 MiB"
        );
        let why = decode(&json_release(&format!("{MANIFEST}---\nx: y: z\n"))).unwrap_err();
        assert!(
            why.ends_with("mapping values are not allowed in this context"),
            "{why}"
        );
    }

    #[test]
    fn reads_exactly_up_to_the_bound() {
        let exact = vec![b'x'; MAX_RELEASE_BYTES];
        let read = read_bounded(&exact[..]).unwrap().unwrap();
        assert_eq!(
            (read.len(), read.capacity()),
            (MAX_RELEASE_BYTES, MAX_RELEASE_BYTES)
        );
        let over = vec![b'x'; MAX_RELEASE_BYTES + 1];
        assert!(read_bounded(&over[..]).unwrap().is_err());
    }
}
