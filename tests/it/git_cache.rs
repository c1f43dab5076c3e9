//! The cache of a repository given by URL, against a local bare repository served as a
//! `file://` URL: it heals from stale locks and corrupt objects (re-cloned and swapped in, and
//! said so, and counted by the daemon), never re-clones because the remote is down, and
//! serialises concurrent fetches.
use crate::common;

use crate::common::fake_cluster;
use crate::common::fake_github;
use crate::common::fake_helm;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{repo_root, store_yaml};
use git2::Repository;
use storesync::source::tracked::TrackedRepo;
use storesync::source::{RepoLocation, SourceOptions};

/// A bare repository with a `main` branch of store files; every commit changes each of them.
struct Remote {
    dir: tempfile::TempDir,
    repo: Repository,
    commits: usize,
}

/// Stores per commit: with their trees and the commit, more objects than the 20 corrupted.
const STORES: usize = 24;

impl Remote {
    fn new() -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path().join("stores.git")).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        let mut remote = Remote {
            dir,
            repo,
            commits: 0,
        };
        remote.commit();
        remote
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("stores.git")
    }

    fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// Commits a new head of `main`; returns its id.
    fn commit(&mut self) -> String {
        self.commits += 1;
        let plan = ["small", "medium", "large"][self.commits % 3];
        let mut stores = self.repo.treebuilder(None).unwrap();
        for i in 0..STORES {
            let name = format!("store-{i}-v{}", self.commits);
            let text = store_yaml(&name, "woocommerce", plan, "team-a");
            let blob = self.repo.blob(text.as_bytes()).unwrap();
            stores.insert(format!("{name}.yaml"), blob, 0o100644).unwrap();
        }
        let stores = stores.write().unwrap();
        let mut root = self.repo.treebuilder(None).unwrap();
        root.insert("stores", stores, 0o040000).unwrap();
        let tree = self.repo.find_tree(root.write().unwrap()).unwrap();
        let sig = git2::Signature::new("Ada", "ada@example.com", &git2::Time::new(1_790_000_000, 0)).unwrap();
        let parent = self
            .repo
            .find_reference("refs/heads/main")
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let message = format!("commit {}", self.commits);
        self.repo
            .commit(Some("refs/heads/main"), &sig, &sig, &message, &tree, &parents)
            .unwrap()
            .to_string()
    }

    fn head(&self) -> String {
        self.repo.refname_to_id("refs/heads/main").unwrap().to_string()
    }
}

fn tracked(url: &str, cache: &Path) -> TrackedRepo {
    TrackedRepo {
        location: RepoLocation::Url(url.to_string()),
        branch: "main".into(),
        options: SourceOptions {
            cache_dir: Some(cache.to_path_buf()),
            branch: Some("main".into()),
            ..SourceOptions::default()
        },
    }
}

/// Opens (fetching) and reads the head: its commit id, the stores it holds, and why the cache
/// was cloned again, if it was.
fn read(tracked: &TrackedRepo) -> storesync::error::Result<(String, Vec<String>, Option<String>)> {
    let opened = tracked.open()?;
    let head = tracked.head(&opened)?;
    let snapshot = tracked.snapshot(&opened, &head)?;
    let mut stores: Vec<String> = snapshot
        .raw
        .entries
        .iter()
        .flatten()
        .filter(|e| e.content.file().is_some())
        .map(|e| e.path.clone())
        .collect();
    stores.sort();
    Ok((head, stores, opened.recloned))
}

/// The repository inside the cache directory (there is one per URL).
fn cache_repo(cache: &Path) -> PathBuf {
    let repos: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(repos.len(), 1, "{repos:?}");
    repos[0].clone()
}

