//! Embeds the browser inspector (`web/`, and `web/pkg/` when `web/build.sh` has run) into the
//! binary for `ddiff server`'s `/ui/`. Without the wasm build the page still compiles and
//! `/ui/` explains how to build it, rather than silently missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod build_web;
use build_web::{built, watched, FILES};

const NOT_BUILT: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ddiff · bundle inspector (not built)</title></head>
<body style="font-family:system-ui,sans-serif;max-width:44em;margin:3em auto;line-height:1.5">
<h1>The bundle inspector was not built into this ddiff</h1>
<p>This binary was compiled before the page's WebAssembly existed. To include it, run</p>
<pre>web/build.sh
cargo build --release -p ddiff</pre>
<p>in the ddiff source tree (web/build.sh installs wasm-bindgen-cli 0.2.130 and the
wasm32-unknown-unknown target if needed). Until then, <code>ddiff verify BUNDLE</code> and
<code>ddiff inspect BUNDLE --files</code> give the same checks on the command line.</p>
</body></html>
"#;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let web = manifest.join("../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    for p in watched(&web) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let built = built(&web);
    let mut code = String::from("/// (path under /ui/, content type, bytes)\npub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    if built {
        for (f, ty) in FILES {
            let p = web.join(f).canonicalize().expect("checked above");
            writeln!(
                code,
                "    ({f:?}, {ty:?}, include_bytes!({:?})),",
                path_str(&p)
            )
            .expect("String");
        }
    } else {
        let notice = out.join("ui-not-built.html");
        std::fs::write(&notice, NOT_BUILT).expect("OUT_DIR is writable");
        writeln!(
            code,
            "    (\"index.html\", \"text/html; charset=utf-8\", include_bytes!({:?})),",
            path_str(&notice)
        )
        .expect("String");
    }
    code += "];\n";
    writeln!(
        code,
        "/// Whether the wasm inspector is embedded.\npub const BUILT: bool = {built};"
    )
    .expect("String");
    std::fs::write(out.join("ui_assets.rs"), code).expect("OUT_DIR is writable");
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("UTF-8 build paths").to_string()
}
