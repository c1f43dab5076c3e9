//! storesync's own plan comment on a pull request: found again among the others (page by page,
//! by marker and author), created, edited. The Markdown itself is [`super::comment`]'s.
use std::collections::HashMap;
use std::sync::Mutex;

use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::json;

use super::NotifyError;
use super::comment::MARKER;
use super::connection::{Connection, classify};
use super::identity::CommentAuthor;
use crate::untrusted::printable;

/// A comment as listed, with its author.
#[derive(Debug, Deserialize)]
pub struct IssueComment {
    pub id: u64,
    #[serde(default)]
    pub body: String,
    #[serde(flatten)]
    pub author: CommentAuthor,
}

/// The comment id of each pull request, once found or made (else found again by listing).
#[derive(Default)]
pub struct Comments {
    ids: Mutex<HashMap<u64, u64>>,
}

impl Comments {
    /// Edits the pull request's comment, or posts it when there is none.
    pub async fn upsert(
        &self,
        crab: &Octocrab,
        conn: &Connection,
        number: u64,
        body: &str,
    ) -> Result<(), NotifyError> {
        let known = self.lock().get(&number).copied();
        let id = match known {
            Some(id) => Some(id),
            None => self.find(crab, conn, number).await?.map(|c| c.id),
        };
        if let Some(id) = id {
            match update(crab, conn, id, body).await {
                Ok(()) => {
                    self.lock().insert(number, id);
                    return Ok(());
                }
                // Deleted by someone: post a new one.
                Err(NotifyError::Rejected { status: 404, .. }) => {
                    self.lock().remove(&number);
                }
                Err(e) => return Err(e),
            }
        }
        let route = format!("/repos/{}/{}/issues/{number}/comments", conn.owner(), conn.repo());
        let created: IssueComment = crab
            .post(route, Some(&json!({ "body": body })))
            .await
            .map_err(classify)?;
        self.lock().insert(number, created.id);
        Ok(())
    }

    /// storesync's comment on the pull request: the oldest one that starts with [`MARKER`] and
    /// is by storesync's own identity, read through every page of comments. Anyone can copy the
    /// marker; such a comment is skipped, never edited.
    pub async fn find(
        &self,
        crab: &Octocrab,
        conn: &Connection,
        number: u64,
    ) -> Result<Option<IssueComment>, NotifyError> {
        let identity = conn.identity().await?;
        let mut next = Some(format!(
            "/repos/{}/{}/issues/{number}/comments?per_page=100",
            conn.owner(),
            conn.repo()
        ));
        let mut pages = 0;
        while let Some(route) = next.take() {
            pages += 1;
            let response = crab._get(route.as_str()).await.map_err(classify)?;
            let response = octocrab::map_github_error(response).await.map_err(classify)?;
            next = next_link(response.headers()).and_then(|url| {
                let relative = conn.relative(&url);
                if relative.is_none() {
                    tracing::warn!("a comment page link points away from the GitHub API; not followed");
                }
                relative
            });
            let body = crab.body_to_string(response).await.map_err(classify)?;
            let comments: Vec<IssueComment> =
                serde_json::from_str(&body).map_err(|e| NotifyError::Response { source: Box::new(e) })?;
            for found in comments.into_iter().filter(|c| c.body.starts_with(MARKER)) {
                if identity.wrote(&found.author) {
                    self.lock().insert(number, found.id);
                    return Ok(Some(found));
                }
                let login = found.author.user.as_ref().map_or("", |u| u.login.as_str());
                tracing::warn!(
                    pr = number,
                    comment = found.id,
                    author = %printable(login),
                    "a comment carries storesync's plan marker but is not by storesync: left alone"
                );
            }
            // GitHub pages never end; a fake or a proxy that loops must not hold the queue.
            if pages >= 100 {
                break;
            }
        }
        Ok(None)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Replaces the body of comment `id`.
pub async fn update(crab: &Octocrab, conn: &Connection, id: u64, body: &str) -> Result<(), NotifyError> {
    let route = format!("/repos/{}/{}/issues/comments/{id}", conn.owner(), conn.repo());
    crab.patch::<IssueComment, _, _>(route, Some(&json!({ "body": body })))
        .await
        .map(drop)
        .map_err(classify)
}

/// The `rel="next"` address of a `Link` header.
fn next_link(headers: &axum::http::HeaderMap) -> Option<String> {
    let link = headers.get(axum::http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.split(';').any(|p| p.trim() == "rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::LINK,
            "<https://api.github.com/repositories/1/issues/2/comments?page=3>; rel=\"next\", \
             <https://api.github.com/repositories/1/issues/2/comments?page=9>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?page=3")
        );
        headers.insert(
            axum::http::header::LINK,
            "<https://x/?page=1>; rel=\"prev\", <https://x/?page=1>; rel=\"first\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&headers), None);
        assert_eq!(next_link(&axum::http::HeaderMap::new()), None);
    }
}
