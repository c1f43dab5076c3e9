//! `storesync serve` replicas for the end-to-end suite: real processes run as the restricted
//! identity with their logs in files, their HTTP endpoints, and what they share through the
//! cluster (the Lease and the ConfigMaps), read as the admin.
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use sha2::Sha256;

use super::catalog::StoresRepo;
use super::cluster::get;
use super::harness::{E2E_NAMESPACE, HELM_TIMEOUT, Suite, admin_kubectl, helm, path_str, tiny_chart};

/// The Lease the replicas compete for, and the ConfigMaps they share (all in E2E_NAMESPACE).
pub const LEASE: &str = "storesync";
pub const STATE: &str = "storesync-state";
pub const REQUESTS: &str = "storesync-requests";

/// Election timings short enough for a test and valid by client-go's rules.
pub const LEASE_DURATION: Duration = Duration::from_secs(6);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(4);
pub const RETRY_PERIOD: Duration = Duration::from_secs(1);
/// Candidates retry after up to 1.2 × the retry period (client-go's jitter).
pub const JITTER: f64 = 1.2;

/// The branch the daemons track (StoresRepo commits on it).
const BRANCH: &str = "main";

/// One `storesync serve --leader-elect` process in a process group of its own, with the helm it
/// starts: killed together, as a pod's processes die together. SIGKILLed when dropped.
pub struct Daemon {
    /// Its `POD_NAME`: the Lease's holderIdentity is this, `_` and a random suffix.
    pub name: String,
    pub port: u16,
    child: RefCell<Child>,
    /// Waited for: its process group may be gone and its id reused, so it is signalled no more.
    reaped: Cell<bool>,
    log: PathBuf,
}

/// Whether holderIdentity `holder` is of the process started with `POD_NAME=name`.
fn is_holder(name: &str, holder: &str) -> bool {
    holder
        .strip_prefix(name)
        .is_some_and(|rest| rest.starts_with('_'))
}

/// Two distinct free ports: both are held until both are known.
fn free_ports() -> [u16; 2] {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let held = [bind(), bind()];
    held.map(|l| l.local_addr().expect("local address").port())
}

impl Daemon {
    fn start(suite: &Suite, name: &str, port: u16, repo_url: &str, dir: &Path, secret: &str) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let file = File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let cache = dir.join(format!("{name}-cache"));
        let charts = tiny_chart().parent().expect("charts dir").to_path_buf();
        let secs = |d: Duration| format!("{}s", d.as_secs());
        let mut cmd = suite.storesync_command();
        cmd.args(["serve", "--repo", repo_url, "--branch", BRANCH, "--cache-dir"])
            .arg(&cache)
            .args(["--charts-dir", path_str(&charts), "--helm"])
            .arg(helm())
            .args(["--helm-timeout", HELM_TIMEOUT, "--namespace", E2E_NAMESPACE])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // No poll during a scenario: a sync comes from the election or a push only.
            .args(["--interval", "1h", "--leader-elect"])
            .args(["--lease-duration", &secs(LEASE_DURATION)])
            .args(["--renew-deadline", &secs(RENEW_DEADLINE)])
            .args(["--retry-period", &secs(RETRY_PERIOD)])
            .env("POD_NAME", name)
            .env("STORESYNC_WEBHOOK_SECRET", secret)
            .env_remove("STORESYNC_WEBHOOK_SECRET_FILE")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start storesync serve ({name}): {e}"));
        Daemon {
            name: name.to_string(),
            port,
            child: RefCell::new(child),
            reaped: Cell::new(false),
            log,
        }
    }

    /// Whether `holder` (a Lease's holderIdentity) is this process.
    pub fn holds(&self, holder: &str) -> bool {
        is_holder(&self.name, holder)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()))
    }

    /// SIGKILL to storesync and the helm it runs: no renewal, no release, nothing written on
    /// the way out.
    pub fn kill(&self) {
        if self.reaped.get() {
            return;
        }
        let mut child = self.child.borrow_mut();
        let group = format!("-{}", child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
        self.reaped.set(true);
    }

    /// SIGTERM: the graceful stop a pod gets when it is deleted.
    pub fn terminate(&self) {
        let pid = self.child.borrow().id().to_string();
        let out = Command::new("kill")
            .args(["-TERM", &pid])
            .output()
            .expect("run kill");
        assert!(
            out.status.success(),
            "kill -TERM {pid} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn exited(&self) -> Option<ExitStatus> {
        let status = self.child.borrow_mut().try_wait().ok().flatten();
        if status.is_some() {
            self.reaped.set(true);
        }
        status
    }

    /// `GET path`: (status, body), or why there was no answer.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ))
    }

    /// A push to the tracked branch, signed as GitHub signs it, delivered to this replica.
    pub fn push(&self, sha: &str, secret: &str, delivery: &str) -> Result<(u16, String), String> {
        let body = json!({
            "ref": format!("refs/heads/{BRANCH}"),
            "after": sha,
            "deleted": false,
            "repository": { "full_name": "storesync-e2e/stores" },
        })
        .to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC key");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        self.request(&format!(
            "POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: {delivery}\r\n\
             X-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    fn request(&self, request: &str) -> Result<(u16, String), String> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("{addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("{addr}: {e}"))?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| format!("{addr}: {e}"))?;
        parse_response(&raw)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP/1.1 response: status and body (a chunked body is decoded).
fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status: {head:?}"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    if !chunked {
        return Ok((status, body.to_string()));
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size in {body:?}"))?;
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    Ok((status, out))
}

