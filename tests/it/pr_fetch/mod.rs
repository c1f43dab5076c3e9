//! Pull-request heads, forks included, are fetched into scratch repositories of their own:
//! depth 1, within a byte cap and a timeout, never into the shared cache and never under the
//! lock syncs wait for, and removed whatever the outcome. Against a bare repository served over
//! Git's smart HTTP protocol ([`smart_http`]; libgit2 fetches `file://` URLs whole), and over
//! `file://` for the cap.
mod smart_http;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{Oid, Repository};
use storesync::source::tracked::TrackedRepo;
use storesync::source::{PullFetchLimits, RepoLocation, SourceOptions};

use crate::common::store_yaml;
use smart_http::SmartHttp;

const MIB: usize = 1024 * 1024;
const LOGIN: (&str, &str) = ("deploy", "s3cret-pass");

/// A bare repository like GitHub's: `main`, and pull requests under `refs/pull/<n>/head`.
struct Remote {
    _dir: tempfile::TempDir,
    path: PathBuf,
    repo: Repository,
    commits: usize,
    seed: u64,
}

impl Remote {
    fn new() -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stores.git");
        let repo = Repository::init_bare(&path).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        // Packs of noise are not worth a delta search (seconds per MiB in libgit2, which reads
        // its big-file threshold from this key), here or in the local transport.
        repo.config()
            .unwrap()
            .set_i64("pack.deltaCacheSize", 64 * 1024)
            .unwrap();
        let mut remote = Remote {
            _dir: dir,
            path,
            repo,
            commits: 0,
            seed: 0x9e37_79b9_7f4a_7c15,
        };
        remote.push_main();
        remote
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    fn main(&self) -> Oid {
        self.repo.refname_to_id("refs/heads/main").unwrap()
    }

