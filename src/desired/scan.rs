//! The first look at a catalog file, before serde builds any value from it: one iterative pass
//! over yaml-rust2's events that rejects what could make a small file expensive to load
//! (anchors and aliases, deep nesting) or read differently by storesync than by a reviewer
//! (tags, duplicate keys, keys that are not text, several documents).
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, ScanError};

use super::diagnostics::Diagnostic;

/// Deepest nesting of maps and sequences in a catalog file; storesync.yaml needs 6.
pub const MAX_DEPTH: usize = 32;

/// How a scan ended.
pub(crate) enum Scan {
    /// The whole file was read; it is acceptable when there are no findings.
    Complete(Vec<Diagnostic>),
    /// The file is not well-formed YAML: the findings before the error, and the error.
    Syntax(Vec<Diagnostic>, Diagnostic),
}

enum Frame {
    /// A mapping: its keys so far with their position, and whether a key comes next.
    Map {
        keys: HashMap<String, (usize, usize)>,
        key_next: bool,
    },
    Sequence,
}

/// Scans `text`, the file at `path`, without building any value.
pub(crate) fn scan(path: &str, text: &str) -> Scan {
    let mut out = Vec::new();
    let mut source = Source::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut documents = 0usize;
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) => return Scan::Syntax(out, syntax(path, &e)),
        };
        let at = position(&mark);
        let starts_node = matches!(
            event,
            Event::Scalar(..) | Event::Alias(_) | Event::SequenceStart(..) | Event::MappingStart(..)
        );
        // A node directly in a mapping is alternately a key and a value.
        let mut is_key = false;
        if starts_node && let Some(Frame::Map { key_next, .. }) = stack.last_mut() {
            is_key = *key_next;
            *key_next = !*key_next;
        }
        match event {
            Event::StreamEnd => return Scan::Complete(out),
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    out.push(
                        Diagnostic::error(path, at, "a second YAML document starts here").hint(
                            "keep exactly one YAML document per file: remove this `---` and what follows",
                        ),
                    );
                    return Scan::Complete(out);
                }
            }
            Event::Alias(_) => {
                let (at, name) = source.token_at(&mark);
                out.push(
                    Diagnostic::error(path, at, format!("alias `{name}` is not allowed")).hint(
                        "write the value out in full; anchors and aliases are not allowed in the catalog",
                    ),
                );
            }
            Event::Scalar(value, _, anchor, tag) => {
                source.properties(path, &mark, anchor, tag.is_some(), &mut out);
                if is_key && let Some(Frame::Map { keys, .. }) = stack.last_mut() {
                    match keys.entry(value) {
                        Entry::Vacant(v) => {
                            v.insert(at);
                        }
                        Entry::Occupied(first) => out.push(
                            Diagnostic::error(
                                path,
                                at,
                                format!(
                                    "duplicate key `{}`: it is already set at line {}",
                                    shown(first.key()),
                                    first.get().0
                                ),
                            )
                            .hint(
                                "remove one of them: YAML keeps only the last, while a reader sees the first",
                            ),
                        ),
                    }
                }
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                source.properties(path, &mark, anchor, tag.is_some(), &mut out);
                if is_key {
                    out.push(
                        Diagnostic::error(path, at, "a key must be plain text, not a map or a list")
                            .hint("write the key as text, such as `storeTitle:`"),
                    );
                }
                if stack.len() == MAX_DEPTH {
                    out.push(too_deep(path, at));
                    return Scan::Complete(out);
                }
                stack.push(match event {
                    Event::MappingStart(..) => Frame::Map {
                        keys: HashMap::new(),
                        key_next: true,
                    },
                    _ => Frame::Sequence,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
            }
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
        }
    }
}

fn position(m: &Marker) -> (usize, usize) {
    (m.line(), m.col() + 1)
}

fn syntax(path: &str, e: &ScanError) -> Diagnostic {
    // yaml-rust2 stops flow collections (`[[[…`) at 255 levels while reading ahead.
    if e.info() == "recursion limit exceeded" {
        return too_deep(path, position(e.marker()));
    }
    Diagnostic::error(path, position(e.marker()), e.info()).hint("fix the YAML syntax at this position")
}

fn too_deep(path: &str, at: (usize, usize)) -> Diagnostic {
    Diagnostic::error(
        path,
        at,
        format!("maps and lists are nested more than {MAX_DEPTH} levels deep"),
    )
    .hint("a catalog file needs a few levels; flatten the structure")
}

/// At most 60 characters of `text`, escaped, for a message.
fn shown(text: &str) -> String {
    let mut s: String = text.chars().take(60).flat_map(char::escape_debug).collect();
    if text.chars().nth(60).is_some() {
        s.push('…');
    }
    s
}

/// The text of a file with, once needed, where its lines start: markers count characters, and
/// the anchor or tag of a node is found by looking back from the node.
struct Source<'a> {
    text: &'a str,
    lines: Option<Vec<usize>>,
}

impl<'a> Source<'a> {
    fn new(text: &'a str) -> Self {
        Source { text, lines: None }
    }

