//! The Dockerfile as instructions: parser directives, comments, continuation lines and
//! heredoc bodies handled as BuildKit's parser does (see the [module docs](super)).

use super::DockerfileError;
use crate::digest::truncate_for_error;

/// One logical instruction: keyword (lowercase), the rest of the line, its first line number.
#[derive(Debug)]
pub(super) struct Instruction {
    pub(super) line: usize,
    pub(super) keyword: String,
    pub(super) args: String,
}

/// Splits the Dockerfile into instructions, handling directives, comments, continuations and
/// heredocs. Returns the instructions and the escape character.
pub(super) fn scan(src: &str) -> Result<(Vec<Instruction>, char), DockerfileError> {
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
pub(super) fn raw_words(s: &str, escape: char) -> Vec<String> {
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