/// A cache fetched once, at the remote's first commit.
fn fetched_once() -> (Remote, tempfile::TempDir, TrackedRepo, PathBuf) {
    let remote = Remote::new();
    let cache = tempfile::tempdir().unwrap();
    let tracked = tracked(&remote.url(), cache.path());
    let (head, stores, recloned) = read(&tracked).unwrap();
    assert_eq!((head, stores.len(), recloned), (remote.head(), STORES, None));
    let repo = cache_repo(cache.path());
    (remote, cache, tracked, repo)
}

/// Reads after damage: the remote's head, all its stores, and a re-clone reported once.
fn assert_healed(remote: &Remote, tracked: &TrackedRepo, reason_mentions: &str) {
    let (head, stores, recloned) = read(tracked).expect("the cache heals");
    assert_eq!(head, remote.head());
    assert_eq!(stores.len(), STORES);
    let commit = remote.commits;
    assert!(stores[0].contains(&format!("-v{commit}.yaml")), "{stores:?}");
    let reason = recloned.expect("the re-clone is reported");
    assert!(reason.contains(reason_mentions), "{reason}");
    let (again, _, recloned) = read(tracked).unwrap();
    assert_eq!((again, recloned), (remote.head(), None), "healed for good");
}

#[test]
fn a_stale_ref_lock_is_removed_without_a_new_clone() {
    let (mut remote, _cache, tracked, repo) = fetched_once();
    let lock = repo.join("refs/remotes/origin/main.lock");
    std::fs::write(&lock, "").unwrap();
    std::fs::write(repo.join("shallow.lock"), "").unwrap();
    remote.commit();
    let (head, _, recloned) = read(&tracked).expect("the stale lock is no obstacle");
    assert_eq!((head, recloned), (remote.head(), None));
    assert!(!lock.exists() && !repo.join("shallow.lock").exists());
}

#[test]
fn a_fetch_sweeps_what_a_dead_pull_request_fetch_left() {
    let (mut remote, cache, tracked, _repo) = fetched_once();
    // A scratch repository whose process died: its owner file is there, nobody holds its lock.
    let leftover = cache.path().join("scratch/pr-7-dead");
    std::fs::create_dir_all(leftover.join("objects/pack")).unwrap();
    std::fs::write(leftover.join("storesync.owner"), "").unwrap();
    std::fs::write(leftover.join("objects/pack/tmp_pack_1"), vec![0u8; 1 << 20]).unwrap();
    remote.commit();
    let (head, _, recloned) = read(&tracked).unwrap();
    assert_eq!((head, recloned), (remote.head(), None));
    assert!(
        !leftover.exists(),
        "swept by the next fetch of the tracked branch"
    );
}

/// Rewrites every object of the cache as a loose file (as `git unpack-objects` leaves them).
fn unpack(repo: &Path) -> Vec<git2::Oid> {
    let cache = Repository::open_bare(repo).unwrap();
    let odb = cache.odb().unwrap();
    let mut ids = Vec::new();
    odb.foreach(|id| {
        ids.push(*id);
        true
    })
    .unwrap();
    let objects: Vec<_> = ids
        .iter()
        .map(|id| {
            let o = odb.read(*id).unwrap();
            (o.kind(), o.data().to_vec())
        })
        .collect();
    drop(odb);
    drop(cache);
    std::fs::remove_dir_all(repo.join("objects/pack")).unwrap();
    std::fs::create_dir(repo.join("objects/pack")).unwrap();
    let cache = Repository::open_bare(repo).unwrap();
    let odb = cache.odb().unwrap();
    for (kind, data) in objects {
        odb.write(kind, &data).unwrap();
    }
    ids
}

fn loose_file(repo: &Path, id: git2::Oid) -> PathBuf {
    let hex = id.to_string();
    repo.join("objects").join(&hex[..2]).join(&hex[2..])
}

