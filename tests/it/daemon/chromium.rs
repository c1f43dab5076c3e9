//! Headless Chromium, to load the status page as a browser does.

/// Chromium from Debian (`chromium`), or `None` when this machine has none.
pub fn chromium() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

pub fn chromium_args(profile: &std::path::Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Chromium, or `None` after saying the test is skipped; CI sets STORESYNC_REQUIRE_BROWSER, and a
/// missing browser then fails the test instead.
pub fn browser_or_skip() -> Option<std::path::PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("STORESYNC_REQUIRE_BROWSER").is_none(),
            "STORESYNC_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)"
        );
        eprintln!("SKIPPED: chromium is not installed; CI installs it and sets STORESYNC_REQUIRE_BROWSER=1");
    }
    found
}

/// Headless Chromium run with `args` on `path` of `r`'s HTTP surface, served on a real socket
/// for the browser.
pub async fn load(
    browser: &std::path::Path,
    r: &super::running::Running,
    path: &str,
    args: &[String],
) -> std::process::Output {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let app = storesync::server::router(r.state.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(browser)
        .args(chromium_args(profile.path()))
        .args(args)
        .arg(&url)
        .output()
        .await
        .unwrap();
    server.abort();
    out
}

/// The DOM of `path` as headless Chromium renders it.
pub async fn dump_dom(browser: &std::path::Path, r: &super::running::Running, path: &str) -> String {
    let dom = load(browser, r, path, &["--dump-dom".to_string()]).await;
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}
