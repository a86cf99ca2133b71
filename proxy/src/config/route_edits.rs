//! A route's compiled edits of what passes through it: header edits on the
//! request and the response, and the path and host rewrites of the request
//! sent to the backend. Applying them is the proxy's job; what a rewritten
//! path is ([`PathRewrite::apply`]) is decided here, pure.

use http::{HeaderName, HeaderValue};
use regex::Regex;
use std::borrow::Cow;

/// Header edits, applied in order: `remove`, `set`, `add`.
#[derive(Debug, Clone, Default)]
pub struct HeaderEdits {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// How the path sent to the backend is made from the client's.
#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// The route's matched prefix is replaced by `replacement`.
    Prefix {
        matched: String,
        replacement: String,
    },
    /// Every match of `pattern` is replaced by `replacement` (`$1` expands).
    Regex { pattern: Regex, replacement: String },
}

impl PathRewrite {
    /// The path the backend sees for the client's `path` (without query).
    /// A result that would not start with `/` gets one.
    pub fn apply<'a>(&self, path: &'a str) -> Cow<'a, str> {
        let rewritten: Cow<'a, str> = match self {
            Self::Prefix {
                matched,
                replacement,
            } => {
                let Some(rest) = path.strip_prefix(matched.trim_end_matches('/')) else {
                    return Cow::Borrowed(path);
                };
                let base = replacement.trim_end_matches('/');
                if rest.is_empty() || rest == "/" {
                    Cow::Owned(if base.is_empty() {
                        "/".to_string()
                    } else {
                        format!("{base}{rest}")
                    })
                } else {
                    Cow::Owned(format!("{base}{rest}"))
                }
            }
            Self::Regex {
                pattern,
                replacement,
            } => pattern.replace_all(path, replacement.as_str()),
        };
        if rewritten.starts_with('/') {
            rewritten
        } else {
            Cow::Owned(format!("/{rewritten}"))
        }
    }
}

/// The rewrites of a route's requests on the way to the backend.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    pub path: Option<PathRewrite>,
    /// The `Host` the backend sees.
    pub host: Option<HeaderValue>,
}

/// Everything a route changes in what passes through it.
#[derive(Debug, Clone, Default)]
pub struct RouteEdits {
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    pub rewrite: Rewrite,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(matched: &str, replacement: &str) -> PathRewrite {
        PathRewrite::Prefix {
            matched: matched.into(),
            replacement: replacement.into(),
        }
    }

    #[test]
    fn a_prefix_is_replaced_or_stripped_segment_by_segment() {
        let cases = [
            ("/v1", "/v2", "/v1/users", "/v2/users"),
            ("/v1", "/v2", "/v1", "/v2"),
            ("/v1", "/", "/v1/users", "/users"),
            ("/v1", "/", "/v1", "/"),
            ("/v1", "/", "/v1/", "/"),
            ("/v1/", "/api/", "/v1/x", "/api/x"),
            ("/", "/api", "/x", "/api/x"),
            ("/v1", "/internal/v1", "/v1/a/b", "/internal/v1/a/b"),
        ];
        for (matched, replacement, path, want) in cases {
            assert_eq!(
                prefix(matched, replacement).apply(path),
                want,
                "{matched} -> {replacement} on {path}"
            );
        }
    }

    #[test]
    fn a_regex_replaces_every_match_and_keeps_a_leading_slash() {
        let rewrite = PathRewrite::Regex {
            pattern: Regex::new("^/users/([0-9]+)/profile$").unwrap(),
            replacement: "/profiles/$1".into(),
        };
        assert_eq!(rewrite.apply("/users/42/profile"), "/profiles/42");
        assert_eq!(rewrite.apply("/users/x/profile"), "/users/x/profile");
        let strip = PathRewrite::Regex {
            pattern: Regex::new("^/api").unwrap(),
            replacement: String::new(),
        };
        assert_eq!(strip.apply("/api"), "/");
        assert_eq!(strip.apply("/apix"), "/x");
    }
}
