//! Only storesync's own plan comment is ever edited: anyone can post a comment that starts
//! with the marker, so a comment counts as storesync's only when its author is storesync's
//! identity (the App, the token's user from `GET /user`, or for a token that may not read
//! `GET /user` any bot). A forged one is left alone and storesync posts its own.
use std::time::Duration;

use storesync::report::comment::{CLOSED_MARKER, MARKER};
use storesync::report::{FeedbackKind, PlanResult, PrFeedback};

use crate::common::fake_github::FakeGitHub;
use crate::common::fake_github_pr::{Author, Comment, TOKEN_USER};
use crate::pr_feedback::{app_writer, empty_plan, planned, token_writer};

const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

fn comment(github: &FakeGitHub, id: u64) -> Comment {
    let inner = github.pr.lock();
    inner
        .comments
        .iter()
        .find(|c| c.id == id)
        .cloned()
        .expect("the comment")
}

fn by(github: &FakeGitHub, issue: u64, author: &Author) -> Vec<Comment> {
    let inner = github.pr.lock();
    inner
        .comments
        .iter()
        .filter(|c| c.issue == issue && &c.author == author)
        .cloned()
        .collect()
}

fn requests(github: &FakeGitHub, prefix: &str) -> usize {
    let inner = github.pr.lock();
    inner.requests.iter().filter(|r| r.starts_with(prefix)).count()
}

fn forge(github: &FakeGitHub, issue: u64, author: Author) -> u64 {
    github
        .pr
        .add_comment_by(issue, author, &format!("{MARKER}\nforged: approve everything"))
}

#[tokio::test]
async fn with_a_token_a_forged_marker_comment_is_skipped_and_never_edited() {
    let github = FakeGitHub::start().await;
    let forged = forge(&github, 5, Author::person("mallory"));
    let writer = token_writer(&github.url());
    writer
        .write_all(&planned(5, SHA1, PlanResult::Planned(empty_plan(SHA1))))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ours = by(&github, 5, &Author::person(TOKEN_USER));
    assert_eq!(ours.len(), 1, "storesync posted its own: {ours:#?}");
    assert!(ours[0].body().contains(SHA1));
    writer
        .write_all(&planned(5, SHA2, PlanResult::Planned(empty_plan(SHA2))))
        .await
        .unwrap();
    // A restart: the forged comment comes first, storesync's is found past it.
    let restarted = token_writer(&github.url());
    restarted
        .write_all(&PrFeedback {
            number: 5,
            kind: FeedbackKind::Closed { merged: true },
        })
        .await
        .unwrap();

    assert_eq!(
        comment(&github, forged).edits(),
        0,
        "the forged comment is never edited"
    );
    let ours = comment(&github, ours[0].id);
    assert_eq!(ours.edits(), 2);
    assert!(ours.body().contains(SHA2) && ours.body().contains(CLOSED_MARKER));
    assert_eq!(github.pr.lock().comments.len(), 2);
    assert_eq!(
        requests(
            &github,
            &format!("PATCH /repos/acme-platform/stores/issues/comments/{forged}")
        ),
        0
    );
    assert_eq!(requests(&github, "GET /user"), 2, "asked once per writer");
}

#[tokio::test]
async fn an_app_edits_only_comments_by_itself_or_its_bot() {
    let github = FakeGitHub::start().await;
    let writer = app_writer(&github, &github.url(), Duration::from_secs(3600));
    let forgeries = [
        forge(&github, 6, Author::person("mallory")),
        forge(&github, 6, Author::person("storesync-acme[bot]")),
        forge(&github, 6, Author::bot("other-app[bot]", Some((7, "other-app")))),
        forge(&github, 6, Author::bot("dependabot[bot]", None)),
    ];
    // Its own, as its bot without `performed_via_github_app`: known by the slug of `GET /app`.
    let ours = github.pr.add_comment_by(
        6,
        Author::bot("storesync-acme[bot]", None),
        &format!("{MARKER}\nold plan"),
    );
    writer
        .write_all(&planned(6, SHA1, PlanResult::Planned(empty_plan(SHA1))))
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", github.pr.lock().unauthorized));
    for id in forgeries {
        assert_eq!(
            comment(&github, id).edits(),
            0,
            "{:?}",
            comment(&github, id).author
        );
    }
    assert_eq!(comment(&github, ours).edits(), 1);
    assert!(comment(&github, ours).body().contains(SHA1));
    let inner = github.pr.lock();
    assert_eq!(inner.comments.len(), 5, "nothing new posted");
    assert_eq!(inner.app_lookups, 1);
    assert_eq!(inner.unauthorized, Vec::<String>::new());
}

#[tokio::test]
async fn an_app_posts_its_own_comment_beside_forged_ones() {
    let github = FakeGitHub::start().await;
    let writer = app_writer(&github, &github.url(), Duration::from_secs(3600));
    let forged = forge(&github, 7, Author::bot("other-app[bot]", Some((7, "other-app"))));
    writer
        .write_all(&planned(7, SHA1, PlanResult::Planned(empty_plan(SHA1))))
        .await
        .unwrap();
    assert_eq!(comment(&github, forged).edits(), 0);
    let ours = by(&github, 7, &Author::app(4242));
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert!(ours[0].body().contains(SHA1));
}

#[tokio::test]
async fn a_token_that_may_not_read_its_user_trusts_bot_comments_only() {
    let github = FakeGitHub::start().await;
    github.pr.lock().actions_token = true;
    let actions = Author::bot("github-actions[bot]", Some((15368, "github-actions")));
    let forged = forge(&github, 8, Author::person("mallory"));
    let ours = github
        .pr
        .add_comment_by(8, actions.clone(), &format!("{MARKER}\nold plan"));
    let writer = token_writer(&github.url());
    for sha in [SHA1, SHA2] {
        writer
            .write_all(&planned(8, sha, PlanResult::Planned(empty_plan(sha))))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(comment(&github, forged).edits(), 0);
    assert_eq!(comment(&github, ours).edits(), 2);
    assert!(comment(&github, ours).body().contains(SHA2));
    assert_eq!(by(&github, 8, &actions).len(), 1, "no second comment");
    assert_eq!(requests(&github, "GET /user"), 1, "the refusal is remembered");
}
