//! The one integration-test binary of `ddiff`.

mod common;
mod server_interop;
mod server_routes;
mod registry_e2e;
