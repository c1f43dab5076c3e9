//! Hostile Helm release storage: forged release Secrets, as a store's team can write them in
//! its namespace, decoded the way storesync decodes them.
//!
//! 1. Each case alone: `live::decode_release` several times; the median wall time and the peak
//!    heap of one decode (a counting allocator), and whether it was refused as expected.
//! 2. The whole path: a drift check (`live::DriftCheck`) of 100 stores, each with a forged
//!    release (the cases in turn), served by an in-process API server; the peak heap of the
//!    check (the stored Secrets left out), its wall time, and the GETs of a second check.
//!
//! Exits 1 when a verdict is wrong, a decode takes over 100 ms, or the check's peak heap is
//! over 150 MiB.
//!
//! `cargo run --release --example release_bench [-- WORD]` (only the cases whose name has WORD)
// A counting global allocator measures peak heap; it only forwards to the system allocator.
#![allow(unsafe_code)]
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::{Request, Response};
use http_body_util::Full;
use serde_json::json;
use storesync::live::{
    self, DriftCheck, MAX_MANIFEST_BYTES, MAX_MANIFEST_DOCUMENTS, MAX_MANIFEST_NODES, ReleaseRef,
};

#[path = "support/alloc.rs"]
mod alloc;

use alloc::count;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

const RUNS: usize = 9;
const DRIFT_RUNS: usize = 5;
const STORES: usize = 100;
const TARGET_TIME: Duration = Duration::from_millis(100);
const TARGET_HEAP: usize = 150 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

struct Case {
    name: String,
    /// The manifest's size, for the table.
    manifest: usize,
    /// `data.release`, as Helm writes it (base64 of gzip of the release JSON): what Kubernetes
    /// caps at 1 MiB, and storesync does not count on.
    payload: Vec<u8>,
    expect: Expect,
}

