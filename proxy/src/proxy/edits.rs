//! A route's edits applied to what passes through it: header edits on the
//! request sent to the backend and on the backend's response, and the path
//! and host rewrites. They change only the upstream request, which Pingora
//! makes afresh from the client's for each attempt, so a retry is rewritten
//! once, like the first, and the access log keeps the client's path.

use crate::config::route_edits::{HeaderEdits, Rewrite};
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;

/// Apply `edits` to a request's headers: remove, then set, then add.
pub(super) fn edit_request_headers(req: &mut RequestHeader, edits: &HeaderEdits) -> Result<()> {
    for name in &edits.remove {
        req.remove_header(name);
    }
    for (name, value) in &edits.set {
        req.insert_header(name.clone(), value.clone())?;
    }
    for (name, value) in &edits.add {
        req.append_header(name.clone(), value.clone())?;
    }
    Ok(())
}

/// Apply `edits` to a response's headers: remove, then set, then add.
pub(super) fn edit_response_headers(resp: &mut ResponseHeader, edits: &HeaderEdits) -> Result<()> {
    for name in &edits.remove {
        resp.remove_header(name);
    }
    for (name, value) in &edits.set {
        resp.insert_header(name.clone(), value.clone())?;
    }
    for (name, value) in &edits.add {
        resp.append_header(name.clone(), value.clone())?;
    }
    Ok(())
}

/// Rewrite the path (the query is kept) and the host of the request sent
/// to the backend. The target becomes origin-form, so an HTTP/2 backend
/// takes its `:authority` from the (rewritten) `Host`.
pub(super) fn rewrite_request(req: &mut RequestHeader, rewrite: &Rewrite) -> Result<()> {
    let path = rewrite
        .path
        .as_ref()
        .map(|path_rewrite| path_rewrite.apply(req.uri.path()).into_owned());
    if let Some(host) = &rewrite.host {
        req.insert_header(header::HOST, host.clone())?;
    }
    if path.is_some() || (rewrite.host.is_some() && req.uri.authority().is_some()) {
        let mut target = path.unwrap_or_else(|| req.uri.path().to_string());
        if let Some(query) = req.uri.query() {
            target.push('?');
            target.push_str(query);
        }
        req.set_raw_path(target.as_bytes())?;
    }
    Ok(())
}
