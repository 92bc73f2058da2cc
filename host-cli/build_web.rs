//! What `build.rs` embeds from `web/` and which paths it asks cargo to watch. A build
//! script's own tests never run, so `src/ui.rs` includes this file (`#[path]`) to test it.

use std::path::{Path, PathBuf};

/// The page's files under `web/`, with their content types. The last two exist only once
/// `web/build.sh` has run.
pub const FILES: &[(&str, &str)] = &[
    ("index.html", "text/html; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("worker.js", "text/javascript; charset=utf-8"),
    ("reader.js", "text/javascript; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("pkg/ddiff_wasm.js", "text/javascript; charset=utf-8"),
    ("pkg/ddiff_wasm_bg.wasm", "application/wasm"),
];

/// Whether every file of the page is there (the wasm included).
pub fn built(web: &Path) -> bool {
    FILES.iter().all(|(f, _)| web.join(f).is_file())
}

/// The paths for `cargo:rerun-if-changed`: the `web` directory alone. Cargo takes the newest
/// mtime of everything under a directory (the directories themselves included), so editing
/// a page file, running `web/build.sh` (which creates `web/pkg/`) or deleting `web/pkg/`
/// re-runs the script, and an unchanged tree is fresh. A path that does not exist (such as
/// `web/pkg/ddiff_wasm.js` before the page is built) is stale to cargo forever: the script,
/// and with it the whole `ddiff` crate, would be rebuilt on every `cargo build`.
pub fn watched(web: &Path) -> Vec<PathBuf> {
    vec![web.to_path_buf()]
}
