//! Reading a configuration's text without trusting the file: only a
//! regular file is read (a FIFO would block the reader until a writer
//! came, a device such as `/dev/zero` never ends), at most
//! [`MAX_CONFIG_BYTES`] of it, and YAML nested deeper than
//! [`MAX_NESTING`] is refused before the parser sees it (the parser's time
//! grows with the square of the depth).

use super::ConfigErrors;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest configuration read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// The deepest nesting of flow collections (`[` and `{`) accepted.
pub const MAX_NESTING: usize = 64;

/// The text of the configuration file at `path` (symbolic links followed).
pub fn read_config(path: &Path) -> Result<String, ConfigErrors> {
    read_capped(path).map_err(|e| ConfigErrors::single("", e))
}

fn read_capped(path: &Path) -> Result<String, String> {
    let shown = path.display();
    // Non-blocking, so that opening a FIFO does not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let kind = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .file_type();
    if !kind.is_file() {
        return Err(format!(
            "cannot read {shown}: not a regular file ({}); a configuration must be one",
            describe(kind)
        ));
    }
    let mut bytes = Vec::new();
    File::take(file, MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "cannot read {shown}: larger than {} MiB, the most a configuration may be",
            MAX_CONFIG_BYTES / (1024 * 1024)
        ));
    }
    String::from_utf8(bytes).map_err(|e| format!("cannot read {shown}: not UTF-8 text: {e}"))
}

fn describe(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Refuse YAML whose flow collections nest deeper than [`MAX_NESTING`].
/// Every bracket counts but those on comment lines, quoted or not: a few
/// unbalanced ones in strings cost a legitimate file nothing, and no
/// quoting trick hides a deep nesting from the count.
pub fn check_nesting(text: &str) -> Result<(), ConfigErrors> {
    let mut depth = 0usize;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        for c in line.bytes() {
            match c {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => continue,
            }
            if depth > MAX_NESTING {
                return Err(ConfigErrors::single(
                    "",
                    format!(
                        "line {}: collections nested deeper than {MAX_NESTING} levels",
                        index + 1
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!("pools: {}{}", "[".repeat(50_000), "]".repeat(50_000));
        let errors = check_nesting(&deep).unwrap_err().to_string();
        assert!(errors.contains("deeper than 64 levels"), "{errors}");
        let fine = format!("a: {}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert!(check_nesting(&fine).is_ok());
    }

    #[test]
    fn brackets_on_comment_lines_do_not_count() {
        let open = "[".repeat(100);
        let text = format!("# {open}\n  # {open}\na: [1, [2]]\n");
        assert!(check_nesting(&text).is_ok());
    }

    /// FIFOs and devices are refused by a running proxy's reload and by
    /// `ballast check` (tests/hostile_config.rs); here the other shapes.
    #[test]
    fn only_a_regular_file_of_bounded_size_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_config(dir.path()).unwrap_err().to_string();
        assert!(error.contains("a directory"), "{error}");

        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let error = read_config(&big).unwrap_err().to_string();
        assert!(error.contains("larger than 4 MiB"), "{error}");

        let link = dir.path().join("link.yaml");
        let real = dir.path().join("real.yaml");
        std::fs::write(&real, "a: 1\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read_config(&link).unwrap(), "a: 1\n");
    }
}
