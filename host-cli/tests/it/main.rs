//! The one integration-test binary of `ddiff`.

mod common;
mod engine_local;
mod registry_e2e;
mod server_interop;
mod server_routes;
mod token_auth;