/// The Lease `storesync` as the API server holds it.
#[derive(Debug, Clone)]
pub struct Lease {
    /// `None` when released (or never held).
    pub holder: Option<String>,
    pub transitions: i64,
    pub duration_seconds: Option<i64>,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub raw: Value,
}

fn micro_time(v: &Value) -> Option<Timestamp> {
    v.as_str().map(|s| {
        s.parse()
            .unwrap_or_else(|e| panic!("Lease time `{s}` is not RFC 3339: {e}"))
    })
}

/// The Lease, or `None` when there is none.
pub fn lease() -> Option<Lease> {
    let raw = get("leases.coordination.k8s.io", Some(E2E_NAMESPACE), LEASE)?;
    let spec = &raw["spec"];
    Some(Lease {
        holder: spec["holderIdentity"]
            .as_str()
            .filter(|h| !h.is_empty())
            .map(String::from),
        // Omitted by the API server when never set; storesync always sets it.
        transitions: spec["leaseTransitions"].as_i64().unwrap_or(0),
        duration_seconds: spec["leaseDurationSeconds"].as_i64(),
        acquire_time: micro_time(&spec["acquireTime"]),
        renew_time: micro_time(&spec["renewTime"]),
        raw,
    })
}

/// Milliseconds from `earlier` to `later`.
pub fn millis_between(earlier: Timestamp, later: Timestamp) -> i64 {
    later.as_millisecond() - earlier.as_millisecond()
}

/// The records the leader shares (`records.json` of ConfigMap storesync-state), if any.
pub fn shared_records() -> Option<Value> {
    let cm = get("configmap", Some(E2E_NAMESPACE), STATE)?;
    let text = cm["data"]["records.json"].as_str()?.to_string();
    Some(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{STATE} holds unreadable records.json ({e}): {text}")),
    )
}

/// The sync of `sha` in the shared records, if one is recorded.
pub fn shared_sync(records: &Value, sha: &str) -> Option<Value> {
    records["records"]["syncs"]
        .as_array()?
        .iter()
        .rev()
        .find(|s| s["sha"] == sha)
        .cloned()
}

/// Deletes the Lease and the shared ConfigMaps, so a scenario starts as a fresh installation
/// and leaves nothing behind; never panics (it also runs while a failed assertion unwinds).
fn reset_shared() {
    for (kind, name) in [
        ("leases.coordination.k8s.io", LEASE),
        ("configmap", STATE),
        ("configmap", REQUESTS),
    ] {
        let out = admin_kubectl(
            &["delete", kind, name, "-n", E2E_NAMESPACE, "--ignore-not-found"],
            None,
        );
        if !out.ok() {
            eprintln!("[e2e] cannot delete {kind} {E2E_NAMESPACE}/{name}; delete it by hand\n{out}");
        }
    }
}

fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}

