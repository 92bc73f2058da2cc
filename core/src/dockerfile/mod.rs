//! Base-image resolution for `ddiff build`: which image does a Dockerfile build on?
//!
//! The receiving side of an air gap already has some base image; `ddiff build` needs to know
//! which one the Dockerfile starts from, without running a builder. This module reads just
//! enough of the Dockerfile, following BuildKit's dockerfile frontend
//! (`frontend/dockerfile/parser`, `instructions`, `dockerfile2llb`):
//!
//! * parser directives (`# syntax=`, `# escape=`, `# check=`) only before anything else,
//!   names case-insensitive, each at most once; the escape character is `\` or `` ` ``;
//! * comments (`#` after optional whitespace) are dropped, also between continuation lines;
//!   empty continuation lines are skipped; a line ending in the escape character (then
//!   optional spaces or tabs) continues on the next line;
//! * `RUN`, `COPY` and `ADD` heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`) have their bodies skipped,
//!   so a `FROM` inside one is not an instruction;
//! * instructions are case-insensitive; only `ARG` may come before the first `FROM`;
//! * `ARG`s before the first `FROM` are the only variables `FROM` can use; `--build-arg`
//!   overrides their defaults but does not declare them; defaults may use earlier ARGs;
//! * `FROM [--platform=P] IMAGE [AS NAME]`, with `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`,
//!   `${VAR:+w}`, `${VAR+w}`, `${VAR:?msg}`, quotes and escapes expanded in IMAGE and P;
//! * `AS` names are lowercased and `--target` matches case-insensitively, but a `FROM` names a
//!   stage only when written in lowercase (BuildKit looks the name up as written);
//! * a `FROM` naming an *earlier* stage builds on that stage; naming its own stage
//!   (`FROM node AS node`) means the image, as in BuildKit;
//! * `scratch` (exactly, after expansion) is the empty image.
//!
//! Deliberate differences from BuildKit, all towards an earlier, clearer error:
//! an unset ARG in the resolved `FROM` is an error (BuildKit expands it to "" and warns);
//! a `FROM` naming a *later* stage is an error (BuildKit would pull an image of that name,
//! which is almost never what was meant). Only the stages on the resolved chain are expanded,
//! so `--target test` is not blocked by an ARG only the release stage uses.
//!
//! The platform arguments BuildKit fills in (`BUILDPLATFORM`, `TARGETARCH`, …) are unknown
//! here: pass them in [`ResolveOptions::build_args`]. When they are not passed, a
//! `--platform=$BUILDPLATFORM` value is returned as written, for the host to resolve.
//!
//! The code follows those steps: `lexer` turns the text into instructions (directives,
//! comments, continuations, heredocs), `stages` reads the global ARGs and each stage's FROM,
//! `expand` does the shell-style substitution, and [`resolve_base`] here follows the stages
//! from the target to the image.

mod expand;
mod lexer;
mod stages;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::digest::truncate_for_error;
use crate::{Reference, ReferenceError};
use expand::Expander;
use lexer::scan;
use stages::collect;

/// What to resolve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolveOptions {
    /// `--target STAGE` (case-insensitive); the last stage when `None`.
    pub target: Option<String>,
    /// `--build-arg NAME=VALUE` overrides.
    pub build_args: BTreeMap<String, String>,
}

/// The image a build starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BaseImage {
    /// A real image.
    Image {
        /// The image reference after ARG substitution, as written (not normalised; it has
        /// been checked to parse as a [`Reference`]).
        reference: String,
        /// `FROM --platform=…` of the stage that names the image, after substitution.
        platform: Option<String>,
        /// The stages followed, from the target to the one whose FROM names the image
        /// (unnamed stages are `stage-N`, N counting from 0, as BuildKit names them).
        stage_chain: Vec<String>,
    },
    /// `FROM scratch`: the build starts from nothing.
    Scratch,
}

