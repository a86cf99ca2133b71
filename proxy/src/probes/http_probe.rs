//! `ballast probe URL`: a minimal HTTP health probe, for container images
//! that have no curl (a `HEALTHCHECK` against the admin `/readyz`).
//!
//! One plain-HTTP/1.1 `GET` with `Connection: close`, under one deadline
//! that covers connecting, sending and reading the status line. The probe
//! passes on a `2xx` status and fails on anything else: another status, a
//! refused connection, a timeout, or an answer that is not HTTP. Only
//! `http://` is supported, and the host should be an IP address (as every
//! address in a Ballast configuration is): a name is resolved by the system
//! resolver, which a statically linked binary in an empty image may lack.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest response head read while looking for the status line.
const MAX_HEAD: usize = 8 * 1024;

/// A parsed `http://HOST[:PORT][/PATH]` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUrl {
    /// `HOST:PORT` as written (the port defaults to 80), also sent as `Host`.
    pub authority: String,
    /// The path and query, at least `/`.
    pub path: String,
}

impl std::str::FromStr for ProbeUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("\"{url}\": only http:// URLs can be probed"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("\"{url}\": no host"));
        }
        if authority.contains('@') {
            return Err(format!("\"{url}\": user information is not supported"));
        }
        let has_port = match authority.rsplit_once(':') {
            // `[::1]` has colons but no port; `[::1]:9901` has one.
            Some((host, _)) => !authority.starts_with('[') || host.ends_with(']'),
            None => false,
        };
        let authority = match has_port {
            true => authority.to_string(),
            false => format!("{authority}:80"),
        };
        let path = match path.starts_with('?') {
            true => format!("/{path}"),
            false => path.to_string(),
        };
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!(
                "\"{url}\": the path has spaces or control characters"
            ));
        }
        Ok(Self { authority, path })
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection error: {0}")]
    Io(std::io::Error),
    #[error("not an HTTP response: {0:?}")]
    Malformed(String),
    #[error("status {0}")]
    Status(u16),
}

/// Probe `url` once; `Ok(status)` for a `2xx` answer within `timeout`.
pub fn probe(url: &ProbeUrl, timeout: Duration) -> Result<u16, ProbeError> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(ProbeError::Timeout(timeout))
    };
    let addr = url
        .authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| ProbeError::Resolve(url.authority.clone()))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, remaining()?).map_err(|source| match source.kind() {
            std::io::ErrorKind::TimedOut => ProbeError::Timeout(timeout),
            _ => ProbeError::Connect { addr, source },
        })?;
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            ProbeError::Timeout(timeout)
        }
        _ => ProbeError::Io(e),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ballast-probe\r\nConnection: close\r\n\r\n",
        url.path, url.authority
    );
    stream.set_write_timeout(Some(remaining()?)).map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;

    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(ProbeError::Malformed("no status line".into()));
        }
        stream.set_read_timeout(Some(remaining()?)).map_err(io)?;
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let status = status_code(&head)?;
    match status {
        200..=299 => Ok(status),
        _ => Err(ProbeError::Status(status)),
    }
}

/// The status code of `HTTP/1.x NNN ...` at the start of `head`.
fn status_code(head: &[u8]) -> Result<u16, ProbeError> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]).into_owned();
    let mut parts = line.split(' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(ProbeError::Malformed(line));
    };
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(ProbeError::Malformed(line));
    }
    code.parse()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or(ProbeError::Malformed(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-connection server: reads the request head, then answers with
    /// `answer` (or nothing, holding the connection, when `None`). Returns
    /// its URL and a handle yielding the request it received.
    fn serve_once(answer: Option<&'static str>) -> (ProbeUrl, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            match answer {
                Some(text) => stream.write_all(text.as_bytes()).unwrap(),
                None => thread::sleep(Duration::from_millis(800)),
            }
            String::from_utf8(request).unwrap()
        });
        (url, handle)
    }

    #[test]
    fn urls_parse_with_default_port_and_path() {
        let parse = |s: &str| s.parse::<ProbeUrl>();
        assert_eq!(
            parse("http://127.0.0.1:9901/readyz").unwrap(),
            ProbeUrl {
                authority: "127.0.0.1:9901".into(),
                path: "/readyz".into()
            }
        );
        assert_eq!(parse("http://10.0.0.1").unwrap().authority, "10.0.0.1:80");
        assert_eq!(parse("http://10.0.0.1").unwrap().path, "/");
        assert_eq!(
            parse("http://[::1]:9901/x").unwrap().authority,
            "[::1]:9901"
        );
        assert_eq!(parse("http://[::1]").unwrap().authority, "[::1]:80");
        assert_eq!(parse("http://h:1?a=b").unwrap().path, "/?a=b");
        for bad in [
            "https://127.0.0.1/",
            "127.0.0.1:9901",
            "http:///x",
            "http://u@h/",
            "http://h/a b",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn a_2xx_answer_passes_and_the_request_is_well_formed() {
        let (url, server) = serve_once(Some("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nready\n"));
        assert_eq!(probe(&url, Duration::from_secs(2)).unwrap(), 200);
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /readyz HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains(&format!("\r\nHost: {}\r\n", url.authority)),
            "{request}"
        );
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
    }

    #[test]
    fn other_statuses_and_non_http_answers_fail() {
        let (url, server) = serve_once(Some("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        assert!(matches!(
            probe(&url, Duration::from_secs(2)),
            Err(ProbeError::Status(503))
        ));
        server.join().unwrap();
        let (url, server) = serve_once(Some("SSH-2.0-OpenSSH\r\n"));
        assert!(matches!(
            probe(&url, Duration::from_secs(2)),
            Err(ProbeError::Malformed(_))
        ));
        server.join().unwrap();
        let (url, server) = serve_once(Some(""));
        assert!(matches!(
            probe(&url, Duration::from_secs(2)),
            Err(ProbeError::Malformed(_))
        ));
        server.join().unwrap();
    }

    #[test]
    fn silence_times_out_and_a_closed_port_is_refused() {
        let (url, server) = serve_once(None);
        let started = Instant::now();
        let result = probe(&url, Duration::from_millis(300));
        assert!(matches!(result, Err(ProbeError::Timeout(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_millis(750));
        server.join().unwrap();

        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/readyz").parse().unwrap();
        assert!(matches!(
            probe(&url, Duration::from_secs(2)),
            Err(ProbeError::Connect { .. })
        ));
    }
}
