//! Registry client and the embedded registry server.

pub mod client;
pub mod server;
