//! Benchmark of `storesync serve` on a bad day, on loopback.
//!
//! 1. Memory under hostile uploads: the daemon's resident memory idle, then its peak (VmHWM)
//!    while 300 clients at once each send a 1 MiB − 1 byte webhook body without a signature,
//!    then while 300 send one with a well-formed but wrong signature.
//! 2. Push to `pending` while a sync is stuck: the cluster is an API server that accepts
//!    connections and never answers, so the startup sync hangs (up to storesync's 60 s API
//!    timeout); 20 pushes of new commits are sent meanwhile, and the time from each webhook to
//!    its `pending` status at a fake GitHub is measured.
//!
//!     cargo build --release && cargo run --release --example hostile_bench
#[path = "support/bench.rs"]
mod bench;

use bench::{Arrivals, SECRET, commit, fake_github, sign};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An API server that accepts connections and never answers.
async fn hanging_api_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    addr
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `clients` uploads at once of a 1 MiB − 1 byte push body; returns the status lines.
async fn uploads(addr: SocketAddr, clients: usize, signature: Option<String>) -> BTreeMap<String, usize> {
    let body = Arc::new(vec![b' '; 1024 * 1024 - 1]);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (body, signature) = (body.clone(), signature.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(addr).await.ok()?;
            let mut head = format!(
                "POST /webhooks/github HTTP/1.1\r\nHost: bench\r\nX-GitHub-Event: push\r\n\
                 X-GitHub-Delivery: upload-{i}\r\nContent-Length: {}\r\n",
                body.len()
            );
            if let Some(sig) = &signature {
                head.push_str(&format!("X-Hub-Signature-256: {sig}\r\n"));
            }
            head.push_str("\r\n");
            conn.write_all(head.as_bytes()).await.ok()?;
            let _ = conn.write_all(&body).await;
            let mut answer = vec![0u8; 32];
            let n = conn.read(&mut answer).await.ok()?;
            let line = String::from_utf8_lossy(&answer[..n]);
            Some(line.lines().next().unwrap_or("").to_string())
        }));
    }
    let mut counts = BTreeMap::new();
    for t in tasks {
        let line = t
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| "connection closed".into());
        *counts.entry(line).or_insert(0) += 1;
    }
    counts
}

#[tokio::main]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target/release/storesync");
    assert!(binary.exists(), "build first: cargo build --release");
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("stores-repo");
    std::fs::create_dir_all(dir.join("stores")).expect("mkdir");
    let repo = git2::Repository::init(&dir).expect("init");
    let mut n = 0;
    commit(&repo, &dir, n);
    let api = hanging_api_server().await;
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: hang, cluster: {{server: 'http://{api}'}}}}]\n\
             users: [{{name: hang, user: {{token: none}}}}]\ncontexts: [{{name: hang, context: {{cluster: hang, user: hang}}}}]\n\
             current-context: hang\n"
        ),
    )
    .expect("kubeconfig");
    let arrivals: Arrivals = Arc::default();
    let github = fake_github(arrivals.clone()).await;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr");
    let mut daemon = tokio::process::Command::new(&binary)
        .args([
            "serve",
            "--repo",
            &format!("file://{}", dir.display()),
            "--branch",
            "main",
        ])
        .args([
            "--interval",
            "1h",
            "--listen",
            &listen.to_string(),
            "--github-repo",
            "acme-platform/stores",
        ])
        .args(["--github-api-url", &format!("http://{github}")])
        .args(["--cache-dir", &work.path().join("cache").display().to_string()])
        .env("KUBECONFIG", &kubeconfig)
        .env("GITHUB_TOKEN", "bench-token")
        .env("STORESYNC_WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("start storesync serve");
    let pid = daemon.id().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(listen).await.is_err() {
        assert!(Instant::now() < deadline, "storesync serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("machine: {}", bench::machine());

    // 2 first, while the startup sync hangs on the silent API server.
    let mut to_pending = Vec::new();
    let mut descriptions = BTreeMap::new();
    for round in 0..20 {
        n += 1;
        let sha = commit(&repo, &dir, n);
        let body = serde_json::json!({
            "ref": "refs/heads/main", "after": sha, "repository": {"full_name": "acme-platform/stores"},
        })
        .to_string();
        let mut conn = TcpStream::connect(listen).await.expect("connect");
        let request = format!(
            "POST /webhooks/github HTTP/1.1\r\nHost: bench\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: push-{round}\r\n\
             X-Hub-Signature-256: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            sign(body.as_bytes()),
            body.len()
        );
        let sent = Instant::now();
        conn.write_all(request.as_bytes()).await.expect("send");
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer).await;
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        let deadline = sent + Duration::from_secs(10);
        loop {
            if let Some((at, description)) = arrivals
                .lock()
                .expect("lock")
                .get(&(sha.clone(), "pending".into()))
                .cloned()
            {
                to_pending.push(at - sent);
                *descriptions
                    .entry(
                        description
                            .split_whitespace()
                            .take(2)
                            .collect::<Vec<_>>()
                            .join(" "),
                    )
                    .or_insert(0) += 1;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no pending status for {sha} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    to_pending.sort();
    println!(
        "push webhook → pending while a sync hangs: {} pushes; median {:.1} ms, max {:.1} ms; descriptions {descriptions:?}",
        to_pending.len(),
        to_pending[to_pending.len() / 2].as_secs_f64() * 1e3,
        to_pending.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // 1. Memory.
    let idle = status_kib(pid, "VmRSS:");
    let unsigned = uploads(listen, 300, None).await;
    let peak_unsigned = status_kib(pid, "VmHWM:");
    let forged = uploads(listen, 300, Some(format!("sha256={}", "0".repeat(64)))).await;
    let peak_forged = status_kib(pid, "VmHWM:");
    println!(
        "memory: idle {:.1} MiB; 300 unsigned 1 MiB uploads: peak {:.1} MiB (+{:.1}), answers {unsigned:?}",
        idle as f64 / 1024.0,
        peak_unsigned as f64 / 1024.0,
        peak_unsigned.saturating_sub(idle) as f64 / 1024.0,
    );
    println!(
        "memory: 300 forged-signature 1 MiB uploads: peak {:.1} MiB (+{:.1} over idle), answers {forged:?}",
        peak_forged as f64 / 1024.0,
        peak_forged.saturating_sub(idle) as f64 / 1024.0,
    );
    let _ = daemon.kill().await;
}
