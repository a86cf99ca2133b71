//! Unknown keys: every key of the YAML that the configuration types do not
//! know, found in one pass (serde_ignored) rather than stopping at the first,
//! each reported with its path and the nearest known key at that place, read
//! from the configuration's JSON Schema.

use super::error::ConfigError;
use serde_json::Value;

/// One step of a path into the YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

/// The segments of a path serde_ignored reports (options and newtypes, which
/// the YAML does not show, left out).
pub(super) fn segments(path: &serde_ignored::Path) -> Vec<Segment> {
    use serde_ignored::Path;
    let mut out = Vec::new();
    let mut at = path;
    loop {
        match at {
            Path::Root => break,
            Path::Seq { parent, index } => {
                out.push(Segment::Index(*index));
                at = parent;
            }
            Path::Map { parent, key } => {
                out.push(Segment::Key(key.clone()));
                at = parent;
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => at = parent,
        }
    }
    out.reverse();
    out
}

/// `pools.api.backends[0].addr`, as every configuration error names a place.
fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) if out.is_empty() => out.push_str(key),
            Segment::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// The error for the unknown key at `path`: the keys allowed there, and the
/// one it most likely meant.
pub(super) fn unknown_key_error(schema: &Value, path: &[Segment]) -> ConfigError {
    let Some((Segment::Key(key), parent)) = path.split_last() else {
        return ConfigError::new(render(path), "unexpected value");
    };
    let known = parent_node(schema, parent)
        .map(|node| known_keys(schema, node))
        .unwrap_or_default();
    let listed = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let message = match nearest(key, known.iter().map(String::as_str)) {
        Some(meant) => format!("unknown field `{key}`; did you mean `{meant}`?"),
        None if known.is_empty() => format!("unknown field `{key}`"),
        None => format!("unknown field `{key}`, expected one of {listed}"),
    };
    ConfigError::new(render(path), message)
}

/// The known name closest to `written`, if close enough to be a typo.
pub(super) fn nearest<'a>(
    written: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(written, k), k))
        .filter(|(score, k)| *score >= 0.8 || strsim::levenshtein(written, k) <= 2)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// `; did you mean "name"?` when one of `known` is likely what `written`
/// meant, else nothing: the tail of an "unknown pool/region" error.
pub(super) fn did_you_mean<'a>(written: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    nearest(written, known).map_or_else(String::new, |meant| format!("; did you mean \"{meant}\"?"))
}

/// The schema node at `path` (`None` when the schema has no such place).
fn parent_node<'a>(schema: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    let mut node = schema;
    for segment in path {
        node = child(schema, node, segment)?;
    }
    Some(node)
}

/// The schema of `segment` below `node`, through references and the
/// alternatives of an optional or untagged value.
fn child<'a>(schema: &'a Value, node: &'a Value, segment: &Segment) -> Option<&'a Value> {
    let node = dereference(schema, node);
    let direct = match segment {
        Segment::Key(key) => node
            .get("properties")
            .and_then(|p| p.get(key))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
        Segment::Index(_) => node.get("items"),
    };
    direct.or_else(|| {
        alternatives(node)
            .iter()
            .find_map(|alternative| child(schema, alternative, segment))
    })
}

/// The keys a mapping at `node` may hold.
fn known_keys(schema: &Value, node: &Value) -> Vec<String> {
    let node = dereference(schema, node);
    let mut keys: Vec<String> = node
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for alternative in alternatives(node) {
        keys.extend(known_keys(schema, alternative));
    }
    keys.sort();
    keys.dedup();
    keys
}

fn alternatives(node: &Value) -> &[Value] {
    ["anyOf", "oneOf"]
        .iter()
        .find_map(|k| node.get(*k).and_then(Value::as_array))
        .map_or(&[], Vec::as_slice)
}

/// Follow a `$ref` to `#/$defs/...`.
fn dereference<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| schema.pointer(pointer))
            .map_or(node, |target| dereference(schema, target)),
        None => node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        serde_json::from_str(&super::super::json_schema()).unwrap()
    }

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn a_typo_gets_the_nearest_known_key() {
        let schema = schema();
        let error = unknown_key_error(&schema, &[key("serverr")]);
        assert_eq!(error.path, "serverr");
        assert_eq!(
            error.message,
            "unknown field `serverr`; did you mean `server`?"
        );
        let path = [
            key("pools"),
            key("api"),
            key("backends"),
            Segment::Index(2),
            key("adress"),
        ];
        let error = unknown_key_error(&schema, &path);
        assert_eq!(error.path, "pools.api.backends[2].adress");
        assert_eq!(
            error.message,
            "unknown field `adress`; did you mean `addr`?"
        );
    }

    #[test]
    fn a_key_like_none_lists_what_is_known() {
        let error = unknown_key_error(&schema(), &[key("server"), key("zzzzzz")]);
        assert!(
            error
                .message
                .starts_with("unknown field `zzzzzz`, expected one of "),
            "{}",
            error.message
        );
        assert!(error.message.contains("`threads`"), "{}", error.message);
    }

    #[test]
    fn nearest_needs_a_likely_typo() {
        let known = ["mode", "backends"];
        assert_eq!(nearest("modee", known), Some("mode"));
        assert_eq!(nearest("backend", known), Some("backends"));
        assert_eq!(nearest("xyz", known), None);
        assert_eq!(
            did_you_mean("apii", ["api", "web"]),
            "; did you mean \"api\"?"
        );
        assert_eq!(did_you_mean("zzz", ["api", "web"]), "");
    }
}
