//! The daemon end to end, in process: a local stores repository, the fake API server, the
//! recording helm and a fake GitHub; webhooks go through the router with `oneshot`.
use crate::common;

mod chromium;
mod faults;
mod http;
mod pr_comment;
mod retired;
mod rollout;
mod running;
mod store_page;
pub(crate) mod webhooks;

use std::time::Duration;

use axum::http::StatusCode;
use chromium::{browser_or_skip, dump_dom, load};
use common::{capture_logs, repo_root, store_yaml};
use running::{Running, catalog_repo, statuses_of};
use webhooks::{pr_body, push_body, sign};

#[tokio::test]
async fn startup_syncs_the_branch_head_and_reports_pending_then_success() {
    let (repo, sha) = catalog_repo();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &sha).await;
    assert_eq!(
        statuses_of(&r, &sha, "storesync/sync"),
        vec![
            ("pending".into(), "syncing".into()),
            ("success".into(), "applied 1, pruned 0, unchanged 0".into())
        ]
    );
    let status = r
        .github
        .statuses()
        .into_iter()
        .find(|s| s.state == "success")
        .unwrap();
    assert_eq!(
        status.target_url.as_deref(),
        Some(format!("https://storesync.example/commits/{sha}").as_str())
    );
    let (code, _) = r.get("/readyz").await;
    assert_eq!(code, StatusCode::OK);
    // The store was judged after its install: one Healthy store, every other health at 0.
    let metrics = r.get("/metrics").await.1;
    for (health, count) in [
        ("Healthy", 1),
        ("Degraded", 0),
        ("Progressing", 0),
        ("Unknown", 0),
    ] {
        let line = format!("storesync_stores_by_health{{health=\"{health}\"}} {count}");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    let (_, api) = r.get("/api/stores").await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api[0]["health"], "Healthy", "{api}");
    r.stop().await;
}

