//! Image references: the Docker reference grammar and skopeo-style transports.
//!
//! Grammar (distribution/reference):
//! ```text
//! reference      ::= name [':' tag] ['@' digest]
//! name           ::= [domain '/'] path-component ('/' path-component)*
//! domain         ::= host [':' port]
//! host           ::= domain-component ('.' domain-component)* | '[' ipv6 ']'
//! domain-component ::= [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component ::= [a-z0-9]+ (separator [a-z0-9]+)*      separator ::= [_.] | __ | [-]+
//! tag            ::= [\w][\w.-]{0,127}
//! ```
//!
//! Normalisation follows `ParseNormalizedNamed` + `TagNameOnly`: the first path component is a
//! registry only if it contains `.` or `:`, is `localhost`, or has uppercase letters (which a
//! repository never has); otherwise the registry is `docker.io`. On `docker.io` a single
//! component gets the `library/` prefix, `index.docker.io` becomes `docker.io`, and a reference
//! with neither tag nor digest gets the tag `latest`. So `busybox`, `busybox:latest`,
//! `docker.io/busybox` and `index.docker.io/library/busybox:latest` are all equal.
//!
//! The 255-character limit applies to the repository path (without the registry), as in
//! distribution/reference since v0.6.
//!
//! Transports ([`ImageRef`]) follow skopeo (containers/image):
//! `docker://NAME`, `docker-daemon:NAME`, `oci:PATH[:REF]`, `oci-archive:PATH[:REF]`,
//! `docker-archive:PATH[:NAME:TAG]`; anything without a transport prefix is a plain reference to
//! the local Docker engine ([`ImageRef::Bare`]).

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{truncate_for_error, Digest, DigestError};

/// The registry of unqualified names (Docker Hub).
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The legacy Docker Hub name, normalised to [`DEFAULT_REGISTRY`].
const LEGACY_REGISTRY: &str = "index.docker.io";
/// Namespace of Docker Hub's official images.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag of a reference written without tag or digest.
pub const DEFAULT_TAG: &str = "latest";

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
    /// The empty string.
    #[error("empty image reference")]
    Empty,
    /// Structurally not `name[:tag][@digest]`.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidFormat { input: String, reason: &'static str },
    /// The repository part has uppercase letters (Docker's most common naming mistake).
    #[error("invalid image reference {input:?}: repository name {repository:?} must be lowercase")]
    Uppercase { input: String, repository: String },
    /// The registry part is not `host[:port]`.
    #[error("invalid image reference {input:?}: registry {registry:?} is not a host name, IPv4 or [IPv6] address with an optional :port")]
    InvalidRegistry { input: String, registry: String },
    /// A registry that would be read back as the first repository component
    /// (no `.`, no `:port`, not `localhost`), so the reference could not round-trip.
    #[error("registry {registry:?} would be read as part of the repository path; use a name with a '.' or a :port, or localhost")]
    AmbiguousRegistry { registry: String },
    /// The part after `@` is not a digest we accept.
    #[error("invalid image reference {input:?}: {source}")]
    InvalidDigest { input: String, source: DigestError },
    /// 64 hex characters: an image ID, which Docker refuses as a repository name.
    #[error("invalid image reference {input:?}: a 64-character hexadecimal string is an image ID, not a name")]
    ImageId { input: String },
    /// A transport that needs a path got none (`oci:`, `docker-archive:`).
    #[error("image reference {input:?}: the {transport}: transport needs a path")]
    MissingPath {
        input: String,
        transport: &'static str,
    },
    /// `docker:` followed by a path-like string but without `//`.
    #[error("image reference {input:?}: the docker transport is written docker://NAME")]
    MissingSlashes { input: String },
    /// A skopeo transport ddiff does not read or write.
    #[error("image reference {input:?}: transport {transport}: is not supported; use docker://, docker-daemon:, oci:, oci-archive: or docker-archive:")]
    UnsupportedTransport { input: String, transport: String },
    /// The `:REF` of `oci:PATH:REF` breaks the OCI `org.opencontainers.image.ref.name` grammar.
    #[error("image reference {input:?}: {reference:?} is not a valid OCI layout reference (components of [A-Za-z0-9] joined by - . _ : @ + or --, separated by /; or @INDEX)")]
    InvalidLayoutReference { input: String, reference: String },
    /// `docker-archive:PATH:NAME@DIGEST`: archives name images by tag only.
    #[error("image reference {input:?}: docker-archive names an image by name:tag, not by digest")]
    ArchiveDigest { input: String },
    /// `docker-daemon:NAME:TAG@DIGEST`: the daemon takes one or the other (as skopeo).
    #[error("image reference {input:?}: docker-daemon takes a tag or a digest, not both")]
    DaemonTagAndDigest { input: String },
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

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
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

