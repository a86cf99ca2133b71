//! A route's redirect: the status and a `Location` template whose
//! placeholders (`{scheme}`, `{host}`, `{path}`, `{query}`) are filled from
//! the request. Parsed once at load ([`LocationTemplate::parse`]), rendered
//! per request ([`LocationTemplate::render`]).

/// The statuses a redirect may answer with.
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// The placeholders a `Location` template may hold.
pub const PLACEHOLDERS: [&str; 4] = ["{scheme}", "{host}", "{path}", "{query}"];

/// One piece of a `Location` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `http` or `https`, as the client connected.
    Scheme,
    /// The request's host, without port.
    Host,
    /// The request's path, as the client sent it.
    Path,
    /// `?` and the query, or nothing when the request has none.
    Query,
}

/// A parsed `Location` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationTemplate {
    parts: Vec<Part>,
    /// The template as written, for views and logs.
    pub text: String,
}

/// What a template is filled from.
pub struct RequestParts<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

impl LocationTemplate {
    /// Parse `text`; an unknown `{name}` is an error naming it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("unclosed '{{' in \"{text}\""));
            };
            let placeholder = &rest[open..open + close + 1];
            parts.push(match placeholder {
                "{scheme}" => Part::Scheme,
                "{host}" => Part::Host,
                "{path}" => Part::Path,
                "{query}" => Part::Query,
                other => {
                    return Err(format!(
                        "unknown placeholder {other} (known: {})",
                        PLACEHOLDERS.join(", ")
                    ))
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self {
            parts,
            text: text.to_string(),
        })
    }

    /// The `Location` for a request.
    pub fn render(&self, request: &RequestParts<'_>) -> String {
        let mut out = String::with_capacity(self.text.len() + request.path.len() + 16);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Scheme => out.push_str(request.scheme),
                Part::Host => out.push_str(request.host),
                Part::Path => out.push_str(request.path),
                Part::Query => {
                    if let Some(query) = request.query {
                        out.push('?');
                        out.push_str(query);
                    }
                }
            }
        }
        out
    }
}

/// A route that answers with a redirect instead of proxying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub status: u16,
    pub location: LocationTemplate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_placeholder_and_refuse_unknown_ones() {
        let template = LocationTemplate::parse("https://{host}:8443{path}{query}").unwrap();
        let request = RequestParts {
            scheme: "http",
            host: "example.com",
            path: "/a/b",
            query: Some("x=1"),
        };
        assert_eq!(
            template.render(&request),
            "https://example.com:8443/a/b?x=1"
        );
        let bare = RequestParts {
            query: None,
            ..request
        };
        assert_eq!(template.render(&bare), "https://example.com:8443/a/b");
        let scheme = LocationTemplate::parse("{scheme}://new.example{path}").unwrap();
        assert_eq!(scheme.render(&bare), "http://new.example/a/b");
        assert!(LocationTemplate::parse("https://{hostname}/")
            .unwrap_err()
            .contains("unknown placeholder {hostname}"));
        assert!(LocationTemplate::parse("https://{host")
            .unwrap_err()
            .contains("unclosed"));
    }
}
