//! Watching a local repository's Git directory: a commit (a moved branch ref) triggers a sync,
//! debounced so that one `git commit` or `git pull` triggers once.
use std::path::Path;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::debug;

const DEBOUNCE: Duration = Duration::from_millis(300);

pub(super) struct RepoWatch {
    // Kept alive for as long as events are wanted.
    _watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
    on_change: Box<dyn Fn() + Send + Sync>,
}

/// Watches `git_dir` (refs, packed refs, HEAD) and calls `on_change` after each burst of changes.
pub(super) fn spawn(
    git_dir: &Path,
    on_change: impl Fn() + Send + Sync + 'static,
) -> notify::Result<RepoWatch> {
    let (tx, events) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            // Reading refs (as every sync does) must not trigger a sync: only writes count.
            if !matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            ) {
                return;
            }
            // Lock files and objects come and go on every Git operation; refs are what matter.
            let relevant = event.paths.iter().any(|p| {
                let s = p.to_string_lossy();
                (s.contains("/refs/") || s.ends_with("packed-refs") || s.ends_with("HEAD"))
                    && !s.ends_with(".lock")
            });
            if relevant {
                let _ = tx.send(());
            }
        }
    })?;
    let refs = git_dir.join("refs");
    watcher.watch(&refs, RecursiveMode::Recursive)?;
    // packed-refs may not exist yet; the directory itself catches its creation.
    watcher.watch(git_dir, RecursiveMode::NonRecursive)?;
    Ok(RepoWatch {
        _watcher: watcher,
        events,
        on_change: Box::new(on_change),
    })
}

impl RepoWatch {
    pub(super) async fn run(mut self) {
        while self.events.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while self.events.try_recv().is_ok() {}
            debug!("repository changed; asking for a sync");
            (self.on_change)();
        }
    }
}
