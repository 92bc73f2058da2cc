//! Registry client and the embedded registry server.

pub mod server;
