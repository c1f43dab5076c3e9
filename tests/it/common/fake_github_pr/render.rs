//! What github.com links in a comment or a check-run summary, for tests: the mentions, issue
//! references and autolinks it would make, by GitHub's documented rules ("Autolinked references
//! and URLs", the GFM spec's autolink extension, html-pipeline's mention filter):
//! - It works on the text as rendered: character references (`&#64;`, `&commat;`) and backslash
//!   escapes (`\#`) are decoded first, so they hide nothing.
//! - Nothing inside code spans, fenced code blocks, `<code>`/`<pre>` elements, HTML comments or
//!   link destinations is linked.
//! - `@login` and `@org/team` after a non-word character; `#12`, `GH-12` after a non-word
//!   character and `owner/repo#12`; `user@<commit>`; `scheme://host` and `www.host`; e-mail
//!   addresses `local@domain.tld`.
//!
//! The link texts of `[text](url)` are searched too: stricter than GitHub, never laxer.

/// One thing GitHub would link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linked {
    /// `@login` or `@org/team`: a notification.
    Mention(String),
    /// `#12`, `GH-12`, `owner/repo#12`, `user@sha`: a cross-reference.
    Reference(String),
    /// A bare URL or e-mail address made a link.
    Autolink(String),
}

/// Everything `markdown` would link.
pub fn links(markdown: &str) -> Vec<Linked> {
    let mut found = Vec::new();
    for segment in text_segments(&strip_html_comments(markdown)) {
        scan(&decode(&segment), &mut found);
    }
    found
}

fn strip_html_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .find("-->")
            .map_or("", |end| &rest[start + end + 3..]);
    }
    out.push_str(rest);
    out
}

/// The text outside code blocks, code spans, `<code>`/`<pre>` and link destinations, in
/// pieces that are separate text nodes; escapes and entities still encoded.
fn text_segments(markdown: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        match (fence, marker) {
            (None, Some(m)) if indent <= 3 && run >= 3 => fence = Some((m, run)),
            (Some((m, open)), Some(c)) if c == m && run >= open && trimmed.trim_end().len() == run => {
                fence = None
            }
            (Some(_), _) => {}
            (None, _) => inline_segments(line, &mut segments),
        }
    }
    segments
}

fn inline_segments(line: &str, segments: &mut Vec<String>) {
    let chars: Vec<char> = line.chars().collect();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1).is_some_and(|n| n.is_ascii_punctuation()) {
            current.push(c);
            current.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == '`' {
            let run = chars[i..].iter().take_while(|c| **c == '`').count();
            if let Some(end) = closing_run(&chars, i + run, run) {
                segments.push(std::mem::take(&mut current));
                i = end + run;
                continue;
            }
            current.extend(&chars[i..i + run]);
            i += run;
            continue;
        }
        if c != '<' && c != ']' {
            current.push(c);
            i += 1;
            continue;
        }
        let rest: String = chars[i..].iter().collect();
        let lower = rest.to_ascii_lowercase();
        if let Some(tag) = ["<code", "<pre"].iter().find(|t| lower.starts_with(**t)) {
            let close = format!("</{}>", &tag[1..]);
            let skip = lower.find(&close).map_or(rest.len(), |end| end + close.len());
            segments.push(std::mem::take(&mut current));
            i += rest[..skip].chars().count();
            continue;
        }
        if rest.starts_with("](") {
            // The destination of a link: up to its closing parenthesis.
            let skip = rest.find(')').map_or(rest.len(), |end| end + 1);
            segments.push(std::mem::take(&mut current));
            i += rest[..skip].chars().count();
            continue;
        }
        current.push(c);
        i += 1;
    }
    segments.push(current);
}

/// Where a backtick run of exactly `len` starts at or after `from`.
fn closing_run(chars: &[char], from: usize, len: usize) -> Option<usize> {
    let mut i = from;
    while i < chars.len() {
        if chars[i] == '`' {
            let run = chars[i..].iter().take_while(|c| **c == '`').count();
            if run == len {
                return Some(i);
            }
            i += run;
        } else {
            i += 1;
        }
    }
    None
}