/// Two replicas of one installation, on the same stores repository (as a `file://` URL, so
/// nothing but the election and pushes makes them sync). Dropping it kills both and deletes the
/// Lease and the shared ConfigMaps.
pub struct Pair {
    pub daemons: [Daemon; 2],
    /// The webhook secret both replicas verify deliveries with.
    pub secret: String,
    /// Whether a failure message already carried the logs.
    reported: Cell<bool>,
    _dir: tempfile::TempDir,
}

impl Pair {
    pub fn start(suite: &Suite, repo: &StoresRepo) -> Pair {
        reset_shared();
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = random_token();
        let url = repo.file_url();
        let [port_a, port_b] = free_ports();
        let daemons = [("a", port_a), ("b", port_b)].map(|(n, port)| {
            Daemon::start(
                suite,
                &format!("{}replica-{n}", suite.prefix),
                port,
                &url,
                dir.path(),
                &secret,
            )
        });
        Pair {
            daemons,
            secret,
            reported: Cell::new(false),
            _dir: dir,
        }
    }

    /// Both daemons' logs, for failure messages.
    pub fn logs(&self) -> String {
        self.daemons
            .iter()
            .map(|d| {
                format!(
                    "--- storesync serve {} (port {}) ---\n{}",
                    d.name,
                    d.port,
                    d.logs()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Fails the test with `message` and both daemons' logs.
    pub fn fail(&self, message: &str) -> ! {
        self.reported.set(true);
        panic!("{message}\n{}", self.logs());
    }

    pub fn ensure(&self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.fail(&message());
        }
    }

    /// Polls `done` every 200 ms until it is true, and returns how long that took; fails with
    /// both logs at `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > timeout {
                self.fail(&format!("timed out after {timeout:?} waiting until {what}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        start.elapsed()
    }

    /// The daemon that holds `lease`, if it is one of these two.
    pub fn holder_of(&self, lease: &Lease) -> Option<usize> {
        let holder = lease.holder.as_deref()?;
        self.daemons.iter().position(|d| d.holds(holder))
    }

    /// Waits until one of the two holds the Lease; returns it and the Lease.
    pub fn await_leader(&self, timeout: Duration) -> (usize, Lease) {
        let mut found = None;
        self.wait("one replica holds the Lease", timeout, || {
            found = lease().and_then(|l| self.holder_of(&l).map(|i| (i, l)));
            found.is_some()
        });
        found.expect("found by the wait")
    }

    /// `GET path` on daemon `i`, failing with the logs when it does not answer.
    pub fn get(&self, i: usize, path: &str) -> (u16, String) {
        self.daemons[i].get(path).unwrap_or_else(|e| {
            self.fail(&format!(
                "{} did not answer GET {path}: {e}",
                self.daemons[i].name
            ))
        })
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Stopped first, or a live replica would create the Lease again.
        for d in &self.daemons {
            d.kill();
        }
        if std::thread::panicking() && !self.reported.get() {
            eprintln!("{}", self.logs());
        }
        reset_shared();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_parsed_plain_and_chunked() {
        let plain = b"HTTP/1.1 202 Accepted\r\ncontent-length: 3\r\n\r\nok\n";
        assert_eq!(parse_response(plain).unwrap(), (202, "ok\n".to_string()));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[{}]\r\n2\r\n\n\n\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (200, "[{}]\n\n".to_string()));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn lease_times_read_as_the_api_server_writes_them() {
        // MicroTime: RFC 3339 in UTC with microseconds.
        let renewed = micro_time(&json!("2026-11-23T03:13:23.364102Z")).unwrap();
        let acquired = micro_time(&json!("2026-11-23T03:13:30.100000Z")).unwrap();
        assert_eq!(millis_between(renewed, acquired), 6736);
        assert!(micro_time(&Value::Null).is_none());
    }

    #[test]
    fn holder_identities_belong_to_their_pod_name_only() {
        let holds = is_holder;
        assert!(holds("e2e1234-replica-a", "e2e1234-replica-a_0badf00d"));
        assert!(!holds("e2e1234-replica-a", "e2e1234-replica-ab_0badf00d"));
        assert!(!holds("e2e1234-replica-a", "e2e1234-replica-b_0badf00d"));
    }
}
