//! Processes of the suite with a deadline: their output collected while they run (so a full
//! pipe never blocks them), their peak memory where /proc tells it, and background processes
//! killed with their group when dropped.
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What a finished process left behind.
#[derive(Debug)]
pub struct Output {
    pub what: String,
    /// `None` when the process was killed (deadline) or died from a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with everything the process said unless it exited 0.
    pub fn expect_ok(self) -> Output {
        if !self.ok() {
            panic!("{self}");
        }
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` to completion, killing it at `timeout`; never panics on a failed command.
pub fn run(cmd: Command, stdin: Option<&str>, timeout: Duration) -> Output {
    run_watched(cmd, stdin, timeout, Duration::from_millis(50), |_| {})
}

/// A finished process and its peak resident memory, when this machine can tell.
#[derive(Debug)]
pub struct Measured {
    pub out: Output,
    /// Peak resident set size in KiB (`VmHWM` of `/proc/<pid>/status`), `None` without `/proc`.
    pub peak_kib: Option<u64>,
}

/// `VmHWM` (peak resident set size, KiB) of process `pid`, while it runs.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Like [`run`], also reading the process's peak resident memory every 10 ms while it runs. The
/// kernel keeps the peak (`VmHWM`), so only a peak reached in the last 10 ms before exit could be
/// missed; growing by 100 MiB takes longer than that.
pub fn run_measured(cmd: Command, timeout: Duration) -> Measured {
    if peak_rss_kib(std::process::id()).is_none() {
        return Measured {
            out: run(cmd, None, timeout),
            peak_kib: None,
        };
    }
    let mut peak = None;
    let out = run_watched(cmd, None, timeout, Duration::from_millis(10), |pid| {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = Some(peak.unwrap_or(0).max(kib));
        }
    });
    Measured { out, peak_kib: peak }
}

/// Runs `cmd` to completion, killing it at `timeout`, calling `watch` with its pid every `tick`.
fn run_watched(
    mut cmd: Command,
    stdin: Option<&str>,
    timeout: Duration,
    tick: Duration,
    mut watch: impl FnMut(u32),
) -> Output {
    let what = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output {
                what,
                code: None,
                stdout: String::new(),
                stderr: format!("cannot start: {e}"),
                elapsed: start.elapsed(),
            };
        }
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                watch(child.id());
                std::thread::sleep(tick)
            }
            Err(e) => panic!("cannot wait for `{what}`: {e}"),
        }
    };
    let text = |h: JoinHandle<Vec<u8>>| String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned();
    let mut stderr = text(err);
    if code.is_none() && start.elapsed() > timeout {
        stderr.push_str(&format!("\n[e2e] killed after the {timeout:?} deadline"));
    }
    Output {
        what,
        code,
        stdout: text(out),
        stderr,
        elapsed: start.elapsed(),
    }
}

/// A process started in the background for a test to kill; killed anyway when dropped, so a
/// failed assertion never leaves it running.
pub struct Background(Child);

impl Background {
    /// Whether it has ended on its own, and how.
    pub fn ended(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }

    /// SIGKILL on Unix: the process gets no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` in the background with its output discarded.
pub fn spawn(mut cmd: Command) -> Background {
    let what = describe(&cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    Background(child)
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}
