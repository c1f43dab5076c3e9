//! `/stores/<name>` against the fake API server and a running daemon: every section, escaped
//! text from the cluster and from Git, a section whose source fails, and the links to it.
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::running::Running;
use crate::common::fake_cluster::Fault;
use crate::common::{GitRepo, store_yaml};

const HOSTILE: &str = "<script>alert(1)</script>";

fn event(name: &str, when: &str, reason: &str, note: &str, count: i32) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "creationTimestamp": when},
        "eventTime": when.replace('Z', ".000000Z"),
        "reportingController": "kubelet", "reportingInstance": "node-1", "action": "Pulling",
        "type": "Warning", "reason": reason, "note": note,
        "regarding": {"kind": "Pod", "name": "acme-web-7d9f-x2"},
        "series": {"count": count, "lastObservedTime": when.replace('Z', ".000000Z")},
    })
}

/// The part of `page` from `<table id="{id}">` to its end.
fn table<'p>(page: &'p str, id: &str) -> &'p str {
    page.split(&format!("<table id=\"{id}\">"))
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no table {id} in:\n{page}"))
}

async fn started() -> (Running, String) {
    let mut repo = GitRepo::new();
    repo.write(
        "stores/acme.yaml",
        &store_yaml("acme", "woocommerce", "small", "team-acme"),
    );
    repo.write(
        "stores/bobs.yaml",
        &store_yaml("bobs", "medusa", "medium", "team-bikes"),
    );
    let sha = repo.commit("Ada & Co", &format!("Add acme {HOSTILE}"));
    let r = Running::start_with(repo, Duration::from_secs(3600), |c| {
        c.insert(
            "events",
            "store-acme",
            event("acme-web.old", "2020-01-01T00:00:00Z", "Pulled", "old news", 1),
        );
        c.insert(
            "events",
            "store-acme",
            event(
                "acme-web.new",
                "2021-01-01T00:00:00Z",
                "BackOff",
                &format!("Back-off pulling image \"{HOSTILE}\""),
                7,
            ),
        );
    })
    .await;
    r.until_synced("the startup sync", &sha).await;
    (r, sha)
}

#[tokio::test]
async fn a_store_page_tells_its_whole_story_escaped() {
    let (r, sha) = started().await;
    let (code, page) = r.get("/stores/acme").await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(page.contains("<meta http-equiv=\"refresh\""), "refreshes itself");
    assert!(
        !page.contains(HOSTILE) && !page.contains("<img"),
        "text from the cluster and Git is escaped:\n{page}"
    );
    assert!(!page.contains("unavailable:"), "every source answered:\n{page}");

    let summary = table(&page, "summary");
    assert!(
        summary.contains("team-acme") && summary.contains("Healthy"),
        "{summary}"
    );
    assert!(summary.contains(&format!("href=\"/commits/{sha}\"")), "{summary}");

    let objects = table(&page, "objects");
    assert!(
        objects.contains("<td>Deployment</td>") && objects.contains("Healthy"),
        "each judged object with its health:\n{objects}"
    );

    let events = table(&page, "events");
    assert!(
        events.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{events}"
    );
    assert!(
        events.contains("Pod acme-web-7d9f-x2") && events.contains("<td>7</td>"),
        "{events}"
    );
    let (new, old) = (events.find("BackOff").unwrap(), events.find("Pulled").unwrap());
    assert!(new < old, "newest first:\n{events}");

    let syncs = table(&page, "syncs");
    assert!(
        syncs.contains(&format!("href=\"/commits/{sha}\"")) && syncs.contains(">applied<"),
        "the startup sync applied it:\n{syncs}"
    );

    let releases = table(&page, "releases");
    assert!(
        releases.contains("<td>1</td>") && releases.contains(">deployed<"),
        "{releases}"
    );
    // Helm's Secrets were read as the store's identity, metadata only.
    let reads: Vec<_> = r
        .cluster
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET" && q.uri.starts_with("/api/v1/namespaces/store-acme/secrets?"))
        .collect();
    assert!(!reads.is_empty());
    assert!(
        reads
            .iter()
            .all(|q| q.impersonate.as_deref() == Some("system:serviceaccount:store-acme:storesync-helm")),
        "{:?}",
        reads.iter().map(|q| q.line()).collect::<Vec<_>>()
    );

    let history = table(&page, "history");
    assert!(
        history.contains("Ada &amp; Co")
            && history.contains("Add acme &lt;script&gt;")
            && history.contains("stores/acme.yaml"),
        "{history}"
    );
    r.stop().await;
}

#[tokio::test]
async fn a_failed_source_leaves_the_rest_of_the_page() {
    let (r, _) = started().await;
    r.cluster.set_fault(Some(Fault::ServerError));
    let (code, page) = r.get("/stores/acme").await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert_eq!(
        page.matches("unavailable: cannot list").count(),
        2,
        "Events and releases say why:\n{page}"
    );
    assert!(table(&page, "history").contains("Ada &amp; Co"));
    assert!(table(&page, "syncs").contains(">applied<"));
    r.cluster.set_fault(None);

    // The repository gone: the Git history says so, the cluster's sections answer.
    let git = r.repo.path().join(".git");
    let moved = r.repo.path().join("git-away");
    std::fs::rename(&git, &moved).unwrap();
    let (code, page) = r.get("/stores/bobs").await;
    std::fs::rename(&moved, &git).unwrap();
    assert_eq!(code, StatusCode::OK, "{page}");
    let history = page.split("<h2>Git history</h2>").nth(1).unwrap();
    assert!(
        history.starts_with("<p class=\"warn unavailable\">unavailable: "),
        "{history}"
    );
    assert!(table(&page, "releases").contains(">deployed<"));
    r.stop().await;
}

#[tokio::test]
async fn unknown_and_bad_names_and_the_links_to_a_store() {
    let (r, _) = started().await;
    let (code, page) = r.get("/stores/nosuch").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{page}");
    assert!(page.contains("knows no store"));
    for bad in ["Acme", "a_b", "ab", "acme.yaml", "%3Cscript%3E"] {
        let (code, body) = r.get(&format!("/stores/{bad}")).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    let (_, status) = r.get("/").await;
    let stores = table(&status, "stores");
    for name in ["acme", "bobs"] {
        assert!(
            stores.contains(&format!("<a href=\"/stores/{name}\">{name}</a>")),
            "{stores}"
        );
    }
    let (code, api) = r.get("/api/stores").await;
    assert_eq!(code, StatusCode::OK);
    let api: Vec<Value> = serde_json::from_str(&api).unwrap();
    let urls: Vec<_> = api
        .iter()
        .map(|s| (s["name"].clone(), s["url"].clone()))
        .collect();
    assert_eq!(
        urls,
        vec![
            (json!("acme"), json!("/stores/acme")),
            (json!("bobs"), json!("/stores/bobs"))
        ]
    );
    r.stop().await;
}
