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
//!
//! The module is split along those lines: [`grammar`](self) checks the parts (repository
//! paths, tags, registry hosts, layout reference names), `normalized` holds [`Reference`] and
//! Docker's normalisation, `transport` holds [`ImageRef`] and the skopeo prefixes.

mod grammar;
mod normalized;
mod transport;

#[cfg(test)]
mod tests;

use crate::digest::DigestError;

pub use grammar::{validate_repository, validate_tag, MAX_REPOSITORY_LEN};
pub use normalized::Reference;
pub use transport::ImageRef;

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
    #[error("invalid image reference {input:?}")]
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
