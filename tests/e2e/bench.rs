//! The sync benchmark (STORESYNC_E2E_BENCH=1, STORESYNC_E2E_BENCH_STORES, default 20): the first
//! sync of N stores, a no-op sync of the same commit, and for comparison what a naive reconciler
//! pays for the same no-op: N sequential `helm upgrade --install` with unchanged values.
use std::process::Command;
use std::time::Duration;

use super::catalog::{Platform, StoreFile, StoresRepo};
use super::cluster::{helm_history, release_secret_labels};
use super::harness::{Suite, admin_helm, admin_kubectl, helm, namespace, path_str, run, tiny_chart};
use super::identity::helm_user;

const NO_OP_RUNS: usize = 3;

fn stores_wanted() -> usize {
    std::env::var("STORESYNC_E2E_BENCH_STORES")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn per_store(d: Duration, n: usize) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0 / n as f64)
}

#[test]
fn bench_sync_of_many_stores() {
    if std::env::var("STORESYNC_E2E_BENCH").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: set STORESYNC_E2E=1, STORESYNC_E2E_BENCH=1 and KUBECONFIG to run the sync benchmark"
        );
        return;
    }
    let Some(suite) = Suite::start("benchmark") else {
        return;
    };
    let n = stores_wanted();
    let platform = Platform {
        max_stores: n.max(50) as u32,
        ..Platform::default()
    };
    let stores: Vec<String> = (0..n).map(|i| suite.store(&format!("bench-{i:04}"))).collect();
    let repo = StoresRepo::new(&platform);
    for s in &stores {
        repo.put(&StoreFile::new(s).value("message", s));
    }
    let sha = repo.commit(&format!("{n} stores"));

    let first = suite.apply(&repo, &sha, &[]);
    first.expect_code(0);
    assert_eq!(first.result_summary("applied"), n as u64, "{}", first.out);
    let mut no_ops: Vec<Duration> = (0..NO_OP_RUNS)
        .map(|_| {
            let sync = suite.apply(&repo, &sha, &[]);
            sync.expect_code(0);
            assert_eq!(
                sync.result_summary("unchanged"),
                n as u64,
                "not a no-op:\n{}",
                sync.out
            );
            sync.out.elapsed
        })
        .collect();
    no_ops.sort();

    // The same releases, values and release label, upgraded one after another by helm itself,
    // as the identity storesync gives helm: the restricted one, acting as the store's own.
    let values_dir = tempfile::tempdir().expect("temp dir");
    let mut jobs = Vec::new();
    for s in &stores {
        let ns = namespace(s);
        let values = admin_helm(&["get", "values", s, "-n", &ns, "-o", "yaml"])
            .expect_ok()
            .stdout;
        let file = values_dir.path().join(format!("{s}.yaml"));
        std::fs::write(&file, values).expect("write values");
        let hash = release_secret_labels(s, 1)
            .get("storesync.dev/release-hash")
            .cloned()
            .expect("release hash");
        jobs.push((s.clone(), ns, file, hash));
    }
    let start = std::time::Instant::now();
    for (s, ns, file, hash) in &jobs {
        let mut cmd = Command::new(helm());
        cmd.env("KUBECONFIG", &suite.kubeconfig);
        cmd.args([
            "upgrade",
            "--install",
            s,
            path_str(&tiny_chart()),
            "--namespace",
            ns,
            "--version",
            "0.1.0",
        ]);
        cmd.args([
            "--values",
            path_str(file),
            "--labels",
            &format!("storesync.dev/release-hash={hash}"),
        ]);
        cmd.args(["--wait", "--timeout", "3m", "--history-max", "10"]);
        cmd.args(["--kube-as-user", &helm_user(s)]);
        run(cmd, None, Duration::from_secs(240)).expect_ok();
    }
    let helm_loop = start.elapsed();
    assert_eq!(helm_history(&stores[0]).len(), 2, "the helm loop did not upgrade");
    // Same values and label: storesync still sees nothing to do.
    let after = suite.apply(&repo, &sha, &[]);
    after.expect_code(0);
    assert_eq!(after.result_summary("unchanged"), n as u64);

    let server = admin_kubectl(&["version", "-o", "json"], None).json();
    let nodes = admin_kubectl(&["get", "nodes", "-o", "json"], None).json()["items"]
        .as_array()
        .map_or(0, Vec::len);
    let helm_version = admin_helm(&["version", "--short"]).stdout.trim().to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!("storesync sync benchmark: {n} stores of the tiny engine, --concurrency 4");
    println!(
        "machine: {cpus} CPUs, {}/{}; cluster: Kubernetes {}, {nodes} node(s); helm {helm_version}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        server["serverVersion"]["gitVersion"].as_str().unwrap_or("?"),
    );
    println!();
    println!("| what | wall time | per store |");
    println!("|---|---:|---:|");
    println!(
        "| first sync: create {n} stores (namespace, guardrails, credentials, helm install --wait) | {} | {} |",
        secs(first.out.elapsed),
        per_store(first.out.elapsed, n)
    );
    println!(
        "| no-op sync of the same commit (median of {NO_OP_RUNS}) | {} | {} |",
        secs(no_ops[NO_OP_RUNS / 2]),
        per_store(no_ops[NO_OP_RUNS / 2], n)
    );
    println!(
        "| {n} × `helm upgrade --install --wait`, unchanged values, sequential | {} | {} |",
        secs(helm_loop),
        per_store(helm_loop, n)
    );
    println!();
}
