//! The `ddiff` host: everything that does IO around `ddiff-core` (registries, the Docker
//! engine, files, the embedded registry server). The binary in `main.rs` is a thin clap front.

pub mod bundle_io;
pub mod bundle_write;
pub mod cmd;
pub mod compress;
pub mod delta;
pub mod durable;
pub mod hash;
pub mod progress;
pub mod registry;
pub mod signing;
pub mod transport;
pub mod ui;
pub mod volume_io;
