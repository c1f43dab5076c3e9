//! Who storesync writes as on GitHub, and whether a comment is its own. Anyone can post a
//! comment that starts with the plan marker, so the marker alone proves nothing: a comment is
//! storesync's only when its author is storesync's identity. Pure, no I/O
//! ([`super::connection`] learns the identity).
use serde::Deserialize;

/// The author storesync's credentials write comments as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A GitHub App: comments performed via the App `id`, or by its bot user `<slug>[bot]` when
    /// the slug is known (`GET /app`).
    App { id: u64, slug: Option<String> },
    /// A token's user, the `login` of `GET /user`.
    User { login: String },
    /// A token that may not read `GET /user` (an installation token such as GitHub Actions'
    /// `GITHUB_TOKEN`): the best left is any bot account, never a person's.
    AnyBot,
}

/// The author fields of an issue comment, as the REST API and the `issue_comment` event carry
/// them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommentAuthor {
    #[serde(default)]
    pub user: Option<Account>,
    #[serde(default)]
    pub performed_via_github_app: Option<AppRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Account {
    #[serde(default)]
    pub login: String,
    /// `User`, `Bot` or `Organization`.
    #[serde(default, rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AppRef {
    pub id: u64,
}

impl Identity {
    /// Whether `author` is this identity. A comment without a user (a deleted account) is no
    /// one's.
    pub fn wrote(&self, author: &CommentAuthor) -> bool {
        let user = author.user.as_ref();
        let is_bot = user.is_some_and(|u| u.kind == "Bot");
        match self {
            Identity::App { id, slug } => {
                author
                    .performed_via_github_app
                    .as_ref()
                    .is_some_and(|app| app.id == *id)
                    || slug.as_deref().is_some_and(|slug| {
                        is_bot && user.is_some_and(|u| u.login.eq_ignore_ascii_case(&format!("{slug}[bot]")))
                    })
            }
            // Logins are case-insensitive on GitHub.
            Identity::User { login } => user.is_some_and(|u| u.login.eq_ignore_ascii_case(login)),
            Identity::AnyBot => is_bot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author(login: &str, kind: &str, app: Option<u64>) -> CommentAuthor {
        CommentAuthor {
            user: Some(Account {
                login: login.into(),
                kind: kind.into(),
            }),
            performed_via_github_app: app.map(|id| AppRef { id }),
        }
    }

    #[test]
    fn only_storesyncs_own_author_counts() {
        let app = Identity::App {
            id: 42,
            slug: Some("storesync-acme".into()),
        };
        let app_without_slug = Identity::App { id: 42, slug: None };
        let user = Identity::User {
            login: "storesync-ci".into(),
        };
        let cases = [
            (&app, author("storesync-acme[bot]", "Bot", Some(42)), true),
            (&app, author("storesync-acme[bot]", "Bot", None), true),
            (&app, author("Storesync-Acme[bot]", "Bot", None), true),
            (&app, author("someone", "User", Some(42)), true),
            (&app, author("storesync-acme[bot]", "User", None), false),
            (&app, author("other-app[bot]", "Bot", Some(7)), false),
            (&app, author("mallory", "User", None), false),
            (
                &app_without_slug,
                author("storesync-acme[bot]", "Bot", None),
                false,
            ),
            (&app_without_slug, author("x[bot]", "Bot", Some(42)), true),
            (&user, author("storesync-ci", "User", None), true),
            (&user, author("StoreSync-CI", "User", None), true),
            (&user, author("mallory", "User", None), false),
            (&user, author("storesync-ci[bot]", "Bot", None), false),
            (
                &Identity::AnyBot,
                author("github-actions[bot]", "Bot", None),
                true,
            ),
            (&Identity::AnyBot, author("mallory", "User", None), false),
        ];
        for (identity, author, expected) in cases {
            assert_eq!(identity.wrote(&author), expected, "{identity:?} {author:?}");
        }
        for identity in [&app, &user, &Identity::AnyBot] {
            assert!(!identity.wrote(&CommentAuthor::default()), "a ghost is no one");
        }
    }

    #[test]
    fn the_author_is_read_from_githubs_comment_shape() {
        let comment = r#"{"id": 1, "body": "x", "user": {"login": "storesync-acme[bot]", "id": 9, "type": "Bot"},
            "performed_via_github_app": {"id": 42, "slug": "storesync-acme", "name": "storesync"}}"#;
        let author: CommentAuthor = serde_json::from_str(comment).unwrap();
        assert!(Identity::App { id: 42, slug: None }.wrote(&author));
        let by_person =
            r#"{"id": 2, "user": {"login": "ada", "type": "User"}, "performed_via_github_app": null}"#;
        let author: CommentAuthor = serde_json::from_str(by_person).unwrap();
        assert!(author.performed_via_github_app.is_none());
        assert!(!Identity::AnyBot.wrote(&author));
    }
}
