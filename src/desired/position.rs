//! Finds where a key or value sits in a YAML text, for diagnostics about well-formed files.
//!
//! Only consulted when a finding needs a position, so valid catalogs never pay for it. One
//! iterative pass builds a tree of keys; each lookup then walks the path, whatever the number
//! of findings.
use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// A key or sequence item: where its key and its value are, and the entries below it.
#[derive(Debug, Default)]
struct Node {
    key: (usize, usize),
    value: (usize, usize),
    children: HashMap<String, usize>,
}

fn pos(m: &Marker) -> (usize, usize) {
    (m.line(), m.col() + 1)
}

/// An open collection while walking: the node it belongs to (`None` inside a complex key,
/// whose entries are not recorded), and what comes next in it.
struct Open {
    node: Option<usize>,
    next: Next,
}

enum Next {
    /// In a mapping: the key to read, or the key read and its value to come.
    Key,
    Value(Option<(String, Marker)>),
    /// In a sequence: the index of the next item.
    Item(usize),
}

/// An index of the key/value positions of one YAML document.
pub struct Positions {
    /// `nodes[0]` is the document's root.
    nodes: Vec<Node>,
}

impl Positions {
    pub fn of(text: &str) -> Positions {
        let mut nodes = vec![Node::default()];
        let mut parser = Parser::new_from_str(text);
        let mut open: Vec<Open> = Vec::new();
        // The first node of the first document; a parse error ends the walk with what was found.
        while let Ok((event, mark)) = parser.next_token() {
            let (is_collection, is_node) = match event {
                Event::StreamEnd | Event::DocumentEnd => break,
                Event::SequenceEnd | Event::MappingEnd => {
                    open.pop();
                    if open.is_empty() {
                        break;
                    }
                    continue;
                }
                Event::SequenceStart(..) | Event::MappingStart(..) => (true, true),
                Event::Scalar(..) | Event::Alias(_) => (false, true),
                Event::StreamStart | Event::DocumentStart | Event::Nothing => (false, false),
            };
            if !is_node {
                continue;
            }
            // The node this event starts, when it is recorded.
            let node = match open.last_mut() {
                None => Some(0),
                Some(Open { node: parent, next }) => match next {
                    Next::Key => {
                        *next = Next::Value(match &event {
                            Event::Scalar(name, ..) => Some((name.clone(), mark)),
                            _ => None,
                        });
                        None
                    }
                    Next::Value(key) => {
                        let key = key.take();
                        *next = Next::Key;
                        match (*parent, key) {
                            (Some(parent), Some((name, key_mark))) => {
                                Some(add(&mut nodes, parent, name, pos(&key_mark), pos(&mark)))
                            }
                            _ => None,
                        }
                    }
                    Next::Item(index) => {
                        let name = index.to_string();
                        *index += 1;
                        parent.map(|parent| add(&mut nodes, parent, name, pos(&mark), pos(&mark)))
                    }
                },
            };
            if is_collection {
                open.push(Open {
                    node,
                    next: match event {
                        Event::MappingStart(..) => Next::Key,
                        _ => Next::Item(0),
                    },
                });
            } else if open.is_empty() {
                break;
            }
        }
        Positions { nodes }
    }

    /// The node at `path`; the root (an empty path) is no entry.
    fn find(&self, path: &[&str]) -> Option<&Node> {
        if path.is_empty() {
            return None;
        }
        let mut node = &self.nodes[0];
        for segment in path {
            node = &self.nodes[*node.children.get(*segment)?];
        }
        Some(node)
    }

    pub fn has(&self, path: &[&str]) -> bool {
        self.find(path).is_some()
    }

    /// Position of the key at `path`, or of the nearest enclosing key found; `(1, 1)` at worst.
    pub fn key(&self, path: &[&str]) -> (usize, usize) {
        (1..=path.len())
            .rev()
            .find_map(|n| self.find(&path[..n]).map(|e| e.key))
            .unwrap_or((1, 1))
    }

    /// Position of the value at `path`, or of the nearest enclosing key found.
    pub fn value(&self, path: &[&str]) -> (usize, usize) {
        match self.find(path) {
            Some(e) => e.value,
            None => self.key(path),
        }
    }
}

/// Adds the entry `name` under `parent` (the first one wins) and returns its node.
fn add(
    nodes: &mut Vec<Node>,
    parent: usize,
    name: String,
    key: (usize, usize),
    value: (usize, usize),
) -> usize {
    let next = nodes.len();
    let id = *nodes[parent].children.entry(name).or_insert(next);
    if id == next {
        nodes.push(Node {
            key,
            value,
            children: HashMap::new(),
        });
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name: acme\nengine:   medusa\nvalues:\n  admin:\n    email: a@b.c\n  list:\n    - x\n";

    #[test]
    fn finds_keys_and_values() {
        let p = Positions::of(DOC);
        assert_eq!(p.key(&["name"]), (1, 1));
        assert_eq!(p.value(&["engine"]), (2, 11));
        assert_eq!(p.key(&["values", "admin", "email"]), (5, 5));
        assert_eq!(p.value(&["values", "admin", "email"]), (5, 12));
        assert_eq!(p.key(&["values", "list", "0"]), (7, 7));
        assert!(p.has(&["values", "list"]) && !p.has(&["values", "lists"]));
    }

    #[test]
    fn falls_back_to_enclosing_key() {
        let p = Positions::of(DOC);
        assert_eq!(p.key(&["values", "admin", "missing"]), (4, 3));
        assert_eq!(p.key(&["nothing"]), (1, 1));
        assert_eq!(Positions::of("").key(&["x"]), (1, 1));
    }

    #[test]
    fn complex_keys_are_skipped_and_the_first_duplicate_wins() {
        let p = Positions::of("? {a: 1}\n: {b: 2}\nc: 1\nc: 2\nd: [x, {e: 3}]\n");
        assert!(!p.has(&["a"]) && !p.has(&["b"]));
        assert_eq!(p.value(&["c"]), (3, 4));
        assert_eq!(p.key(&["d", "1", "e"]), (5, 9));
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let p = Positions::of(&format!("{}1", "- ".repeat(30_000)));
        assert!(p.has(&vec!["0"; 30_000]));
    }
}
