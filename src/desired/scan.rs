//! The first look at a catalog file, before serde builds any value from it: one iterative pass
//! over yaml-rust2's events that rejects what could make a small file expensive to load
//! (anchors and aliases, deep nesting) or read differently by storesync than by a reviewer
//! (tags, duplicate keys, keys that are not text, several documents).
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, ScanError};

use super::diagnostics::{Capped, Diagnostic, MAX_FINDINGS_PER_FILE, Omitted};
use super::position::Positions;

/// Deepest nesting of maps and sequences in a catalog file; storesync.yaml needs 6.
pub const MAX_DEPTH: usize = 32;

/// What a scan found.
pub(crate) struct Scan {
    /// The first findings, in position order; a file is acceptable only without any.
    pub findings: Vec<Diagnostic>,
    /// The findings past [`MAX_FINDINGS_PER_FILE`], counted.
    pub omitted: Option<Omitted>,
    /// The syntax error that ended the scan early.
    pub syntax: Option<Diagnostic>,
    /// Where the keys and values are, as far as the scan read.
    pub positions: Positions,
}

impl Scan {
    /// Whether the file may go on to serde.
    pub(super) fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.syntax.is_none()
    }
}

/// An open map or sequence: its node, and what comes next in it.
struct Open {
    node: usize,
    next: Next,
}

enum Next {
    /// In a map, the key.
    Key,
    /// In a map, the value of the key at this position, named when it is a first, plain key.
    Value(Option<String>, (usize, usize)),
    /// In a sequence, the item of this index.
    Item(usize),
}

/// Scans `text`, the file at `path`, without building any value.
pub(crate) fn scan(path: &str, text: &str) -> Scan {
    let mut findings = Capped::new(MAX_FINDINGS_PER_FILE);
    let mut positions = Positions::new();
    let mut source = Source::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut open: Vec<Open> = Vec::new();
    let mut documents = 0usize;
    let syntax = loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) => break Some(syntax(path, &e)),
        };
        let at = position(&mark);
        let (anchor, tagged, collection) = match &event {
            Event::StreamEnd => break None,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    findings.push(at, true, || {
                        Diagnostic::error(path, at, "a second YAML document starts here").hint(
                            "keep exactly one YAML document per file: remove this `---` and what follows",
                        )
                    });
                    break None;
                }
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop();
                continue;
            }
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => continue,
            Event::Alias(_) => {
                let from = source.offset(&mark);
                findings.push(at, true, || {
                    let name = token(text, from);
                    Diagnostic::error(path, at, format!("alias `{name}` is not allowed")).hint(
                        "write the value out in full; anchors and aliases are not allowed in the catalog",
                    )
                });
                (0, false, false)
            }
            Event::Scalar(_, _, anchor, tag) => (*anchor, tag.is_some(), false),
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                (*anchor, tag.is_some(), true)
            }
        };
        source.properties(path, &mark, anchor, tagged, &mut findings);
        let is_map = matches!(event, Event::MappingStart(..));

        // The node this event starts: the root, a key, a value or a sequence item.
        let node = match open.last_mut() {
            None => Some(Positions::ROOT),
            Some(Open { node: parent, next }) => match next {
                Next::Key => {
                    let name = match event {
                        Event::Scalar(name, ..) => Some(name),
                        _ => None,
                    };
                    if collection {
                        findings.push(at, true, || {
                            Diagnostic::error(path, at, "a key must be plain text, not a map or a list")
                                .hint("write the key as text, such as `storeTitle:`")
                        });
                    }
                    let name = match name.map(|n| (positions.child(*parent, &n), n)) {
                        Some((Some(first), name)) => {
                            let first = positions.key_of(first);
                            findings.push(at, true, || duplicate(path, at, &name, first));
                            None
                        }
                        Some((None, name)) => Some(name),
                        None => None,
                    };
                    *next = Next::Value(name, at);
                    collection.then(|| positions.add(None, at, at))
                }
                Next::Value(name, key) => {
                    let entry = name.take().map(|name| (*parent, name));
                    let key = *key;
                    *next = Next::Key;
                    Some(positions.add(entry, key, at))
                }
                Next::Item(index) => {
                    let entry = (*parent, index.to_string());
                    *index += 1;
                    Some(positions.add(Some(entry), at, at))
                }
            },
        };
        if let (true, Some(node)) = (collection, node) {
            if open.len() == MAX_DEPTH {
                findings.push(at, true, || too_deep(path, at));
                break None;
            }
            open.push(Open {
                node,
                next: if is_map { Next::Key } else { Next::Item(0) },
            });
        }
    };
    Scan {
        findings: findings.kept,
        omitted: findings.omitted,
        syntax,
        positions,
    }
}

