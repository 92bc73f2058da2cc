//! [`Reference`]: a Docker reference, parsed and normalised as `docker pull` does.

use core::fmt;

use super::grammar::{is_lower_hex, valid_registry, validate_repository, validate_tag};
use super::{ReferenceError, DEFAULT_REGISTRY, DEFAULT_TAG, LEGACY_REGISTRY, OFFICIAL_PREFIX};
use crate::digest::{truncate_for_error, Digest};

/// A normalised Docker image reference: `registry/repository[:tag][@digest]`.
///
/// Invariant: `tag` or `digest` is set (a bare name gets the tag `latest`), the registry is
/// never `index.docker.io`, and Docker Hub names without a namespace carry `library/`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` does
    /// (`ParseNormalizedNamed` followed by `TagNameOnly`).
    ///
    /// ```
    /// use ddiff_core::Reference;
    /// let r = Reference::parse("busybox").unwrap();
    /// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
    /// assert_eq!(r.familiar(), "busybox:latest");
    /// ```
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let shown = || truncate_for_error(input);
        let format = |reason| ReferenceError::InvalidFormat {
            input: shown(),
            reason,
        };
        if input.len() == 64 && input.bytes().all(is_lower_hex) {
            return Err(ReferenceError::ImageId { input: shown() });
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|source| ReferenceError::InvalidDigest {
                    input: shown(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        if rest.is_empty() {
            return Err(format("missing repository name before '@'"));
        }
        // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                let tag = &rest[colon + 1..];
                validate_tag(tag)?;
                (&rest[..colon], Some(tag.to_string()))
            }
            _ => (rest, None),
        };
        let (registry, path) = split_registry(name);
        let registry = match registry {
            Some(r) => {
                if !valid_registry(r) {
                    return Err(ReferenceError::InvalidRegistry {
                        input: shown(),
                        registry: truncate_for_error(r),
                    });
                }
                if r == LEGACY_REGISTRY {
                    DEFAULT_REGISTRY
                } else {
                    r
                }
            }
            None => DEFAULT_REGISTRY,
        };
        if path.is_empty() {
            return Err(format("missing repository name"));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                input: shown(),
                repository: truncate_for_error(path),
            });
        }
        let repository = qualify(registry, path);
        validate_repository(&repository)?;
        let tag = if tag.is_none() && digest.is_none() {
            Some(DEFAULT_TAG.to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with port if any (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any. `None` only for digest references written without a tag.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The tag, or `latest` for a digest-only reference: what to name the image locally.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as Docker shows it: `docker.io/` and `library/` dropped
    /// (`busybox:latest`, `team/app:2`, `localhost:5000/app:2`).
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        self.push_suffix(&mut out);
        out
    }

    /// [`Reference::familiar`] without tag or digest (`busybox`, `localhost:5000/app`).
    pub fn familiar_name(&self) -> String {
        if self.registry != DEFAULT_REGISTRY {
            return self.name();
        }
        match self.repository.strip_prefix(OFFICIAL_PREFIX) {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => {
                // `docker.io/a.b/c` without its host would read as registry `a.b`: keep it.
                let first = self.repository.split('/').next().unwrap_or_default();
                if self.repository.contains('/')
                    && (first.contains('.') || first.contains(':') || first == "localhost")
                {
                    self.name()
                } else {
                    self.repository.clone()
                }
            }
        }
    }

    /// The same repository and tag on another registry (`library/` is kept, as skopeo and
    /// crane do when mirroring Docker Hub images).
    pub fn with_registry(&self, host: &str) -> Result<Reference, ReferenceError> {
        if !valid_registry(host) {
            return Err(ReferenceError::InvalidRegistry {
                input: truncate_for_error(host),
                registry: truncate_for_error(host),
            });
        }
        if !looks_like_registry(host) {
            return Err(ReferenceError::AmbiguousRegistry {
                registry: truncate_for_error(host),
            });
        }
        let registry = if host == LEGACY_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            host
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository: qualify(registry, &self.repository),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        })
    }

    /// The same repository with another tag. The digest is dropped: a retagged reference
    /// names where an image goes, and `name:tag@digest` would make the tag decorative.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag)?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The same repository and tag, pinned to `digest`.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: self.tag.clone(),
            digest: Some(digest),
        }
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

/// Splits `name` into (registry, path) by Docker's rule (see the module docs).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_registry(first) || first == LEGACY_REGISTRY => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// Whether a first path component is read as a registry.
fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// Adds `library/` to single-component Docker Hub names.
fn qualify(registry: &str, path: &str) -> String {
    if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path.to_string()
    }
}

impl fmt::Display for Reference {
    /// The canonical full form, `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

string_form!(Reference, ReferenceError);
