//! The one integration-test binary of `ddiff`.

// Test code: an unwrap that fails is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_help;
mod common;
mod deltas;
mod demo;
mod engine_local;
mod hostile_bundle;
mod hostile_interrupt;
mod hostile_server;
mod hostile_text;
mod hostile_util;
mod hostile_volumes;
mod inspect_images;
mod inventory;
mod list_cli;
mod load_scaling;
mod oci_archive;
mod oci_layout_load;
mod provenance_e2e;
mod registry_e2e;
mod server_interop;
mod server_routes;
mod signed_bundle;
mod tag_moves;
mod token_auth;
mod verify_cli;
