//! Request keys: `canary_sticky` and `consistent_hash` (header, cookie or
//! path segment; ring size and key-move bound).

use super::fields::Checker;
use super::fields::{fraction, valid_cookie_name};
use crate::config::raw::*;
use crate::config::snapshot::*;
use http::HeaderName;
use std::str::FromStr;

const MAX_VNODES: u32 = 1000;

pub(super) fn compile_sticky_key(
    c: &mut Checker,
    path: &str,
    raw: &RawStickyKey,
) -> Option<StickyKey> {
    if raw.header.is_some() == raw.cookie.is_some() {
        c.error(path, "set exactly one of header or cookie");
        return None;
    }
    compile_key(c, path, raw.header.as_ref(), raw.cookie.as_ref(), None)
}

pub(super) fn compile_consistent_hash(
    c: &mut Checker,
    path: &str,
    raw: &RawConsistentHash,
) -> Option<ConsistentHash> {
    let key_path = format!("{path}.key");
    let RawHashKey {
        header,
        cookie,
        path_segment,
    } = &raw.key;
    let set = [header.is_some(), cookie.is_some(), path_segment.is_some()];
    if set.iter().filter(|&&s| s).count() != 1 {
        c.error(
            &key_path,
            "set exactly one of header, cookie or path_segment",
        );
        return None;
    }
    if *path_segment == Some(0) {
        c.error(
            format!("{key_path}.path_segment"),
            "path segments count from 1",
        );
        return None;
    }
    let vnodes = raw.vnodes.unwrap_or(DEFAULT_VNODES);
    if !(1..=MAX_VNODES).contains(&vnodes) {
        c.error(
            format!("{path}.vnodes"),
            format!("{vnodes} is out of range 1..={MAX_VNODES}"),
        );
    }
    let max_key_moves = fraction(
        c,
        format!("{path}.max_key_moves"),
        raw.max_key_moves,
        DEFAULT_MAX_KEY_MOVES,
        0.001..=1.0,
    );
    let key = compile_key(
        c,
        &key_path,
        header.as_ref(),
        cookie.as_ref(),
        *path_segment,
    )?;
    Some(ConsistentHash {
        key,
        vnodes,
        max_key_moves,
    })
}

/// A request key from exactly one source (checked by the caller).
fn compile_key(
    c: &mut Checker,
    path: &str,
    header: Option<&String>,
    cookie: Option<&String>,
    path_segment: Option<usize>,
) -> Option<StickyKey> {
    match (header, cookie) {
        _ if path_segment.is_some() => path_segment.map(StickyKey::PathSegment),
        (Some(name), _) => match HeaderName::from_str(name) {
            Ok(name) => Some(StickyKey::Header(name)),
            Err(_) => {
                c.error(
                    format!("{path}.header"),
                    format!("invalid header name \"{name}\""),
                );
                None
            }
        },
        (None, Some(name)) => {
            let valid = valid_cookie_name(name);
            if !valid {
                c.error(
                    format!("{path}.cookie"),
                    format!("invalid cookie name \"{name}\""),
                );
            }
            valid.then(|| StickyKey::Cookie(name.clone()))
        }
        (None, None) => None,
    }
}
