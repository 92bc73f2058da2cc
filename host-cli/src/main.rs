//! `ddiff`: the command-line front. All logic lives in the library (`ddiff_cli`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ddiff_cli::cmd::{self, Global};
use ddiff_cli::registry::server::{self, ServerArgs};

/// Carry only what changed: move container images into air-gapped sites by carrying only the
/// layers the other side does not have yet.
///
/// Online:   ddiff diff docker://localhost:5000/base:1 docker://localhost:5000/app:2
///           (writes app-2.ddiff with only what app:2 adds to base:1)
/// Offline:  ddiff load app-2.ddiff     (into the registry at $DDIFF_URL / localhost:5000)
///
/// New here? `ddiff demo` runs the whole flow on two embedded registries.
#[derive(Parser)]
#[command(name = "ddiff", version, max_term_width = 100, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Each command's help (the first paragraph in `ddiff --help`, all of it in `ddiff CMD --help`)
// is the doc comment of its Args struct; a doc comment here would replace it.
enum Command {
    Server(ServerArgs),
    Diff(cmd::diff::DiffCli),
    Inventory(cmd::inventory::InventoryArgs),
    Load(cmd::load::LoadArgs),
    List(cmd::list::ListArgs),
    Demo(cmd::demo::DemoArgs),
    Build(cmd::build::BuildArgs),
    Push(cmd::push::PushArgs),
    Pull(cmd::pull::PullArgs),
    Verify(cmd::verify::VerifyArgs),
    Inspect(cmd::inspect::InspectArgs),
}

/// The one place logging is configured. Level: `DDIFF_LOG` (e.g. `debug`), else `RUST_LOG`,
/// else info for the server (a line per request) and warnings for everything else (commands
/// report through progress and their output). Colours only on a terminal.
fn init_logging(server: bool) {
    let default = if server { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DDIFF_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Server(_)));
    let g = &cli.global;
    let result = match cli.command {
        Command::Server(args) => server::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Diff(args) => cmd::diff::run(args, g).await,
        Command::Inventory(args) => cmd::inventory::run(args, g).await,
        Command::Load(args) => cmd::load::run(args, g).await,
        Command::List(args) => cmd::list::run(args, g).await,
        Command::Demo(args) => cmd::demo::run(args, g).await,
        Command::Build(args) => cmd::build::run(args, g).await,
        Command::Push(args) => cmd::push::run(args, g).await,
        Command::Pull(args) => cmd::pull::run(args, g).await,
        Command::Verify(args) => cmd::verify::run(args, g).await,
        Command::Inspect(args) => cmd::inspect::run(args, g).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: what failed and why, outermost context first; escaped and capped, as
            // causes quote bundle and registry strings.
            eprintln!("{}", cmd::error_message(&e));
            ExitCode::FAILURE
        }
    }
}
