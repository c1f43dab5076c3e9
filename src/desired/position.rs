//! Finds where a key or value sits in a YAML text, for diagnostics about well-formed files.
//!
//! Only consulted when a finding needs a position, so valid catalogs never pay for it.
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// A mapping entry: its key path, and the positions of its key and its value.
#[derive(Debug, Clone)]
struct Entry {
    path: Vec<String>,
    key: (usize, usize),
    value: (usize, usize),
}

fn pos(m: &Marker) -> (usize, usize) {
    (m.line(), m.col() + 1)
}

struct Walker<'a> {
    parser: Parser<std::str::Chars<'a>>,
    entries: Vec<Entry>,
}

impl Walker<'_> {
    fn next(&mut self) -> Option<(Event, Marker)> {
        self.parser.next_token().ok()
    }

    /// Walks the node that starts with `first`, recording every mapping entry below `path`.
    fn node(&mut self, first: Event, path: &mut Vec<String>) -> Option<()> {
        match first {
            Event::MappingStart(..) => loop {
                let (key, key_mark) = self.next()?;
                let name = match key {
                    Event::MappingEnd => return Some(()),
                    Event::Scalar(s, ..) => s,
                    other => {
                        // A complex key: walk it and its value without recording.
                        self.node(other, &mut Vec::new())?;
                        let (value, _) = self.next()?;
                        self.node(value, &mut Vec::new())?;
                        continue;
                    }
                };
                let (value, value_mark) = self.next()?;
                path.push(name);
                self.entries.push(Entry {
                    path: path.clone(),
                    key: pos(&key_mark),
                    value: pos(&value_mark),
                });
                self.node(value, path)?;
                path.pop();
            },
            Event::SequenceStart(..) => {
                let mut index = 0usize;
                loop {
                    let (item, mark) = self.next()?;
                    if item == Event::SequenceEnd {
                        return Some(());
                    }
                    path.push(index.to_string());
                    self.entries.push(Entry {
                        path: path.clone(),
                        key: pos(&mark),
                        value: pos(&mark),
                    });
                    self.node(item, path)?;
                    path.pop();
                    index += 1;
                }
            }
            _ => Some(()),
        }
    }
}

/// An index of the key/value positions of one YAML document.
pub struct Positions {
    entries: Vec<Entry>,
}

impl Positions {
    pub fn of(text: &str) -> Positions {
        let mut walker = Walker {
            parser: Parser::new_from_str(text),
            entries: Vec::new(),
        };
        // Skip to the first node of the first document.
        while let Some((event, _)) = walker.next() {
            match event {
                Event::StreamStart | Event::DocumentStart | Event::Nothing => continue,
                Event::StreamEnd => break,
                first => {
                    walker.node(first, &mut Vec::new());
                    break;
                }
            }
        }
        Positions {
            entries: walker.entries,
        }
    }

    fn find(&self, path: &[&str]) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.path.len() == path.len() && e.path.iter().zip(path).all(|(a, b)| a == b))
    }

    pub fn has(&self, path: &[&str]) -> bool {
        self.find(path).is_some()
    }

    /// Position of the key at `path`, or of the nearest enclosing key found; `(1, 1)` at worst.
    pub fn key(&self, path: &[&str]) -> (usize, usize) {
        (0..=path.len())
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
    }

    #[test]
    fn falls_back_to_enclosing_key() {
        let p = Positions::of(DOC);
        assert_eq!(p.key(&["values", "admin", "missing"]), (4, 3));
        assert_eq!(p.key(&["nothing"]), (1, 1));
        assert_eq!(Positions::of("").key(&["x"]), (1, 1));
    }
}
