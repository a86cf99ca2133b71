//! `${NAME}` in the configuration text: replaced by the environment
//! variable's value before the YAML is parsed, so secrets and per-host
//! values stay out of the file. `${NAME:-default}` stands for `default` when
//! the variable is unset or empty; `$${` is a literal `${`. An unset
//! variable without a default is an error naming its line. Comments are
//! left as written. The value is inserted as text: quote the scalar in the
//! YAML when a value may hold YAML punctuation (`: `, `#`, `[`...).

use super::error::{ConfigError, ConfigErrors};

/// The text with every `${...}` outside comments replaced, or every
/// variable that could not be (unset, malformed), each with its line.
pub fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigErrors> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let (content, comment) = line.split_at(comment_start(line));
        substitute_line(content, index + 1, &lookup, &mut out, &mut errors);
        out.push_str(comment);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn substitute_line(
    line: &str,
    number: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<ConfigError>,
) {
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                errors.push(at_line(number, "`${` without a closing `}`".to_string()));
                out.push_str(tail);
                return;
            };
            match expand(&after[..end], lookup) {
                Ok(value) => out.push_str(&value),
                Err(message) => errors.push(at_line(number, message)),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
}

/// The value `${inner}` stands for.
fn expand(inner: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`${{{inner}}}`: not a variable name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    match (lookup(name).filter(|value| !value.is_empty()), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(format!(
            "environment variable {name} is unset or empty (write `${{{name}:-default}}` to give a default)"
        )),
    }
}

fn at_line(number: usize, message: String) -> ConfigError {
    ConfigError::new(format!("line {number}"), message)
}

/// Where the line's comment starts (its length when it has none): a `#` at
/// the start or after whitespace, outside a quoted scalar.
fn comment_start(line: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    let mut chars = line.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => {
                // `''` is an escaped quote inside a single-quoted scalar.
                if chars.peek().map(|&(_, next)| next) == Some('\'') {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some('"') if c == '"' => quote = None,
            Some(_) => {}
            None if c == '#' && previous.is_whitespace() => return at,
            // A quote opens a quoted scalar only where a scalar starts.
            None if (c == '\'' || c == '"') && " \t[{,:-".contains(previous) => quote = Some(c),
            None => {}
        }
        previous = c;
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, Vec<String>> {
        substitute(text, env).map_err(|e| e.lines())
    }

    #[test]
    fn variables_and_defaults_are_replaced() {
        assert_eq!(
            run("addr: \"${HOST}:80\"\nport: ${PORT:-8080}\nb: ${EMPTY:-x}\n").unwrap(),
            "addr: \"10.0.0.1:80\"\nport: 8080\nb: x\n"
        );
        assert_eq!(
            run("cost: $5 and $${HOST}\n").unwrap(),
            "cost: $5 and ${HOST}\n"
        );
    }

    #[test]
    fn comments_are_left_as_written() {
        let text = "a: ${HOST} # see ${UNSET}\n# ${UNSET}\nb: \"x # ${HOST}\"\nc: it's ${HOST} # ${UNSET}\n";
        assert_eq!(
            run(text).unwrap(),
            "a: 10.0.0.1 # see ${UNSET}\n# ${UNSET}\nb: \"x # 10.0.0.1\"\nc: it's 10.0.0.1 # ${UNSET}\n"
        );
    }

    #[test]
    fn every_unset_or_malformed_variable_is_reported_with_its_line() {
        assert_eq!(
            run("a: ${UNSET}\nb: ${HOST}\nc: ${9X}\nd: ${EMPTY}\ne: ${OPEN\n").unwrap_err(),
            [
                "line 1: environment variable UNSET is unset or empty (write `${UNSET:-default}` to give a default)",
                "line 3: `${9X}`: not a variable name (letters, digits and `_`, not starting with a digit)",
                "line 4: environment variable EMPTY is unset or empty (write `${EMPTY:-default}` to give a default)",
                "line 5: `${` without a closing `}`",
            ]
        );
    }
}