/// `host[:port]` where host is a DNS name / IPv4 address or `[IPv6]`.
fn valid_registry(domain: &str) -> bool {
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
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
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

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where an image lives, in skopeo's `transport:details` syntax.
///
/// Path/reference splitting follows containers/image on non-Windows systems: for `oci:`,
/// `oci-archive:` and `docker-archive:` the path ends at the *first* `:` and everything after it
/// is the reference, so paths cannot contain `:` (containers/image rejects them too). An empty
/// reference (`oci:dir:`) is the same as none. `@N` (a zero-based index into the layout's
/// `index.json` or the archive's `manifest.json`, newer containers/image) is kept as written.
///
/// The `oci:`, `oci-archive:`, `docker-archive:` and `docker-daemon:` prefixes always mean the
/// transport, so an image literally named `oci` must be written `docker.io/library/oci:TAG`.
/// `docker:` without `//` is a plain name (`docker:24-dind` is the Docker Hub image).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// `docker://NAME`: a registry.
    Docker(Reference),
    /// `docker-daemon:NAME`: the local Docker engine, named explicitly.
    DockerDaemon(Reference),
    /// `oci:DIR[:REF]`: an OCI image layout directory; `REF` is the
    /// `org.opencontainers.image.ref.name` annotation or `@INDEX`.
    Oci {
        /// The directory.
        path: String,
        /// The reference inside the layout, as written.
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`: a tar of an OCI image layout.
    OciArchive {
        /// The tar file.
        path: String,
        /// The reference inside the layout, as written.
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:NAME:TAG]`: a `docker save` tar.
    DockerArchive {
        /// The tar file.
        path: String,
        /// The image inside (`NAME:TAG` as written, or `@INDEX`).
        reference: Option<String>,
    },
    /// A plain `NAME[:TAG]`: the local Docker engine, as in the original tool.
    Bare(Reference),
}

const DOCKER: &str = "docker://";
const DOCKER_DAEMON: &str = "docker-daemon:";
const OCI: &str = "oci:";
const OCI_ARCHIVE: &str = "oci-archive:";
const DOCKER_ARCHIVE: &str = "docker-archive:";
/// skopeo transports ddiff does not handle, named in the error when the input is not also a
/// valid plain reference.
const UNSUPPORTED_TRANSPORTS: [&str; 5] = ["dir", "containers-storage", "ostree", "sif", "tarball"];

impl ImageRef {
    /// Parses `transport:details` or a plain reference.
    pub fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
        let shown = || truncate_for_error(input);
        if let Some(rest) = input.strip_prefix(DOCKER) {
            return Ok(ImageRef::Docker(Reference::parse(rest)?));
        }
        if input.starts_with("docker:/") {
            return Err(ReferenceError::MissingSlashes { input: shown() });
        }
        if let Some(rest) = input.strip_prefix(DOCKER_DAEMON) {
            // skopeo reads `docker-daemon:sha256:<hex>` as an image ID; as a name it would be
            // Docker Hub's `library/sha256` at tag <hex>. IDs are not supported here: refuse.
            if Digest::parse(rest).is_ok() {
                return Err(ReferenceError::ImageId { input: shown() });
            }
            let r = Reference::parse(rest)?;
            if r.tag.is_some() && r.digest.is_some() {
                return Err(ReferenceError::DaemonTagAndDigest { input: shown() });
            }
            return Ok(ImageRef::DockerDaemon(r));
        }
        if let Some(rest) = input.strip_prefix(OCI) {
            let (path, reference) = split_layout(input, rest, "oci")?;
            return Ok(ImageRef::Oci { path, reference });
        }
        if let Some(rest) = input.strip_prefix(OCI_ARCHIVE) {
            let (path, reference) = split_layout(input, rest, "oci-archive")?;
            return Ok(ImageRef::OciArchive { path, reference });
        }
        if let Some(rest) = input.strip_prefix(DOCKER_ARCHIVE) {
            let (path, reference) = split_path(input, rest, "docker-archive")?;
            if let Some(r) = &reference {
                if !is_source_index(r) && Reference::parse(r)?.digest.is_some() {
                    return Err(ReferenceError::ArchiveDigest { input: shown() });
                }
            }
            return Ok(ImageRef::DockerArchive { path, reference });
        }
        Reference::parse(input)
            .map(ImageRef::Bare)
            .map_err(|e| match input.split_once(':') {
                Some((t, _)) if UNSUPPORTED_TRANSPORTS.contains(&t) => {
                    ReferenceError::UnsupportedTransport {
                        input: shown(),
                        transport: t.to_string(),
                    }
                }
                _ => e,
            })
    }

    /// The Docker reference, for the transports that have one.
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            ImageRef::Docker(r) | ImageRef::DockerDaemon(r) | ImageRef::Bare(r) => Some(r),
            _ => None,
        }
    }
}

