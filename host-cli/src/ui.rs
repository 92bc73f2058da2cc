//! `/ui/`: the browser bundle inspector, served from assets built into the binary (see
//! `build.rs`), so the offline side has it without extra files. The page verifies bundles
//! locally in the browser; nothing is uploaded to this server.
//!
//! Merge into a server with `router.merge(crate::ui::router())`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

pub use assets::BUILT;

/// `build.rs`'s choice of files and watched paths, tested below.
#[cfg(test)]
#[path = "../build_web.rs"]
mod build_web;

/// Routes `/ui`, `/ui/` and `/ui/{file}`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { asset("index.html") }))
        .route(
            "/ui/{*path}",
            get(|Path(p): Path<String>| async move { asset(&p) }),
        )
}

fn asset(path: &str) -> Response {
    let Some((_, ty, bytes)) = assets::ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return (
            StatusCode::NOT_FOUND,
            "no such file in the bundle inspector\n",
        )
            .into_response();
    };
    let mut r = (*bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; \
             style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str) -> (StatusCode, String, Vec<u8>) {
        let r = router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let ty = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let status = r.status();
        (
            status,
            ty,
            r.into_body().collect().await.unwrap().to_bytes().to_vec(),
        )
    }

    #[tokio::test]
    async fn serves_the_page_or_says_how_to_build_it() {
        let (s, ty, body) = get("/ui/").await;
        assert_eq!(s, StatusCode::OK);
        assert!(ty.starts_with("text/html"));
        let text = String::from_utf8(body).unwrap();
        if BUILT {
            assert!(text.contains("bundle inspector"));
            let (s, ty, wasm) = get("/ui/pkg/ddiff_wasm_bg.wasm").await;
            assert_eq!((s, ty.as_str()), (StatusCode::OK, "application/wasm"));
            assert_eq!(&wasm[..4], b"\0asm");
            assert_eq!(get("/ui/worker.js").await.0, StatusCode::OK);
            assert_eq!(get("/ui/reader.js").await.0, StatusCode::OK);
        } else {
            assert!(text.contains("web/build.sh"), "{text}");
        }
        assert_eq!(get("/ui/../Cargo.toml").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get("/ui/nope.js").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get("/ui").await.0, StatusCode::PERMANENT_REDIRECT);
    }

    /// Issue 17: a path cargo is told to watch that does not exist is stale forever, so
    /// `ddiff` was recompiled on every `cargo build` until the page was built. Whether the
    /// page is built or not, every watched path exists, and creating or changing `web/pkg/`
    /// touches something watched.
    #[test]
    fn build_script_watches_only_paths_that_exist() {
        use super::build_web::{built, watched, FILES};
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web");
        std::fs::create_dir_all(&web).unwrap();
        for (f, _) in FILES.iter().filter(|(f, _)| !f.starts_with("pkg/")) {
            std::fs::write(web.join(f), "x").unwrap();
        }
        let covered = |p: &std::path::Path| watched(&web).iter().any(|w| p.starts_with(w));
        // Not built: nothing watched is missing, and web/pkg's creation would be seen.
        assert!(!built(&web));
        for p in watched(&web) {
            assert!(p.exists(), "{} is watched but missing", p.display());
        }
        assert!(covered(&web.join("pkg/ddiff_wasm_bg.wasm")));
        // Built: the same, and every embedded file is under a watched path.
        std::fs::create_dir_all(web.join("pkg")).unwrap();
        for (f, _) in FILES {
            std::fs::write(web.join(f), "x").unwrap();
        }
        assert!(built(&web));
        for p in watched(&web) {
            assert!(p.exists(), "{} is watched but missing", p.display());
        }
        for (f, _) in FILES {
            assert!(covered(&web.join(f)), "{f} is embedded but not watched");
        }
        // And in this tree, as it is.
        let real = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
        assert!(watched(&real).iter().all(|p| p.exists()));
    }
}
