//! Text from the catalog or the cluster made inert for GitHub: it can neither mention (`@user`,
//! `@org/team`), reference (`#12`, `org/repo#12`, `GH-12`) nor autolink (`https://…`, `www.…`,
//! `someone@example.com`) in a comment, a check run's summary, title or annotations. Pure.
//!
//! GitHub finds mentions, references and bare URLs in the text as rendered, after character
//! references (`&#64;`) and backslash escapes (`\#`) were decoded, skipping only code spans,
//! code blocks and links: so escaping `@` or `#` stops nothing. What stops them is a character
//! that breaks the pattern: a mention needs a login right after `@`, a reference digits right
//! after `#` or `GH-`, an autolink an unbroken `://` or `www.`, an e-mail address a domain
//! right after `@`. The one scheme used everywhere, Markdown and plain text alike: U+2060 WORD
//! JOINER (invisible, never a line break) right after every `@` and `#`, between the slashes of
//! `://`, between `www` and its `.`, and between `GH-` and its digits. What is left linkable
//! is harmless: a bare commit id links to a commit of the repository itself.
use std::borrow::Cow;

/// Invisible and never a line break; breaks every pattern GitHub links (see the module).
pub const WORD_JOINER: char = '\u{2060}';

/// `text` with a [`WORD_JOINER`] wherever GitHub would otherwise start a mention, a reference or
/// an autolink. Applying it twice changes nothing more.
pub fn inert(text: &str) -> Cow<'_, str> {
    let chars: Vec<char> = text.chars().collect();
    let breaks: Vec<usize> = (0..chars.len())
        .filter(|&i| breaks_after(&chars, i) && chars.get(i + 1) != Some(&WORD_JOINER))
        .collect();
    if breaks.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 3 * breaks.len());
    let mut next = breaks.iter().peekable();
    for (i, c) in chars.iter().enumerate() {
        out.push(*c);
        if next.peek() == Some(&&i) {
            next.next();
            out.push(WORD_JOINER);
        }
    }
    Cow::Owned(out)
}

/// Whether a joiner goes right after `chars[i]`.
fn breaks_after(chars: &[char], i: usize) -> bool {
    let at = |j: usize| chars.get(j).copied();
    let is = |j: usize, want: char| at(j).is_some_and(|c| c.eq_ignore_ascii_case(&want));
    match chars[i] {
        // Mentions, e-mail addresses, `user@sha`; issue and pull-request references.
        '@' | '#' => true,
        // `https://`, `ftp://`, any scheme: between the two slashes.
        '/' => i >= 1 && at(i - 1) == Some(':') && at(i + 1) == Some('/'),
        // `www.`, in any case.
        'w' | 'W' => i >= 2 && is(i - 1, 'w') && is(i - 2, 'w') && at(i + 1) == Some('.'),
        // `GH-12`, in any case.
        '-' => i >= 2 && is(i - 2, 'g') && is(i - 1, 'h') && at(i + 1).is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// Unicode's explicit embedding, override and isolate controls: they reorder displayed text.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        inert(text).replace(WORD_JOINER, "⁀")
    }

    #[test]
    fn every_linking_pattern_is_broken() {
        let cases = [
            ("@acme/everyone", "@⁀acme/everyone"),
            ("cc @user.", "cc @⁀user."),
            ("#12 and org/repo#12", "#⁀12 and org/repo#⁀12"),
            ("GH-12 gh-7 GH-x", "GH-⁀12 gh-⁀7 GH-x"),
            ("https://evil.example/a", "https:/⁀/evil.example/a"),
            ("ftp://x", "ftp:/⁀/x"),
            (
                "see www.evil.example or WWW.x.y",
                "see www⁀.evil.example or WWW⁀.x.y",
            ),
            ("mallory@evil.example", "mallory@⁀evil.example"),
            ("octocat/hello@6dcb09b", "octocat/hello@⁀6dcb09b"),
        ];
        for (text, want) in cases {
            assert_eq!(shown(text), want, "{text}");
        }
    }

    #[test]
    fn plain_text_is_not_copied_and_twice_is_once() {
        assert!(matches!(inert("team-acme: small, 2 stores"), Cow::Borrowed(_)));
        let once = inert("@a #1 https://x www.y GH-2").into_owned();
        assert_eq!(inert(&once), once);
        assert_eq!(inert(""), "");
        assert_eq!(shown("a@"), "a@⁀", "a joiner at the very end is harmless");
    }
}
