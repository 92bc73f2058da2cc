//! [`ImageRef`]: where an image lives, in skopeo's `transport:details` syntax.

use core::fmt;
use core::str::FromStr;

use super::grammar::{is_source_index, valid_layout_ref};
use super::{Reference, ReferenceError};
use crate::digest::{truncate_for_error, Digest};

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
            if r.tag().is_some() && r.digest().is_some() {
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
                if !is_source_index(r) && Reference::parse(r)?.digest().is_some() {
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
