//! Where each key and value of a YAML text is, for diagnostics about well-formed files.
//!
//! Built by the scan of a file (`scan`) in the same pass that checks it: a tree of
//! keys in which a lookup walks the path, whatever the number of findings.
use std::collections::HashMap;

/// A key or sequence item: where its key and its value are, and the entries below it.
#[derive(Debug)]
struct Node {
    key: (usize, usize),
    value: (usize, usize),
    children: HashMap<String, usize>,
}

/// An index of the key/value positions of one YAML document.
#[derive(Debug)]
pub(crate) struct Positions {
    /// `nodes[ROOT]` is the document's root; nodes added without a parent are never looked up.
    nodes: Vec<Node>,
}

impl Positions {
    pub(crate) const ROOT: usize = 0;

    pub(crate) fn new() -> Positions {
        Positions {
            nodes: vec![Node {
                key: (1, 1),
                value: (1, 1),
                children: HashMap::new(),
            }],
        }
    }

    /// The entry `name` of the node `parent`, if it has one.
    pub(crate) fn child(&self, parent: usize, name: &str) -> Option<usize> {
        self.nodes[parent].children.get(name).copied()
    }

    /// Where the key of node `id` is.
    pub(crate) fn key_of(&self, id: usize) -> (usize, usize) {
        self.nodes[id].key
    }

    /// Adds a node, as the entry `name` of `parent` when given (the first entry of a name
    /// stays), else detached: a complex key, or the value of a duplicate key.
    pub(crate) fn add(
        &mut self,
        parent: Option<(usize, String)>,
        key: (usize, usize),
        value: (usize, usize),
    ) -> usize {
        let id = self.nodes.len();
        if let Some((parent, name)) = parent {
            self.nodes[parent].children.entry(name).or_insert(id);
        }
        self.nodes.push(Node {
            key,
            value,
            children: HashMap::new(),
        });
        id
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

    pub(crate) fn has(&self, path: &[&str]) -> bool {
        self.find(path).is_some()
    }

    /// Position of the key at `path`, or of the nearest enclosing key found; `(1, 1)` at worst.
    pub(crate) fn key(&self, path: &[&str]) -> (usize, usize) {
        (1..=path.len())
            .rev()
            .find_map(|n| self.find(&path[..n]).map(|e| e.key))
            .unwrap_or((1, 1))
    }

    /// Position of the value at `path`, or of the nearest enclosing key found.
    pub(crate) fn value(&self, path: &[&str]) -> (usize, usize) {
        match self.find(path) {
            Some(e) => e.value,
            None => self.key(path),
        }
    }
}
