//! helm dies with storesync: dropped unfinished (a timeout, an aborted sync, a second signal),
//! its whole process group is killed; and a SIGKILLed storesync, which runs no code on the way
//! out, takes its helm along through the parent-death signal. Real processes, real time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use storesync::apply::Helm;

/// Where the storesync process of the SIGKILL test runs its helm; set only for that process.
const STORESYNC_DIR: &str = "STORESYNC_TEST_HELM_DIR";

/// A helm that notes its pid in `dir/helm.pid` and sleeps; with `child`, it sleeps in a child
/// process of its own (noted in `dir/child.pid`), as a plugin or post-renderer would run.
fn sleeping_helm(dir: &Path, child: bool) -> PathBuf {
    let sleep = if child {
        "sleep 600 &\necho $! > \"$here/child.tmp\" && mv \"$here/child.tmp\" \"$here/child.pid\"\nwait"
    } else {
        "exec sleep 600"
    };
    let script = format!(
        "#!/bin/sh\nhere=\"$(dirname \"$0\")\"\necho $$ > \"$here/helm.tmp\" && mv \"$here/helm.tmp\" \"$here/helm.pid\"\n{sleep}\n"
    );
    let path = dir.join("helm");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn helm(binary: PathBuf) -> Helm {
    Helm {
        charts_dir: binary.parent().unwrap().to_path_buf(),
        binary,
        timeout: Duration::from_secs(600),
        allowed_chart_prefixes: Vec::new(),
    }
}

/// The pid written to `file`, once it is there.
async fn pid_in(file: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "{} never appeared", file.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether process `pid` runs (a zombie waiting for its reaper does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(") ")?.1.chars().next()? != 'Z'))
        .unwrap_or(false)
}

/// Waits up to two seconds for every process of `pids` to be gone; true when they are.
async fn gone_soon(pids: &[i32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|pid| alive(*pid)) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Kills what a failing test left running.
struct Reap(Vec<i32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for pid in self.0.iter().filter(|pid| alive(**pid)) {
            if let Some(pid) = rustix::process::Pid::from_raw(*pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

#[tokio::test]
async fn a_helm_dropped_unfinished_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let helm = helm(sleeping_helm(dir.path(), true));
    let running = tokio::spawn(async move { helm.uninstall("acme", "store-acme").await });
    let pids = [
        pid_in(&dir.path().join("helm.pid")).await,
        pid_in(&dir.path().join("child.pid")).await,
    ];
    let _reap = Reap(pids.to_vec());
    assert!(pids.iter().all(|pid| alive(*pid)));
    // As an aborted sync or a runtime shutting down drops it.
    running.abort();
    let _ = running.await;
    assert!(
        gone_soon(&pids).await,
        "helm and its child {pids:?} outlived the sync that ran them"
    );
}

#[tokio::test]
async fn a_sigkilled_storesync_takes_its_helm_with_it() {
    let dir = tempfile::tempdir().unwrap();
    sleeping_helm(dir.path(), false);
    // This test binary, running only the storesync below, as a process of its own.
    let mut storesync = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "ha::helm_process::storesync_running_helm",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(STORESYNC_DIR, dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let helm = pid_in(&dir.path().join("helm.pid")).await;
    let _reap = Reap(vec![helm]);
    assert!(alive(helm));
    storesync.kill().unwrap(); // SIGKILL
    storesync.wait().unwrap();
    assert!(
        gone_soon(&[helm]).await,
        "helm (pid {helm}) outlived the storesync that ran it (is util-linux setpriv on PATH?)"
    );
}

/// The storesync process of `a_sigkilled_storesync_takes_its_helm_with_it`: runs helm through
/// the real spawning code and waits for it, until killed.
#[tokio::test]
#[ignore = "run by a_sigkilled_storesync_takes_its_helm_with_it as its own process"]
async fn storesync_running_helm() {
    let dir = std::env::var_os(STORESYNC_DIR).expect("run by a_sigkilled_storesync_takes_its_helm_with_it");
    let helm = helm(Path::new(&dir).join("helm"));
    let finished = helm.uninstall("acme", "store-acme").await;
    panic!("helm was to run until this process was killed: {finished:?}");
}
