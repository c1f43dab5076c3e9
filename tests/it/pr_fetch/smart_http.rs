//! A Git smart-HTTP server (protocol v0 `upload-pack`, as GitHub speaks it to libgit2) over a
//! bare repository, small enough to read: it serves shallow fetches (`deepen`), which libgit2's
//! local transport for `file://` URLs refuses, asks for Basic authentication when given a
//! password, records what clients asked for, and can hold a pack mid-way on a gate, to show what
//! happens meanwhile or to play a remote that went silent.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use git2::{Oid, Repository};

const CAPABILITIES: &str =
    "multi_ack_detailed shallow allow-tip-sha1-in-want allow-reachable-sha1-in-want no-progress";

/// One upload-pack request, as the server understood it.
#[derive(Debug, Clone)]
pub struct Request {
    pub wants: Vec<Oid>,
    pub deepen: Option<u32>,
    pub done: bool,
}

#[derive(Default)]
struct Gate {
    /// Packs stop after this many bytes until released.
    after: Option<usize>,
    /// A pack is waiting at the gate.
    reached: bool,
    released: bool,
}

struct Shared {
    repo: PathBuf,
    login: Option<(String, String)>,
    requests: Mutex<Vec<Request>>,
    gate: Mutex<Gate>,
    changed: Condvar,
}

pub struct SmartHttp {
    port: u16,
    shared: Arc<Shared>,
}

impl SmartHttp {
    /// Serves the bare repository at `repo` as `http://127.0.0.1:<port>/stores.git`; with a
    /// `login`, only to clients that send it.
    pub fn start(repo: PathBuf, login: Option<(&str, &str)>) -> SmartHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            repo,
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
            requests: Mutex::new(Vec::new()),
            gate: Mutex::new(Gate::default()),
            changed: Condvar::new(),
        });
        let server = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let shared = server.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        SmartHttp { port, shared }
    }

    /// The URL, with `user:password@` when `login` is given.
    pub fn url(&self, login: Option<(&str, &str)>) -> String {
        match login {
            Some((user, password)) => format!("http://{user}:{password}@127.0.0.1:{}/stores.git", self.port),
            None => format!("http://127.0.0.1:{}/stores.git", self.port),
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// From now on a pack stops after `bytes` until [`SmartHttp::release`].
    pub fn hold_packs_after(&self, bytes: usize) {
        *self.shared.gate.lock().unwrap() = Gate {
            after: Some(bytes),
            ..Gate::default()
        };
    }

    /// Waits until a pack is held at the gate; false after `timeout`.
    pub fn wait_until_held(&self, timeout: Duration) -> bool {
        let gate = self.shared.gate.lock().unwrap();
        let (gate, _) = self
            .shared
            .changed
            .wait_timeout_while(gate, timeout, |g| !g.reached)
            .unwrap();
        gate.reached
    }

    pub fn release(&self) {
        self.shared.gate.lock().unwrap().released = true;
        self.shared.changed.notify_all();
    }
}

/// Answers the requests of one connection (kept alive) until the client closes it.
fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let target = line.split_whitespace().nth(1).unwrap_or_default().to_string();
        let (mut length, mut chunked, mut authorization) = (0usize, false, None);
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
        let body = if chunked {
            read_chunked(&mut reader)?
        } else {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            body
        };
        if let Some((user, password)) = &shared.login {
            use base64::Engine;
            let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            if authorization.as_deref() != Some(&format!("Basic {expected}")) {
                out.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                      Content-Length: 0\r\n\r\n",
                )?;
                continue;
            }
        }
        if target.ends_with("/info/refs?service=git-upload-pack") {
            let body = advertisement(shared);
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)?;
        } else if target.ends_with("/git-upload-pack") {
            upload_pack(&body, shared, &mut out)?;
        } else {
            out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn pkt(text: &str) -> Vec<u8> {
    format!("{:04x}{text}", text.len() + 4).into_bytes()
}

/// The refs, `HEAD` first, the capabilities after the first.
fn advertisement(shared: &Shared) -> Vec<u8> {
    let repo = Repository::open_bare(&shared.repo).unwrap();
    let mut refs = vec![("HEAD".to_string(), repo.refname_to_id("HEAD").unwrap())];
    for reference in repo.references().unwrap() {
        let reference = reference.unwrap();
        if let (Ok(name), Some(id)) = (reference.name(), reference.target()) {
            refs.push((name.to_string(), id));
        }
    }
    let mut body = pkt("# service=git-upload-pack\n");
    body.extend_from_slice(b"0000");
    for (i, (name, id)) in refs.iter().enumerate() {
        let line = match i {
            0 => format!("{id} {name}\0{CAPABILITIES}\n"),
            _ => format!("{id} {name}\n"),
        };
        body.extend(pkt(&line));
    }
    body.extend_from_slice(b"0000");
    body
}

fn parse_request(body: &[u8]) -> Request {
    let mut request = Request {
        wants: Vec::new(),
        deepen: None,
        done: false,
    };
    let mut rest = body;
    while rest.len() >= 4 {
        let len = usize::from_str_radix(std::str::from_utf8(&rest[..4]).unwrap(), 16).unwrap();
        if len == 0 {
            rest = &rest[4..];
            continue;
        }
        let line = std::str::from_utf8(&rest[4..len]).unwrap().trim_end();
        rest = &rest[len..];
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("want"), Some(id)) => request.wants.push(Oid::from_str(id).unwrap()),
            (Some("deepen"), Some(depth)) => request.deepen = depth.parse().ok(),
            (Some("done"), _) => request.done = true,
            _ => {}
        }
    }
    request
}

