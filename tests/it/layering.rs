//! The layering the crate documents (`src/lib.rs`) holds: a module imports only from modules
//! below it in [`LAYERS`], and inside a module the submodules import each other without a
//! cycle. Read from the source text, so a new upward `use` fails here, not in review.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::repo_root;

/// Every top-level module of `src/`, lowest first: each may import only from those before it.
const LAYERS: &[&str] = &[
    "error",
    "untrusted",
    "text",
    "secret",
    "shutdown",
    "desired",
    "source",
    "live",
    "plan",
    "apply",
    "rollout",
    "sync",
    "report",
    "metrics",
    "daemon",
    "server",
    "config",
    "commands",
];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The code of `text` without comments (line comments and doc comments; the crate has no block
/// comments), so a doc link to another module is not an import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // `//` inside a string (a URL) is rare in paths; the prefix before it is kept anyway.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments after each `prefix::` in `code`, `prefix::{a, b::c}` giving `a`
/// and `b`.
fn segments_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let needle = format!("{prefix}::");
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().last();
        rest = &rest[i + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `mycrate::` or `self_crate::`, not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of a (possibly nested) group.
            let (mut depth, mut name, mut expect_name) = (0usize, String::new(), true);
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expect_name = true,
                    c if depth == 0 && expect_name && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if depth == 0 && !name.is_empty() => {
                        found.insert(std::mem::take(&mut name));
                        expect_name = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// (importing module, imported module, file) for every `crate::` reference between top-level
/// modules.
fn top_level_imports(src: &Path) -> Vec<(String, String, String)> {
    let mut edges = Vec::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let code = code_of(&fs::read_to_string(&file).unwrap());
        for target in segments_after(&code, "crate") {
            if target != module {
                edges.push((module.clone(), target, rel.display().to_string()));
            }
        }
    }
    edges
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = repo_root().join("src");
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut upward = Vec::new();
    for (from, to, file) in top_level_imports(&src) {
        let from_rank = rank(&from).unwrap_or_else(|| panic!("{file}: module `{from}` is not in LAYERS"));
        let Some(to_rank) = rank(&to) else {
            panic!("{file}: imports `crate::{to}`, which is not a module in LAYERS")
        };
        if to_rank > from_rank {
            upward.push(format!("{file}: `{from}` imports `{to}`, a layer above it"));
        }
    }
    upward.sort();
    upward.dedup();
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
}

#[test]
fn every_module_of_the_crate_has_a_layer() {
    let src = repo_root().join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ").or_else(|| l.strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let layered: BTreeSet<&str> = LAYERS.iter().copied().collect();
    assert_eq!(declared, layered, "src/lib.rs's modules and LAYERS differ");
    for layer in LAYERS {
        assert!(
            lib.contains(&format!("[`{layer}`]")),
            "src/lib.rs does not document the layer `{layer}`"
        );
    }
}

/// Inside each module directory, `super::x` and `crate::<module>::x` references between sibling
/// files form no cycle (a `mod.rs` only declares and re-exports, so it is left out).
#[test]
fn submodules_import_each_other_without_a_cycle() {
    let src = repo_root().join("src");
    let mut cycles = Vec::new();
    for dir in fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
    {
        let module = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        let siblings: BTreeSet<String> = files
            .iter()
            .map(|f| f.file_stem().unwrap().to_string_lossy().to_string())
            .filter(|s| s != "mod")
            .collect();
        for file in &files {
            let name = file.file_stem().unwrap().to_string_lossy().to_string();
            if name == "mod" {
                continue;
            }
            let code = code_of(&fs::read_to_string(file).unwrap());
            let mut targets = segments_after(&code, "super");
            targets.extend(segments_after(&code, &format!("crate::{module}")));
            let targets: BTreeSet<String> = targets
                .into_iter()
                .filter(|t| siblings.contains(t) && *t != name)
                .collect();
            graph.insert(name, targets);
        }
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("src/{module}/: {}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// A cycle in `graph`, as the path that closes it, by depth-first search.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_checks_find_what_they_look_for() {
    let code = code_of(
        "use crate::{apply::{self, X}, live};\n// crate::daemon\nlet x = crate::report::y;\nmycrate::plan",
    );
    assert_eq!(
        segments_after(&code, "crate"),
        ["apply", "live", "report"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("load", vec!["validate"]),
        ("validate", vec!["model", "load"]),
        ("model", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["load".into(), "validate".into(), "load".into()])
    );
}
