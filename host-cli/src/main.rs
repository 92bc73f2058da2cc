//! `ddiff`: the command-line front. All logic lives in the library (`ddiff_cli`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ddiff_cli::registry::server::{self, ServerArgs};

/// Carry only what changed: container image diffs for air-gapped sites.
#[derive(Parser)]
#[command(name = "ddiff", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded OCI registry (replaces the `registry:2` container).
    Server(ServerArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ddiff: {e:#}");
            ExitCode::FAILURE
        }
    }
}
