//! # ddiff-core
//!
//! The sans-IO heart of ddiff: everything that decides *what* to carry across an air gap and
//! *how it is packed and checked*, with no filesystem, network, clock or async runtime, so the
//! CLI, the embedded registry and the browser page (wasm32) run the same code.
//!
//! ```text
//!   sources (registry, engine, oci:, archives)          destinations
//!        │ manifests + configs                               ▲
//!        ▼                                                   │ blobs, manifests, tags
//!   diff::plan ──► bundle::Encoder ──► bundle file ──► bundle::Decoder ──► events
//!                   (host writes the bytes)      (host feeds chunks)   (host uploads)
//! ```
//!
//! Hosts drive the push-style codecs in a loop; see [`bundle`] for the loop and its invariant.
//! A panic anywhere in this crate is a bug, never a reaction to bad input.

/// `FromStr`, and serde as a string, for a type with `parse(&str) -> Result<Self, E>` and
/// `Display` (digests, references): serialised as its `Display`, deserialised through `parse`,
/// whose error (with its causes) becomes the deserialiser's message.
macro_rules! string_form {
    ($t:ty, $err:ty) => {
        impl core::str::FromStr for $t {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t>::parse(s)
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                <$t>::parse(&s)
                    .map_err(|e| serde::de::Error::custom(crate::display::error_chain(&e)))
            }
        }
    };
}

pub mod bundle;
pub mod config;
pub mod delta;
pub mod descriptor;
pub mod destination;
pub mod diff;
pub mod digest;
pub mod display;
pub mod distribution;
pub mod docker_archive;
pub mod dockerfile;
pub mod engine_plan;
pub mod error;
pub mod fuzz;
pub mod inspect;
pub mod inventory;
pub mod layer_files;
pub mod load;
pub mod manifest;
pub mod media_type;
pub mod oci_convert;
pub mod oci_layout;
pub mod provenance;
pub mod reference;
pub mod signature;
pub mod synth;
pub mod synth_bundle;
pub mod tar;
pub mod volume;

pub use config::{ConfigError, History, ImageConfig, RootFs};
pub use descriptor::{Descriptor, Platform, PlatformError};
pub use diff::{plan, BaseImage, BaseLayer, DiffError, Plan, TargetImageInput, TargetInput};
pub use digest::{
    Algorithm, BlobHasher, Digest, DigestBuilder, DigestError, HasherFactory, Verifier, VerifyError,
};
pub use docker_archive::{DockerArchiveError, EntryPathError, ManifestEntry, Repositories};
pub use dockerfile::{DockerfileError, ResolveOptions};
pub use engine_plan::{EngineError, ExportedLayer, LayerHint, LoadArchive, LoadEntry};
pub use error::Error;
pub use inspect::{inspect, Inspection, Inspector, Outcome, Problem, ProblemKind};
pub use inventory::{
    Have, Inventory, InventoryBuilder, InventoryError, InventorySource, SourceKind,
};
pub use layer_files::{FileEntry, FileKind, LayerFilesError, LayerLister};
pub use load::{
    check_tag, plan_load, restrict_to_target, DestinationState, LoadError, LoadPlan, ManifestPut,
    TagHolder, TagMove, TargetIndex,
};
pub use manifest::{ImageIndex, ImageManifest, Manifest, ManifestError, RawManifest};
pub use media_type::{Compression, MediaType};
pub use reference::{ImageRef, Reference, ReferenceError};
