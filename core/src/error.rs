//! [`Error`]: one type over the core's per-concern error enums, for hosts that want one.
//!
//! The convention every ddiff error keeps (the core's enums here and the hosts' own): **a
//! message says only its own part and leaves its cause to [`source`](std::error::Error::source)**.
//! `BundleError::CorruptBlob` says `corrupt blob sha256:… (entry at offset 9216)` and its
//! source says `digest mismatch: …`; nothing is said twice, so a host shows an error by
//! walking the chain ([`crate::display::error_chain`], which the CLI's error line and the
//! page's problem messages both use) and needs no guessing about what to leave out.
//!
//! [`Error`] adds no text of its own: each variant shows and chains exactly as the enum it
//! holds.

use crate::bundle::BundleError;
use crate::engine_plan::EngineError;
use crate::oci_convert::ConvertError;
use crate::tar::TarError;
use crate::{
    ConfigError, DiffError, DigestError, DockerArchiveError, DockerfileError, EntryPathError,
    LayerFilesError, LoadError, ManifestError, PlatformError, ReferenceError, VerifyError,
};

/// Any error of `ddiff-core`. Every per-concern enum converts into it with `?`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string that is not a digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A stream that does not match its digest or size.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Bytes that are not a manifest ddiff handles.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Bytes that are not an image config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A platform string that is not `os/arch[/variant]`.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// A string that is not an image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A Dockerfile whose base image cannot be determined.
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// A `docker save` archive's metadata that cannot be used.
    #[error(transparent)]
    DockerArchive(#[from] DockerArchiveError),
    /// A path from an archive's metadata that is unsafe to open.
    #[error(transparent)]
    EntryPath(#[from] EntryPathError),
    /// A broken tar stream.
    #[error(transparent)]
    Tar(#[from] TarError),
    /// A bundle that is damaged, crafted or driven wrongly.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A layer whose file list cannot be read to the end.
    #[error(transparent)]
    LayerFiles(#[from] LayerFilesError),
    /// A diff that cannot be planned.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// A load that cannot proceed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// An engine image that cannot be described or loaded.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A manifest that cannot be converted to OCI.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// An OCI layout entry that cannot be chosen, or an index.json that cannot be updated.
    #[error(transparent)]
    Layout(#[from] crate::oci_layout::LayoutError),
    /// An image of a `docker save` archive that cannot be chosen.
    #[error(transparent)]
    Choose(#[from] crate::docker_archive::ChooseError),
    /// A volume size, volume or volume set that cannot be used.
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    /// A `--to` that is not a destination.
    #[error(transparent)]
    Destination(#[from] crate::destination::DestinationError),
    /// A site inventory that is damaged, edited or of another format.
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    /// A key or signature that cannot be used, or a signature that does not match.
    #[error(transparent)]
    Signature(#[from] crate::signature::SignatureError),
    /// A private key file that cannot be used.
    #[error(transparent)]
    PrivateKey(#[from] crate::signature::PrivateKeyError),
    /// A host that broke the tar framing contract.
    #[error(transparent)]
    Framing(#[from] crate::tar::FramingError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::error::Error as _;

    use super::*;
    use crate::display::error_chain;
    use crate::{Digest, ImageRef};

    /// Every core error that has a cause: its own message does not repeat the cause's text,
    /// and the chain says everything once, as the messages said before the convention.
    #[test]
    fn messages_leave_their_cause_to_source() {
        let digest = Digest::sha256(b"x");
        let bad_ref = || ReferenceError::parse_sample();
        let tar = TarError::Checksum { offset: 512 };
        let cases: Vec<(Error, String)> = vec![
            (
                BundleError::CorruptBlob {
                    offset: 9216,
                    digest: digest.clone(),
                    source: VerifyError::SizeMismatch {
                        digest: digest.clone(),
                        expected: 3,
                        found: 2,
                    },
                }
                .into(),
                format!("corrupt blob {digest} (entry at offset 9216): size mismatch for {digest}: expected 3 bytes, got 2"),
            ),
            (
                BundleError::Manifest {
                    digest: digest.clone(),
                    source: ManifestError::SchemaVersion { found: 1 },
                }
                .into(),
                format!("manifest {digest}: unsupported schemaVersion 1 (expected 2)"),
            ),
            (
                BundleError::Config {
                    digest: digest.clone(),
                    source: ConfigError::RootFsType { found: "x".into() },
                }
                .into(),
                format!("config {digest}: image config rootfs.type is \"x\", expected \"layers\""),
            ),
            (
                BundleError::InvalidTargetReference {
                    reference: "a@b".into(),
                    source: bad_ref(),
                }
                .into(),
                "target reference \"a@b\" is not a valid image reference: invalid image \
                 reference \"app@sha256:xyz\": digest \"sha256:xyz\": sha256 needs 64 hex \
                 characters, found 3".into(),
            ),
            (
                DockerfileError::InvalidBase {
                    line: 3,
                    source: bad_ref(),
                }
                .into(),
                "Dockerfile line 3: base image: invalid image reference \"app@sha256:xyz\": \
                 digest \"sha256:xyz\": sha256 needs 64 hex characters, found 3".into(),
            ),
            (
                DockerArchiveError::Path {
                    file: "manifest.json",
                    field: "[0].Config".into(),
                    source: EntryPathError::Absolute { path: "/x".into() },
                }
                .into(),
                "manifest.json [0].Config: archive path \"/x\" is absolute".into(),
            ),
            (
                DockerArchiveError::RepoTag {
                    image: 1,
                    source: ReferenceError::Empty,
                }
                .into(),
                "manifest.json [1].RepoTags: empty image reference".into(),
            ),
            (
                DockerArchiveError::Repository {
                    repository: "r".into(),
                    source: ReferenceError::Empty,
                }
                .into(),
                "repositories \"r\": empty image reference".into(),
            ),
            (
                LayerFilesError::Tar(tar.clone()).into(),
                format!("layer tar: {tar}"),
            ),
            (BundleError::Tar(tar.clone()).into(), tar.to_string()),
        ];
        for (e, want) in &cases {
            assert_eq!(&error_chain(e), want);
            let mut cause = e.source();
            while let Some(c) = cause {
                let own = c.to_string();
                let outer = error_chain(e);
                assert_eq!(outer.matches(&own).count(), 1, "{own:?} twice in {outer:?}");
                cause = c.source();
            }
        }
        // The wrapper shows exactly what the enum it holds shows.
        let inner = bad_ref();
        let e = Error::from(inner.clone());
        assert_eq!(e.to_string(), inner.to_string());
        assert_eq!(error_chain(&e), error_chain(&inner));
    }

    /// `?` turns any per-concern error into [`Error`].
    #[test]
    fn question_mark_converts() {
        fn parse(s: &str) -> Result<ImageRef, Error> {
            Ok(ImageRef::parse(s)?)
        }
        assert!(matches!(
            parse(""),
            Err(Error::Reference(ReferenceError::Empty))
        ));
        fn digest(s: &str) -> Result<Digest, Error> {
            Ok(Digest::parse(s)?)
        }
        assert!(matches!(digest("x"), Err(Error::Digest(_))));
    }

    impl ReferenceError {
        /// `app@sha256:xyz`: an error with a cause.
        fn parse_sample() -> ReferenceError {
            ImageRef::parse("app@sha256:xyz").unwrap_err()
        }
    }
}