    fn lines(&mut self) -> &[usize] {
        self.lines.get_or_insert_with(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        })
    }

    /// Byte offset of a marker (1-based line, 0-based column in characters).
    fn offset(&mut self, m: &Marker) -> usize {
        let text = self.text;
        let start = self
            .lines()
            .get(m.line().saturating_sub(1))
            .copied()
            .unwrap_or(text.len());
        start
            + text[start..]
                .chars()
                .take(m.col())
                .map(char::len_utf8)
                .sum::<usize>()
    }

    /// 1-based line and column of a byte offset.
    fn position_of(&mut self, offset: usize) -> (usize, usize) {
        let text = self.text;
        let lines = self.lines();
        let line = lines.partition_point(|&start| start <= offset);
        let start = lines[line - 1];
        (line, text[start..offset].chars().count() + 1)
    }

    /// The position and text of the token starting at `m`, such as `*name`.
    fn token_at(&mut self, m: &Marker) -> ((usize, usize), String) {
        let from = self.offset(m);
        (position(m), self.token(from))
    }

    fn token(&self, from: usize) -> String {
        let rest = &self.text[from..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}'))
            .unwrap_or(rest.len());
        shown(&rest[..end])
    }

    /// Reports the anchor and the tag of the node at `m`, when it has them.
    fn properties(&mut self, path: &str, m: &Marker, anchor: usize, tagged: bool, out: &mut Vec<Diagnostic>) {
        if anchor > 0 {
            let (at, name) = self.property(m, '&');
            out.push(
                Diagnostic::error(path, at, format!("anchor `{name}` is not allowed"))
                    .hint("write the value out in full; anchors and aliases are not allowed in the catalog"),
            );
        }
        if tagged {
            let (at, name) = self.property(m, '!');
            out.push(
                Diagnostic::error(path, at, format!("tag `{name}` is not allowed"))
                    .hint("remove the tag; quote the value if it must be read as text"),
            );
        }
    }

    /// The property (`&anchor`, `!tag`) that precedes the node at `m`: the nearest `sigil` before
    /// it that starts a token. Properties sit right before their node, so looking back is short.
    fn property(&mut self, m: &Marker, sigil: char) -> ((usize, usize), String) {
        let node = self.offset(m);
        let bytes = self.text.as_bytes();
        let found = self.text[..node]
            .rmatch_indices(sigil)
            .map(|(i, _)| i)
            .find(|&i| i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b','));
        match found {
            Some(i) => (self.position_of(i), self.token(i)),
            None => (position(m), sigil.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(text: &str) -> Vec<String> {
        let (mut out, syntax) = match scan("f.yaml", text) {
            Scan::Complete(out) => (out, None),
            Scan::Syntax(out, e) => (out, Some(e)),
        };
        out.extend(syntax);
        out.iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn clean_files_have_no_findings() {
        let text =
            "name: acme\nvalues:\n  admin: {email: a@b.c}\n  list: [1, \"1\", {a: 1}]\nx: 'a: &b *c !d'\n";
        assert!(findings(text).is_empty(), "{:?}", findings(text));
    }

    #[test]
    fn anchors_aliases_and_tags() {
        assert_eq!(
            findings("x: &big [1, 2]\ny: [*big, *big]\nz: !!str 1\nw: &a !t v\n"),
            vec![
                "1:4 anchor `&big` is not allowed",
                "2:5 alias `*big` is not allowed",
                "2:11 alias `*big` is not allowed",
                "3:4 tag `!!str` is not allowed",
                "4:4 anchor `&a` is not allowed",
                "4:7 tag `!t` is not allowed",
            ]
        );
        assert_eq!(
            findings("é: &ü\n  - 1\n"),
            vec!["1:4 anchor `&ü` is not allowed"],
            "columns count characters"
        );
    }

    #[test]
    fn duplicate_keys_compare_as_text() {
        assert_eq!(
            findings("a: 1\nb:\n  1: x\n  \"1\": y\na: 2\n"),
            vec![
                "4:3 duplicate key `1`: it is already set at line 3",
                "5:1 duplicate key `a`: it is already set at line 1",
            ]
        );
        assert!(findings("a: {x: 1}\nb: {x: 1}\nc: [{x: 1}, {x: 1}]\n").is_empty());
    }

    #[test]
    fn complex_keys_documents_and_depth() {
        assert_eq!(
            findings("? [a]\n: 1\n"),
            vec!["1:3 a key must be plain text, not a map or a list"]
        );
        assert_eq!(
            findings("a: 1\n---\nb: 2\n"),
            vec!["2:1 a second YAML document starts here"]
        );
        for deep in [
            format!("{}{}", "[".repeat(100), "]".repeat(100)),
            format!("{}1", "- ".repeat(30_000)),
            format!("{}1{}", "{a: ".repeat(100), "}".repeat(100)),
        ] {
            let found = findings(&deep);
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0].ends_with("maps and lists are nested more than 32 levels deep"),
                "{found:?}"
            );
        }
        assert_eq!(
            findings(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
            vec!["1:256 maps and lists are nested more than 32 levels deep"]
        );
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(findings(&ok).is_empty());
    }

    #[test]
    fn syntax_errors_stop_the_scan() {
        assert_eq!(
            findings("a: &x 1\nb: c: d\n"),
            vec![
                "1:4 anchor `&x` is not allowed",
                "2:5 mapping values are not allowed in this context"
            ]
        );
    }
}
