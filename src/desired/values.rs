//! Store values against an engine's allowlist: which value paths a store sets, and what the
//! allowlist says of each.
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::model::PlatformConfig;

/// Calls `f` with each leaf of a values tree (a value that is not a map, or an empty map) in
/// order: its path as segments and dotted (`admin.email`), and whether it is an empty map.
/// Iterative, and without an allocation per leaf.
pub(crate) fn for_each_leaf<'a>(values: &'a Map<String, Value>, mut f: impl FnMut(&[&'a str], &str, bool)) {
    fn pop(segments: &mut Vec<&str>, dotted: &mut String) {
        if let Some(last) = segments.pop() {
            let dot = usize::from(!segments.is_empty());
            dotted.truncate(dotted.len() - last.len() - dot);
        }
    }
    let mut segments: Vec<&'a str> = Vec::new();
    let mut dotted = String::new();
    let mut open = vec![values.iter()];
    while let Some(entries) = open.last_mut() {
        let Some((key, value)) = entries.next() else {
            open.pop();
            // The map just finished is the value of the last segment (the root has none).
            if !open.is_empty() {
                pop(&mut segments, &mut dotted);
            }
            continue;
        };
        if !segments.is_empty() {
            dotted.push('.');
        }
        dotted.push_str(key);
        segments.push(key);
        match value {
            Value::Object(inner) if !inner.is_empty() => open.push(inner.iter()),
            _ => {
                f(&segments, &dotted, matches!(value, Value::Object(_)));
                pop(&mut segments, &mut dotted);
            }
        }
    }
}

/// What an engine's allowlist says of a value path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The path is an entry or lies under one.
    Allowed,
    /// The path is a parent of an entry: it may only hold a map.
    Parent,
    Denied,
}

/// One engine's allowlist as sets, so that a lookup costs the depth of a path, not the length
/// of the list.
pub(crate) struct Allowlist {
    entries: HashSet<String>,
    parents: HashSet<String>,
    /// The list for a hint, shortened.
    pub shown: String,
}

impl Allowlist {
    fn new(list: &[String]) -> Allowlist {
        const SHOWN: usize = 20;
        let mut shown = list.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
        if list.is_empty() {
            shown = "none".into();
        } else if list.len() > SHOWN {
            shown.push_str(&format!(" and {} more", list.len() - SHOWN));
        }
        Allowlist {
            entries: list.iter().cloned().collect(),
            parents: list
                .iter()
                .flat_map(|e| e.match_indices('.').map(|(i, _)| e[..i].to_string()))
                .collect(),
            shown,
        }
    }

    pub(super) fn verdict(&self, path: &str) -> Verdict {
        let under_entry = path
            .match_indices('.')
            .map(|(i, _)| &path[..i])
            .chain([path])
            .any(|prefix| self.entries.contains(prefix));
        if under_entry {
            Verdict::Allowed
        } else if self.parents.contains(path) {
            Verdict::Parent
        } else {
            Verdict::Denied
        }
    }
}

/// Every engine's [`Allowlist`], built once per catalog.
pub(crate) struct Allowlists {
    engines: HashMap<String, Allowlist>,
    none: Allowlist,
}

impl Allowlists {
    pub(super) fn of(platform: &PlatformConfig) -> Allowlists {
        Allowlists {
            engines: platform
                .engines
                .iter()
                .map(|(name, e)| (name.clone(), Allowlist::new(&e.values_allowlist)))
                .collect(),
            none: Allowlist::new(&[]),
        }
    }

    pub(super) fn get(&self, engine: &str) -> &Allowlist {
        self.engines.get(engine).unwrap_or(&self.none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_paths() {
        let list = Allowlist::new(&["admin.email".to_string(), "sampleProduct".to_string()]);
        assert_eq!(list.verdict("admin.email"), Verdict::Allowed);
        assert_eq!(list.verdict("sampleProduct.price"), Verdict::Allowed);
        assert_eq!(list.verdict("sampleProduct"), Verdict::Allowed);
        assert_eq!(list.verdict("admin"), Verdict::Parent, "may only hold a map");
        assert_eq!(list.verdict("admin.password"), Verdict::Denied);
        assert_eq!(list.verdict("adminx"), Verdict::Denied);
        assert_eq!(list.verdict("sampleProductx"), Verdict::Denied);
        assert_eq!(list.verdict("admin.emailx"), Verdict::Denied);
    }

    #[test]
    fn value_paths_are_leaves() {
        let v: Map<String, Value> =
            serde_json::from_str(r#"{"a":{"b":1,"c":{},"e":{"f":{"g":2}}},"d":[1,2],"h":3}"#).unwrap();
        let mut paths: Vec<(String, bool)> = Vec::new();
        for_each_leaf(&v, |segments, path, empty_map| {
            assert_eq!(segments.join("."), path);
            paths.push((path.to_string(), empty_map));
        });
        assert_eq!(
            paths,
            vec![
                ("a.b".into(), false),
                ("a.c".into(), true),
                ("a.e.f.g".into(), false),
                ("d".into(), false),
                ("h".into(), false)
            ]
        );
    }
}