fn duplicate(path: &str, at: (usize, usize), name: &str, first: (usize, usize)) -> Diagnostic {
    Diagnostic::error(
        path,
        at,
        format!(
            "duplicate key `{}`: it is already set at line {}",
            shown(name),
            first.0
        ),
    )
    .hint("remove one of them: YAML keeps only the last, while a reader sees the first")
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

/// The text of a file, for the names and positions of anchors, aliases and tags. Markers
/// count characters; every conversion here walks only text between neighbouring tokens, so a
/// file costs linear time however many findings it has.
struct Source<'a> {
    text: &'a str,
    /// The last marker converted, as (character index, byte offset): markers come in order.
    cursor: (usize, usize),
}

impl<'a> Source<'a> {
    fn new(text: &'a str) -> Self {
        Source { text, cursor: (0, 0) }
    }

    /// Byte offset of a marker.
    fn offset(&mut self, m: &Marker) -> usize {
        let (mut chars, mut bytes) = if m.index() >= self.cursor.0 {
            self.cursor
        } else {
            (0, 0)
        };
        for c in self.text[bytes..].chars() {
            if chars == m.index() {
                break;
            }
            chars += 1;
            bytes += c.len_utf8();
        }
        self.cursor = (chars, bytes);
        bytes
    }

    /// Reports the anchor and the tag of the node at `m`, when it has them.
    fn properties(&mut self, path: &str, m: &Marker, anchor: usize, tagged: bool, out: &mut Capped) {
        let text = self.text;
        if anchor > 0 {
            let (at, from) = self.property(m, '&');
            out.push(at, true, || {
                Diagnostic::error(path, at, format!("anchor `{}` is not allowed", token(text, from)))
                    .hint("write the value out in full; anchors and aliases are not allowed in the catalog")
            });
        }
        if tagged {
            let (at, from) = self.property(m, '!');
            out.push(at, true, || {
                Diagnostic::error(path, at, format!("tag `{}` is not allowed", token(text, from)))
                    .hint("remove the tag; quote the value if it must be read as text")
            });
        }
    }

    /// Where the property (`&anchor`, `!tag`) that precedes the node at `m` is, as a position
    /// and a byte offset: the nearest `sigil` before the node that starts a token. A property
    /// sits right before its node, so the look back is short.
    fn property(&mut self, m: &Marker, sigil: char) -> ((usize, usize), usize) {
        let node = self.offset(m);
        let text = self.text;
        let bytes = text.as_bytes();
        let found = text[..node]
            .rmatch_indices(sigil)
            .map(|(i, _)| i)
            .find(|&i| i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b','));
        let Some(at) = found else {
            return (position(m), node);
        };
        let between = &text[at..node];
        let newlines = between.matches('\n').count();
        let column = if newlines == 0 {
            m.col() + 1 - between.chars().count()
        } else {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            text[line_start..at].chars().count() + 1
        };
        ((m.line() - newlines, column), at)
    }
}

/// The token of `text` starting at byte `from`, such as `*name`, shortened for a message.
fn token(text: &str, from: usize) -> String {
    let rest = &text[from..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}'))
        .unwrap_or(rest.len());
    shown(&rest[..end])
}

/// Positions of `text`, by scanning it again.
pub(super) fn positions_of(text: &str) -> Positions {
    scan("", text).positions
}

/// Checks a YAML stream of several documents (a Helm release manifest, read from a store's
/// namespace) without building any value: the first anchor, alias or tag, nesting deeper than
/// [`MAX_DEPTH`], syntax error, document past `max_documents`, or node past `max_nodes`
/// (scalars, maps and lists of all documents) is the error, as `line L, column C: what`. Stops
/// there, so a bad stream costs only what was read up to it.
pub fn scan_manifest(text: &str, max_documents: usize, max_nodes: usize) -> Result<(), String> {
    let mut source = Source::new(text);
    let mut parser = Parser::new_from_str(text);
    let (mut depth, mut documents, mut nodes) = (0usize, 0usize, 0usize);
    let at = |(line, column): (usize, usize), what: String| format!("line {line}, column {column}: {what}");
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            // yaml-rust2 stops flow collections (`[[[…`) at 255 levels while reading ahead.
            let what = match e.info() {
                "recursion limit exceeded" => {
                    format!("maps and lists are nested more than {MAX_DEPTH} levels deep")
                }
                info => info.to_string(),
            };
            at(position(e.marker()), what)
        })?;
        let (anchor, tagged) = match &event {
            Event::StreamEnd => return Ok(()),
            Event::SequenceEnd | Event::MappingEnd => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::DocumentStart => {
                documents += 1;
                if documents > max_documents {
                    return Err(at(
                        position(&mark),
                        format!("more than {max_documents} YAML documents"),
                    ));
                }
                continue;
            }
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => continue,
            Event::Alias(_) => {
                let from = source.offset(&mark);
                return Err(at(
                    position(&mark),
                    format!("alias `{}` is not allowed", token(text, from)),
                ));
            }
            Event::Scalar(_, _, anchor, tag) => (*anchor, tag.is_some()),
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let what = format!("maps and lists are nested more than {MAX_DEPTH} levels deep");
                    return Err(at(position(&mark), what));
                }
                (*anchor, tag.is_some())
            }
        };
        nodes += 1;
        if nodes > max_nodes {
            return Err(at(position(&mark), format!("more than {max_nodes} YAML nodes")));
        }
        if anchor > 0 {
            let (pos, from) = source.property(&mark, '&');
            return Err(at(pos, format!("anchor `{}` is not allowed", token(text, from))));
        }
        if tagged {
            let (pos, from) = source.property(&mark, '!');
            return Err(at(pos, format!("tag `{}` is not allowed", token(text, from))));
        }
    }
}

