//! One module per subcommand. Each exposes `XArgs` (clap) and `run(args, &Global)`.

pub mod build;
pub mod demo;
pub mod diff;
pub mod inspect;
pub mod inventory;
pub mod list;
pub mod load;
pub mod pull;
pub mod push;
pub mod verify;
pub mod verify_set;

use anyhow::Result;
use ddiff_core::{ImageRef, Platform};

use crate::progress::{Mode, Progress};
use crate::registry::client::{ClientOptions, Credentials};
use crate::transport::{host_platform, PlatformChoice};

/// Options every command takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Global {
    /// No progress output; only errors and the final result.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Machine-readable JSON on stdout (read commands and summaries).
    #[arg(long, global = true)]
    pub json: bool,
    /// Plain HTTP (and unverified TLS) for registries that are not on loopback.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Registry user name (else from ~/.docker/config.json).
    #[arg(long, global = true, env = "DDIFF_USERNAME", requires = "password")]
    pub username: Option<String>,
    /// Registry password or token.
    #[arg(long, global = true, env = "DDIFF_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Upload blobs larger than this many MiB in chunks of this size, resuming after failures.
    #[arg(long, global = true, env = "DDIFF_UPLOAD_CHUNK_MIB", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub upload_chunk_mib: u64,
}

impl Global {
    /// Client options from the flags.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            insecure: self.insecure,
            credentials: match (&self.username, &self.password) {
                (Some(u), Some(p)) => Some(Credentials {
                    username: u.clone(),
                    password: p.clone(),
                }),
                _ => None,
            },
            chunk_size: self.upload_chunk_mib * 1024 * 1024,
        }
    }

    /// The progress reporter.
    pub fn progress(&self) -> Progress {
        Progress::new(Mode::detect(self.quiet || self.json))
    }
}

/// Platform selection flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PlatformArgs {
    /// Platform to take from multi-platform images (os/arch[/variant]) [default: this machine's].
    #[arg(
        long,
        value_name = "OS/ARCH[/VARIANT]",
        conflicts_with = "all_platforms"
    )]
    pub platform: Option<String>,
    /// Carry every platform of multi-platform images (the whole index).
    #[arg(long)]
    pub all_platforms: bool,
}

impl PlatformArgs {
    /// The choice.
    pub fn choice(&self) -> Result<PlatformChoice> {
        if self.all_platforms {
            return Ok(PlatformChoice::All);
        }
        match &self.platform {
            Some(p) => Ok(PlatformChoice::One(Platform::parse(p)?)),
            None => Ok(PlatformChoice::One(host_platform())),
        }
    }
}

/// The default registry host: `$DDIFF_URL` (scheme stripped), else `localhost:$DDIFF_PORT`,
/// else `localhost:5000`, as the original tool.
pub fn default_registry() -> String {
    if let Ok(url) = std::env::var("DDIFF_URL") {
        let u = url.trim();
        let u = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"))
            .unwrap_or(u);
        let u = u.trim_end_matches('/');
        if !u.is_empty() {
            return u.to_string();
        }
    }
    let port = std::env::var("DDIFF_PORT")
        .ok()
        .filter(|p| p.parse::<u16>().is_ok())
        .unwrap_or_else(|| "5000".into());
    format!("localhost:{port}")
}

/// Parses an image reference argument with a helpful error.
pub fn parse_image_ref(s: &str) -> Result<ImageRef> {
    // The core's error already names the input.
    Ok(ImageRef::parse(s)?)
}

/// An error and its causes on one line, outermost first, for `ddiff: error: …`: the core's
/// [`error_chain`](ddiff_core::display::error_chain), a plain walk of the chain. Every error
/// says only its own part and leaves its cause to `source()` (docs/architecture.md, "Errors"),
/// so nothing is said twice.
pub fn error_line(e: &anyhow::Error) -> String {
    ddiff_core::display::error_chain(e.as_ref())
}

/// The whole line `ddiff` prints for a failed command: `ddiff: error: ` and [`error_line`],
/// made safe as one piece (the core's `safe_text`). Causes quote references, paths and
/// messages from bundles and registries; none of them can end the line early, start a line
/// that looks like ddiff's own, drive the terminal, or make the line longer than a few KiB.
pub fn error_message(e: &anyhow::Error) -> String {
    ddiff_core::display::safe_text(&format!("ddiff: error: {}", error_line(e)))
}

#[cfg(test)]
mod error_line_tests {
    use super::{error_line, error_message};
    use anyhow::Context as _;

    #[test]
    fn every_cause_is_said_once_outermost_first() {
        // A core error with a cause, under the CLI's context: each part once, in order.
        let e = Err::<(), _>(ddiff_core::ImageRef::parse("app@sha256:xyz").unwrap_err())
            .context("--to \"app@sha256:xyz\"")
            .unwrap_err();
        assert_eq!(
            error_line(&e),
            "--to \"app@sha256:xyz\": invalid image reference \"app@sha256:xyz\": \
             digest \"sha256:xyz\": sha256 needs 64 hex characters, found 3"
        );
        let e = Err::<(), _>(std::io::Error::other("No such file"))
            .context("cannot open a.ddiff")
            .context("load")
            .unwrap_err();
        assert_eq!(error_line(&e), "load: cannot open a.ddiff: No such file");
        // No guessing: a cause whose text the line already holds is still said (an error
        // that repeats its cause breaks the convention, and the line shows it).
        let e = Err::<(), _>(std::io::Error::other("No such file"))
            .context("cannot open a.ddiff: No such file")
            .unwrap_err();
        assert_eq!(
            error_line(&e),
            "cannot open a.ddiff: No such file: No such file"
        );
    }

    #[test]
    fn the_printed_line_is_one_safe_bounded_line() {
        let reference = format!(
            "app:1\nok   forged.ddiff: intact\x1b[2K\u{202e}{}",
            "x".repeat(100_000)
        );
        let e = Err::<(), _>(std::io::Error::other(format!(
            "invalid reference {reference}"
        )))
        .context("x.ddiff: bundle is not intact")
        .unwrap_err();
        let line = error_message(&e);
        assert!(line.starts_with("ddiff: error: x.ddiff: bundle is not intact: invalid reference app:1\\nok   forged"), "{line}");
        assert!(!line.contains(['\n', '\r', '\x1b', '\u{202e}']), "{line}");
        assert!(line.len() < 4200, "{}", line.len());
        assert!(line.ends_with("xxx"), "{line}");
        // What is already safe is printed as it is.
        let e = Err::<(), _>(std::io::Error::other("No such file"))
            .context("cannot open a.ddiff")
            .unwrap_err();
        assert_eq!(
            error_message(&e),
            "ddiff: error: cannot open a.ddiff: No such file"
        );
    }
}
