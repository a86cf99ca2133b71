//! The layout rules the codebase keeps, checked on its source: the
//! top-level modules of `proxy/src` import each other without a cycle, and
//! no source file (outside its tests) grows past what one person can hold in
//! mind. Test code is left out: `tests.rs` files, `tests/` directories and
//! items marked `#[cfg(test)]`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The longest a source file may be, in lines of non-test code.
const MAX_FILE_LINES: usize = 800;

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir` that is not test code.
fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("read the source directory") {
        let path = entry.expect("read a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "tests" {
                files.extend(source_files(&path));
            }
        } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The lines of `source` that are code outside `#[cfg(test)]` items, with
/// comment lines dropped.
fn non_test_code(source: &str) -> Vec<&str> {
    let mut kept = Vec::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            skip_item(&mut lines);
            continue;
        }
        if !line.trim_start().starts_with("//") {
            kept.push(line);
        }
    }
    kept
}

/// Consumes the item that follows a `#[cfg(test)]`: through its balanced
/// braces, or through its `;` when it has none.
fn skip_item<'a>(lines: &mut impl Iterator<Item = &'a str>) {
    let mut depth = 0i64;
    let mut opened = false;
    for line in lines.by_ref() {
        if line.trim_start().starts_with("//") || line.trim_start().starts_with("#[") {
            continue;
        }
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        if (opened && depth <= 0) || (!opened && line.trim_end().ends_with(';')) {
            return;
        }
    }
}

/// The top-level module a file belongs to (`routing` for
/// `src/routing/picker.rs`, `server` for `src/server.rs`); `None` for the
/// crate roots.
fn top_module(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(source_dir()).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// The top-level modules a line names through `crate::`, including the
/// members of a `crate::{a, b::c}` group.
fn crate_references(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut member = String::new();
            let mut expecting_name = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expecting_name = true,
                    c if expecting_name && (c.is_alphanumeric() || c == '_') => member.push(c),
                    _ if expecting_name && !member.is_empty() => {
                        found.push(std::mem::take(&mut member));
                        expecting_name = false;
                    }
                    _ => {}
                }
            }
            if !member.is_empty() {
                found.push(member);
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
        rest = after;
    }
    found
}

/// Which top-level module imports which, each edge with the first file
/// that makes it.
fn module_imports() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for file in source_files(&source_dir()) {
        let Some(module) = top_module(&file) else {
            continue;
        };
        let source = fs::read_to_string(&file).expect("read a source file");
        let edges = graph.entry(module.clone()).or_default();
        for line in non_test_code(&source) {
            for target in crate_references(line) {
                if target != module && target != "self" {
                    edges.entry(target).or_insert_with(|| file.clone());
                }
            }
        }
    }
    graph
}

/// A cycle through `start`, as the list of modules on it, if there is one.
fn cycle_through(
    graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
    start: &str,
) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flat_map(|edges| edges.keys()) {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(graph, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let graph = module_imports();
    assert!(
        graph.contains_key("routing") && graph["routing"].contains_key("config"),
        "the scan finds the imports it checks (routing imports config): {graph:?}"
    );
    let mut cycles = Vec::new();
    let mut reported = BTreeSet::new();
    for module in graph.keys() {
        if reported.contains(module) {
            continue;
        }
        if let Some(cycle) = cycle_through(&graph, module) {
            let steps: Vec<String> = cycle
                .iter()
                .enumerate()
                .map(|(i, from)| {
                    let to = &cycle[(i + 1) % cycle.len()];
                    let file = graph[from][to].strip_prefix(source_dir()).unwrap();
                    format!("{from} → {to} (in {})", file.display())
                })
                .collect();
            reported.extend(cycle);
            cycles.push(steps.join(", "));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_source_file_is_longer_than_one_person_can_hold_in_mind() {
    let files = source_files(&source_dir());
    assert!(files.len() > 10, "the scan finds the sources: {files:?}");
    let too_long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = non_test_code(&fs::read_to_string(file).unwrap()).len();
            (lines > MAX_FILE_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(
        too_long.is_empty(),
        "files over {MAX_FILE_LINES} lines of non-test code:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn the_scan_sees_groups_and_skips_test_items() {
    assert_eq!(
        crate_references("use crate::{config::Pool, stats::{clock, live}};"),
        ["config", "stats"]
    );
    assert_eq!(
        crate_references("let x = crate::routing::pick(crate::config::X);"),
        ["routing", "config"]
    );
    let source =
        "use a;\n#[cfg(test)]\nmod tests {\n    use crate::x;\n}\n// crate::y\nfn f() {}\n";
    assert_eq!(non_test_code(source), ["use a;", "fn f() {}"]);
}
