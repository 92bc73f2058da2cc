//! The global ARGs and each stage's FROM, read from the instructions.

use std::collections::BTreeMap;

use super::expand::{ArgValue, Expander};
use super::lexer::{raw_words, Instruction};
use super::{DockerfileError, PLATFORM_ARGS};
use crate::digest::truncate_for_error;

#[derive(Debug)]
pub(super) struct Stage {
    pub(super) line: usize,
    pub(super) base: String,
    pub(super) platform: Option<String>,
    pub(super) name: Option<String>,
}

/// Reads the global ARGs (with build-arg overrides) and every stage's FROM.
pub(super) fn collect(
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
