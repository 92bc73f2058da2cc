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

use std::collections::BTreeMap;

use crate::digest::truncate_for_error;
use crate::{Reference, ReferenceError};

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
    #[error("Dockerfile line {line}: base image: {source}")]
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

/// One logical instruction: keyword (lowercase), the rest of the line, its first line number.
#[derive(Debug)]
struct Instruction {
    line: usize,
    keyword: String,
    args: String,
}

/// Splits the Dockerfile into instructions, handling directives, comments, continuations and
/// heredocs. Returns the instructions and the escape character.
fn scan(src: &str) -> Result<(Vec<Instruction>, char), DockerfileError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines: Vec<&str> = src
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let escape = directives(&lines)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = i + 1;
        let t = lines[i].trim_start();
        i += 1;
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (text, mut more) = trim_continuation(t, escape);
        let mut text = text.to_string();
        while more && i < lines.len() {
            let next = lines[i];
            i += 1;
            let nt = next.trim_start();
            if nt.starts_with('#') || nt.is_empty() {
                continue;
            }
            let (piece, m) = trim_continuation(next, escape);
            text.push_str(piece);
            more = m;
        }
        let text = text.trim();
        let (keyword, args) = match text.find(char::is_whitespace) {
            Some(k) => (&text[..k], text[k..].trim_start()),
            None => (text, ""),
        };
        let keyword = keyword.to_ascii_lowercase();
        if matches!(keyword.as_str(), "run" | "copy" | "add") {
            for (name, chomp) in heredocs(args) {
                loop {
                    let Some(body) = lines.get(i) else {
                        return Err(DockerfileError::UnterminatedHeredoc {
                            line: first,
                            name: truncate_for_error(&name),
                        });
                    };
                    i += 1;
                    let candidate = if chomp {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    if candidate == name {
                        break;
                    }
                }
            }
        }
        out.push(Instruction {
            line: first,
            keyword,
            args: args.to_string(),
        });
    }
    Ok((out, escape))
}

/// Reads the parser directives at the top; returns the escape character.
fn directives(lines: &[&str]) -> Result<char, DockerfileError> {
    let mut escape = '\\';
    let mut seen: Vec<String> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some((key, value)) = directive(line) else {
            break;
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            // An unknown directive is a comment, and ends the directives.
            break;
        }
        if seen.contains(&key) {
            return Err(DockerfileError::DuplicateDirective {
                line: n + 1,
                name: key,
            });
        }
        if key == "escape" {
            escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(DockerfileError::InvalidEscape {
                        line: n + 1,
                        value: truncate_for_error(value),
                    })
                }
            };
        }
        seen.push(key);
    }
    Ok(escape)
}

/// `# key=value` with `key ::= [a-zA-Z][a-zA-Z0-9]*` (BuildKit's directive regexp).
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let (key, value) = rest.split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric());
    let value = value.trim();
    (ok && !value.is_empty()).then_some((key, value))
}

/// Removes a trailing escape character (and spaces/tabs after it); says whether it was there.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(rest) => (rest, true),
        None => (line, false),
    }
}

/// Heredoc names on an instruction line: shell-like words of the form `[N]<<[-]WORD`,
/// with quotes around or inside WORD removed. Returns (terminator, strip leading tabs).
fn heredocs(args: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for word in raw_words(args, '\\') {
        let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(rest) = rest.strip_prefix("<<") else {
            continue;
        };
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if rest.contains('<') {
            continue;
        }
        let name: String = rest.chars().filter(|c| !matches!(c, '"' | '\'')).collect();
        if !name.is_empty() {
            out.push((name, chomp));
        }
    }
    out
}

