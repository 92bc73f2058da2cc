//! Text from untrusted input, made safe to show to a person.
//!
//! References, tool names, dates, media types, platform names, file paths inside layers and
//! the error messages that quote them all come from bundles (or registries, or side files)
//! that may have been crafted. Printed as they are, an escape sequence rewrites the terminal,
//! a newline starts a line that looks like ddiff's own (`ok  app.ddiff: intact …`), a bidi
//! override shows text in another order than it is stored, and a 100 KB string fills the
//! screen. Every host prints such text through [`safe_text`] (or [`Safe`]): the CLI's human
//! output and error line, and the page's text (through `host-wasm`).
//!
//! - C0 controls, DEL and C1 controls become visible escapes: `\n`, `\r`, `\t`, `\0`,
//!   `\x1b`, `\x7f`, `\u{9b}`.
//! - Bidi controls (U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069) and the line and
//!   paragraph separators (U+2028, U+2029) become `\u{202e}` etc.
//! - Everything else is kept as it is, backslashes included, so ordinary text (and a
//!   Dockerfile step with `\` in it) reads as before. The output is for reading, not for
//!   parsing back: `--json` gives the exact strings.
//! - The result is at most [`MAX_DISPLAY_BYTES`] bytes plus a marker: a longer text keeps its
//!   beginning and its end (where an error message says why) around
//!   `…(N bytes not shown)…`, N counting bytes of the input.
//!
//! Machine-readable output stays exact: [`json_pretty`] is `serde_json::to_string_pretty`
//! that also writes DEL, C1 controls, bidi controls and line separators as `\u` escapes
//! (JSON itself only requires escaping C0), so `--json` on a terminal is safe too and parses
//! to the very same strings.
//!
//! The same module holds the other text ddiff shows people, written once for every host:
//! [`error_chain`] (an error and its causes on one line), [`human_bytes`] (`1.5 MB`),
//! [`short_media_type`] (`tar+gzip`), [`file_mode`] (`-rwxr-xr-x`) and [`file_line`] (one line
//! of `ddiff inspect --files`). The CLI prints them; the page gets them in the JSON the wasm
//! facade returns ([`crate::inspect::shown`]) and from the facade's `humanBytes`.
//!
//! ```
//! use ddiff_core::display::{safe_text, safe_text_max};
//! assert_eq!(safe_text("app:1\n ok forged\x1b[2K"), r"app:1\n ok forged\x1b[2K");
//! assert_eq!(safe_text("\u{202e}txt.exe"), r"\u{202e}txt.exe");
//! assert_eq!(safe_text_max(&"a".repeat(100), 8), "aaaaaa…(92 bytes not shown)…aa");
//! ```

use std::{error::Error, fmt, io};

use serde_json::ser::{Formatter, PrettyFormatter};

use crate::layer_files::{FileEntry, FileKind};

/// The longest text [`safe_text`] returns, in bytes, not counting the elision marker. Real
/// references and paths are far shorter; a long `RUN` step of a few KiB still fits.
pub const MAX_DISPLAY_BYTES: usize = 4096;

/// `s` with control characters, bidi controls and line separators escaped, capped at
/// [`MAX_DISPLAY_BYTES`]: one line that shows what `s` holds.
pub fn safe_text(s: &str) -> String {
    safe_text_max(s, MAX_DISPLAY_BYTES)
}

/// [`safe_text`] with another cap (bytes of escaped text kept, the marker not counted).
pub fn safe_text_max(s: &str, max: usize) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_safe(&mut out, s, max);
    out
}

/// Formats as [`safe_text`] without allocating: `format!("loaded {}", Safe(&r))`.
#[derive(Clone, Copy, Debug)]
pub struct Safe<'a>(pub &'a str);

impl fmt::Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_safe(f, self.0, MAX_DISPLAY_BYTES)
    }
}

