//! The embedded OCI registry (`ddiff server`).