/// Why the base image cannot be determined.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DockerfileError {
    /// No `FROM` at all.
    #[error("the Dockerfile has no FROM instruction")]
    NoFrom,
    /// An instruction other than `ARG` before the first `FROM`.
    #[error("Dockerfile line {line}: {instruction} before the first FROM; only ARG may come before FROM")]
    InstructionBeforeFrom { line: usize, instruction: String },
    /// `--target` names no stage.
    #[error("target stage {target:?} not found; stages: {}", list(available))]
    UnknownTarget {
        target: String,
        available: Vec<String>,
    },
    /// A variable used in FROM is declared by `ARG` but has no default and no build arg.
    #[error("Dockerfile line {line}: ARG {name} is used in FROM but has no value; give it a default or pass --build-arg {name}=VALUE")]
    UnsetArg { line: usize, name: String },
    /// A variable used in FROM is not declared by an `ARG` before the first FROM.
    #[error("Dockerfile line {line}: ${name} is used in FROM but no ARG {name} comes before the first FROM")]
    UndeclaredArg { line: usize, name: String },
    /// A platform variable BuildKit fills in, not given in the build args.
    #[error("Dockerfile line {line}: ${name} is set by the builder; pass it as a build arg to resolve this FROM")]
    PlatformArg { line: usize, name: String },
    /// `${NAME:?message}` with NAME unset.
    #[error("Dockerfile line {line}: {name}: {message}")]
    RequiredArg {
        line: usize,
        name: String,
        message: String,
    },
    /// A malformed `$`/quote construct.
    #[error("Dockerfile line {line}: cannot expand {word:?}: {reason}")]
    BadSubstitution {
        line: usize,
        word: String,
        reason: &'static str,
    },
    /// `FROM` with the wrong shape.
    #[error(
        "Dockerfile line {line}: {reason}; expected FROM [--platform=PLATFORM] IMAGE [AS NAME]"
    )]
    FromSyntax { line: usize, reason: &'static str },
    /// A `FROM` flag other than `--platform`.
    #[error("Dockerfile line {line}: unknown FROM flag --{flag}")]
    UnknownFromFlag { line: usize, flag: String },
    /// `ARG` with the wrong shape.
    #[error("Dockerfile line {line}: {reason}; expected ARG NAME[=DEFAULT] …")]
    ArgSyntax { line: usize, reason: &'static str },
    /// The image name expands to nothing.
    #[error("Dockerfile line {line}: base image {written:?} expands to an empty name")]
    EmptyBase { line: usize, written: String },
    /// The image name is not a valid reference.
    #[error("Dockerfile line {line}: base image")]
    InvalidBase { line: usize, source: ReferenceError },
    /// A stage refers to a stage defined after it.
    #[error("Dockerfile line {line}: FROM {name} refers to the stage defined later on line {defined_at}; a stage can only build on earlier stages")]
    ForwardStageReference {
        line: usize,
        name: String,
        defined_at: usize,
    },
    /// `AS name` breaks BuildKit's stage name rule.
    #[error("Dockerfile line {line}: invalid stage name {name:?}: it must start with a letter and use only a-z, 0-9, '-', '_' and '.'")]
    InvalidStageName { line: usize, name: String },
    /// Two stages with the same name.
    #[error("Dockerfile line {line}: duplicate stage name {name:?}, first used on line {first}")]
    DuplicateStageName {
        line: usize,
        name: String,
        first: usize,
    },
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("Dockerfile line {line}: invalid escape directive {value:?}; use \\ or `")]
    InvalidEscape { line: usize, value: String },
    /// The same parser directive twice.
    #[error("Dockerfile line {line}: only one {name} parser directive can be used")]
    DuplicateDirective { line: usize, name: String },
    /// A heredoc whose terminator never comes.
    #[error("Dockerfile line {line}: heredoc <<{name} is never terminated")]
    UnterminatedHeredoc { line: usize, name: String },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none are named".to_string()
    } else {
        names.join(", ")
    }
}

/// Variables BuildKit defines from the build and target platforms.
const PLATFORM_ARGS: [&str; 8] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// Finds the base image of the target stage.
///
/// ```
/// use ddiff_core::dockerfile::{resolve_base, BaseImage, ResolveOptions};
/// let df = "ARG V=3.19\nFROM alpine:${V} AS build\nRUN make\nFROM build\n";
/// let base = resolve_base(df, &ResolveOptions::default()).unwrap();
/// assert_eq!(
///     base,
///     BaseImage::Image {
///         reference: "alpine:3.19".into(),
///         platform: None,
///         stage_chain: vec!["stage-1".into(), "build".into()],
///     }
/// );
/// ```
pub fn resolve_base(dockerfile: &str, opts: &ResolveOptions) -> Result<BaseImage, DockerfileError> {
    let (instructions, escape) = scan(dockerfile)?;
    let (args, stages) = collect(&instructions, escape, &opts.build_args)?;
    if stages.is_empty() {
        return Err(DockerfileError::NoFrom);
    }
    let named = |name: &str| stages.iter().position(|s| s.name.as_deref() == Some(name));
    let mut idx = match &opts.target {
        None => stages.len() - 1,
        Some(t) => {
            named(&t.to_ascii_lowercase()).ok_or_else(|| DockerfileError::UnknownTarget {
                target: truncate_for_error(t),
                available: stages.iter().filter_map(|s| s.name.clone()).collect(),
            })?
        }
    };
    let mut chain = Vec::new();
    loop {
        let stage = &stages[idx];
        chain.push(stage.name.clone().unwrap_or_else(|| format!("stage-{idx}")));
        let ctx = Expander {
            env: &args,
            escape,
            line: stage.line,
            strict: true,
        };
        let base = ctx.expand(&stage.base)?;
        if base.is_empty() {
            return Err(DockerfileError::EmptyBase {
                line: stage.line,
                written: truncate_for_error(&stage.base),
            });
        }
        // Stage names are stored lowercase but looked up as written, as BuildKit's
        // `addState` does: `FROM Build` is the (invalid) image "Build", not stage "build".
        match named(&base) {
            Some(j) if j < idx => {
                idx = j;
                continue;
            }
            Some(j) if j > idx => {
                return Err(DockerfileError::ForwardStageReference {
                    line: stage.line,
                    name: truncate_for_error(&base),
                    defined_at: stages[j].line,
                })
            }
            // Its own name: the image (`FROM node AS node`), or not a stage at all.
            _ => {}
        }
        if base == "scratch" {
            return Ok(BaseImage::Scratch);
        }
        Reference::parse(&base).map_err(|source| DockerfileError::InvalidBase {
            line: stage.line,
            source,
        })?;
        let platform = match &stage.platform {
            None => None,
            Some(p) => match ctx.expand(p) {
                Ok(v) => Some(v),
                // The builder's own platform: the host knows it, we do not.
                Err(DockerfileError::PlatformArg { .. }) => Some(p.clone()),
                Err(e) => return Err(e),
            },
        };
        return Ok(BaseImage::Image {
            reference: base,
            platform,
            stage_chain: chain,
        });
    }
}
