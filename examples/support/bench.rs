//! Pieces both daemon benchmarks use: a webhook signature, a commit that adds one store, a
//! fake GitHub that records statuses, and the machine's description for the figures.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The webhook secret the benchmarks start `storesync serve` with.
pub(crate) const SECRET: &str = "bench-webhook-secret";

/// `X-Hub-Signature-256` of `body` under [`SECRET`].
pub(crate) fn sign(body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Adds store `shop-<n>` to the repository at `dir` and commits it on `main`.
pub(crate) fn commit(repo: &git2::Repository, dir: &Path, n: usize) -> String {
    std::fs::write(
        dir.join(format!("stores/shop-{n:04}.yaml")),
        format!("name: shop-{n:04}\nengine: woocommerce\nplan: small\nowner: team-bench\n"),
    )
    .expect("write");
    let mut index = repo.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    index.write().expect("index");
    let tree = repo.find_tree(index.write_tree().expect("tree")).expect("tree");
    let sig = git2::Signature::now("Bench", "bench@example.com").expect("sig");
    let parent = repo
        .find_reference("refs/heads/main")
        .ok()
        .and_then(|r| r.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("refs/heads/main"), &sig, &sig, "bench", &tree, &parents)
        .expect("commit")
        .to_string()
}

/// `N cores, <CPU model>`.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!(
        "{} cores, {cpu}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    )
}

/// The first status of each (commit, state) that reached the fake GitHub: when, and its
/// description.
pub(crate) type Arrivals = Arc<Mutex<BTreeMap<(String, String), (Instant, String)>>>;

/// A GitHub that records each commit status in `arrivals`; its address.
pub(crate) async fn fake_github(arrivals: Arrivals) -> SocketAddr {
    use axum::extract::{Path as UrlPath, State};
    async fn status(
        State(arrivals): State<Arrivals>,
        UrlPath((_, _, sha)): UrlPath<(String, String, String)>,
        body: bytes::Bytes,
    ) -> (axum::http::StatusCode, &'static str) {
        let at = Instant::now();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let state = v["state"].as_str().unwrap_or_default().to_string();
        let description = v["description"].as_str().unwrap_or_default().to_string();
        arrivals
            .lock()
            .expect("lock")
            .entry((sha, state))
            .or_insert((at, description));
        (axum::http::StatusCode::CREATED, "{}")
    }
    let app = axum::Router::new()
        .route(
            "/repos/{owner}/{repo}/statuses/{sha}",
            axum::routing::post(status),
        )
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