/// Backslash escapes and character references decoded, as the rendered text holds them.
fn decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && chars.get(i + 1).is_some_and(|n| n.is_ascii_punctuation()) {
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if chars[i] == '&'
            && let Some(end) = chars[i..].iter().take(40).position(|c| *c == ';')
        {
            let name: String = chars[i + 1..i + end].iter().collect();
            if let Some(c) = entity(&name) {
                out.push(c);
                i += end + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "commat" => '@',
        "num" => '#',
        "colon" => ':',
        "sol" => '/',
        "period" => '.',
        "lowbar" => '_',
        "hyphen" | "dash" => '-',
        "nbsp" => '\u{a0}',
        _ => return None,
    })
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_login(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

fn is_domain(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Linkable things in one decoded text node.
fn scan(text: &str, found: &mut Vec<Linked>) {
    let chars: Vec<char> = text.chars().collect();
    let before = |i: usize| if i == 0 { None } else { Some(chars[i - 1]) };
    let after_word_boundary = |i: usize| before(i).is_none_or(|c| !is_word(c));
    let take = |from: usize, ok: fn(char) -> bool| chars[from..].iter().take_while(|c| ok(**c)).count();
    let word = |from: usize, len: usize| chars[from..from + len].iter().collect::<String>();
    for i in 0..chars.len() {
        match chars[i] {
            '@' => {
                let login = take(i + 1, is_login);
                let starts = chars.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric());
                if after_word_boundary(i) && starts {
                    let mut end = i + 1 + login;
                    if chars.get(end) == Some(&'/')
                        && chars.get(end + 1).is_some_and(|c| c.is_ascii_alphanumeric())
                    {
                        end += 1 + take(end + 1, |c| is_login(c) || c == '_');
                    }
                    found.push(Linked::Mention(word(i, end - i)));
                }
                // `local@domain.tld`, and `user@<commit>`.
                let local = chars[..i]
                    .iter()
                    .rev()
                    .take_while(|c| is_word(**c) || matches!(**c, '.' | '+' | '-'))
                    .count();
                let domain = take(i + 1, |c| is_domain(c) || c == '.');
                let domain_text = word(i + 1, domain);
                if local > 0 && domain_text.trim_end_matches('.').contains('.') {
                    found.push(Linked::Autolink(word(i - local, local + 1 + domain)));
                }
                let hex = take(i + 1, |c| c.is_ascii_hexdigit());
                if local > 0 && (7..=40).contains(&hex) && chars.get(i + 1 + hex).is_none_or(|c| !is_word(*c))
                {
                    found.push(Linked::Reference(word(i - local, local + 1 + hex)));
                }
            }
            '#' => {
                let digits = take(i + 1, |c| c.is_ascii_digit());
                if digits == 0 {
                    continue;
                }
                let repo = chars[..i]
                    .iter()
                    .rev()
                    .take_while(|c| is_word(**c) || matches!(**c, '.' | '-'))
                    .count();
                let slash = i.checked_sub(repo + 1).filter(|s| repo > 0 && chars[*s] == '/');
                let owner = slash.map_or(0, |s| {
                    chars[..s].iter().rev().take_while(|c| is_login(**c)).count()
                });
                if let Some(s) = slash.filter(|_| owner > 0) {
                    found.push(Linked::Reference(word(s - owner, owner + 1 + repo + 1 + digits)));
                } else if after_word_boundary(i) {
                    found.push(Linked::Reference(word(i, 1 + digits)));
                }
            }
            'g' | 'G' => {
                let gh = chars.get(i + 1).is_some_and(|c| c.eq_ignore_ascii_case(&'h'))
                    && chars.get(i + 2) == Some(&'-');
                let digits = if gh {
                    take(i + 3, |c| c.is_ascii_digit())
                } else {
                    0
                };
                if digits > 0 && after_word_boundary(i) {
                    found.push(Linked::Reference(word(i, 3 + digits)));
                }
            }
            ':' => {
                let scheme = chars[..i]
                    .iter()
                    .rev()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count();
                let slashes = chars.get(i + 1) == Some(&'/') && chars.get(i + 2) == Some(&'/');
                let host = if slashes { take(i + 3, is_domain) } else { 0 };
                if scheme > 0 && host > 0 {
                    let rest = take(i + 3, |c| !c.is_whitespace() && c != '<');
                    found.push(Linked::Autolink(word(i - scheme, scheme + 3 + rest)));
                }
            }
            'w' | 'W' => {
                let www = (0..3).all(|k| chars.get(i + k).is_some_and(|c| c.eq_ignore_ascii_case(&'w')))
                    && chars.get(i + 3) == Some(&'.')
                    && chars.get(i + 4).is_some_and(|c| is_domain(*c));
                if www && before(i).is_none_or(|c| !c.is_ascii_alphanumeric()) {
                    let rest = take(i, |c| !c.is_whitespace() && c != '<');
                    found.push(Linked::Autolink(word(i, rest)));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(markdown: &str) -> Vec<String> {
        links(markdown)
            .into_iter()
            .map(|l| match l {
                Linked::Mention(t) | Linked::Reference(t) | Linked::Autolink(t) => t,
            })
            .collect()
    }

    #[test]
    fn what_github_links() {
        let cases: [(&str, &[&str]); 12] = [
            ("cc @acme/everyone now", &["@acme/everyone"]),
            ("(@user)", &["@user"]),
            ("see #12, org/repo#7 and GH-3", &["#12", "org/repo#7", "GH-3"]),
            (
                "go to https://evil.example/x?y now",
                &["https://evil.example/x?y"],
            ),
            ("or www.evil.example", &["www.evil.example"]),
            ("mail mallory@evil.example", &["mallory@evil.example"]),
            ("octocat@6dcb09b5b5", &["octocat@6dcb09b5b5"]),
            // Escapes and references are decoded before linking: what the old escaping did.
            (
                "&#64;acme/everyone and \\#12 and &commat;x",
                &["@acme/everyone", "#12", "@x"],
            ),
            ("no: a@b, x#1, `@code` and `#1`", &[]),
            ("```\n@fenced #1 https://x.example\n```\nafter", &[]),
            (
                "[@text](https://dest.example/#1) <code>@c</code> <!-- @hidden -->",
                &["@text"],
            ),
            (
                "http:/\u{2060}/x.example @\u{2060}a #\u{2060}1 www\u{2060}.x.example",
                &[],
            ),
        ];
        for (markdown, want) in cases {
            assert_eq!(targets(markdown), want, "{markdown}");
        }
    }
}