/// An error and its causes on one line, outermost first, joined by `": "`: what every host
/// shows for an error (the CLI's `ddiff: error: …` line, a problem's message on the page).
///
/// The convention it relies on, kept by every ddiff error: a message says only its own part
/// and leaves its cause to [`Error::source`], so the walk repeats nothing.
///
/// ```
/// use ddiff_core::{display::error_chain, ImageRef};
/// let e = ImageRef::parse("app@sha256:xyz").unwrap_err();
/// assert_eq!(
///     error_chain(&e),
///     "invalid image reference \"app@sha256:xyz\": digest \"sha256:xyz\": sha256 needs 64 hex \
///      characters, found 3"
/// );
/// ```
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

/// A byte count as people read it, in powers of 1000: `999 B`, `1.5 MB`, `15.0 GB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A media type without the prefix every layer type shares: `tar+gzip` for an OCI layer,
/// `docker tar.gzip` for a Docker one, any other type without `application/vnd.`
/// (`oci.image.index.v1+json`). As written in the bundle: show it through [`Safe`].
pub fn short_media_type(media_type: &str) -> std::borrow::Cow<'_, str> {
    if let Some(r) = media_type.strip_prefix("application/vnd.oci.image.layer.v1.") {
        return r.into();
    }
    if let Some(r) = media_type.strip_prefix("application/vnd.docker.image.rootfs.") {
        return format!("docker {r}").into();
    }
    media_type
        .strip_prefix("application/vnd.")
        .unwrap_or(media_type)
        .into()
}