#[test]
fn twenty_corrupt_objects_are_healed_by_a_new_clone() {
    let (remote, _cache, tracked, repo) = fetched_once();
    unpack(&repo);
    // The head commit, its trees and store files: what every sync reads.
    let head = remote
        .repo
        .revparse_single("main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let mut damaged = vec![head.id(), head.tree_id()];
    head.tree()
        .unwrap()
        .walk(git2::TreeWalkMode::PreOrder, |_, entry| {
            damaged.push(entry.id());
            git2::TreeWalkResult::Ok
        })
        .unwrap();
    damaged.truncate(20);
    for id in &damaged {
        let file = loose_file(&repo, *id);
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, b"\x78\x9cgarbage, not an object").unwrap();
    }
    assert_eq!(damaged.len(), 20);
    assert!(
        storesync::source::read_commit(
            &Repository::open_bare(&repo).unwrap(),
            &remote.head(),
            Path::new("")
        )
        .is_err(),
        "the damage shows when the cache is read"
    );
    assert_healed(&remote, &tracked, "cannot read the head of `main`");
}

#[test]
fn a_truncated_pack_is_healed_by_a_new_clone() {
    let (remote, _cache, tracked, repo) = fetched_once();
    let pack = std::fs::read_dir(repo.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let len = std::fs::metadata(&pack).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&pack).unwrap();
    file.set_len(len / 3).unwrap();
    // The remote did not move: the fetch has nothing to do, reading the head shows the damage.
    assert_healed(&remote, &tracked, "cannot read the head of `main`");
}

#[test]
fn a_cache_without_head_is_healed_by_a_new_clone() {
    let (mut remote, _cache, tracked, repo) = fetched_once();
    std::fs::remove_file(repo.join("HEAD")).unwrap();
    // And what a re-clone killed half-way leaves next to it.
    let mut leftover = repo.clone().into_os_string();
    leftover.push(".new");
    std::fs::create_dir_all(PathBuf::from(leftover).join("objects")).unwrap();
    remote.commit();
    assert_healed(&remote, &tracked, "cannot open the cache");
    assert!(repo.join("HEAD").is_file());
    let siblings = std::fs::read_dir(repo.parent().unwrap()).unwrap().count();
    assert_eq!(siblings, 2, "the repository and its lock file; nothing left over");
}

#[test]
fn a_broken_config_is_healed_by_a_new_clone() {
    let (remote, _cache, tracked, repo) = fetched_once();
    std::fs::write(repo.join("config"), "[core\nbroken").unwrap();
    assert_healed(&remote, &tracked, "cannot open the cache");
}

#[test]
fn a_remote_that_is_gone_costs_no_new_clone() {
    let (remote, _cache, tracked, repo) = fetched_once();
    let marker = repo.join("storesync-test-marker");
    std::fs::write(&marker, "the cache as it was").unwrap();
    let moved = remote.dir.path().join("moved.git");
    std::fs::rename(remote.path(), &moved).unwrap();
    let err = read(&tracked).expect_err("the remote is gone").to_string();
    assert!(err.starts_with("cannot fetch file://"), "{err}");
    assert!(marker.exists(), "the cache is kept");
    std::fs::rename(&moved, remote.path()).unwrap();
    assert_eq!(
        read(&tracked).unwrap().2,
        None,
        "back: fetched into the same cache"
    );
    assert!(marker.exists());
}

/// An HTTP Git server that answers every request with 503, counting them.
fn unavailable_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, count)
}

#[test]
fn a_remote_answering_503_costs_one_request_per_fetch() {
    let (port, requests) = unavailable_server();
    let cache = tempfile::tempdir().unwrap();
    let tracked = tracked(&format!("http://127.0.0.1:{port}/stores.git"), cache.path());
    for attempt in 1..=3 {
        let err = read(&tracked).expect_err("the remote is down").to_string();
        assert!(err.contains("503"), "{err}");
        assert_eq!(
            requests.load(std::sync::atomic::Ordering::SeqCst),
            attempt,
            "no second clone attempt"
        );
    }
}