#[derive(Clone, Copy)]
enum Expect {
    /// Decodes, and stays in the store's namespace.
    Decoded,
    /// Decodes, and names objects outside the store's namespace.
    Confined,
    /// Does not decode: the reason starts so.
    Refused(&'static str),
}

/// Helm's encoding of revision 2 of release `acme` whose manifest is `manifest`, one part after
/// the other, streamed through gzip.
fn payload(manifest: &[&[u8]]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(br#"{"name":"acme","version":2,"info":{"status":"deployed"},"manifest":""#)
        .expect("gzip");
    for part in manifest {
        // The part as a JSON string, less its quotes.
        let text = serde_json::to_string(std::str::from_utf8(part).expect("UTF-8")).expect("JSON");
        gz.write_all(&text.as_bytes()[1..text.len() - 1]).expect("gzip");
    }
    gz.write_all(br#""}"#).expect("gzip");
    STANDARD.encode(gz.finish().expect("gzip")).into_bytes()
}

fn case(name: String, manifest: &str, expect: Expect) -> Case {
    Case {
        name,
        manifest: manifest.len(),
        payload: payload(&[manifest.as_bytes()]),
        expect,
    }
}

/// A chart-rendered ConfigMap, labelled as the engine charts label theirs.
fn configmap(name: &str, data: &str) -> String {
    format!(
        "---\n# Source: woocommerce/templates/configmap.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    app.kubernetes.io/managed-by: Helm\n    app.kubernetes.io/instance: acme\ndata:\n{data}"
    )
}

/// A Deployment as the engine charts render one, about 2 KB.
fn deployment(name: &str) -> String {
    format!(
        "---\n# Source: woocommerce/templates/wordpress-deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels:\n    app.kubernetes.io/name: wordpress\n    app.kubernetes.io/instance: acme\n    app.kubernetes.io/managed-by: Helm\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: wordpress\n      app.kubernetes.io/instance: acme\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: wordpress\n        app.kubernetes.io/instance: acme\n    spec:\n      securityContext:\n        fsGroup: 33\n        runAsNonRoot: true\n      containers:\n        - name: wordpress\n          image: docker.io/library/wordpress:6.6-php8.3-apache\n          ports:\n            - name: http\n              containerPort: 80\n          env:\n            - name: WORDPRESS_DB_HOST\n              value: acme-mariadb\n            - name: WORDPRESS_DB_USER\n              value: wordpress\n            - name: WORDPRESS_DB_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: acme-credentials\n                  key: db-password\n          resources:\n            requests: {{cpu: 250m, memory: 256Mi}}\n            limits: {{cpu: '1', memory: 512Mi}}\n          readinessProbe:\n            httpGet: {{path: /wp-login.php, port: http}}\n            periodSeconds: 10\n          volumeMounts:\n            - name: content\n              mountPath: /var/www/html/wp-content\n      volumes:\n        - name: content\n          persistentVolumeClaim:\n            claimName: acme-content\n"
    )
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // A manifest of the size of an engine chart's (WooCommerce: 21 KB; Medusa: 42 KB).
    let mut reference = configmap("acme-php", "  php.ini: |\n    memory_limit = 256M\n");
    let mut i = 0;
    while reference.len() < 21_000 {
        reference.push_str(&deployment(&format!("acme-{i}")));
        i += 1;
    }
    cases.push(case(
        format!("reference: {} objects, as a chart renders them", i + 1),
        &reference,
        Expect::Decoded,
    ));

    // Nine levels, each a list of nine aliases of the level before: 9^9 leaves per use of l8.
    let mut laughs = String::from("  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let prev = format!("*l{}", i - 1);
        laughs.push_str(&format!("  l{i}: &l{i} [{}]\n", [prev.as_str(); 9].join(", ")));
    }
    while laughs.len() < 20_000 {
        laughs.push_str(&format!("  x{}: *l8\n", laughs.len()));
    }
    let bomb = configmap("lol", &laughs);
    cases.push(case(
        "alias bomb: 20 KB, 9^9 leaves per alias".into(),
        &bomb,
        Expect::Refused("manifest, line 11, column 7: anchor `&l0` is not allowed"),
    ));

    // 300 MiB of one character compresses to 300 KB: a Secret Kubernetes accepts.
    let chunk = vec![b'x'; 1 << 20];
    let chunks: Vec<&[u8]> = vec![&chunk[..]; 300];
    cases.push(Case {
        name: "gzip bomb: 300 MiB decompressed".into(),
        manifest: 300 << 20,
        payload: payload(&chunks),
        expect: Expect::Refused("release is larger than 8 MiB decompressed"),
    });

    // The smallest objects that are objects, to the manifest's bound.
    let mut tiny = String::new();
    let mut n = 0;
    while tiny.len() < MAX_MANIFEST_BYTES - 100 {
        tiny.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{n}}}\n"
        ));
        n += 1;
    }
    cases.push(case(
        format!("{} tiny documents, 2 MiB", count(n)),
        &tiny,
        Expect::Refused("manifest, line 2001, column 1: more than 500 YAML documents"),
    ));
    // As many objects as the budgets let through, each labelled, so each is kept.
    let most: String = (0..MAX_MANIFEST_DOCUMENTS)
        .map(|i| configmap(&format!("c{i}"), "  k: v\n"))
        .collect();
    cases.push(case(
        format!("{MAX_MANIFEST_DOCUMENTS} small objects, kept"),
        &most,
        Expect::Decoded,
    ));
    let flat = format!("  k: [{}]\n", "1,".repeat(MAX_MANIFEST_NODES));
    cases.push(case(
        format!("{} numbers in a list", count(MAX_MANIFEST_NODES)),
        &configmap("wide", &flat),
        Expect::Refused("manifest, line 11, column 199969: more than 100000 YAML nodes"),
    ));

    // Big values, few nodes: the manifest is read to its end, where the error is.
    let value = format!("  k: {}\n", "v".repeat(64 << 10));
    let mut big = String::new();
    let mut i = 0;
    while big.len() + value.len() + 300 < MAX_MANIFEST_BYTES {
        big.push_str(&configmap(&format!("c{i}"), &value));
        i += 1;
    }
    cases.push(case(
        format!("syntax error after {i} objects of 64 KiB, 2 MiB"),
        &format!("{big}---\nx: y: z\n"),
        Expect::Refused("manifest, line 343, column 5: mapping values are not allowed in this context"),
    ));
    cases.push(case(
        format!("{i} objects of 64 KiB, 2 MiB, kept"),
        &big,
        Expect::Decoded,
    ));
    let keys: String = (0..31)
        .map(|k| format!("  k{k}: {}\n", "v".repeat(64 << 10)))
        .collect();
    cases.push(case(
        "one object of 2 MiB, kept".into(),
        &configmap("big", &keys),
        Expect::Decoded,
    ));
    // Text that does not compress: the costliest to keep.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |n: usize| -> String {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"[(seed % 64) as usize],
                )
            })
            .collect()
    };
    for size in [64 << 10, 3 << 10] {
        let mut random = String::new();
        let mut i = 0;
        while random.len() + size + 300 < MAX_MANIFEST_BYTES && i < MAX_MANIFEST_DOCUMENTS {
            random.push_str(&configmap(&format!("c{i}"), &format!("  k: {}\n", noise(size))));
            i += 1;
        }
        cases.push(case(
            format!("{i} objects of {} KiB of random text, kept", size >> 10),
            &random,
            Expect::Decoded,
        ));
    }
    let keys: String = (0..120)
        .map(|k| format!("  k{k}: {}\n", "v".repeat(64 << 10)))
        .collect();
    cases.push(case(
        "one object of 7.5 MiB".into(),
        &configmap("big", &keys),
        Expect::Refused("manifest is larger than 2 MiB"),
    ));

    let outside = "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: coredns, namespace: kube-system}\n\
                   ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: owned}\n";
    cases.push(case(
        "objects in kube-system and cluster-wide".into(),
        &format!("{reference}{outside}"),
        Expect::Confined,
    ));
    cases
}

