//! The HTTP surface on a real socket against clients that misbehave: slow or partial headers,
//! a Content-Length with no body, idle keep-alive, floods of unsigned bodies, more webhooks
//! at once than allowed. Limits are shortened here (1 s instead of 10 s) to keep the suite
//! quick; `HttpLimits::default()` is checked separately.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use storesync::secret::Secret;
use storesync::server::{self, HttpLimits, ServerState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::running::{Running, catalog_repo};
use super::webhooks::{SECRET, push_body, sign};

const LIMITS: HttpLimits = HttpLimits {
    header_read: Duration::from_secs(1),
    body_read: Duration::from_secs(1),
    max_connections: 1024,
    max_webhooks: 2,
    max_header_bytes: 64 * 1024,
};

/// `serve` of the running daemon's router on a loopback port, with `LIMITS`.
async fn listen(r: &Running) -> (SocketAddr, watch::Sender<bool>) {
    let state = Arc::new(ServerState::new(
        r.ctx.clone(),
        Some(Secret::from(SECRET)),
        Some("acme-platform/stores".into()),
        LIMITS,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = watch::channel(false);
    tokio::spawn(server::serve(listener, server::router(state), LIMITS, rx));
    (addr, stop)
}

/// Reads until the server closes the connection; how long that took, and what it sent.
async fn until_closed(mut conn: TcpStream, limit: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "still open after {limit:?}; received: {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

fn head(signature: Option<&str>, content_length: usize) -> String {
    let mut h = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: storesync\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-GitHub-Delivery: d-{content_length}\r\nContent-Length: {content_length}\r\n"
    );
    if let Some(sig) = signature {
        h.push_str(&format!("X-Hub-Signature-256: {sig}\r\n"));
    }
    h.push_str("\r\n");
    h
}

#[tokio::test]
async fn slow_partial_and_idle_connections_are_closed() {
    let (repo, sha) = catalog_repo();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &sha).await;
    let (addr, _stop) = listen(&r).await;
    let deadline = Duration::from_secs(5);

    let silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: st")
        .await
        .unwrap();
    let mut no_body = TcpStream::connect(addr).await.unwrap();
    let forged = format!("sha256={}", "0".repeat(64));
    no_body
        .write_all(head(Some(&forged), 1000).as_bytes())
        .await
        .unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: storesync\r\n\r\n")
        .await
        .unwrap();

    let (silent, partial, no_body, idle) = tokio::join!(
        until_closed(silent, deadline),
        until_closed(partial, deadline),
        until_closed(no_body, deadline),
        until_closed(idle, deadline),
    );
    for (what, (took, _)) in [
        ("silent", &silent),
        ("partial headers", &partial),
        ("idle keep-alive", &idle),
    ] {
        assert!(
            *took >= Duration::from_millis(900),
            "{what} closed too early: {took:?}"
        );
    }
    assert!(no_body.1.starts_with("HTTP/1.1 408"), "{}", no_body.1);
    assert!(
        idle.1.starts_with("HTTP/1.1 200"),
        "answered, then closed when idle: {}",
        idle.1
    );
    r.stop().await;
}

#[tokio::test]
async fn unsigned_bodies_are_refused_unread_while_signed_deliveries_are_answered() {
    let (repo, sha) = catalog_repo();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &sha).await;
    let (addr, _stop) = listen(&r).await;

    // 100 clients announce 1 MiB bodies without a signature and send them slowly.
    let mut floods = Vec::new();
    for _ in 0..100 {
        floods.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.write_all(head(None, 1024 * 1024 - 1).as_bytes())
                .await
                .unwrap();
            let _ = conn.write_all(&[b' '; 1024]).await;
            until_closed(conn, Duration::from_secs(5)).await
        }));
    }
    // Meanwhile a signed push is answered at once.
    let body = push_body(&r.branch, &sha);
    let mut signed = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    signed
        .write_all(format!("{}{body}", head(Some(&sign(&body)), body.len())).as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 64];
    let n = signed.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 202"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for flood in floods {
        let (_, got) = flood.await.unwrap();
        assert!(got.starts_with("HTTP/1.1 401"), "{got}");
    }
    r.stop().await;
}

#[tokio::test]
async fn webhooks_past_the_bound_get_503_until_a_slot_frees() {
    let (repo, sha) = catalog_repo();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &sha).await;
    let (addr, _stop) = listen(&r).await;
    // Two slow deliveries with well-formed signatures hold both slots while their bodies trickle.
    let forged = format!("sha256={}", "0".repeat(64));
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(head(Some(&forged), 100).as_bytes()).await.unwrap();
        holders.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body = push_body(&r.branch, &sha);
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(format!("{}{body}", head(Some(&sign(&body)), body.len())).as_bytes())
        .await
        .unwrap();
    let (_, got) = until_closed(third, Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.to_ascii_lowercase().contains("retry-after: 5"), "{got}");
    // The holders time out (408) and their slots come back.
    for h in holders {
        let (_, got) = until_closed(h, Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    }
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    fourth
        .write_all(format!("{}{body}", head(Some(&sign(&body)), body.len())).as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 64];
    let n = fourth.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(
        answer.starts_with("HTTP/1.1 202") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    r.stop().await;
}

#[test]
fn the_defaults_are_the_documented_bounds() {
    let d = HttpLimits::default();
    assert_eq!(d.header_read, Duration::from_secs(10));
    assert_eq!(d.body_read, Duration::from_secs(10));
    assert!(d.max_webhooks >= 8 && d.max_webhooks <= 64);
}