    /// Incompressible bytes (xorshift), different at every call.
    fn noise(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            out.extend_from_slice(&self.seed.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// A commit of `stores/` (one store per name) and `payload/` (files of the given sizes)
    /// on top of `parent`, written to `reference`.
    fn commit(&mut self, reference: &str, parent: Option<Oid>, stores: &[&str], payload: &[usize]) -> Oid {
        self.commits += 1;
        let noise: Vec<Vec<u8>> = payload.iter().map(|size| self.noise(*size)).collect();
        let mut dir = self.repo.treebuilder(None).unwrap();
        for name in stores {
            let blob = self
                .repo
                .blob(store_yaml(name, "woocommerce", "small", "team-a").as_bytes())
                .unwrap();
            dir.insert(format!("{name}.yaml"), blob, 0o100644).unwrap();
        }
        let stores_tree = dir.write().unwrap();
        let mut root = self.repo.treebuilder(None).unwrap();
        root.insert("stores", stores_tree, 0o040000).unwrap();
        if !payload.is_empty() {
            let mut files = self.repo.treebuilder(None).unwrap();
            for (i, bytes) in noise.iter().enumerate() {
                let blob = self.repo.blob(bytes).unwrap();
                files.insert(format!("blob-{i:02}.bin"), blob, 0o100644).unwrap();
            }
            root.insert("payload", files.write().unwrap(), 0o040000).unwrap();
        }
        let tree = self.repo.find_tree(root.write().unwrap()).unwrap();
        let sig = git2::Signature::new("Ada", "ada@example.com", &git2::Time::new(1_790_000_000, 0)).unwrap();
        let parents: Vec<git2::Commit<'_>> = parent
            .map(|p| self.repo.find_commit(p).unwrap())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let message = format!("commit {}", self.commits);
        let id = self
            .repo
            .commit(None, &sig, &sig, &message, &tree, &parents)
            .unwrap();
        self.repo.reference(reference, id, true, "test").unwrap();
        id
    }

    /// A new head of `main`, the tracked branch.
    fn push_main(&mut self) -> Oid {
        let parent = self.repo.refname_to_id("refs/heads/main").ok();
        let name = format!("main-{}", self.commits + 1);
        self.commit("refs/heads/main", parent, &["acme", &name], &[])
    }

    /// Pull request `number`, from a fork, one commit on `main` adding the store `fork` and
    /// `payload` bytes of noise in 1 MiB files.
    fn open_pull_request(&mut self, number: u64, payload: usize) -> (Oid, Vec<Oid>) {
        let sizes = vec![MIB; payload / MIB];
        let head = self.commit(
            &format!("refs/pull/{number}/head"),
            Some(self.main()),
            &["acme", "fork"],
            &sizes,
        );
        let tree = self.repo.find_commit(head).unwrap().tree().unwrap();
        let blobs = match tree.get_name("payload") {
            Some(entry) => {
                let payload = self.repo.find_tree(entry.id()).unwrap();
                payload.iter().map(|e| e.id()).collect()
            }
            None => Vec::new(),
        };
        (head, blobs)
    }
}

fn tracked(url: &str, cache: &Path, max_bytes: usize, timeout: Duration) -> TrackedRepo {
    TrackedRepo {
        location: RepoLocation::Url(url.to_string()),
        branch: "main".into(),
        options: SourceOptions {
            cache_dir: Some(cache.to_path_buf()),
            branch: Some("main".into()),
            pull_fetch: PullFetchLimits {
                max_bytes: max_bytes as u64,
                timeout,
            },
            ..SourceOptions::default()
        },
    }
}

/// What `<cache>/scratch/` holds, its lock file aside.
fn scratch_entries(cache: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(cache.join("scratch")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().is_some_and(|n| n != ".lock"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The shared cache's repository (one per URL), and the scratch directory beside it.
fn cache_repo(cache: &Path) -> Repository {
    let repos: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "git") && p.is_dir())
        .collect();
    assert_eq!(repos.len(), 1, "{repos:?}");
    Repository::open_bare(&repos[0]).unwrap()
}

/// Runs `f` on a thread of its own; `None` when it takes longer than `timeout`.
fn within<T: Send + 'static>(timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(timeout).ok()
}

#[test]
fn a_fork_head_over_the_cap_is_refused_while_a_push_is_synced_meanwhile() {
    let mut remote = Remote::new();
    let (pr_head, pr_blobs) = remote.open_pull_request(7, 30 * MIB);
    let server = SmartHttp::start(remote.path.clone(), Some(LOGIN));
    let cache = tempfile::tempdir().unwrap();
    let tracked = tracked(
        &server.url(Some(LOGIN)),
        cache.path(),
        10 * MIB,
        Duration::from_secs(60),
    );
    let synced = tracked.open().unwrap();
    assert_eq!(tracked.head(&synced).unwrap(), remote.main().to_string());
    drop(synced);

    // The pack of the head stops after 4 MiB until released: the fetch is under way meanwhile.
    server.hold_packs_after(4 * MIB);
    let started = Instant::now();
    let fetching = {
        let tracked = tracked.clone();
        let sha = pr_head.to_string();
        std::thread::spawn(move || {
            let result = tracked.read_pull_request(7, &sha);
            (result, started.elapsed())
        })
    };
    assert!(
        server.wait_until_held(Duration::from_secs(60)),
        "the head's pack is on its way"
    );

    // A push to the tracked branch is fetched at once: the cache's lock is free.
    let pushed = remote.push_main();
    let sync = tracked.clone();
    let began = Instant::now();
    let head = within(Duration::from_secs(20), move || {
        let opened = sync.open().unwrap();
        sync.head(&opened).unwrap()
    })
    .expect("the sync's fetch does not wait for the pull request's");
    let sync_took = began.elapsed();
    assert_eq!(head, pushed.to_string());

    // Meanwhile the head sits in scratch space of its own, with no credentials in its config.
    let scratch = scratch_entries(cache.path());
    assert_eq!(scratch.len(), 1, "{scratch:?}");
    let name = scratch[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("pr-7-"), "{name}");
    let config = std::fs::read_to_string(scratch[0].join("config")).unwrap();
    for secret in [LOGIN.0, LOGIN.1, "url ="] {
        assert!(
            !config.contains(secret),
            "{secret} in the scratch config:\n{config}"
        );
    }

    server.release();
    let (result, took) = fetching.join().unwrap();
    let err = result.expect_err("30 MiB against a 10 MiB cap").to_string();
    assert_eq!(
        err,
        "the head of pull request #7 is larger than 10 MiB (--pr-fetch-max-bytes); not planned"
    );
    eprintln!("sync fetch while the head was held: {sync_took:?}; refused after {took:?}");

    assert_eq!(
        scratch_entries(cache.path()),
        Vec::<PathBuf>::new(),
        "scratch removed"
    );
    let cache = cache_repo(cache.path());
    assert!(
        cache.find_commit(pr_head).is_err(),
        "the head never reached the cache"
    );
    for blob in &pr_blobs {
        assert!(
            !cache.odb().unwrap().exists(*blob),
            "blob {blob} in the shared cache"
        );
    }
    let refs: Vec<String> = cache
        .references()
        .unwrap()
        .map(|r| r.unwrap().name().unwrap().to_string())
        .collect();
    assert!(
        refs.iter()
            .all(|r| !r.contains("pull") && !r.starts_with("refs/storesync")),
        "{refs:?}"
    );

    let asked = server.requests();
    assert!(
        asked
            .iter()
            .any(|r| r.wants == [pr_head] && r.deepen == Some(1) && r.done),
        "the head is fetched at depth 1: {asked:?}"
    );
}

#[test]
fn a_head_within_the_cap_is_read_at_depth_one_and_leaves_nothing_behind() {
    let mut remote = Remote::new();
    // History the head does not need: 3 MiB in an older commit of `main`.
    let main = remote.main();
    let old = remote.commit("refs/heads/main", Some(main), &["acme"], &[MIB, MIB, MIB]);
    remote.commit("refs/heads/main", Some(old), &["acme"], &[]);
    let (pr_head, _) = remote.open_pull_request(12, 0);
    let server = SmartHttp::start(remote.path.clone(), None);
    let cache = tempfile::tempdir().unwrap();
    let tracked = tracked(&server.url(None), cache.path(), 10 * MIB, Duration::from_secs(60));

    let started = Instant::now();
    let head = tracked.read_pull_request(12, &pr_head.to_string()).unwrap();
    eprintln!(
        "read the head in {:?}, {} bytes fetched",
        started.elapsed(),
        head.fetched_bytes
    );
    assert_eq!(head.snapshot.revision.commit, Some(pr_head.to_string()));
    assert_eq!(head.catalog_dir, "");
    let stores: Vec<&str> = head
        .snapshot
        .raw
        .entries
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(stores, ["acme.yaml", "fork.yaml"]);
    assert!(
        head.fetched_bytes > 0 && head.fetched_bytes < 256 * 1024,
        "only the head's own objects, not the 3 MiB of history: {} bytes",
        head.fetched_bytes
    );
    let asked = server.requests();
    assert!(asked.iter().all(|r| r.deepen == Some(1)), "{asked:?}");

    assert_eq!(
        scratch_entries(cache.path()),
        Vec::<PathBuf>::new(),
        "scratch removed"
    );
    let kept: Vec<PathBuf> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("scratch"))
        .collect();
    assert_eq!(
        kept,
        Vec::<PathBuf>::new(),
        "no shared cache was created or touched"
    );
}

#[test]
fn a_remote_gone_silent_times_out_and_its_scratch_goes() {
    let mut remote = Remote::new();
    let (pr_head, _) = remote.open_pull_request(3, 2 * MIB);
    let server = SmartHttp::start(remote.path.clone(), None);
    server.hold_packs_after(1);
    let cache = tempfile::tempdir().unwrap();
    let tracked = tracked(&server.url(None), cache.path(), 10 * MIB, Duration::from_secs(1));

    let started = Instant::now();
    let sha = pr_head.to_string();
    let err = within(Duration::from_secs(20), move || {
        tracked.read_pull_request(3, &sha)
    })
    .expect("the fetch gives up by itself")
    .expect_err("the remote stopped sending")
    .to_string();
    let took = started.elapsed();
    assert_eq!(
        err,
        "fetching the head of pull request #3 took longer than 1s (--pr-fetch-timeout); not planned"
    );
    assert!(server.wait_until_held(Duration::ZERO));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(
        scratch_entries(cache.path()),
        Vec::<PathBuf>::new(),
        "scratch removed at once"
    );

    // The abandoned fetch stops at the next byte and writes nothing back.
    server.release();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(scratch_entries(cache.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_head_over_the_cap_is_refused_over_file_urls_too() {
    let mut remote = Remote::new();
    let (pr_head, _) = remote.open_pull_request(9, 30 * MIB);
    let cache = tempfile::tempdir().unwrap();
    let tracked = tracked(
        &remote.file_url(),
        cache.path(),
        10 * MIB,
        Duration::from_secs(60),
    );
    let started = Instant::now();
    let err = tracked
        .read_pull_request(9, &pr_head.to_string())
        .expect_err("30 MiB against a 10 MiB cap")
        .to_string();
    eprintln!("file:// head refused after {:?}", started.elapsed());
    assert_eq!(
        err,
        "the head of pull request #9 is larger than 10 MiB (--pr-fetch-max-bytes); not planned"
    );
    assert_eq!(scratch_entries(cache.path()), Vec::<PathBuf>::new());

    // Within a cap that fits, the same head is read (whole, on this transport), and removed.
    let roomy = self::tracked(
        &remote.file_url(),
        cache.path(),
        64 * MIB,
        Duration::from_secs(60),
    );
    let head = roomy.read_pull_request(9, &pr_head.to_string()).unwrap();
    assert!(head.fetched_bytes > 30 * MIB as u64, "{}", head.fetched_bytes);
    assert_eq!(scratch_entries(cache.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_head_the_pull_request_moved_on_from_is_fetched_by_its_commit() {
    let mut remote = Remote::new();
    let (first, _) = remote.open_pull_request(4, 0);
    let moved = remote.commit("refs/pull/4/head", Some(first), &["acme", "fork", "later"], &[]);
    let server = SmartHttp::start(remote.path.clone(), None);
    let cache = tempfile::tempdir().unwrap();
    let tracked = tracked(&server.url(None), cache.path(), 10 * MIB, Duration::from_secs(60));

    let head = tracked.read_pull_request(4, &first.to_string()).unwrap();
    assert_eq!(head.snapshot.revision.commit, Some(first.to_string()));
    let names: Vec<&str> = head
        .snapshot
        .raw
        .entries
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["acme.yaml", "fork.yaml"]);
    let asked = server.requests();
    assert!(asked.iter().any(|r| r.wants == [moved]), "{asked:?}");
    assert!(
        asked.iter().any(|r| r.wants == [first] && r.deepen == Some(1)),
        "{asked:?}"
    );
    assert_eq!(scratch_entries(cache.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_local_repository_reads_the_head_it_holds() {
    let mut remote = Remote::new();
    let (pr_head, _) = remote.open_pull_request(5, 0);
    let mut repo = crate::common::GitRepo::new();
    repo.write(
        "stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "small", "team-a"),
    );
    let sha = repo.commit("Ada", "Add acme");
    let local = TrackedRepo {
        location: RepoLocation::Local(repo.path().to_path_buf()),
        branch: "main".into(),
        options: SourceOptions::default(),
    };
    let head = local.read_pull_request(5, &sha).unwrap();
    assert_eq!(head.snapshot.revision.commit, Some(sha));
    assert_eq!(head.fetched_bytes, 0);
    let err = local.read_pull_request(5, &pr_head.to_string()).unwrap_err();
    assert!(
        err.to_string().contains("is not in the local repository"),
        "{err}"
    );
}

#[test]
fn the_serve_flags_set_the_bounds() {
    use clap::Parser;
    use storesync::config::{Cli, Command};
    let parse = |extra: &[&str]| {
        let mut argv = vec!["storesync", "serve", "--repo", "."];
        argv.extend(extra);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Serve { serve, .. } => serve.pull_fetch(),
            _ => unreachable!(),
        })
    };
    assert_eq!(parse(&[]).unwrap(), PullFetchLimits::default());
    assert_eq!(
        PullFetchLimits::default(),
        PullFetchLimits {
            max_bytes: 100 * MIB as u64,
            timeout: Duration::from_secs(60)
        }
    );
    assert_eq!(
        parse(&["--pr-fetch-max-bytes", "10MiB", "--pr-fetch-timeout", "5s"]).unwrap(),
        PullFetchLimits {
            max_bytes: 10 * MIB as u64,
            timeout: Duration::from_secs(5)
        }
    );
    let err = parse(&["--pr-fetch-max-bytes", "ten"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
}