#[test]
fn concurrent_fetches_of_one_cache_all_succeed_while_the_remote_moves() {
    let mut remote = Remote::new();
    let cache = tempfile::tempdir().unwrap();
    let url = remote.url();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let moving = stop.clone();
    let mover = std::thread::spawn(move || {
        while !moving.load(std::sync::atomic::Ordering::SeqCst) {
            remote.commit();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        remote
    });
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let tracked = tracked(&url, cache.path());
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| read(&tracked).map(|(_, stores, recloned)| (stores.len(), recloned)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = readers.into_iter().flat_map(|r| r.join().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let remote = mover.join().unwrap();
    assert_eq!(results.len(), 200);
    for result in &results {
        match result {
            Ok(read) => assert_eq!(read, &(STORES, None)),
            Err(e) => panic!("a concurrent fetch failed: {e}"),
        }
    }
    let tracked = tracked(&url, cache.path());
    assert_eq!(read(&tracked).unwrap().0, remote.head());
}

/// The daemon tracking a `file://` URL: a cache it had to clone again is counted in
/// `storesync_git_cache_reclones_total`, and the sync goes on.
#[tokio::test]
async fn the_daemon_counts_a_re_clone_and_syncs_on() {
    use std::time::Duration;
    use storesync::apply::{Applier, Helm};
    use storesync::daemon::{self, Context, Settings};
    use storesync::metrics::Metrics;
    use storesync::report::StatusReporter;
    use storesync::report::github::GitHubNotifier;

    let mut repo = common::GitRepo::new();
    repo.write(
        "stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "small", "team-acme"),
    );
    let first = repo.commit("Ada", "Add acme");
    let branch = repo.repo.head().unwrap().shorthand().unwrap().to_string();
    let cache = tempfile::tempdir().unwrap();
    let helm = fake_helm::FakeHelm::new();
    let cluster = fake_cluster::FakeCluster::new(helm.releases_dir());
    let github = fake_github::FakeGitHub::start().await;
    let metrics = Arc::new(Metrics::default());
    let notifier = GitHubNotifier::new(
        "acme-platform",
        "stores",
        "test-token".into(),
        Some(&github.url()),
    )
    .unwrap();
    let statuses = StatusReporter::spawn(Arc::new(notifier), Arc::new(|_| {}));
    let applier = Applier::new(
        cluster.client(),
        Helm {
            binary: helm.binary(),
            charts_dir: repo_root().join("charts"),
            timeout: Duration::from_secs(60),
            allowed_chart_prefixes: Vec::new(),
        },
    );
    let mut tracked = tracked(&format!("file://{}", repo.path().display()), cache.path());
    tracked.branch = branch.clone();
    tracked.options.branch = Some(branch);
    let settings = Settings {
        tracked,
        interval: Duration::from_millis(500),
        external_url: None,
        plan_workers: 1,
    };
    let ctx = Arc::new(Context::new(applier, metrics.clone(), Some(statuses), settings));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(daemon::run(ctx, shutdown));

    let synced = |sha: &str| {
        github
            .statuses()
            .iter()
            .any(|s| s.sha == sha && s.state == "success")
    };
    let wait = |what: &'static str, sha: String| {
        let synced = &synced;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !synced(&sha) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "timed out waiting for {what}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait("the first sync", first).await;
    let reclones = || {
        metrics
            .render()
            .lines()
            .find(|l| l.starts_with("storesync_git_cache_reclones_total "))
            .map(str::to_string)
    };
    assert_eq!(
        reclones().as_deref(),
        Some("storesync_git_cache_reclones_total 0")
    );

    std::fs::remove_file(cache_repo(cache.path()).join("HEAD")).unwrap();
    repo.write(
        "stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "medium", "team-acme"),
    );
    let second = repo.commit("Ben", "Grow acme");
    wait("the sync after the re-clone", second).await;
    assert_eq!(
        reclones().as_deref(),
        Some("storesync_git_cache_reclones_total 1")
    );

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("daemon stops")
        .unwrap();
}