#[tokio::test]
async fn webhook_signatures_and_events() {
    let (repo, _) = catalog_repo();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    let body = push_body(&r.branch, "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(
        r.webhook("push", "d1", &body, None).await.0,
        StatusCode::UNAUTHORIZED,
        "missing signature"
    );
    let wrong = format!("sha256={}", "0".repeat(64));
    assert_eq!(
        r.webhook("push", "d2", &body, Some(wrong)).await.0,
        StatusCode::UNAUTHORIZED,
        "wrong signature"
    );
    let tampered = body.replace("refs/heads", "refs/tags");
    assert_eq!(
        r.webhook("push", "d3", &tampered, Some(sign(&body))).await.0,
        StatusCode::UNAUTHORIZED,
        "body changed"
    );
    assert_eq!(r.signed("push", "d4", &body).await.0, StatusCode::ACCEPTED);
    assert_eq!(
        r.signed("push", "d4", &body).await,
        (StatusCode::OK, "duplicate delivery: ignored\n".into()),
        "replay"
    );
    assert_eq!(
        r.signed(
            "ping",
            "d5",
            r#"{"zen":"Keep it logically awesome.","hook_id":1}"#
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        r.signed("issues", "d6", r#"{"action":"opened"}"#).await.0,
        StatusCode::NO_CONTENT
    );
    let other = push_body("feature", "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(
        r.signed("push", "d7", &other).await.0,
        StatusCode::NO_CONTENT,
        "other branches are ignored"
    );
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    assert_eq!(
        r.signed("push", "d8", &big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        r.signed("push", "d9", "{not json").await.0,
        StatusCode::BAD_REQUEST
    );
    let metrics = r.get("/metrics").await.1;
    assert!(
        metrics.contains("storesync_webhook_deliveries_total{event=\"push\",result=\"unauthorized\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("storesync_webhook_deliveries_total{event=\"push\",result=\"duplicate\"} 1"),
        "{metrics}"
    );
    r.stop().await;
}

#[tokio::test]
async fn push_webhook_syncs_the_new_commit_and_an_invalid_one_fails_naming_the_file() {
    let (repo, first) = catalog_repo();
    let mut r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;

    r.repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let second = r.repo.commit("Ben", "Add bobs");
    assert_eq!(
        r.signed("push", "p1", &push_body(&r.branch.clone(), &second))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    r.until_synced("the second sync", &second).await;
    // `queued` comes first unless the file watch started the sync before the webhook arrived.
    let statuses = statuses_of(&r, &second, "storesync/sync");
    let (last, before) = statuses.split_last().unwrap();
    assert_eq!(
        *last,
        ("success".into(), "applied 1, pruned 0, unchanged 1".into())
    );
    assert!(
        before.contains(&("pending".into(), "syncing".into())),
        "{statuses:?}"
    );
    assert!(before.iter().all(|(state, _)| state == "pending"), "{statuses:?}");

    r.repo.write(
        "stores/cafe.yaml",
        "name: cafe\nengine: magento\nplan: small\nowner: team-c\n",
    );
    let third = r.repo.commit("Cy", "Add cafe");
    r.signed("push", "p2", &push_body(&r.branch.clone(), &third))
        .await;
    r.until_synced("the failed sync", &third).await;
    let (state, description) = statuses_of(&r, &third, "storesync/sync").last().unwrap().clone();
    assert_eq!(state, "failure");
    assert_eq!(
        description,
        "invalid catalog: stores/cafe.yaml:2:9: unknown engine `magento`"
    );
    let page = r.get(&format!("/commits/{third}")).await;
    assert_eq!(page.0, StatusCode::OK);
    assert!(
        page.1
            .contains("stores/cafe.yaml:2:9: error: unknown engine `magento`"),
        "{}",
        page.1
    );
    r.stop().await;
}

#[tokio::test]
async fn pull_request_gets_a_plan_status() {
    let (mut repo, base) = catalog_repo();
    let branch = repo.repo.head().unwrap().shorthand().unwrap().to_string();
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let head = repo.commit("Ben", "Add bobs");
    // The pull request's commit exists in the repository; the branch stays at `base`.
    repo.repo
        .reference(
            &format!("refs/heads/{branch}"),
            git2::Oid::from_str(&base).unwrap(),
            true,
            "reset",
        )
        .unwrap();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &base).await;
    assert_eq!(
        r.signed("pull_request", "pr1", &pr_body(7, &head, &r.branch, &base))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    r.until("the plan status", Duration::from_secs(20), |r| {
        !statuses_of(r, &head, "storesync/plan").is_empty()
    })
    .await;
    assert_eq!(
        statuses_of(&r, &head, "storesync/plan"),
        vec![(
            "success".into(),
            "plan: 1 to create, 0 to update, 0 to prune, 1 unchanged".into()
        )]
    );
    assert!(
        statuses_of(&r, &head, "storesync/sync").is_empty(),
        "a plan never syncs"
    );
    assert!(
        r.cluster.get("namespaces", "", "store-bobs").is_none(),
        "a plan writes nothing"
    );
    let page = r.get(&format!("/commits/{head}")).await.1;
    assert!(
        page.contains("Plan of pull request #7") && page.contains("+ bobs create"),
        "{page}"
    );
    r.stop().await;
}

#[tokio::test]
async fn pushes_during_a_slow_sync_hear_pending_at_once_and_the_result_of_the_sync_that_covered_them() {
    let (repo, first) = catalog_repo();
    let mut r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;

    // A sync that upgrades a release and takes 3 seconds.
    r.helm.slow_down(3.0);
    r.repo.write(
        "stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "medium", "team-acme"),
    );
    let slow = r.repo.commit("Ann", "Grow acme");
    r.signed("push", "s0", &push_body(&r.branch.clone(), &slow)).await;
    r.until("the slow sync to start", Duration::from_secs(10), |r| {
        statuses_of(r, &slow, "storesync/sync").contains(&("pending".into(), "syncing".into()))
    })
    .await;
    let mut shas = Vec::new();
    for i in 0..20 {
        r.repo.write("stores/README.md", &format!("{i}\n"));
        let sha = r.repo.commit("Bot", &format!("Commit {i}"));
        assert_eq!(
            r.signed(
                "push",
                &format!("s{}", i + 1),
                &push_body(&r.branch.clone(), &sha)
            )
            .await
            .0,
            StatusCode::ACCEPTED
        );
        shas.push(sha);
    }
    // Every push hears `pending` while the slow sync still runs, not when its own sync starts.
    r.until("every push to hear pending", Duration::from_secs(5), |r| {
        shas.iter()
            .all(|sha| !statuses_of(r, sha, "storesync/sync").is_empty())
    })
    .await;
    assert!(
        statuses_of(&r, &slow, "storesync/sync")
            .iter()
            .all(|(state, _)| state == "pending"),
        "the slow sync is still running"
    );
    let queued = format!("queued behind {}", &slow[..12]);
    for sha in &shas {
        assert_eq!(
            statuses_of(&r, sha, "storesync/sync")[0],
            ("pending".to_string(), queued.clone())
        );
    }

    let newest = shas.last().unwrap().clone();
    r.until_synced("the follow-up sync", &newest).await;
    for sha in shas.iter().chain([&first, &slow]) {
        r.until_synced("every commit to hear its final state", sha).await;
    }
    let synced: Vec<String> = r.ctx.state.syncs().iter().filter_map(|s| s.sha.clone()).collect();
    assert!(
        synced.iter().all(|s| *s == first || *s == slow || *s == newest),
        "only the newest commit is synced after the slow one: {synced:?}"
    );
    assert_eq!(
        statuses_of(&r, &newest, "storesync/sync"),
        vec![
            ("pending".into(), queued.clone()),
            ("pending".into(), "syncing".into()),
            ("success".into(), "applied 0, pruned 0, unchanged 1".into())
        ],
        "exactly one follow-up sync"
    );
    let covered = format!(
        "superseded by {}: applied 0, pruned 0, unchanged 1",
        &newest[..12]
    );
    for sha in &shas[..19] {
        assert_eq!(
            statuses_of(&r, sha, "storesync/sync"),
            vec![
                ("pending".into(), queued.clone()),
                ("success".into(), covered.clone())
            ],
            "covered by the newest commit's sync, never synced itself"
        );
    }
    r.stop().await;
}

#[tokio::test]
async fn a_commit_in_the_local_repository_triggers_a_sync_through_the_file_watch() {
    let (repo, first) = catalog_repo();
    let mut r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;
    r.repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let second = r.repo.commit("Ben", "Add bobs");
    r.until_synced("a sync of the new commit", &second).await;
    assert!(r.ctx.state.syncs().iter().any(
        |s| s.reason == storesync::daemon::Reason::FileWatch && s.sha.as_deref() == Some(second.as_str())
    ));
    r.stop().await;
}

#[tokio::test]
async fn pages_and_api_show_the_stores() {
    let (repo, first) = catalog_repo();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;
    let (code, api) = r.get("/api/stores").await;
    assert_eq!(code, StatusCode::OK);
    let stores: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(stores[0]["name"], "acme");
    assert_eq!(stores[0]["owner"], "team-acme");
    assert!(
        ["applied", "in-sync"].contains(&stores[0]["state"].as_str().unwrap()),
        "{stores}"
    );
    assert_eq!(stores[0]["commit"], first.as_str());
    let (code, page) = r.get("/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        page.contains("<table id=\"stores\">") && page.contains("team-acme"),
        "{page}"
    );
    assert!(
        page.contains(&format!("<a href=\"/commits/{first}\">")),
        "applied commit is linked"
    );
    assert!(page.contains("http-equiv=\"refresh\""));
    assert_eq!(r.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(r.get("/commits/zzz").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.get(&format!("/commits/{}", "a".repeat(40))).await.0,
        StatusCode::NOT_FOUND
    );
    // The reporter counts a post once GitHub has answered it, a moment after the fake saw it.
    r.until("both posts counted", Duration::from_secs(5), |r| {
        r.ctx
            .metrics
            .render()
            .contains("storesync_status_posts_total{result=\"success\"} 2")
    })
    .await;
    let metrics = r.get("/metrics").await.1;
    assert!(
        metrics.contains("storesync_syncs_total{result=\"success\"} 1"),
        "{metrics}"
    );
    r.stop().await;
}

#[tokio::test]
async fn status_page_renders_in_headless_chromium() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let (mut repo, first) = catalog_repo();
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "medium", "team-bikes"),
    );
    let second = repo.commit("Ben", "Add bobs");
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &second).await;
    let _ = first;

    let dom = dump_dom(&browser, &r, "/").await;
    let table = dom
        .split("<table id=\"stores\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no store table in the rendered page:\n{dom}"));
    let rows = table.matches("<tr>").count();
    assert_eq!(rows, 3, "a header row and one row per store:\n{table}");
    for text in [
        "acme",
        "team-acme",
        "woocommerce",
        "bobs",
        "team-bikes",
        "medusa",
        "deployed (rev 1)",
    ] {
        assert!(
            table.contains(text),
            "{text} missing from the store table:\n{table}"
        );
    }
    assert!(
        table.contains(&format!("href=\"/commits/{second}\"")),
        "applied commit linked:\n{table}"
    );
    // Applied by the startup sync, or found in sync by a drift check since.
    assert_eq!(
        table.matches("class=\"state ok\">applied<").count()
            + table.matches("class=\"state ok\">in-sync<").count(),
        2
    );

    // The screenshot: kept as a CI artifact, and checked to show a page with content.
    let artifacts = repo_root().join("target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = load(&browser, &r, "/", &[format!("--screenshot={}", shot.display())]).await;
    assert!(
        out.status.success(),
        "chromium screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("screenshot written"));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1280, 900));
    let channels = info.line_size / info.width as usize;
    let dark = pixels[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| p[..3].iter().all(|c| *c < 128))
        .count();
    let share = dark as f64 / f64::from(info.width * info.height);
    assert!(
        share > 0.002 && share < 0.5,
        "the screenshot should show text on a light page (dark share {share:.4})"
    );
    r.stop().await;
}

#[tokio::test]
async fn store_page_renders_in_headless_chromium() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let (repo, sha) = catalog_repo();
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &sha).await;

    let dom = dump_dom(&browser, &r, "/stores/acme").await;
    for section in ["summary", "objects", "events", "syncs", "releases", "history"] {
        assert!(
            dom.contains(&format!("<table id=\"{section}\">")),
            "section {section} missing from the rendered page:\n{dom}"
        );
    }
    let summary = dom
        .split("<table id=\"summary\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap();
    assert!(
        summary.contains("Healthy") && summary.contains("team-acme"),
        "{summary}"
    );
    let history = dom.split("<table id=\"history\">").nth(1).unwrap();
    assert!(history.contains("Add acme"), "{history}");
    r.stop().await;
}

#[tokio::test]
async fn shutdown_lets_the_sync_in_flight_finish() {
    let (repo, first) = catalog_repo();
    let mut r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &first).await;
    r.helm.slow_down(1.5);
    r.repo.write(
        "stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "medium", "team-acme"),
    );
    let second = r.repo.commit("Ann", "Grow acme");
    r.signed("push", "x1", &push_body(&r.branch.clone(), &second))
        .await;
    r.until("the sync to start", Duration::from_secs(10), |r| {
        statuses_of(r, &second, "storesync/sync").contains(&("pending".into(), "syncing".into()))
    })
    .await;

    // Stop while helm is still running: the sync completes and reports before the daemon ends.
    let (github, helm) = r.stop().await;
    let finals: Vec<_> = github
        .statuses()
        .into_iter()
        .filter(|s| s.sha == second && s.context.as_deref() == Some("storesync/sync"))
        .map(|s| s.state)
        .collect();
    assert_eq!(
        finals,
        vec!["pending", "pending", "success"],
        "the in-flight sync finished and its status was posted"
    );
    let release = helm.release("store-acme", "acme").unwrap_or_default();
    assert!(
        release.contains("2 deployed"),
        "the upgrade ran to the end: {release}"
    );
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    use std::process::{Command, Stdio};
    let (repo, _) = catalog_repo();
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: 'https://127.0.0.1:9'}}]\n\
         users: [{name: x, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_storesync"))
        .args([
            "serve",
            "--repo",
            repo.path().to_str().unwrap(),
            "--interval",
            "1h",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("GITHUB_TOKEN")
        .env_remove("STORESYNC_WEBHOOK_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("signal received"), "{stderr}");
}

/// Two commits adding acme then bobs, synced by a daemon at startup.
async fn two_commits_synced() -> (Running, String, String) {
    let (mut repo, first) = catalog_repo();
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "small", "team-bikes"),
    );
    let second = repo.commit("Ben", "Add bobs");
    let r = Running::start(repo, Duration::from_secs(3600)).await;
    r.until_synced("the startup sync", &second).await;
    (r, first, second)
}

#[tokio::test]
async fn a_branch_moved_back_is_synced_like_any_commit_and_flagged_non_fast_forward() {
    let (r, first, second) = two_commits_synced().await;
    // Someone force-pushes the branch back: that is how a team rolls back in GitOps.
    let branch = format!("refs/heads/{}", r.branch);
    r.repo
        .repo
        .reference(&branch, git2::Oid::from_str(&first).unwrap(), true, "rewind")
        .unwrap();
    assert_eq!(
        r.signed("push", "back", &push_body(&r.branch.clone(), &first))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    r.until_synced("the sync of the older head", &first).await;
    let (state, description) = statuses_of(&r, &first, "storesync/sync").last().unwrap().clone();
    assert_eq!(state, "success");
    assert_eq!(
        description,
        format!(
            "non-fast-forward from {}: applied 0, pruned 0, retired 1, unchanged 1",
            &second[..12]
        )
    );
    assert_eq!(
        r.cluster.get("namespaces", "", "store-bobs").unwrap()["metadata"]["labels"]["storesync.dev/state"],
        "retired",
        "rolled back: the store its file is gone from is retired, its data kept"
    );
    // The first sync of the older head is flagged (a file-watch re-check of it is not).
    let syncs = r.ctx.state.syncs();
    let record = syncs
        .iter()
        .rev()
        .find(|s| s.sha.as_deref() == Some(first.as_str()))
        .expect("a sync of the older head");
    assert!(record.non_fast_forward, "{syncs:?}");
    let metrics = r.get("/metrics").await.1;
    assert!(
        metrics.contains("storesync_non_fast_forward_syncs_total 1"),
        "{metrics}"
    );
    r.stop().await;
}

#[tokio::test]
async fn a_late_delivery_naming_an_old_commit_never_rolls_back() {
    let (r, first, second) = two_commits_synced().await;
    let helm_calls = r.helm.calls().len();
    r.cluster.clear_requests();
    // A replayed or late delivery: the branch head is still the newer commit.
    assert_eq!(
        r.signed("push", "late", &push_body(&r.branch.clone(), &first))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    r.until_synced("an answer to the late delivery", &first).await;
    assert_eq!(
        statuses_of(&r, &first, "storesync/sync"),
        vec![
            ("pending".into(), "queued".into()),
            (
                "success".into(),
                format!(
                    "superseded by {}: applied 0, pruned 0, unchanged 2",
                    &second[..12]
                )
            )
        ]
    );
    assert!(r.cluster.get("namespaces", "", "store-bobs").is_some());
    assert!(r.cluster.writes().is_empty(), "{:?}", r.cluster.writes());
    assert_eq!(r.helm.calls().len(), helm_calls);
    assert!(r.ctx.state.syncs().iter().all(|s| !s.non_fast_forward));
    r.stop().await;
}

#[tokio::test]
async fn after_a_restart_the_same_head_is_not_applied_again() {
    let (r, _, second) = two_commits_synced().await;
    let helm_calls = r.helm.calls().len();
    r.cluster.clear_requests();
    let r = r.restart(Duration::from_secs(3600)).await;
    r.until(
        "the restarted daemon's first sync",
        Duration::from_secs(20),
        |r| {
            r.ctx
                .state
                .syncs()
                .iter()
                .any(|s| s.sha.as_deref() == Some(second.as_str()))
        },
    )
    .await;
    assert_eq!(
        r.ctx.state.syncs()[0].state,
        storesync::daemon::ResultState::Success
    );
    assert!(r.cluster.writes().is_empty(), "{:?}", r.cluster.writes());
    assert_eq!(r.helm.calls().len(), helm_calls, "no helm upgrade");
    r.stop().await;
}

#[tokio::test]
async fn catalog_text_in_the_daemons_logs_is_escaped() {
    let (mut repo, _) = catalog_repo();
    // YAML escapes: the engine's name holds a carriage return and an escape sequence.
    repo.write(
        "stores/cafe.yaml",
        "name: cafe\nengine: \"mag\\r\\e[2Jento\"\nplan: small\nowner: team-c\n",
    );
    let bad = repo.commit("Cy", "Add cafe");
    let (_, logs) = capture_logs(async {
        let r = Running::start(repo, Duration::from_secs(3600)).await;
        r.until_synced("the failed startup sync", &bad).await;
        r.stop().await
    })
    .await;
    let line = logs
        .lines()
        .find(|l| l.contains("sync finished"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        line.contains("unknown engine `mag\\u{d}\\u{1b}[2Jento`"),
        "{line}"
    );
    assert!(!logs.contains('\r') && !logs.contains('\x1b'), "{logs:?}");
}

/// Environment variables are process-wide, so the check runs in a child process of this test
/// binary that starts with storesync's secrets in its environment.
#[test]
fn helm_never_sees_the_daemons_secrets() {
    const CHILD: &str = "STORESYNC_TEST_SECRETS_IN_ENV";
    const SECRETS: [(&str, &str); 3] = [
        ("GITHUB_TOKEN", "ghp_canary0123456789"),
        ("STORESYNC_WEBHOOK_SECRET", "webhook-canary-0123456789"),
        ("STORESYNC_GIT_TOKEN", "git-canary-0123456789"),
    ];
    if std::env::var_os(CHILD).is_none() {
        let name = "daemon::helm_never_sees_the_daemons_secrets";
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads", "1"])
            .env(CHILD, "1")
            .envs(SECRETS)
            .env("KUBECONFIG", "/etc/storesync-test/kubeconfig")
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{stderr}"
        );
        return;
    }
    for (name, value) in SECRETS {
        assert_eq!(
            std::env::var(name).as_deref(),
            Ok(value),
            "the daemon holds {name}"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, helm) = runtime.block_on(async {
        let (repo, sha) = catalog_repo();
        let r = Running::start(repo, Duration::from_secs(3600)).await;
        r.until_synced("the startup sync", &sha).await;
        r.stop().await
    });
    assert_eq!(helm.calls()[0][0], "upgrade");
    let env = helm.env(1);
    for (name, value) in SECRETS {
        assert!(!env.contains_key(name), "helm got {name}");
        assert!(
            !env.values().any(|v| v.contains(value)),
            "helm got the value of {name}"
        );
    }
    assert_eq!(env["KUBECONFIG"], "/etc/storesync-test/kubeconfig");
    assert_eq!(env["HOME"], std::env::temp_dir().display().to_string());
    assert_eq!(Some(env["PATH"].as_str()), std::env::var("PATH").ok().as_deref());
}