/// `PATH[:REF]` split at the first `:`; an empty `REF` is none.
fn split_path(
    input: &str,
    rest: &str,
    transport: &'static str,
) -> Result<(String, Option<String>), ReferenceError> {
    let (path, reference) = match rest.split_once(':') {
        Some((p, r)) => (p, (!r.is_empty()).then(|| r.to_string())),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(ReferenceError::MissingPath {
            input: truncate_for_error(input),
            transport,
        });
    }
    Ok((path.to_string(), reference))
}

/// [`split_path`] plus the OCI ref-name grammar check on the reference.
fn split_layout(
    input: &str,
    rest: &str,
    transport: &'static str,
) -> Result<(String, Option<String>), ReferenceError> {
    let (path, reference) = split_path(input, rest, transport)?;
    if let Some(r) = &reference {
        if !is_source_index(r) && !valid_layout_ref(r) {
            return Err(ReferenceError::InvalidLayoutReference {
                input: truncate_for_error(input),
                reference: truncate_for_error(r),
            });
        }
    }
    Ok((path, reference))
}

/// `@N`, a zero-based index into the layout or archive.
fn is_source_index(r: &str) -> bool {
    r.strip_prefix('@')
        .is_some_and(|n| !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// containers/image's `refRegexp`: `component ('/' component)*` with
/// `component ::= [A-Za-z0-9]+ (([-._:@+] | '--') [A-Za-z0-9]+)*`.
fn valid_layout_ref(r: &str) -> bool {
    r.split('/').all(|c| {
        let b = c.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let sep = &b[start..i];
            let ok = sep == b"--" || (sep.len() == 1 && b"-._:@+".contains(&sep[0]));
            if !ok {
                return false;
            }
        }
        true
    })
}

impl fmt::Display for ImageRef {
    /// The skopeo form; plain and daemon references use Docker's familiar name
    /// (as skopeo's `docker-daemon:` does). Parsing the output gives back an equal value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_ref =
            |f: &mut fmt::Formatter<'_>, prefix: &str, path: &str, r: &Option<String>| {
                write!(f, "{prefix}{path}")?;
                if let Some(r) = r {
                    write!(f, ":{r}")?;
                }
                Ok(())
            };
        match self {
            ImageRef::Docker(r) => write!(f, "{DOCKER}{}", r.familiar()),
            ImageRef::DockerDaemon(r) => write!(f, "{DOCKER_DAEMON}{}", r.familiar()),
            ImageRef::Oci { path, reference } => with_ref(f, OCI, path, reference),
            ImageRef::OciArchive { path, reference } => with_ref(f, OCI_ARCHIVE, path, reference),
            ImageRef::DockerArchive { path, reference } => {
                with_ref(f, DOCKER_ARCHIVE, path, reference)
            }
            ImageRef::Bare(r) => {
                // `oci:latest` would read back as a transport; the full name cannot.
                let short = r.familiar();
                let prefixes = [DOCKER_DAEMON, OCI, OCI_ARCHIVE, DOCKER_ARCHIVE];
                if prefixes.iter().any(|p| short.starts_with(p)) {
                    write!(f, "{r}")
                } else {
                    f.write_str(&short)
                }
            }
        }
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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

    /// (input, registry, repository, tag, has digest, canonical, familiar)
    type Row = (
        String,
        &'static str,
        &'static str,
        Option<&'static str>,
        bool,
        String,
        String,
    );

    #[test]
    fn parses_valid_table() {
        let h = "a".repeat(64);
        let d = format!("sha256:{h}");
        #[rustfmt::skip]
        let cases: Vec<Row> = vec![
            ("busybox".into(), "docker.io", "library/busybox", Some("latest"), false,
             "docker.io/library/busybox:latest".into(), "busybox:latest".into()),
            ("busybox:1.36".into(), "docker.io", "library/busybox", Some("1.36"), false,
             "docker.io/library/busybox:1.36".into(), "busybox:1.36".into()),
            ("team/app:2".into(), "docker.io", "team/app", Some("2"), false,
             "docker.io/team/app:2".into(), "team/app:2".into()),
            ("docker.io/busybox".into(), "docker.io", "library/busybox", Some("latest"), false,
             "docker.io/library/busybox:latest".into(), "busybox:latest".into()),
            ("index.docker.io/library/busybox:latest".into(), "docker.io", "library/busybox", Some("latest"), false,
             "docker.io/library/busybox:latest".into(), "busybox:latest".into()),
            ("index.docker.io/busybox".into(), "docker.io", "library/busybox", Some("latest"), false,
             "docker.io/library/busybox:latest".into(), "busybox:latest".into()),
            ("library/a/b".into(), "docker.io", "library/a/b", Some("latest"), false,
             "docker.io/library/a/b:latest".into(), "library/a/b:latest".into()),
            ("localhost/app".into(), "localhost", "app", Some("latest"), false,
             "localhost/app:latest".into(), "localhost/app:latest".into()),
            ("localhost:5000/app:1".into(), "localhost:5000", "app", Some("1"), false,
             "localhost:5000/app:1".into(), "localhost:5000/app:1".into()),
            ("[::1]:5000/x".into(), "[::1]:5000", "x", Some("latest"), false,
             "[::1]:5000/x:latest".into(), "[::1]:5000/x:latest".into()),
            ("[fe80::1]/x/y".into(), "[fe80::1]", "x/y", Some("latest"), false,
             "[fe80::1]/x/y:latest".into(), "[fe80::1]/x/y:latest".into()),
            ("10.0.0.1:443/a:b".into(), "10.0.0.1:443", "a", Some("b"), false,
             "10.0.0.1:443/a:b".into(), "10.0.0.1:443/a:b".into()),
            ("registry.example.com/a/b/c:tag".into(), "registry.example.com", "a/b/c", Some("tag"), false,
             "registry.example.com/a/b/c:tag".into(), "registry.example.com/a/b/c:tag".into()),
            ("myhost:5000/a".into(), "myhost:5000", "a", Some("latest"), false,
             "myhost:5000/a:latest".into(), "myhost:5000/a:latest".into()),
            // Uppercase first component: a domain, as in distribution/reference.
            ("Registry/app".into(), "Registry", "app", Some("latest"), false,
             "Registry/app:latest".into(), "Registry/app:latest".into()),
            (format!("busybox@{d}"), "docker.io", "library/busybox", None, true,
             format!("docker.io/library/busybox@{d}"), format!("busybox@{d}")),
            (format!("busybox:1@{d}"), "docker.io", "library/busybox", Some("1"), true,
             format!("docker.io/library/busybox:1@{d}"), format!("busybox:1@{d}")),
            (format!("localhost:5000/app@{d}"), "localhost:5000", "app", None, true,
             format!("localhost:5000/app@{d}"), format!("localhost:5000/app@{d}")),
            // Without a '/', "localhost:5000" is Docker Hub's `localhost` at tag 5000 (Docker does the same).
            ("localhost:5000".into(), "docker.io", "library/localhost", Some("5000"), false,
             "docker.io/library/localhost:5000".into(), "localhost:5000".into()),
            ("a__b-c/e---f.g:_T.1-x".into(), "docker.io", "a__b-c/e---f.g", Some("_T.1-x"), false,
             "docker.io/a__b-c/e---f.g:_T.1-x".into(), "a__b-c/e---f.g:_T.1-x".into()),
        ];
        for (input, reg, repo, tag, has_digest, canonical, familiar) in cases {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry(), reg, "{input}");
            assert_eq!(r.repository(), repo, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest().is_some(), has_digest, "{input}");
            assert_eq!(r.to_string(), canonical, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            // Both printed forms parse back to the same value.
            assert_eq!(Reference::parse(&canonical).unwrap(), r, "{input}");
            assert_eq!(Reference::parse(&familiar).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn rejects_invalid_table() {
        let h = "a".repeat(64);
        let long = format!("x/{}", "a".repeat(254));
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("Busybox".into(), "uppercase"),
            ("library/Busybox".into(), "uppercase"),
            ("registry.example.com/Team/app".into(), "uppercase"),
            (h.clone(), "image-id"),
            ("busybox:".into(), "tag"),
            ("busybox:.x".into(), "tag"),
            (format!("busybox:{}", "a".repeat(129)), "tag"),
            ("busybox@".into(), "digest"),
            ("busybox@sha256:abc".into(), "digest"),
            (format!("busybox@md5:{h}"), "digest"),
            (format!("@sha256:{h}"), "format"),
            ("example.com/".into(), "format"),
            ("-bad.example.com/a".into(), "registry"),
            ("bad_host.com/a".into(), "registry"),
            ("host.com:/a".into(), "registry"),
            ("host.com:50x0/a".into(), "registry"),
            ("[::1/a".into(), "registry"),
            ("[zz::1]/a".into(), "registry"),
            ("[::1]x/a".into(), "registry"),
            ("a//b".into(), "repository"),
            ("a/b/".into(), "repository"),
            ("a..b".into(), "repository"),
            ("a b".into(), "repository"),
            ("é".into(), "repository"),
            (long, "repository"),
        ];
        for (input, kind) in cases {
            let err = Reference::parse(&input).unwrap_err();
            let ok = matches!(
                (&err, kind),
                (ReferenceError::Empty, "empty")
                    | (ReferenceError::Uppercase { .. }, "uppercase")
                    | (ReferenceError::ImageId { .. }, "image-id")
                    | (ReferenceError::InvalidTag { .. }, "tag")
                    | (ReferenceError::InvalidDigest { .. }, "digest")
                    | (ReferenceError::InvalidFormat { .. }, "format")
                    | (ReferenceError::InvalidRegistry { .. }, "registry")
                    | (ReferenceError::InvalidRepository { .. }, "repository")
            );
            assert!(ok, "{input:?}: expected {kind}, got {err:?}");
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let e = Reference::parse("registry.example.com/Team/App:1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid image reference \"registry.example.com/Team/App:1\": repository name \"Team/App\" must be lowercase"
        );
    }

    #[test]
    fn length_limit_is_on_the_repository_path() {
        let path = format!("x/{}", "a".repeat(253));
        assert_eq!(path.len(), MAX_REPOSITORY_LEN);
        let r = Reference::parse(&format!("registry.example.com/{path}")).unwrap();
        assert_eq!(r.repository(), path);
        // docker.io adds "library/" before the check, as upstream does.
        let single = "a".repeat(MAX_REPOSITORY_LEN - 7);
        assert!(Reference::parse(&single).is_err());
    }

    #[test]
    fn helpers() {
        let r = Reference::parse("busybox@sha256:".to_string().as_str());
        assert!(r.is_err());
        let d = Digest::sha256(b"x");
        let r = Reference::parse("busybox").unwrap().with_digest(d.clone());
        assert_eq!(r.tag_or_latest(), "latest");
        let r = r.with_tag("1.36").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
        assert!(matches!(
            r.with_tag("-x"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        let pinned = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.tag_or_latest(), "latest");

        let moved = r.with_registry("localhost:5000").unwrap();
        assert_eq!(moved.to_string(), "localhost:5000/library/busybox:1.36");
        assert_eq!(moved.familiar(), "localhost:5000/library/busybox:1.36");
        let back = moved.with_registry("index.docker.io").unwrap();
        assert_eq!(back, r);
        let app = Reference::parse("localhost:5000/app:2").unwrap();
        assert_eq!(app.with_registry("docker.io").unwrap().familiar(), "app:2");
        assert!(matches!(
            r.with_registry("myhost"),
            Err(ReferenceError::AmbiguousRegistry { .. })
        ));
        assert!(matches!(
            r.with_registry("bad host"),
            Err(ReferenceError::InvalidRegistry { .. })
        ));
        assert_eq!(app.name(), "localhost:5000/app");
        assert_eq!(app.familiar_name(), "localhost:5000/app");
        let j = serde_json::to_string(&app).unwrap();
        assert_eq!(j, "\"localhost:5000/app:2\"");
        assert_eq!(serde_json::from_str::<Reference>(&j).unwrap(), app);
        assert!(serde_json::from_str::<Reference>("\"A\"").is_err());
    }

    #[test]
    fn image_refs_valid_table() {
        let bb = || Reference::parse("busybox").unwrap();
        let d = format!("sha256:{}", "b".repeat(64));
        #[rustfmt::skip]
        let cases: Vec<(String, ImageRef, String)> = vec![
            ("docker://busybox".into(), ImageRef::Docker(bb()), "docker://busybox:latest".into()),
            ("docker://registry.example.com/a/b:1".into(),
             ImageRef::Docker(Reference::parse("registry.example.com/a/b:1").unwrap()),
             "docker://registry.example.com/a/b:1".into()),
            ("docker-daemon:busybox:latest".into(), ImageRef::DockerDaemon(bb()), "docker-daemon:busybox:latest".into()),
            (format!("docker-daemon:app@{d}"),
             ImageRef::DockerDaemon(Reference::parse(&format!("app@{d}")).unwrap()),
             format!("docker-daemon:app@{d}")),
            ("oci:/tmp/layout".into(), ImageRef::Oci { path: "/tmp/layout".into(), reference: None }, "oci:/tmp/layout".into()),
            ("oci:/tmp/layout:".into(), ImageRef::Oci { path: "/tmp/layout".into(), reference: None }, "oci:/tmp/layout".into()),
            ("oci:layout:v1.0".into(), ImageRef::Oci { path: "layout".into(), reference: Some("v1.0".into()) }, "oci:layout:v1.0".into()),
            // The path ends at the first ':'; the rest, colons included, is the reference.
            ("oci:dir:example.com/app:2".into(),
             ImageRef::Oci { path: "dir".into(), reference: Some("example.com/app:2".into()) },
             "oci:dir:example.com/app:2".into()),
            ("oci:dir:@1".into(), ImageRef::Oci { path: "dir".into(), reference: Some("@1".into()) }, "oci:dir:@1".into()),
            ("oci-archive:img.tar:Latest".into(),
             ImageRef::OciArchive { path: "img.tar".into(), reference: Some("Latest".into()) },
             "oci-archive:img.tar:Latest".into()),
            ("docker-archive:/tmp/app.tar".into(),
             ImageRef::DockerArchive { path: "/tmp/app.tar".into(), reference: None },
             "docker-archive:/tmp/app.tar".into()),
            ("docker-archive:app.tar:app:2".into(),
             ImageRef::DockerArchive { path: "app.tar".into(), reference: Some("app:2".into()) },
             "docker-archive:app.tar:app:2".into()),
            ("docker-archive:app.tar:localhost:5000/app".into(),
             ImageRef::DockerArchive { path: "app.tar".into(), reference: Some("localhost:5000/app".into()) },
             "docker-archive:app.tar:localhost:5000/app".into()),
            ("docker-archive:app.tar:@0".into(),
             ImageRef::DockerArchive { path: "app.tar".into(), reference: Some("@0".into()) },
             "docker-archive:app.tar:@0".into()),
            ("busybox".into(), ImageRef::Bare(bb()), "busybox:latest".into()),
            ("app:2".into(), ImageRef::Bare(Reference::parse("app:2").unwrap()), "app:2".into()),
            // `docker:` without `//` is Docker Hub's docker image.
            ("docker:24-dind".into(), ImageRef::Bare(Reference::parse("library/docker:24-dind").unwrap()), "docker:24-dind".into()),
            ("localhost:5000/app:2".into(), ImageRef::Bare(Reference::parse("localhost:5000/app:2").unwrap()), "localhost:5000/app:2".into()),
            // Found by the fuzz smoke test: an image named like a transport prints in full.
            ("oci".into(), ImageRef::Bare(Reference::parse("library/oci").unwrap()), "docker.io/library/oci:latest".into()),
            ("docker-archive".into(), ImageRef::Bare(Reference::parse("library/docker-archive").unwrap()),
             "docker.io/library/docker-archive:latest".into()),
        ];
        for (input, want, shown) in cases {
            let got = ImageRef::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, want, "{input}");
            assert_eq!(got.to_string(), shown, "{input}");
            assert_eq!(ImageRef::parse(&shown).unwrap(), got, "{input}");
        }
    }

    #[test]
    fn image_refs_invalid_table() {
        let d = format!("sha256:{}", "b".repeat(64));
        let cases: Vec<(String, &str)> = vec![
            ("docker:/busybox".into(), "slashes"),
            ("docker:///busybox".into(), "repository"),
            ("docker://".into(), "empty"),
            ("docker://Busybox".into(), "uppercase"),
            ("oci:".into(), "path"),
            ("oci::tag".into(), "path"),
            ("oci:dir:bad ref".into(), "layout-ref"),
            ("oci:dir:-x".into(), "layout-ref"),
            ("oci:dir:a//b".into(), "layout-ref"),
            ("oci:dir:@x".into(), "layout-ref"),
            ("oci-archive:".into(), "path"),
            ("docker-archive:".into(), "path"),
            ("docker-archive:a.tar:App".into(), "uppercase"),
            (format!("docker-archive:a.tar:app@{d}"), "archive-digest"),
            (format!("docker-daemon:app:1@{d}"), "daemon"),
            ("docker-daemon:".into(), "empty"),
            (format!("docker-daemon:{d}"), "image-id"),
            ("dir:/tmp/x".into(), "unsupported"),
            ("containers-storage:/x".into(), "unsupported"),
            ("Busybox".into(), "uppercase"),
        ];
        for (input, kind) in cases {
            let err = ImageRef::parse(&input).unwrap_err();
            let ok = matches!(
                (&err, kind),
                (ReferenceError::MissingSlashes { .. }, "slashes")
                    | (ReferenceError::InvalidRepository { .. }, "repository")
                    | (ReferenceError::Empty, "empty")
                    | (ReferenceError::Uppercase { .. }, "uppercase")
                    | (ReferenceError::MissingPath { .. }, "path")
                    | (ReferenceError::InvalidLayoutReference { .. }, "layout-ref")
                    | (ReferenceError::ArchiveDigest { .. }, "archive-digest")
                    | (ReferenceError::DaemonTagAndDigest { .. }, "daemon")
                    | (ReferenceError::UnsupportedTransport { .. }, "unsupported")
                    | (ReferenceError::ImageId { .. }, "image-id")
            );
            assert!(ok, "{input:?}: expected {kind}, got {err:?}");
        }
        // A name that happens to start like a transport we do not support is still a name.
        assert!(matches!(ImageRef::parse("dir:1"), Ok(ImageRef::Bare(_))));
    }
}
