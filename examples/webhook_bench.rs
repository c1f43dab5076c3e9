//! Benchmark of `storesync serve`'s webhook endpoint, on loopback.
//!
//! 1. Latency to the 202: N signed push deliveries (distinct delivery ids and commits), C at a
//!    time, against a running `storesync serve`; reports p50/p90/p99/max.
//! 2. Push to `pending`: the time from sending a push webhook for a new commit to the arrival
//!    of the `storesync/sync` `pending` status at a fake GitHub API; median of several pushes.
//!
//! It starts everything itself: a stores repository served as a `file://` remote (so only
//! webhooks and polling trigger syncs), a fake GitHub, and `target/release/storesync serve`
//! pointed at an unreachable cluster (syncs then end in `error`, which this does not measure).
//!
//!     cargo build --release && cargo run --release --example webhook_bench -- [REQUESTS] [CONCURRENCY]
#[path = "support/bench.rs"]
mod bench;

use bench::{Arrivals, SECRET, commit, fake_github, sign};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn push(after: &str) -> Vec<u8> {
    serde_json::json!({
        "ref": "refs/heads/main", "before": "0".repeat(39) + "1", "after": after,
        "created": false, "deleted": false, "forced": false,
        "repository": {"full_name": "acme-platform/stores"}, "commits": [], "head_commit": {"id": after},
    })
    .to_string()
    .into_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target/release/storesync");
    assert!(binary.exists(), "build first: cargo build --release");

    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("stores-repo");
    std::fs::create_dir_all(dir.join("stores")).expect("mkdir");
    let repo = git2::Repository::init(&dir).expect("init");
    let mut n = 0;
    commit(&repo, &dir, n);
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\nclusters: [{name: none, cluster: {server: 'https://127.0.0.1:9'}}]\n\
        users: [{name: none, user: {token: none}}]\ncontexts: [{name: none, context: {cluster: none, user: none}}]\ncurrent-context: none\n")
        .expect("kubeconfig");

    let arrivals: Arrivals = Arc::default();
    let github = fake_github(arrivals.clone()).await;
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr")
    };
    let mut daemon = tokio::process::Command::new(&binary)
        .args([
            "serve",
            "--repo",
            &format!("file://{}", dir.display()),
            "--branch",
            "main",
            "--interval",
            "1h",
        ])
        .args([
            "--listen",
            &listen.to_string(),
            "--github-repo",
            "acme-platform/stores",
        ])
        .args([
            "--github-api-url",
            &format!("http://{github}"),
            "--cache-dir",
            &work.path().join("cache").display().to_string(),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("GITHUB_TOKEN", "bench-token")
        .env("STORESYNC_WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("start storesync serve");

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http();
    let url = format!("http://{listen}/webhooks/github");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = format!("http://{listen}/healthz").parse().expect("uri");
        if client.get(health).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "storesync serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!("machine: {}", bench::machine());

    // 1. Latency to the 202.
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let bad = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next, latencies, bad) = (
            client.clone(),
            url.clone(),
            next.clone(),
            latencies.clone(),
            bad.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return;
                }
                let body = push(&format!("{:040x}", i + 1));
                let req = hyper::Request::post(url.as_str())
                    .header("content-type", "application/json")
                    .header("x-github-event", "push")
                    .header("x-github-delivery", format!("bench-{i}"))
                    .header("x-hub-signature-256", sign(&body))
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let t = Instant::now();
                match client.request(req).await {
                    Ok(resp) => {
                        let ok = resp.status() == hyper::StatusCode::ACCEPTED;
                        let _ = resp.into_body().collect().await;
                        latencies.lock().expect("lock").push(t.elapsed());
                        if !ok {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let wall = started.elapsed();
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort();
    println!(
        "webhook → 202: {} deliveries, {concurrency} concurrent, {:.0} req/s; p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; non-202: {}",
        lat.len(),
        lat.len() as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.90).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        bad.load(Ordering::Relaxed),
    );

    // Let the syncs the load queued settle before timing single pushes.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // 2. Push → pending.
    let mut to_pending = Vec::new();
    for round in 0..9 {
        n += 1;
        let sha = commit(&repo, &dir, n);
        let body = push(&sha);
        let req = hyper::Request::post(url.as_str())
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("pending-{round}"))
            .header("x-hub-signature-256", sign(&body))
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let sent = Instant::now();
        let resp = client.request(req).await.expect("webhook");
        assert_eq!(resp.status(), hyper::StatusCode::ACCEPTED);
        let deadline = sent + Duration::from_secs(10);
        loop {
            if let Some(at) = arrivals
                .lock()
                .expect("lock")
                .get(&(sha.clone(), "pending".into()))
            {
                to_pending.push(at.0 - sent);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no pending status for {sha} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Wait for that sync to end so the next push starts from an idle daemon.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !arrivals
            .lock()
            .expect("lock")
            .keys()
            .any(|(s, st)| *s == sha && st != "pending")
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    to_pending.sort();
    println!(
        "push webhook → pending status: {} pushes; median {:.1} ms, max {:.1} ms",
        to_pending.len(),
        percentile(&to_pending, 0.5).as_secs_f64() * 1e3,
        to_pending.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    let _ = daemon.kill().await;
}