#[cfg(test)]
mod position_tests {
    use super::*;

    const DOC: &str = "name: acme\nengine:   medusa\nvalues:\n  admin:\n    email: a@b.c\n  list:\n    - x\n";

    #[test]
    fn finds_keys_and_values() {
        let p = positions_of(DOC);
        assert_eq!(p.key(&["name"]), (1, 1));
        assert_eq!(p.value(&["engine"]), (2, 11));
        assert_eq!(p.key(&["values", "admin", "email"]), (5, 5));
        assert_eq!(p.value(&["values", "admin", "email"]), (5, 12));
        assert_eq!(p.key(&["values", "list", "0"]), (7, 7));
        assert!(p.has(&["values", "list"]) && !p.has(&["values", "lists"]));
    }

    #[test]
    fn falls_back_to_enclosing_key() {
        let p = positions_of(DOC);
        assert_eq!(p.key(&["values", "admin", "missing"]), (4, 3));
        assert_eq!(p.key(&["nothing"]), (1, 1));
        assert_eq!(positions_of("").key(&["x"]), (1, 1));
    }

    #[test]
    fn complex_keys_are_skipped_and_the_first_duplicate_wins() {
        let p = positions_of("? {a: 1}\n: {b: 2}\nc: 1\nc: 2\nd: [x, {e: 3}]\n");
        assert!(!p.has(&["a"]) && !p.has(&["b"]));
        assert_eq!(p.value(&["c"]), (3, 4));
        assert_eq!(p.key(&["d", "1", "e"]), (5, 9));
    }

    #[test]
    fn deep_nesting_stops_at_the_scan_bound() {
        let p = positions_of(&format!("{}1", "- ".repeat(30_000)));
        assert!(p.has(&["0"; 32]));
        assert!(!p.has(&["0"; 33]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(text: &str) -> Vec<String> {
        let scan = scan("f.yaml", text);
        assert!(scan.omitted.is_none());
        scan.findings
            .iter()
            .chain(&scan.syntax)
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
    fn a_manifest_is_a_stream_of_plain_documents() {
        let manifest = "---\n# Source: c/a.yaml\napiVersion: v1\nkind: ConfigMap\ndata: {a: '1'}\n---\n---\nkind: Service\n";
        assert_eq!(scan_manifest(manifest, 3, 100), Ok(()));
        assert_eq!(scan_manifest("", 0, 0), Ok(()));
        let refused = |text: &str| scan_manifest(text, 10, 100).unwrap_err();
        assert_eq!(
            refused("a: 1\n---\nb: &big [1, 2]\nc: *big\n"),
            "line 3, column 4: anchor `&big` is not allowed"
        );
        // An alias needs an anchor before it, which is refused first; one without is a syntax error.
        assert_eq!(
            refused("a: [*x]\n"),
            "line 1, column 5: while parsing node, found unknown anchor"
        );
        assert_eq!(
            refused("a: !!binary eA==\n"),
            "line 1, column 4: tag `!!binary` is not allowed"
        );
        assert_eq!(
            refused("a: 1\n---\nb: c: d\n"),
            "line 3, column 5: mapping values are not allowed in this context"
        );
        let nested = format!("{}1", "- ".repeat(33));
        assert!(
            refused(&nested).ends_with("nested more than 32 levels deep"),
            "{}",
            refused(&nested)
        );
        let flow = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(refused(&flow).ends_with("nested more than 32 levels deep"));
        // Nodes count across documents: a map and two scalars each.
        let three = "a: 1\n---\nb: 2\n---\nc: 3\n";
        assert_eq!(scan_manifest(three, 3, 9), Ok(()));
        assert_eq!(
            scan_manifest(three, 3, 8).unwrap_err(),
            "line 5, column 4: more than 8 YAML nodes"
        );
        assert_eq!(
            scan_manifest(three, 2, 9).unwrap_err(),
            "line 4, column 1: more than 2 YAML documents"
        );
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
