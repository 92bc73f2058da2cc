//! Image references: the Docker reference grammar and skopeo-style transports.
//!
//! Grammar (distribution/reference):
//! ```text
//! path-component ::= [a-z0-9]+ (separator [a-z0-9]+)*      separator ::= [_.] | __ | [-]+
//! name           ::= [domain '/'] path-component ('/' path-component)*
//! tag            ::= [\w][\w.-]{0,127}
//! ```

/// Why a string is not a valid reference or reference part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// A repository name that breaks the grammar.
    #[error("invalid repository name {name:?}: {reason}")]
    InvalidRepository { name: String, reason: &'static str },
    /// A tag that breaks the grammar.
    #[error("invalid tag {tag:?}: tags are 1-128 characters of [A-Za-z0-9_.-], not starting with . or -")]
    InvalidTag { tag: String },
}

/// Longest repository name accepted (distribution's limit).
pub const MAX_REPOSITORY_LEN: usize = 255;

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: "." | "_" | "__" | "-"+
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Validates a repository path as it appears in a registry URL (`library/busybox`,
/// `team/app`): lowercase components joined by `/`, at most 255 characters.
pub fn validate_repository(name: &str) -> Result<(), ReferenceError> {
    let err = |reason| ReferenceError::InvalidRepository {
        name: crate::digest::truncate_for_error(name),
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
            tag: crate::digest::truncate_for_error(tag),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in ["a", "library/busybox", "a-b/c__d/e.f", "a--b", "x/y/z/0"] {
            validate_repository(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "A",
            "a/../b",
            "..",
            "a//b",
            "/a",
            "a/",
            "a_.b",
            "a___b",
            "-a",
            "a-",
            "a%2fb",
            long.as_str(),
        ] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["1", "latest", "v1.2.3-rc_1", "_x", &"a".repeat(128)] {
            validate_tag(ok).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }
}