/// A layer entry's kind and permission bits as `ls -l` shows them: `drwxr-xr-x`,
/// `-rw-r--r--`, `lrwxrwxrwx`; `h` for a hard link, `c` for a device or FIFO, `D` for a
/// deletion.
pub fn file_mode(f: &FileEntry) -> String {
    let t = match f.kind {
        FileKind::Dir | FileKind::OpaqueDir => 'd',
        FileKind::Symlink => 'l',
        FileKind::Hardlink => 'h',
        FileKind::Device => 'c',
        FileKind::Whiteout => 'D',
        FileKind::File | FileKind::Other => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (f.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// One line of a layer's file list (`ddiff inspect --files`): mode, size, path, link target;
/// deletions and opaque directories said in words. Paths and link targets come from the
/// layer's tar: escaped and capped, so a name holding a newline cannot add a line.
pub fn file_line(f: &FileEntry) -> String {
    let path = Safe(&f.path);
    match f.kind {
        FileKind::Whiteout => format!("  {:<10} {:>10}  {path}  (deleted)", "deletion", ""),
        FileKind::OpaqueDir => format!(
            "  {:<10} {:>10}  {path}/  (opaque: lower layers' content hidden)",
            "opaque", ""
        ),
        _ => {
            let size = if f.kind == FileKind::File {
                human_bytes(f.size)
            } else {
                String::new()
            };
            let mut s = format!("  {} {size:>10}  {path}", file_mode(f));
            if f.kind == FileKind::Dir {
                s.push('/');
            }
            match (f.kind, &f.link) {
                (FileKind::Symlink, Some(l)) => s += &format!(" -> {}", Safe(l)),
                (FileKind::Hardlink, Some(l)) => s += &format!(" link to {}", Safe(l)),
                _ => {}
            }
            s
        }
    }
}

/// Replaces every string in a JSON value (object keys included) by its [`safe_text`], for a
/// display that walks a structure of untrusted strings (the page's view of an inspection).
pub fn safe_json_strings(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if needs_work(s, MAX_DISPLAY_BYTES) {
                *s = safe_text(s);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(safe_json_strings),
        Value::Object(o) => {
            if o.keys().any(|k| needs_work(k, MAX_DISPLAY_BYTES)) {
                let old = std::mem::take(o);
                for (k, mut val) in old {
                    safe_json_strings(&mut val);
                    o.insert(safe_text(&k), val);
                }
            } else {
                o.values_mut().for_each(safe_json_strings);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `serde_json::to_string_pretty(value)`, with every character [`safe_text`] would escape
/// written as a JSON `\uXXXX` escape: the same document, safe on a terminal.
pub fn json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(128);
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, SafeJson(PrettyFormatter::new()));
    value.serialize(&mut ser)?;
    // The serializer writes `&str`s and ASCII escapes only.
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// serde_json's pretty formatter, escaping what a terminal would act on inside strings.
struct SafeJson<'a>(PrettyFormatter<'a>);

impl Formatter for SafeJson<'_> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                // All of them are in the BMP: one \uXXXX each.
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Whether `c` is shown as an escape.
fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        | '\u{2028}' | '\u{2029}')
}

/// Bytes `c` takes once escaped.
fn shown_len(c: char) -> usize {
    if !is_unsafe(c) {
        return c.len_utf8();
    }
    match c {
        '\n' | '\r' | '\t' | '\0' => 2,
        '\u{1}'..='\u{1f}' | '\u{7f}' => 4, // \x1b
        // \u{9b}, \u{61c}, \u{202e}: `\u{` + hex digits + `}`
        _ => 4 + (32 - (c as u32).leading_zeros() as usize).div_ceil(4),
    }
}

fn write_char<W: fmt::Write>(out: &mut W, c: char) -> fmt::Result {
    if !is_unsafe(c) {
        return out.write_char(c);
    }
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        '\0' => out.write_str("\\0"),
        '\u{1}'..='\u{1f}' | '\u{7f}' => write!(out, "\\x{:02x}", c as u32),
        _ => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

fn needs_work(s: &str, max: usize) -> bool {
    s.len() > max || s.chars().any(is_unsafe)
}

/// Writes `s` escaped; when that is longer than `max`, its first three quarters of `max` and
/// its last quarter around the marker.
fn write_safe<W: fmt::Write>(out: &mut W, s: &str, max: usize) -> fmt::Result {
    if !needs_work(s, max) {
        return out.write_str(s);
    }
    let total: usize = s.chars().map(shown_len).sum();
    if total <= max {
        return s.chars().try_for_each(|c| write_char(out, c));
    }
    let head_budget = max - max / 4;
    let (mut head_end, mut used) = (0, 0);
    for (i, c) in s.char_indices() {
        if used + shown_len(c) > head_budget {
            break;
        }
        used += shown_len(c);
        head_end = i + c.len_utf8();
    }
    let tail_budget = max - used;
    let (mut tail_start, mut used) = (s.len(), 0);
    for (i, c) in s.char_indices().rev() {
        if i < head_end || used + shown_len(c) > tail_budget {
            break;
        }
        used += shown_len(c);
        tail_start = i;
    }
    s[..head_end].chars().try_for_each(|c| write_char(out, c))?;
    match tail_start - head_end {
        1 => out.write_str("…(1 byte not shown)…")?,
        n => write!(out, "…({n} bytes not shown)…")?,
    }
    s[tail_start..].chars().try_for_each(|c| write_char(out, c))
}

/// Why `inspect --files` lists no files for a layer that travels as a patch.
pub const PATCH_FILES_UNKNOWN: &str =
    "travels as a patch: its files are known once it is rebuilt at load";

/// What a layer that travels as a patch costs and saves, and how it is rebuilt:
/// `travels as a 367.1 kB patch against sha256:5e826a655b5c (saves 99.5% of 66.9 MB); rebuilt as ddiff gzip level 9`.
pub fn patch_note(p: &crate::delta::PatchInfo, layer_size: u64) -> String {
    let saved = if layer_size == 0 {
        0.0
    } else {
        100.0 * (1.0 - p.size as f64 / layer_size as f64)
    };
    format!(
        "travels as a {} patch against {} (saves {saved:.1}% of {}); rebuilt as {}",
        human_bytes(p.size),
        p.reference.diff_id.short(),
        human_bytes(layer_size),
        p.recipe.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_or_a_page_would_act_on() {
        for (input, shown) in [
            (
                "plain docker.io/library/app:1",
                "plain docker.io/library/app:1",
            ),
            ("esc \x1b[2K", r"esc \x1b[2K"),
            ("cr \r", r"cr \r"),
            ("lf \n ok  forged: intact", r"lf \n ok  forged: intact"),
            ("tab \t", r"tab \t"),
            ("nul \0", r"nul \0"),
            ("bel \x07 us \x1f", r"bel \x07 us \x1f"),
            ("del \x7f", r"del \x7f"),
            ("c1 csi \u{9b}2K nel \u{85}", r"c1 csi \u{9b}2K nel \u{85}"),
            ("rlo \u{202e}exe.txt", r"rlo \u{202e}exe.txt"),
            ("lri \u{2066} pdi \u{2069}", r"lri \u{2066} pdi \u{2069}"),
            (
                "alm \u{61c} lrm \u{200e} rlm \u{200f}",
                r"alm \u{61c} lrm \u{200e} rlm \u{200f}",
            ),
            ("ls \u{2028} ps \u{2029}", r"ls \u{2028} ps \u{2029}"),
            // Kept: backslashes, non-ASCII letters, emoji, the last C1 neighbour (NBSP).
            (r"RUN printf 'a\n'", r"RUN printf 'a\n'"),
            ("café/日本/🦀 \u{a0}", "café/日本/🦀 \u{a0}"),
        ] {
            assert_eq!(safe_text(input), shown, "{input:?}");
            assert_eq!(Safe(input).to_string(), shown, "{input:?}");
            assert!(!safe_text(input).contains(['\n', '\r', '\x1b', '\u{9b}', '\u{202e}']));
        }
    }

    #[test]
    fn caps_long_text_keeping_both_ends() {
        let long = format!("start{}end", "x".repeat(100_000));
        let shown = safe_text(&long);
        assert!(shown.len() < MAX_DISPLAY_BYTES + 40, "{}", shown.len());
        assert!(shown.starts_with("startxxx"), "{shown}");
        assert!(shown.ends_with("xxxend"), "{shown}");
        let (head, rest) = shown.split_once("…(").unwrap();
        let (hidden, tail) = rest.split_once(" bytes not shown)…").unwrap();
        assert_eq!(
            head.len() + hidden.parse::<usize>().unwrap() + tail.len(),
            long.len()
        );
        assert_eq!(head.len() + tail.len(), MAX_DISPLAY_BYTES);
        // Escapes count towards the cap: 100 KB of ESC is no longer than 100 KB of text.
        let esc = "\x1b".repeat(100_000);
        let shown = safe_text(&esc);
        assert!(shown.len() < MAX_DISPLAY_BYTES + 40, "{}", shown.len());
        assert!(!shown.contains('\x1b'));
        assert!(shown.starts_with(r"\x1b\x1b") && shown.ends_with(r"\x1b\x1b"));
        // Never a broken escape or char at either cut.
        for max in 0..40 {
            for s in ["\u{202e}é\n🦀abc\x1b", "a\u{2028}b", "日本語のテキスト"] {
                let shown = safe_text_max(s, max);
                let (head, rest) = shown.split_once('…').unwrap_or((&shown, ""));
                assert!(head.len() <= max, "{max} {shown}");
                assert!(!shown.contains(['\n', '\x1b', '\u{202e}', '\u{2028}']));
                if safe_text(s).len() <= max {
                    assert_eq!(shown, safe_text(s));
                } else {
                    assert!(rest.contains("not shown)…"), "{max} {shown}");
                }
            }
        }
        assert_eq!(safe_text_max("abcdef", 4), "abc…(2 bytes not shown)…f");
        assert_eq!(safe_text_max("abcdef", 0), "…(6 bytes not shown)…");
        assert_eq!(safe_text_max("a\nb", 3), r"a\n…(1 byte not shown)…");
    }

    #[test]
    fn json_output_is_exact_and_safe_on_a_terminal() {
        let v = serde_json::json!({
            "reference": "app:1\n ok forged\x1b[2K\u{9b}2J\u{7f}",
            "k\u{202e}": ["\u{2028}\u{2029}\u{61c}\u{200f}\u{2066}", "plain é 🦀 \\ \"q\"", 7, null],
            "empty": {},
            "none": [],
        });
        let text = json_pretty(&v).unwrap();
        assert!(!text.chars().any(|c| is_unsafe(c) && c != '\n'), "{text}");
        assert!(text.contains(r"\u009b2J\u007f"), "{text}");
        assert!(text.contains(r#""k\u202e": ["#), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        // Same layout as serde_json's pretty printer where nothing needs escaping.
        let plain = serde_json::json!({"a": [1, {"b": "c"}], "d": {}, "e": []});
        assert_eq!(
            json_pretty(&plain).unwrap(),
            serde_json::to_string_pretty(&plain).unwrap()
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(15_000_000_000), "15.0 GB");
        assert_eq!(human_bytes(u64::MAX), "18446.7 PB");
    }

    #[test]
    fn short_media_types() {
        for (full, short) in [
            ("application/vnd.oci.image.layer.v1.tar+gzip", "tar+gzip"),
            ("application/vnd.oci.image.layer.v1.tar", "tar"),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "docker diff.tar.gzip",
            ),
            (
                "application/vnd.oci.image.index.v1+json",
                "oci.image.index.v1+json",
            ),
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "docker.distribution.manifest.v2+json",
            ),
            ("application/octet-stream", "application/octet-stream"),
        ] {
            assert_eq!(short_media_type(full), short, "{full}");
        }
    }

    #[test]
    fn file_modes_and_lines() {
        let entry = |kind, mode, size, link: Option<&str>| FileEntry {
            path: "app/x".into(),
            kind,
            size,
            mode,
            link: link.map(str::to_string),
        };
        for (e, mode, line) in [
            (
                entry(FileKind::File, 0o755, 1_500_000, None),
                "-rwxr-xr-x",
                "  -rwxr-xr-x     1.5 MB  app/x",
            ),
            (
                entry(FileKind::Dir, 0o750, 0, None),
                "drwxr-x---",
                "  drwxr-x---             app/x/",
            ),
            (
                entry(FileKind::Symlink, 0o777, 0, Some("server\n")),
                "lrwxrwxrwx",
                "  lrwxrwxrwx             app/x -> server\\n",
            ),
            (
                entry(FileKind::Hardlink, 0o644, 0, Some("app/y")),
                "hrw-r--r--",
                "  hrw-r--r--             app/x link to app/y",
            ),
            (
                entry(FileKind::Device, 0o600, 0, None),
                "crw-------",
                "  crw-------             app/x",
            ),
            (
                entry(FileKind::Whiteout, 0, 0, None),
                "D---------",
                "  deletion               app/x  (deleted)",
            ),
            (
                entry(FileKind::OpaqueDir, 0o755, 0, None),
                "drwxr-xr-x",
                "  opaque                 app/x/  (opaque: lower layers' content hidden)",
            ),
        ] {
            assert_eq!(file_mode(&e), mode, "{e:?}");
            assert_eq!(file_line(&e), line, "{e:?}");
        }
        // A name that would start a line of its own is escaped.
        let mut e = entry(FileKind::File, 0o644, 1, None);
        e.path = "a\nok   forged".into();
        assert_eq!(file_line(&e), "  -rw-r--r--        1 B  a\\nok   forged");
    }

    #[test]
    fn json_strings_and_keys_are_made_safe_numbers_kept() {
        let mut v = serde_json::json!({
            "reference": "app:1\n ok forged\x1b[2K",
            "list": ["a\u{202e}b", 7, null, true],
            "nested": { "k\ny": "x".repeat(10_000) },
            "plain": "sha256:ab",
        });
        safe_json_strings(&mut v);
        assert_eq!(v["reference"], r"app:1\n ok forged\x1b[2K");
        assert_eq!(v["list"], serde_json::json!([r"a\u{202e}b", 7, null, true]));
        let long = v["nested"][r"k\ny"].as_str().unwrap();
        assert!(long.len() < MAX_DISPLAY_BYTES + 40);
        assert_eq!(v["plain"], "sha256:ab");
    }
}