/// Runs `f` `RUNS` times: the median wall time, the peak heap over what was held before.
fn measure<T>(mut f: impl FnMut() -> T) -> (Duration, usize, T) {
    let mut times = Vec::with_capacity(RUNS);
    let mut peak = 0;
    let mut last = None;
    for _ in 0..RUNS {
        drop(last.take());
        let base = alloc::mark();
        let start = Instant::now();
        let out = f();
        times.push(start.elapsed());
        peak = peak.max(alloc::peak_since(base));
        last = Some(out);
    }
    times.sort();
    (times[RUNS / 2], peak, last.expect("runs"))
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// Requests an API server in process answered: GETs of Secrets, and those not made as the
/// store's helm identity.
#[derive(Default)]
struct Served {
    gets: AtomicUsize,
    strangers: AtomicUsize,
}

/// An API server in process that serves each store's forged release Secret, and empty LISTs.
fn api_server(secrets: Arc<BTreeMap<String, Bytes>>, served: Arc<Served>) -> kube::Client {
    let service = tower::service_fn(move |request: Request<kube::client::Body>| {
        let path = request.uri().path();
        let ns = path.split('/').nth(4).unwrap_or_default();
        let body = match secrets.get(ns) {
            Some(secret) if path.contains("/secrets/") => {
                served.gets.fetch_add(1, Ordering::Relaxed);
                let user = request.headers().get("impersonate-user");
                let expected = format!("system:serviceaccount:{ns}:storesync-helm");
                if user.and_then(|u| u.to_str().ok()) != Some(expected.as_str()) {
                    served.strangers.fetch_add(1, Ordering::Relaxed);
                }
                secret.clone()
            }
            _ => Bytes::from_static(br#"{"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}"#),
        };
        async move { Ok::<_, std::io::Error>(Response::new(Full::new(body))) }
    });
    kube::Client::new(service, "default")
}

/// Drift checks of `STORES` stores, each with a forged release (the cases in turn), each from
/// a cold cache as after a restart: the median wall time and the highest peak heap of a check,
/// then the GETs and verdicts of a second check. True when within the targets.
fn drift_check(cases: &[Case]) -> bool {
    let refs: Vec<ReleaseRef> = (0..STORES)
        .map(|i| ReleaseRef {
            store: format!("s{i:03}"),
            namespace: format!("store-s{i:03}"),
            name: "acme".into(),
            revision: 2,
        })
        .collect();
    // Built before any measure starts: the cluster's storage is not storesync's memory.
    let secrets: BTreeMap<String, Bytes> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                "metadata": {"name": "sh.helm.release.v1.acme.v2", "namespace": r.namespace},
                "data": {"release": STANDARD.encode(&cases[i % cases.len()].payload)}});
            (r.namespace.clone(), Bytes::from(secret.to_string()))
        })
        .collect();
    let stored: usize = secrets.values().map(Bytes::len).sum();
    let secrets = Arc::new(secrets);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    let (mut times, mut peak, mut held, mut right) = (Vec::new(), 0, 0, true);
    let mut refused = 0;
    for _ in 0..DRIFT_RUNS {
        let served = Arc::new(Served::default());
        let client = api_server(secrets.clone(), served.clone());
        let check = DriftCheck::new(Duration::ZERO);
        let base = alloc::mark();
        let start = Instant::now();
        let first = runtime.block_on(check.check(&client, &refs));
        times.push(start.elapsed());
        peak = peak.max(alloc::peak_since(base));
        held = alloc::current().saturating_sub(base);
        let first_gets = served.gets.swap(0, Ordering::Relaxed);
        let second = runtime.block_on(check.check(&client, &refs));
        right &= first.is_ok() && second.is_ok() && first_gets == STORES;
        right &= served.gets.load(Ordering::Relaxed) == 0 && served.strangers.load(Ordering::Relaxed) == 0;
        let reasons = check.refused(&refs);
        refused = reasons.len();
        for (i, r) in refs.iter().enumerate() {
            let reason = reasons.get(&r.store);
            right &= match cases[i % cases.len()].expect {
                Expect::Decoded => reason.is_none(),
                Expect::Confined => reason.is_some_and(|why| why.contains("reaches outside")),
                Expect::Refused(start) => reason.is_some_and(|why| why.contains(start)),
            };
        }
    }
    times.sort();
    let within = peak <= TARGET_HEAP;
    println!(
        "\ndrift check of {STORES} stores, each with a forged release ({:.1} MiB of Secrets served), \
         from a cold cache, {DRIFT_RUNS} runs: median {:.0} ms, peak heap {:.1} MiB, {:.1} MiB held \
         after; one GET per store (as its helm identity), none on a second check; {refused} stores \
         refused{}{}",
        stored as f64 / MIB,
        times[DRIFT_RUNS / 2].as_secs_f64() * 1000.0,
        peak as f64 / MIB,
        held as f64 / MIB,
        if right { "" } else { "; WRONG VERDICTS OR GETS" },
        if within { "" } else { "; OVER TARGET" },
    );
    right && within
}

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let cases: Vec<Case> = cases().into_iter().filter(|c| c.name.contains(&filter)).collect();
    let mut failed = false;
    println!("| case | manifest | Secret | median of {RUNS} | peak heap | verdict |");
    println!("|---|---:|---:|---:|---:|---|");
    for case in &cases {
        let (median, peak, decoded) = measure(|| live::decode_release(&case.payload, "store-acme"));
        let (right, verdict) = match (&decoded, case.expect) {
            (Ok(d), Expect::Decoded) if d.refused.is_empty() => (
                true,
                format!(
                    "decoded, {} objects kept ({})",
                    d.objects.len(),
                    size(d.held_bytes())
                ),
            ),
            (Ok(d), Expect::Confined) if !d.refused.is_empty() => (
                true,
                format!("decoded, {} objects refused: {}", d.refused.len(), d.refused[0]),
            ),
            (Ok(d), _) => (false, format!("DECODED, unexpectedly: {:?}", d.refused)),
            (Err(why), Expect::Refused(start)) if why.starts_with(start) => (true, format!("refused: {why}")),
            (Err(why), _) => (false, format!("REFUSED, unexpectedly: {why}")),
        };
        let within = median <= TARGET_TIME;
        failed |= !right || !within;
        println!(
            "| {} | {} | {} | {:.2} ms | {:.2} MiB | {verdict}{} |",
            case.name,
            size(case.manifest),
            size(case.payload.len()),
            median.as_secs_f64() * 1000.0,
            peak as f64 / MIB,
            if within { "" } else { "; OVER TARGET" }
        );
    }
    if !cases.is_empty() {
        failed |= !drift_check(&cases);
    }
    println!(
        "\ntargets: {} ms per decode; {} MiB peak heap for a drift check of {STORES} forged releases",
        TARGET_TIME.as_millis(),
        TARGET_HEAP >> 20
    );
    if failed {
        std::process::exit(1);
    }
}
