//! Shell-style substitution of ARGs in FROM lines and ARG defaults.

use std::collections::BTreeMap;

use super::{DockerfileError, PLATFORM_ARGS};
use crate::digest::truncate_for_error;

/// A global ARG: its value (`None` = declared without one), or the error its default hit,
/// reported only if a resolved FROM uses it (BuildKit ignores errors in unused defaults).
pub(super) type ArgValue = Result<Option<String>, DockerfileError>;

/// Shell-style word expansion as BuildKit's `shell.Lex.ProcessWord` does it for FROM.
pub(super) struct Expander<'a> {
    pub(super) env: &'a BTreeMap<String, ArgValue>,
    pub(super) escape: char,
    pub(super) line: usize,
    /// FROM: unset variables are errors. ARG defaults: they expand to "" (BuildKit).
    pub(super) strict: bool,
}

/// What a variable looks up to.
enum Lookup {
    Set(String),
    Unset,
}

impl Expander<'_> {
    pub(super) fn expand(&self, word: &str) -> Result<String, DockerfileError> {
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
