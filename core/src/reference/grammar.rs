//! The grammar of reference parts: repository paths, tags, registry hosts and OCI layout
//! reference names (see the [module docs](super)).

use super::ReferenceError;
use crate::digest::truncate_for_error;

/// Longest repository name accepted (distribution's limit).
pub const MAX_REPOSITORY_LEN: usize = 255;

/// `path-component ::= [a-z0-9]+ (separator [a-z0-9]+)*` with
/// `separator ::= [_.] | __ | [-]+`.
fn valid_path_component(c: &str) -> bool {
    words_and_separators(c.as_bytes(), is_alnum, |sep| {
        sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|&x| x == b'-')
    })
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Whether `b` is runs of `word` bytes joined by separator runs (maximal runs of other bytes)
/// that `separator` accepts: non-empty, starting and ending with a word byte.
fn words_and_separators(b: &[u8], word: fn(u8) -> bool, separator: fn(&[u8]) -> bool) -> bool {
    if b.is_empty() || !word(b[0]) || !word(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if word(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !word(b[i]) {
            i += 1;
        }
        if !separator(&b[start..i]) {
            return false;
        }
    }
    true
}

/// Validates a repository path as it appears in a registry URL (`library/busybox`,
/// `team/app`): lowercase components joined by `/`, at most 255 characters.
pub fn validate_repository(name: &str) -> Result<(), ReferenceError> {
    let err = |reason| ReferenceError::InvalidRepository {
        name: truncate_for_error(name),
        reason,
    };
    if name.is_empty() {
        return Err(err("empty"));
    }
    if name.len() > MAX_REPOSITORY_LEN {
        return Err(err("longer than 255 characters"));
    }
    if !name.split('/').all(valid_path_component) {
        return Err(err(
            "components must be lowercase letters and digits joined by '.', '_', '__' or '-', separated by '/'",
        ));
    }
    Ok(())
}

/// Validates a tag.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag {
            tag: truncate_for_error(tag),
        })
    }
}

pub(super) fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// `host[:port]` where host is a DNS name / IPv4 address or `[IPv6]`.
pub(super) fn valid_registry(domain: &str) -> bool {
    let (host, port) = if let Some(inner) = domain.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return false;
        };
        let addr = &inner[..close];
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        let after = &inner[close + 1..];
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = host.is_none_or(|h| h.split('.').all(valid_domain_component));
    port_ok && host_ok
}

fn valid_domain_component(c: &str) -> bool {
    words_and_separators(
        c.as_bytes(),
        |b| b.is_ascii_alphanumeric(),
        |sep| sep.iter().all(|&x| x == b'-'),
    )
}

/// `@N`, a zero-based index into the layout or archive.
pub(super) fn is_source_index(r: &str) -> bool {
    r.strip_prefix('@')
        .is_some_and(|n| !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// containers/image's `refRegexp`: `component ('/' component)*` with
/// `component ::= [A-Za-z0-9]+ (([-._:@+] | '--') [A-Za-z0-9]+)*`.
pub(super) fn valid_layout_ref(r: &str) -> bool {
    r.split('/').all(|c| {
        words_and_separators(
            c.as_bytes(),
            |b| b.is_ascii_alphanumeric(),
            |sep| sep == b"--" || (sep.len() == 1 && b"-._:@+".contains(&sep[0])),
        )
    })
}
