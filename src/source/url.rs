//! Git URLs: the login they may carry, taken out before anything is stored or shown.
use crate::secret::Secret;

/// A user and password taken out of a URL, percent-decoded.
#[derive(Clone)]
pub(super) struct UrlLogin {
    pub(super) user: String,
    pub(super) password: Secret,
}

/// `scheme`, userinfo and the rest (host, port, path) of `scheme://[userinfo@]host/path`.
/// The userinfo ends at the last `@` of the authority (a password may hold an unencoded `@`);
/// the authority ends at the first `/`, `?` or `#`. `None` for an scp-like `git@host:path`.
fn split_url(url: &str) -> Option<(&str, Option<&str>, &str)> {
    let (scheme, after) = url.split_once("://")?;
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some(match after[..authority_end].rfind('@') {
        Some(at) => (scheme, Some(&after[..at]), &after[at + 1..]),
        None => (scheme, None, after),
    })
}

/// The URL to store in the cache's Git config, and the login it carried. An SSH user name
/// (`ssh://git@host/…`) stays: SSH needs it and it is not a secret. Over HTTPS the whole
/// userinfo goes, since a lone user name is often a token (`https://<token>@github.com/…`).
pub(super) fn split_login(url: &str) -> (String, Option<UrlLogin>) {
    let Some((scheme, Some(userinfo), rest)) = split_url(url) else {
        return (url.to_string(), None);
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let login = UrlLogin {
        user: percent_decode(user),
        password: Secret::new(percent_decode(password)),
    };
    let keep_user = scheme.eq_ignore_ascii_case("ssh") || scheme.eq_ignore_ascii_case("git+ssh");
    let clean = if keep_user && !user.is_empty() {
        format!("{scheme}://{user}@{rest}")
    } else {
        format!("{scheme}://{rest}")
    };
    (clean, Some(login))
}

/// `%XX` escapes decoded; anything malformed is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL without any user or password it carries, for output and logs. An scp-like
/// `git@host:path` is shown as it is: its user is not a secret.
pub fn redact(url: &str) -> String {
    match split_url(url) {
        Some((scheme, Some(_), rest)) => format!("{scheme}://{rest}"),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo() {
        let cases = [
            (
                "https://user:secret@github.com/a/b.git",
                "https://github.com/a/b.git",
            ),
            ("https://github.com/a/b.git", "https://github.com/a/b.git"),
            ("git@github.com:a/b.git", "git@github.com:a/b.git"),
            // A password with an unencoded `@`: the userinfo ends at the last one.
            (
                "https://user:p@ss@github.com/a/b.git",
                "https://github.com/a/b.git",
            ),
            (
                "https://user:p@ss@w@rd@host:8443/x.git",
                "https://host:8443/x.git",
            ),
            (
                "https://user:p%40ss@127.0.0.1:9/x.git",
                "https://127.0.0.1:9/x.git",
            ),
            (
                "https://ghp_token@github.com/a/b.git",
                "https://github.com/a/b.git",
            ),
            ("ssh://git:pw@host/a/b.git", "ssh://host/a/b.git"),
            ("ssh://git@host:2222/a/b.git", "ssh://host:2222/a/b.git"),
            // An `@` in the path is not userinfo.
            ("https://host/~user@x/b.git", "https://host/~user@x/b.git"),
            ("https://host?q=a@b", "https://host?q=a@b"),
            ("file:///srv/stores", "file:///srv/stores"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn the_login_leaves_the_url_decoded() {
        let (clean, login) = split_login("https://user:p%40ss@github.com/a/b.git");
        let login = login.unwrap();
        assert_eq!(clean, "https://github.com/a/b.git");
        assert_eq!((login.user.as_str(), login.password.expose()), ("user", "p@ss"));
        let (clean, login) = split_login("https://us%65r:p@ss:w%3Ard@host/x.git");
        let login = login.unwrap();
        assert_eq!(clean, "https://host/x.git");
        assert_eq!(
            (login.user.as_str(), login.password.expose()),
            ("user", "p@ss:w:rd")
        );
        // A lone user name over HTTPS (often a token) goes too; over SSH the user stays.
        let (clean, login) = split_login("https://ghp_abc@github.com/a/b.git");
        assert_eq!(clean, "https://github.com/a/b.git");
        assert_eq!(login.unwrap().user, "ghp_abc");
        assert_eq!(split_login("ssh://git:pw@host/a.git").0, "ssh://git@host/a.git");
        assert_eq!(split_login("ssh://git@host/a.git").0, "ssh://git@host/a.git");
        assert!(split_login("git@github.com:a/b.git").1.is_none());
        assert!(split_login("https://github.com/a/b.git").1.is_none());
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%+1"), "%+1");
    }
}
