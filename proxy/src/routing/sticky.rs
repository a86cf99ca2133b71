//! The key of a request, for sticky canary assignment and consistent
//! hashing: read from a configured header, cookie or path segment and hashed to a `u64` (FNV-1a, then a
//! SplitMix64 finalizer so that similar keys spread evenly). The hash is
//! fixed, so every Ballast instance places a user on the same side.

use crate::config::StickyKey;
use http::header::COOKIE;
use http::HeaderMap;

/// The hash of the request's key, if it carries a non-empty one.
pub fn key_hash(key: &StickyKey, headers: &HeaderMap, path: &str) -> Option<u64> {
    match key {
        StickyKey::PathSegment(n) => path_segment(path, *n).map(|s| hash(s.as_bytes())),
        StickyKey::Header(name) => headers
            .get(name)
            .map(|v| v.as_bytes())
            .filter(|v| !v.is_empty())
            .map(hash),
        StickyKey::Cookie(name) => headers
            .get_all(COOKIE)
            .iter()
            .find_map(|value| cookie_value(value.as_bytes(), name.as_bytes()))
            .map(hash),
    }
}

/// The `n`-th (from 1) non-empty segment of the path, query excluded.
fn path_segment(path: &str, n: usize) -> Option<&str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/')
        .filter(|s| !s.is_empty())
        .nth(n.checked_sub(1)?)
}

/// The value of cookie `name` in one `Cookie` header (`a=1; b=2`), if not empty.
pub fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (&pair[..eq], &pair[eq + 1..]);
        (key == name && !value.is_empty()).then_some(value)
    })
}

fn hash(bytes: &[u8]) -> u64 {
    hash_parts(bytes, &[])
}

/// The hash of `first` followed by `second` (as if concatenated).
pub fn hash_parts(first: &[u8], second: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = first.iter().chain(second).fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    });
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn header_keys_hash_the_same_every_time_and_differ_between_users() {
        let key = StickyKey::Header(http::HeaderName::from_static("x-user"));
        let alice = key_hash(&key, &headers(&[("x-user", "alice")]), "/");
        assert!(alice.is_some());
        assert_eq!(alice, key_hash(&key, &headers(&[("x-user", "alice")]), "/"));
        assert_ne!(alice, key_hash(&key, &headers(&[("x-user", "bob")]), "/"));
        assert_eq!(key_hash(&key, &headers(&[("x-user", "")]), "/"), None);
        assert_eq!(key_hash(&key, &headers(&[]), "/"), None);
    }

    #[test]
    fn cookies_are_found_in_any_cookie_header() {
        let key = StickyKey::Cookie("uid".into());
        let direct = key_hash(&key, &headers(&[("cookie", "uid=42")]), "/");
        assert!(direct.is_some());
        let among = headers(&[("cookie", "a=1"), ("cookie", "theme=dark;  uid=42 ; b=")]);
        assert_eq!(key_hash(&key, &among, "/"), direct);
        assert_eq!(
            key_hash(&key, &headers(&[("cookie", "xuid=42; uidx=1")]), "/"),
            None
        );
        assert_eq!(key_hash(&key, &headers(&[("cookie", "uid=")]), "/"), None);
    }

    #[test]
    fn path_segments_count_from_one_and_ignore_the_query() {
        let key = StickyKey::PathSegment(2);
        let none = HeaderMap::new();
        let cart = key_hash(&key, &none, "/users/42/cart");
        assert!(cart.is_some());
        assert_eq!(key_hash(&key, &none, "/users/42?x=1"), cart);
        assert_eq!(key_hash(&key, &none, "//users//42"), cart);
        assert_ne!(key_hash(&key, &none, "/users/43"), cart);
        assert_eq!(key_hash(&key, &none, "/users"), None);
        assert_eq!(key_hash(&key, &none, "/users/?42"), None);
        assert_eq!(key_hash(&StickyKey::PathSegment(0), &none, "/a/b"), None);
    }

    #[test]
    fn hashes_spread_over_the_whole_range() {
        let key = StickyKey::Header(http::HeaderName::from_static("x-user"));
        let mut below_half = 0;
        for i in 0..10_000 {
            let mut map = HeaderMap::new();
            map.insert(
                "x-user",
                HeaderValue::from_str(&format!("user-{i}")).unwrap(),
            );
            if key_hash(&key, &map, "/").unwrap() < u64::MAX / 2 {
                below_half += 1;
            }
        }
        assert!((4_800..=5_200).contains(&below_half), "{below_half}");
    }
}