/// Splits on whitespace outside quotes, keeping quotes and escapes as written.
fn raw_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => {
                cur.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// A global ARG: its value (`None` = declared without one), or the error its default hit,
/// reported only if a resolved FROM uses it (BuildKit ignores errors in unused defaults).
type ArgValue = Result<Option<String>, DockerfileError>;

#[derive(Debug)]
struct Stage {
    line: usize,
    base: String,
    platform: Option<String>,
    name: Option<String>,
}

/// Reads the global ARGs (with build-arg overrides) and every stage's FROM.
fn collect(
    instructions: &[Instruction],
    escape: char,
    build_args: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, ArgValue>, Vec<Stage>), DockerfileError> {
    let mut env: BTreeMap<String, ArgValue> = BTreeMap::new();
    for name in PLATFORM_ARGS {
        if let Some(v) = build_args.get(name) {
            env.insert(name.to_string(), Ok(Some(v.clone())));
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for ins in instructions {
        match ins.keyword.as_str() {
            "from" => {
                let stage = parse_from(ins)?;
                if let Some(name) = &stage.name {
                    if let Some(prev) = stages.iter().find(|s| s.name.as_ref() == Some(name)) {
                        return Err(DockerfileError::DuplicateStageName {
                            line: ins.line,
                            name: name.clone(),
                            first: prev.line,
                        });
                    }
                }
                stages.push(stage);
            }
            "arg" if stages.is_empty() => {
                let words = raw_words(&ins.args, escape);
                if words.is_empty() {
                    return Err(DockerfileError::ArgSyntax {
                        line: ins.line,
                        reason: "ARG needs a name",
                    });
                }
                for word in words {
                    let (name, default) = match word.split_once('=') {
                        Some((n, v)) => (n, Some(v)),
                        None => (word.as_str(), None),
                    };
                    if name.is_empty() {
                        return Err(DockerfileError::ArgSyntax {
                            line: ins.line,
                            reason: "ARG name is empty",
                        });
                    }
                    let value = match (build_args.get(name), default) {
                        (Some(v), _) => Ok(Some(v.clone())),
                        (None, None) => Ok(None),
                        (None, Some(d)) => Expander {
                            env: &env,
                            escape,
                            line: ins.line,
                            strict: false,
                        }
                        .expand(d)
                        .map(Some),
                    };
                    env.insert(name.to_string(), value);
                }
            }
            _ if stages.is_empty() => {
                return Err(DockerfileError::InstructionBeforeFrom {
                    line: ins.line,
                    instruction: truncate_for_error(&ins.keyword.to_ascii_uppercase()),
                })
            }
            _ => {}
        }
    }
    Ok((env, stages))
}

fn parse_from(ins: &Instruction) -> Result<Stage, DockerfileError> {
    let line = ins.line;
    let syntax = |reason| DockerfileError::FromSyntax { line, reason };
    let mut words = ins.args.split_whitespace().peekable();
    let mut platform = None;
    while let Some(flag) = words.peek().and_then(|w| w.strip_prefix("--")) {
        words.next();
        if flag.is_empty() {
            break; // `--` ends the flags
        }
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        if name != "platform" {
            return Err(DockerfileError::UnknownFromFlag {
                line,
                flag: truncate_for_error(name),
            });
        }
        match value {
            Some(v) if !v.is_empty() => platform = Some(v.to_string()),
            _ => return Err(syntax("--platform needs a value (--platform=os/arch)")),
        }
    }
    let rest: Vec<&str> = words.collect();
    let (base, name) = match rest.as_slice() {
        [] => return Err(syntax("FROM needs an image")),
        [base] => (*base, None),
        [base, r#as, name] if r#as.eq_ignore_ascii_case("as") => (*base, Some(*name)),
        [_, _, _] => return Err(syntax("the word after the image must be AS")),
        _ => return Err(syntax("FROM takes one or three arguments")),
    };
    let name = match name {
        None => None,
        Some(n) => {
            let n = n.to_ascii_lowercase();
            let mut chars = n.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                });
            if !ok {
                return Err(DockerfileError::InvalidStageName {
                    line,
                    name: truncate_for_error(&n),
                });
            }
            Some(n)
        }
    };
    Ok(Stage {
        line,
        base: base.to_string(),
        platform,
        name,
    })
}

/// Shell-style word expansion as BuildKit's `shell.Lex.ProcessWord` does it for FROM.
struct Expander<'a> {
    env: &'a BTreeMap<String, ArgValue>,
    escape: char,
    line: usize,
    /// FROM: unset variables are errors. ARG defaults: they expand to "" (BuildKit).
    strict: bool,
}

/// What a variable looks up to.
enum Lookup {
    Set(String),
    Unset,
}

impl Expander<'_> {
    fn expand(&self, word: &str) -> Result<String, DockerfileError> {
        let chars: Vec<char> = word.chars().collect();
        let mut pos = 0;
        let out = self.process(word, &chars, &mut pos, None)?;
        Ok(out)
    }

    fn bad(&self, word: &str, reason: &'static str) -> DockerfileError {
        DockerfileError::BadSubstitution {
            line: self.line,
            word: truncate_for_error(word),
            reason,
        }
    }

    /// Processes until the end, or until an unquoted `stop` character (consumed).
    fn process(
        &self,
        word: &str,
        c: &[char],
        pos: &mut usize,
        stop: Option<char>,
    ) -> Result<String, DockerfileError> {
        let mut out = String::new();
        while *pos < c.len() {
            let ch = c[*pos];
            if Some(ch) == stop {
                *pos += 1;
                return Ok(out);
            }
            *pos += 1;
            match ch {
                '\'' => loop {
                    let Some(&q) = c.get(*pos) else {
                        return Err(self.bad(word, "unterminated single quote"));
                    };
                    *pos += 1;
                    if q == '\'' {
                        break;
                    }
                    out.push(q);
                },
                '"' => loop {
                    let Some(&q) = c.get(*pos) else {
                        return Err(self.bad(word, "unterminated double quote"));
                    };
                    *pos += 1;
                    match q {
                        '"' => break,
                        '$' => out.push_str(&self.dollar(word, c, pos)?),
                        q if q == self.escape => match c.get(*pos) {
                            Some(&n) if n == '"' || n == '$' || n == self.escape => {
                                *pos += 1;
                                out.push(n);
                            }
                            _ => out.push(q),
                        },
                        q => out.push(q),
                    }
                },
                '$' => out.push_str(&self.dollar(word, c, pos)?),
                e if e == self.escape => match c.get(*pos) {
                    Some(&n) => {
                        *pos += 1;
                        out.push(n);
                    }
                    None => out.push(e),
                },
                other => out.push(other),
            }
        }
        if stop.is_some() {
            return Err(self.bad(word, "missing '}'"));
        }
        Ok(out)
    }

    fn lookup(&self, name: &str) -> Result<Lookup, DockerfileError> {
        match self.env.get(name) {
            Some(Ok(Some(v))) => Ok(Lookup::Set(v.clone())),
            Some(Ok(None)) | None => Ok(Lookup::Unset),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    /// The error for a plain `$NAME` that has no value, or "" in lenient mode.
    fn unset(&self, name: &str) -> Result<String, DockerfileError> {
        if !self.strict {
            return Ok(String::new());
        }
        let line = self.line;
        let name_s = name.to_string();
        Err(match self.env.get(name) {
            Some(_) => DockerfileError::UnsetArg { line, name: name_s },
            None if PLATFORM_ARGS.contains(&name) => {
                DockerfileError::PlatformArg { line, name: name_s }
            }
            None => DockerfileError::UndeclaredArg { line, name: name_s },
        })
    }

    /// After a `$`: `{…}`, a name, or a literal `$`.
    fn dollar(&self, word: &str, c: &[char], pos: &mut usize) -> Result<String, DockerfileError> {
        let is_name = |ch: char| ch.is_ascii_alphanumeric() || ch == '_';
        if c.get(*pos) != Some(&'{') {
            let start = *pos;
            while *pos < c.len() && is_name(c[*pos]) {
                *pos += 1;
            }
            if start == *pos {
                return Ok("$".to_string());
            }
            let name: String = c[start..*pos].iter().collect();
            return match self.lookup(&name)? {
                Lookup::Set(v) => Ok(v),
                Lookup::Unset => self.unset(&name),
            };
        }
        *pos += 1;
        let start = *pos;
        while *pos < c.len() && is_name(c[*pos]) {
            *pos += 1;
        }
        let name: String = c[start..*pos].iter().collect();
        if name.is_empty() {
            return Err(self.bad(word, "empty variable name in ${}"));
        }
        let Some(&next) = c.get(*pos) else {
            return Err(self.bad(word, "missing '}'"));
        };
        *pos += 1;
        if next == '}' {
            return match self.lookup(&name)? {
                Lookup::Set(v) => Ok(v),
                Lookup::Unset => self.unset(&name),
            };
        }
        let colon = next == ':';
        let op = if colon {
            let op = c.get(*pos).copied();
            *pos += 1;
            op
        } else {
            Some(next)
        };
        if !matches!(op, Some('-' | '+' | '?')) {
            return Err(self.bad(
                word,
                "unsupported modifier; use ${VAR:-default}, ${VAR:+alt} or ${VAR:?message}",
            ));
        }
        let alt = self.process(word, c, pos, Some('}'))?;
        let value = match self.lookup(&name)? {
            Lookup::Set(v) if colon && v.is_empty() => None,
            Lookup::Set(v) => Some(v),
            Lookup::Unset => None,
        };
        Ok(match (op, value) {
            (Some('-'), Some(v)) => v,
            (Some('-'), None) => alt,
            (Some('+'), Some(_)) => alt,
            (Some('+'), None) => String::new(),
            (_, Some(v)) => v,
            (_, None) => {
                return Err(DockerfileError::RequiredArg {
                    line: self.line,
                    name,
                    message: if alt.is_empty() {
                        "is required".to_string()
                    } else {
                        truncate_for_error(&alt)
                    },
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn image(reference: &str, platform: Option<&str>, chain: &[&str]) -> BaseImage {
        BaseImage::Image {
            reference: reference.to_string(),
            platform: platform.map(str::to_string),
            stage_chain: chain.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn opts(target: Option<&str>, args: &[(&str, &str)]) -> ResolveOptions {
        ResolveOptions {
            target: target.map(str::to_string),
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn resolves_valid_table() {
        let none = opts(None, &[]);
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, ResolveOptions, BaseImage)> = vec![
            ("simple", "FROM alpine:3.19\nRUN true\n", none.clone(),
             image("alpine:3.19", None, &["stage-0"])),
            ("lowercase instruction, leading space, CRLF, BOM",
             "\u{feff}  from   alpine\r\n\tcmd [\"sh\"]\r\n", none.clone(),
             image("alpine", None, &["stage-0"])),
            ("final stage of several", "FROM a AS one\nFROM b AS two\nFROM c\n", none.clone(),
             image("c", None, &["stage-2"])),
            ("chain through earlier stages",
             "FROM golang:1.22 AS build\nRUN go build\nFROM build AS test\nFROM test\n", none.clone(),
             image("golang:1.22", None, &["stage-2", "test", "build"])),
            ("target, case-insensitive, AS case-insensitive",
             "FROM golang AS Build\nFROM alpine AS release\n", opts(Some("BUILD"), &[]),
             image("golang", None, &["build"])),
            ("AS names are lowercased",
             "FROM busybox as Base\nFROM base\n", none.clone(),
             image("busybox", None, &["stage-1", "base"])),
            ("own name is the image", "FROM node AS node\nRUN npm i\n", none.clone(),
             image("node", None, &["node"])),
            ("ARG default", "ARG TAG=3.19\nFROM alpine:$TAG\n", none.clone(),
             image("alpine:3.19", None, &["stage-0"])),
            ("build arg overrides default", "ARG TAG=3.19\nFROM alpine:${TAG}\n", opts(None, &[("TAG", "3.20")]),
             image("alpine:3.20", None, &["stage-0"])),
            ("build arg gives a value", "ARG IMG\nFROM ${IMG}\n", opts(None, &[("IMG", "debian:12")]),
             image("debian:12", None, &["stage-0"])),
            ("several ARGs on one line, quoted, using earlier ones",
             "ARG REG=\"registry.example.com\" REPO=team/app\nARG FULL=${REG}/${REPO}\nFROM $FULL:1\n", none.clone(),
             image("registry.example.com/team/app:1", None, &["stage-0"])),
            (":- default when unset", "ARG V\nFROM alpine:${V:-3.18}\n", none.clone(),
             image("alpine:3.18", None, &["stage-0"])),
            (":- default when empty", "ARG V=\nFROM alpine:${V:-3.18}\n", none.clone(),
             image("alpine:3.18", None, &["stage-0"])),
            ("- keeps empty", "ARG S=\nFROM alpine${S-:x}\n", none.clone(),
             image("alpine", None, &["stage-0"])),
            (":- default undeclared, nested", "ARG D=3.17\nFROM alpine:${V:-$D}\n", none.clone(),
             image("alpine:3.17", None, &["stage-0"])),
            (":+ alternative when set", "ARG DEBUG=1\nFROM alpine${DEBUG:+:edge}\n", none.clone(),
             image("alpine:edge", None, &["stage-0"])),
            (":+ nothing when unset", "ARG DEBUG\nFROM alpine${DEBUG:+:edge}\n", none.clone(),
             image("alpine", None, &["stage-0"])),
            ("platform flag kept, not the image",
             "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nFROM build\n", none.clone(),
             image("golang:1.22", Some("$BUILDPLATFORM"), &["stage-1", "build"])),
            ("platform flag substituted",
             "FROM --platform=${BUILDPLATFORM} golang\n", opts(None, &[("BUILDPLATFORM", "linux/amd64")]),
             image("golang", Some("linux/amd64"), &["stage-0"])),
            ("platform from ARG", "ARG P=linux/arm64\nFROM --platform=$P alpine\n", none.clone(),
             image("alpine", Some("linux/arm64"), &["stage-0"])),
            ("platform of the stage naming the image",
             "FROM --platform=linux/arm64 alpine AS a\nFROM --platform=linux/amd64 a\n", none.clone(),
             image("alpine", Some("linux/arm64"), &["stage-1", "a"])),
            ("TARGETARCH from build args", "FROM ${TARGETARCH}/alpine\n", opts(None, &[("TARGETARCH", "arm64v8")]),
             image("arm64v8/alpine", None, &["stage-0"])),
            ("comments, also between continuation lines",
             "# a comment\nFROM \\\n  # not an argument\n  alpine \\\n\n  AS x\n", none.clone(),
             image("alpine", None, &["x"])),
            ("continuation with trailing spaces", "FROM alpine \\  \n AS x\n", none.clone(),
             image("alpine", None, &["x"])),
            ("directives and backtick escape",
             "# syntax=docker/dockerfile:1\n# escape=`\nFROM mcr.microsoft.com/windows/nanoserver:ltsc2022 `\n  AS w\nRUN dir C:\\ `\n  && echo\n", none.clone(),
             image("mcr.microsoft.com/windows/nanoserver:ltsc2022", None, &["w"])),
            ("directive names and spacing are loose", "#  ESCAPE = ` \nFROM alpine`\n AS x\n", none.clone(),
             image("alpine", None, &["x"])),
            ("escape directive after a comment is just a comment",
             "# hello\n# escape=`\nFROM alpine \\\n  AS x\n", none.clone(),
             image("alpine", None, &["x"])),
            ("heredoc body is not parsed",
             "FROM alpine AS a\nRUN <<EOF\nFROM evil\nEOF\nFROM a\n", none.clone(),
             image("alpine", None, &["stage-1", "a"])),
            ("two heredocs, <<- and quotes",
             "FROM alpine\nCOPY <<-\"ONE\" 2<<'TWO' /dst/\n\tFROM x\n\tONE\nFROM y\nTWO\n", none.clone(),
             image("alpine", None, &["stage-0"])),
            ("heredoc after continuation",
             "FROM alpine\nRUN set -e; \\\n  cat <<EOF > /f\nFROM x\nEOF\n", none.clone(),
             image("alpine", None, &["stage-0"])),
            ("quoted <<EOF is not a heredoc", "FROM busybox\nRUN echo '<<EOF'\nFROM alpine\n", none.clone(),
             image("alpine", None, &["stage-1"])),
            ("quotes in FROM", "ARG V=1\nFROM \"alpine:$V\"\n", none.clone(),
             image("alpine:1", None, &["stage-0"])),
            ("escape removed outside quotes", "FROM alp\\ine\n", none.clone(),
             image("alpine", None, &["stage-0"])),
            ("unused stage's ARG problems do not matter",
             "ARG REL\nFROM alpine AS test\nFROM $REL AS release\n", opts(Some("test"), &[]),
             image("alpine", None, &["test"])),
            ("ARG after FROM is not global", "FROM alpine\nARG X=1\n", none.clone(),
             image("alpine", None, &["stage-0"])),
            ("digest reference", "FROM alpine@sha256:0123456789012345678901234567890123456789012345678901234567890123\n", none.clone(),
             image("alpine@sha256:0123456789012345678901234567890123456789012345678901234567890123", None, &["stage-0"])),
            ("scratch", "FROM scratch\nCOPY app /\n", none.clone(), BaseImage::Scratch),
            ("scratch via stage", "FROM scratch AS base\nFROM base\n", none.clone(), BaseImage::Scratch),
            ("scratch via ARG", "ARG B=scratch\nFROM $B\n", none.clone(), BaseImage::Scratch),
            ("continuation at end of file", "FROM alpine \\", none.clone(),
             image("alpine", None, &["stage-0"])),
        ];
        for (what, df, o, want) in cases {
            let got = resolve_base(df, &o).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn rejects_invalid_table() {
        let none = opts(None, &[]);
        #[rustfmt::skip]
        let cases: Vec<(&str, ResolveOptions, &str)> = vec![
            ("", none.clone(), "no-from"),
            ("# only\n\n", none.clone(), "no-from"),
            ("ARG X=1\n", none.clone(), "no-from"),
            ("RUN <<EOF\nFROM alpine\nEOF\n", none.clone(), "before-from"),
            ("RUN true\nFROM alpine\n", none.clone(), "before-from"),
            ("FROM alpine AS a\n", opts(Some("b"), &[]), "target"),
            ("ARG V\nFROM alpine:$V\n", none.clone(), "unset"),
            ("ARG V\nFROM alpine:${V}\n", none.clone(), "unset"),
            ("FROM alpine:$V\n", opts(None, &[("V", "1")]), "undeclared"),
            ("FROM $TARGETARCH/alpine\n", none.clone(), "platform-arg"),
            ("ARG V\nFROM alpine:${V:?required}\n", none.clone(), "required"),
            ("ARG V=\nFROM alpine:${V:?}\n", none.clone(), "required"),
            ("FROM alpine:${V\n", none.clone(), "substitution"),
            ("FROM alpine:${V/x/y}\n", none.clone(), "substitution"),
            ("FROM alpine:${}\n", none.clone(), "substitution"),
            ("FROM 'alpine\n", none.clone(), "substitution"),
            ("ARG A='x\nFROM $A\n", none.clone(), "substitution"),
            ("FROM\n", none.clone(), "from-syntax"),
            ("FROM a b\n", none.clone(), "from-syntax"),
            ("FROM a b c\n", none.clone(), "from-syntax"),
            ("FROM a AS b c\n", none.clone(), "from-syntax"),
            ("FROM --platform alpine\n", none.clone(), "from-syntax"),
            ("FROM --platform= alpine\n", none.clone(), "from-syntax"),
            ("FROM --pull=always alpine\n", none.clone(), "from-flag"),
            ("ARG\nFROM a\n", none.clone(), "arg-syntax"),
            ("ARG =1\nFROM a\n", none.clone(), "arg-syntax"),
            ("ARG E=\nFROM $E\n", none.clone(), "empty"),
            ("FROM Alpine\n", none.clone(), "invalid-base"),
            ("FROM alpine:-x\n", none.clone(), "invalid-base"),
            ("FROM SCRATCH\n", none.clone(), "invalid-base"),
            // BuildKit looks FROM names up as written, so this is the image "BASE".
            ("FROM busybox AS base\nFROM BASE\n", none.clone(), "invalid-base"),
            ("FROM later AS first\nFROM alpine AS later\nFROM first\n", none.clone(), "forward"),
            ("FROM a AS 1st\n", none.clone(), "stage-name"),
            ("FROM a AS my$name\n", none.clone(), "stage-name"),
            ("FROM a AS x\nFROM b AS X\n", none.clone(), "duplicate-stage"),
            ("# escape=x\nFROM a\n", none.clone(), "escape"),
            ("# escape=`\n# escape=\\\nFROM a\n", none.clone(), "duplicate-directive"),
            ("# syntax=a\n# SYNTAX=b\nFROM a\n", none.clone(), "duplicate-directive"),
            ("FROM a\nRUN <<EOF\nFROM b\n", none.clone(), "heredoc"),
            ("FROM a\nRUN <<-EOF\n  EOF\n", none.clone(), "heredoc"),
        ];
        for (df, o, kind) in cases {
            let err = resolve_base(df, &o).unwrap_err();
            let ok = matches!(
                (&err, kind),
                (DockerfileError::NoFrom, "no-from")
                    | (DockerfileError::InstructionBeforeFrom { .. }, "before-from")
                    | (DockerfileError::UnknownTarget { .. }, "target")
                    | (DockerfileError::UnsetArg { .. }, "unset")
                    | (DockerfileError::UndeclaredArg { .. }, "undeclared")
                    | (DockerfileError::PlatformArg { .. }, "platform-arg")
                    | (DockerfileError::RequiredArg { .. }, "required")
                    | (DockerfileError::BadSubstitution { .. }, "substitution")
                    | (DockerfileError::FromSyntax { .. }, "from-syntax")
                    | (DockerfileError::UnknownFromFlag { .. }, "from-flag")
                    | (DockerfileError::ArgSyntax { .. }, "arg-syntax")
                    | (DockerfileError::EmptyBase { .. }, "empty")
                    | (DockerfileError::InvalidBase { .. }, "invalid-base")
                    | (DockerfileError::ForwardStageReference { .. }, "forward")
                    | (DockerfileError::InvalidStageName { .. }, "stage-name")
                    | (
                        DockerfileError::DuplicateStageName { .. },
                        "duplicate-stage"
                    )
                    | (DockerfileError::InvalidEscape { .. }, "escape")
                    | (
                        DockerfileError::DuplicateDirective { .. },
                        "duplicate-directive"
                    )
                    | (DockerfileError::UnterminatedHeredoc { .. }, "heredoc")
            );
            assert!(ok, "{df:?}: expected {kind}, got {err:?}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
    }

    #[test]
    fn error_messages_say_what_and_where() {
        let e = resolve_base(
            "FROM a AS build\nFROM b AS test\n",
            &opts(Some("prod"), &[]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "target stage \"prod\" not found; stages: build, test"
        );
        let e = resolve_base("ARG BASE\n\nFROM $BASE\n", &opts(None, &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Dockerfile line 3: ARG BASE is used in FROM but has no value; give it a default or pass --build-arg BASE=VALUE"
        );
        let e =
            resolve_base("FROM b AS a\nFROM a\nFROM c AS b\n", &opts(Some("a"), &[])).unwrap_err();
        assert_eq!(
            e,
            DockerfileError::ForwardStageReference {
                line: 1,
                name: "b".into(),
                defined_at: 3
            }
        );
        let e = resolve_base("FROM a\nRUN x\n", &opts(Some("a"), &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "target stage \"a\" not found; stages: none are named"
        );
    }
}
