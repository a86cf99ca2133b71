//! The documentation keeps up with the code: every key of the configuration
//! schema has a row in docs/configuration.md (and every row there is a key),
//! the README stays short, and every relative link in the README and docs/
//! points at a file that exists, and at a heading of it when it names one.
//!
//! The keys come from the JSON Schema the configuration's serde types
//! generate (`ballast::config::json_schema()`, shipped as
//! conf/ballast.schema.json): each property is a dotted path, `*` standing
//! for a map key (a pool's or region's name) and `[]` for each item of a
//! list, e.g. `pools.*.backends[].addr`. A row documents a key when its
//! first cell is that path in backticks: ``| `pools.*.mode` | ...``.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The most lines the README may have: what Ballast is, how to run it, the
/// command line, a minimal configuration and links; the rest is in docs/.
const README_MAX_LINES: usize = 200;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Follows `$ref`s into the schema's `$defs`.
fn resolve<'a>(schema: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        node = &schema["$defs"][name];
    }
    node
}

fn is_array(node: &Value) -> bool {
    match node.get("type") {
        Some(Value::String(t)) => t == "array",
        Some(Value::Array(types)) => types.iter().any(|t| t == "array"),
        _ => false,
    }
}

/// Adds the dotted path of every property under `node` (at `path`) to `keys`.
fn collect_keys(schema: &Value, node: &Value, path: &str, keys: &mut BTreeSet<String>) {
    assert!(path.len() < 200, "the schema nests too deeply at {path}");
    let node = resolve(schema, node);
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for alternative in node[combinator].as_array().into_iter().flatten() {
            collect_keys(schema, alternative, path, keys);
        }
    }
    if is_array(node) {
        if let Some(items) = node.get("items") {
            collect_keys(schema, items, &format!("{path}[]"), keys);
        }
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        collect_keys(schema, values, &format!("{path}.*"), keys);
    }
    for (name, property) in node["properties"].as_object().into_iter().flatten() {
        let key = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        keys.insert(key.clone());
        collect_keys(schema, property, &key, keys);
    }
}

fn schema_keys() -> BTreeSet<String> {
    let schema: Value = serde_json::from_str(&ballast::config::json_schema()).unwrap();
    let mut keys = BTreeSet::new();
    collect_keys(&schema, &schema, "", &mut keys);
    keys
}

/// The first cell of every table row in `text` that is one code span.
fn documented_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |"))
        .map(|(key, _)| key.to_string())
        .collect()
}

/// The part of `text` from the heading line `heading` to the next heading of
/// the same level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    let rest = &text[start + heading.len() + 2..];
    let level = heading.split(' ').next().unwrap();
    rest.find(&format!("\n{level} "))
        .map_or(rest, |end| &rest[..end])
}

#[test]
fn the_key_walk_finds_nested_keys_of_every_shape() {
    let keys = schema_keys();
    for key in [
        "listeners[].tls.sni[].server_names",       // lists of objects
        "pools.*.backends[].canary.floor",          // a map, a list, `true` or an object
        "pools.*.consistent_hash.key.path_segment", // one of several forms
        "pools.*.regions.*.priority",               // a map inside a map
        "routes[].budget.region_share",
        "geo.client_region[].trusted_peers",
        "server.limits.max_uri_bytes",
    ] {
        assert!(keys.contains(key), "{key} not found among {keys:?}");
    }
    assert!(keys.len() > 150, "only {} keys found", keys.len());
}

#[test]
fn every_configuration_key_is_documented() {
    let page = read("docs/configuration.md");
    let documented = documented_keys(section(&page, "## Every key"));
    let keys = schema_keys();
    let undocumented: Vec<_> = keys.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "configuration keys without a row (| `key` | type | default | meaning |) in \
         docs/configuration.md, \"Every key\": {undocumented:#?}"
    );
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents keys the configuration does not have: {unknown:#?}"
    );
}

#[test]
fn the_readme_stays_short() {
    let lines = read("README.md").lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move details to docs/"
    );
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces
/// as hyphens; a repeated heading gets `-1`, `-2`, ...
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        if in_code {
            continue;
        }
        let text = heading.trim_start_matches('#').trim();
        let slug: String = text
            .chars()
            .flat_map(char::to_lowercase)
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while !found.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
    }
    found
}

/// The targets of the inline links `[text](target)` of `markdown`, outside
/// code blocks and code spans.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Drop code spans, which may show link syntax without being links.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let end = after.find(')').unwrap_or(after.len());
            targets.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    targets
}

#[test]
fn relative_links_in_the_readme_and_docs_resolve() {
    let root = repo();
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);

    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let name = page.strip_prefix(&root).unwrap().display().to_string();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !path.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                let is_markdown = path.extension().is_some_and(|e| e == "md");
                if is_markdown
                    && !anchors(&std::fs::read_to_string(&path).unwrap()).contains(anchor)
                {
                    broken.push(format!("{name}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

#[test]
fn the_anchor_rules_match_githubs() {
    let page =
        "# Ballast\n## Read/write split\n## Performance: what a request costs, and what was kept\n\
                ```sh\n# not a heading\n```\n## Soak\n## Soak\n";
    let found = anchors(page);
    for anchor in [
        "ballast",
        "readwrite-split",
        "performance-what-a-request-costs-and-what-was-kept",
        "soak",
        "soak-1",
    ] {
        assert!(found.contains(anchor), "{anchor} not in {found:?}");
    }
    assert!(!found.contains("not-a-heading"));
}