/// The shallow boundary when asked to deepen, then (after `done`) `NAK` and the pack: only the
/// wanted commits and their trees when shallow, else their whole history.
fn upload_pack(body: &[u8], shared: &Shared, out: &mut TcpStream) -> std::io::Result<()> {
    let request = parse_request(body);
    shared.requests.lock().unwrap().push(request.clone());
    let repo = Repository::open_bare(&shared.repo).unwrap();
    let mut head = Vec::new();
    if request.deepen.is_some() {
        for id in &request.wants {
            if repo.find_commit(*id).unwrap().parent_count() > 0 {
                // As upload-pack writes it: no newline (libgit2 refuses one).
                head.extend(pkt(&format!("shallow {id}")));
            }
        }
        head.extend_from_slice(b"0000");
    }
    let pack = if request.done {
        head.extend(pkt("NAK\n"));
        let mut builder = repo.packbuilder().unwrap();
        if request.deepen.is_some() {
            for id in &request.wants {
                builder.insert_commit(*id).unwrap();
            }
        } else {
            let mut walk = repo.revwalk().unwrap();
            for id in &request.wants {
                walk.push(*id).unwrap();
            }
            builder.insert_walk(&mut walk).unwrap();
        }
        let mut pack = git2::Buf::new();
        builder.write_buf(&mut pack).unwrap();
        pack.to_vec()
    } else {
        if request.deepen.is_none() {
            head.extend(pkt("NAK\n"));
        }
        Vec::new()
    };
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-result\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )?;
    chunk(out, &head)?;
    let mut sent = 0;
    for piece in pack.chunks(64 * 1024) {
        wait_at_gate(shared, sent);
        chunk(out, piece)?;
        sent += piece.len();
    }
    out.write_all(b"0\r\n\r\n")?;
    out.flush()
}

fn chunk(out: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    write!(out, "{:x}\r\n", data.len())?;
    out.write_all(data)?;
    out.write_all(b"\r\n")
}

fn wait_at_gate(shared: &Shared, sent: usize) {
    let mut gate = shared.gate.lock().unwrap();
    if gate.after.is_none_or(|after| sent < after) || gate.released {
        return;
    }
    gate.reached = true;
    shared.changed.notify_all();
    drop(shared.changed.wait_while(gate, |g| !g.released).unwrap());
}
