//! Pieces both daemon benchmarks use: a webhook signature, a commit that adds one store, and
//! the machine's description for the figures.
use std::path::Path;

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
