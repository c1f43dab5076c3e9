//! Text that comes from the stores repository or the network (author names, commit subjects,
//! file names, diagnostics): made harmless before it reaches a terminal or a plain log line.
use std::borrow::Cow;

/// `text` with every control character and bidirectional override escaped as `\u{..}`, so it
/// cannot recolour or clear a terminal, move the cursor, forge a log line or reorder what a
/// reader sees.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape(text, |_| false)
}

/// Like [`printable`], but line breaks and tabs stay: for multi-line text such as a diff.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '\n' || c == '\t')
}

fn escape(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let harmful = |c: char| !keep(c) && (c.is_control() || is_bidi_control(c));
    if !text.chars().any(harmful) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if harmful(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Unicode's explicit embedding, override and isolate controls (they reorder displayed text).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("Ada Lovelace"), "Ada Lovelace");
        assert!(
            matches!(printable("Zoë 日本"), Cow::Borrowed(_)),
            "plain text is not copied"
        );
        assert_eq!(
            printable("\x1b[2J\x1b]0;pwned\x07x"),
            "\\u{1b}[2J\\u{1b}]0;pwned\\u{7}x"
        );
        assert_eq!(
            printable("a\r\nb\tc\u{7f}\u{9b}"),
            "a\\u{d}\\u{a}b\\u{9}c\\u{7f}\\u{9b}"
        );
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(
            printable_lines("-a\n+b\t\x1b[31m\r\n"),
            "-a\n+b\t\\u{1b}[31m\\u{d}\n"
        );
    }
}
