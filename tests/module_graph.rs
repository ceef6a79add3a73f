//! The top-level modules of `src/` form a graph without a cycle, read from
//! the source itself: a module uses another when its code (comments and
//! test modules left out) names `crate::other`. The edge modules sit on
//! top (`cli` above everything, `daemon` above what it drives), so any of
//! them can be changed, or tested, without dragging in the rest. Also
//! checked: no library module uses `cli`, and `metrics` does not use the
//! daemon's types.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the modules it uses, with the files that do.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments and its `#[cfg(test)] mod tests`.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal (a URL) ends nothing; good enough
            // for module paths, which never sit inside one.
            Some(at) if !l[..at].contains('"') => &l[..at],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::x` and `use crate::{x, y::z}` name the modules `x` (and `y`).
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())).filter(|m| !m.is_empty()));
        } else {
            let m = ident(rest);
            if !m.is_empty() {
                out.insert(m);
            }
        }
    }
    out
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let node = graph.entry(top.clone()).or_default();
        for m in used_modules(&code).into_iter().filter(|m| *m != top) {
            node.entry(m).or_default().insert(rel.clone());
        }
    }
    graph
}

/// A cycle through `graph`, if there is one (depth-first search).
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(graph: &Graph, node: &str, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).map(|n| n.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            if let Some(c) = visit(graph, &next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(graph, n, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_of_src_form_no_cycle() {
    let graph = graph();
    assert!(graph.len() >= 15, "the modules were not found: {:?}", graph.keys());
    if let Some(c) = cycle(&graph) {
        let edges: Vec<String> =
            c.windows(2).map(|w| format!("{} -> {} (in {:?})", w[0], w[1], graph[&w[0]][&w[1]])).collect();
        panic!("the modules form a cycle:\n{}", edges.join("\n"));
    }
    for (module, uses) in &graph {
        assert!(module == "cli" || !uses.contains_key("cli"), "{module} uses cli: {:?}", uses.get("cli"));
    }
    assert!(!graph["metrics"].contains_key("daemon"), "metrics uses the daemon: {:?}", graph["metrics"].get("daemon"));
}

#[test]
fn the_reader_sees_a_cycle_when_there_is_one() {
    let mut graph = Graph::new();
    let edge = |g: &mut Graph, a: &str, b: &str| {
        g.entry(a.into()).or_default().entry(b.into()).or_default().insert("x.rs".into());
    };
    edge(&mut graph, "store", "engine");
    edge(&mut graph, "daemon", "store");
    assert_eq!(cycle(&graph), None);
    edge(&mut graph, "engine", "daemon");
    assert_eq!(cycle(&graph).map(|c| c.len()), Some(4));
    let code = code_of("use crate::{store::Store, engine};\n// crate::cli in a comment\nlet x = crate::report::f();");
    assert_eq!(used_modules(&code), BTreeSet::from(["engine".into(), "report".into(), "store".into()]));
}
