//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fake_cluster;
pub mod fake_coordination;
pub mod fake_github;
pub mod fake_github_pr;
pub mod fake_helm;
mod fake_helm_state;
pub mod fake_rbac;
pub mod fake_release;

use std::fs;
use std::path::{Path, PathBuf};

use storesync::commands;
use storesync::config::{OutputFormat, SourceArgs};

/// A valid store file for `name`.
pub fn store_yaml(name: &str, engine: &str, plan: &str, owner: &str) -> String {
    format!("name: {name}\nengine: {engine}\nplan: {plan}\nowner: {owner}\n")
}

/// A catalog in a temporary directory.
pub struct Catalog {
    pub dir: tempfile::TempDir,
}

impl Catalog {
    /// An empty catalog: a `stores/` directory and no platform file.
    pub fn new() -> Catalog {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("stores")).expect("stores dir");
        Catalog { dir }
    }

    /// A catalog with a few valid stores.
    pub fn with_valid_stores() -> Catalog {
        let c = Catalog::new();
        c.store("acme", &store_yaml("acme", "woocommerce", "small", "team-acme"));
        c.store(
            "bobs-bikes",
            &store_yaml("bobs-bikes", "medusa", "medium", "team-bikes"),
        );
        c.store(
            "corner-books",
            &store_yaml("corner-books", "woocommerce", "large", "team-books"),
        );
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `stores/<stem>.yaml`.
    pub fn store(&self, stem: &str, text: &str) -> &Self {
        self.file(&format!("stores/{stem}.yaml"), text.as_bytes())
    }

    pub fn file(&self, rel: &str, bytes: &[u8]) -> &Self {
        let path = self.dir.path().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, bytes).expect("write");
        self
    }

    pub fn platform(&self, text: &str) -> &Self {
        self.file("storesync.yaml", text.as_bytes())
    }

    pub fn args(&self) -> SourceArgs {
        source_args(self.dir.path())
    }

    pub fn validate(&self) -> Outcome {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = commands::validate(&self.args(), &[], OutputFormat::Text, &mut out, &mut err)
            .expect("validate runs");
        Outcome::new(code, out, err)
    }

    pub fn plan_offline(&self, output: OutputFormat) -> Outcome {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code =
            commands::plan_offline(&self.args(), &[], output, false, &mut out, &mut err).expect("plan runs");
        Outcome::new(code, out, err)
    }
}

pub fn source_args(repo: &Path) -> SourceArgs {
    SourceArgs {
        repo: repo.display().to_string(),
        rev: None,
        branch: "main".into(),
        cache_dir: None,
        git_token_file: None,
        git_ssh_key: None,
        git_ssh_known_hosts: None,
    }
}

pub struct Outcome {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    fn new(code: u8, out: Vec<u8>, err: Vec<u8>) -> Outcome {
        Outcome {
            code,
            stdout: String::from_utf8(out).expect("utf-8 stdout"),
            stderr: String::from_utf8(err).expect("utf-8 stderr"),
        }
    }

    /// The finding lines (`file:line:col: severity: message`), without hints and the summary.
    pub fn findings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.starts_with("  hint:") && !l.starts_with("invalid:"))
            .collect()
    }
}

/// Log lines written while `f` runs (DEBUG and up), as the plain format writes them.
pub async fn capture_logs<F: std::future::Future>(f: F) -> (F::Output, String) {
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Only this thread: run `f` on the current-thread runtime of #[tokio::test].
    let _guard = tracing::subscriber::set_default(subscriber);
    let output = f.await;
    let text = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    (output, text)
}

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A Git repository in a temporary directory, with a fixed author and clock.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
    pub repo: git2::Repository,
    time: i64,
}

impl GitRepo {
    pub fn new() -> GitRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = git2::Repository::init(dir.path()).expect("git init");
        GitRepo {
            dir,
            repo,
            time: 1_790_000_000,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        fs::remove_file(self.dir.path().join(rel)).expect("remove");
    }

    /// Stages everything (additions, edits, deletions) and commits; returns the commit id.
    pub fn commit(&mut self, author: &str, message: &str) -> String {
        let mut index = self.repo.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.update_all(["*"], None).expect("update");
        index.write().expect("write index");
        let tree_id = index.write_tree().expect("tree");
        let tree = self.repo.find_tree(tree_id).expect("tree");
        self.time += 3600;
        let sig = git2::Signature::new(
            author,
            &format!("{}@example.com", author.to_lowercase()),
            &git2::Time::new(self.time, 0),
        )
        .expect("signature");
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }
}

/// Compares `actual` with the reviewed golden file `tests/golden/<name>`; with `STORESYNC_BLESS=1`
/// writes it instead (review the diff before committing).
pub fn golden(name: &str, actual: &str) {
    let path = repo_root().join("tests/golden").join(name);
    if std::env::var_os("STORESYNC_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with STORESYNC_BLESS=1 to create it", path.display()));
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, actual)
            .unified_diff()
            .header("golden", "actual")
            .to_string();
        panic!("{} differs from the output:\n{diff}", path.display());
    }
}
