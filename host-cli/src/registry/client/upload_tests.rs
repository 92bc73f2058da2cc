//! The client's uploads against the embedded registry behind a layer that injects failures:
//! how often each request is sent, and that chunked uploads resume from the registry's offset.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ddiff_core::{Descriptor, Digest, MediaType};

use super::{ClientOptions, Credentials, Registry};
use crate::registry::server::{router, AppState, Options};

/// Which requests fail: `(method, n)` makes the n-th request (from 1) of that method answer
/// 500, `n == 0` every one of them; in `fail` after the registry handled the request, in
/// `refuse` without passing it on.
#[derive(Default)]
struct Faults {
    fail: Vec<(Method, usize)>,
    refuse: Vec<(Method, usize)>,
    seen: std::sync::Mutex<Vec<Method>>,
}

impl Faults {
    fn count(&self, m: &Method) -> usize {
        self.seen.lock().unwrap().iter().filter(|x| *x == m).count()
    }
}

async fn inject(State(f): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let n = {
        let mut seen = f.seen.lock().unwrap();
        seen.push(method.clone());
        seen.iter().filter(|m| **m == method).count()
    };
    let hit = |list: &[(Method, usize)]| {
        list.iter()
            .any(|(m, k)| *m == method && (*k == 0 || *k == n))
    };
    if hit(&f.refuse) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let resp = next.run(req).await;
    if hit(&f.fail) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    resp
}

async fn start(faults: Faults, chunk_size: u64) -> (Registry, Arc<Faults>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(faults);
    let app = router(AppState::new(dir.path(), Options::default()))
        .layer(middleware::from_fn_with_state(faults.clone(), inject));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let opts = ClientOptions {
        credentials: Some(Credentials {
            username: String::new(),
            password: String::new(),
        }),
        chunk_size,
        ..ClientOptions::default()
    };
    (Registry::new(&addr.to_string(), opts).unwrap(), faults, dir)
}

fn ranges(data: &'static [u8]) -> impl Fn(u64, u64) -> anyhow::Result<reqwest::Body> + Sync {
    move |from, len| {
        let (a, b) = (from as usize, (from + len) as usize);
        Ok(reqwest::Body::from(&data[a..b]))
    }
}

async fn stored(reg: &Registry, data: &[u8]) -> Vec<u8> {
    let desc = Descriptor::new(
        MediaType::OciLayerGzip,
        Digest::sha256(data),
        data.len() as u64,
    );
    reg.get_blob_bytes("r", &desc).await.unwrap()
}

#[tokio::test]
async fn a_chunk_the_registry_kept_but_answered_500_for_is_not_sent_again() {
    const DATA: &[u8] = b"0123456789";
    // The second PATCH (bytes 4..8) is stored, but the client hears 500: it asks the offset
    // (8) and goes on from there instead of sending bytes 4..8 again.
    let (reg, f, _dir) = start(
        Faults {
            fail: vec![(Method::PATCH, 2)],
            ..Faults::default()
        },
        4,
    )
    .await;
    reg.upload_blob_resumable("r", &Digest::sha256(DATA), 10, &ranges(DATA))
        .await
        .unwrap();
    assert_eq!(f.count(&Method::PATCH), 3);
    assert_eq!(f.count(&Method::POST), 1);
    assert_eq!(stored(&reg, DATA).await, DATA);
}

#[tokio::test]
async fn a_failing_monolithic_put_is_sent_four_times_not_sixteen() {
    const DATA: &[u8] = b"abc";
    let (reg, f, _dir) = start(
        Faults {
            fail: vec![(Method::PUT, 0)],
            ..Faults::default()
        },
        0,
    )
    .await;
    let err = reg
        .upload_blob_resumable("r", &Digest::sha256(DATA), 3, &ranges(DATA))
        .await
        .unwrap_err();
    // One attempt and three retries, each a new session.
    assert_eq!(f.count(&Method::PUT), 4);
    assert_eq!(f.count(&Method::POST), 4);
    let text = format!("{err:#}");
    assert!(
        text.contains("upload of sha256:") && text.contains("500"),
        "{text}"
    );
}

#[tokio::test]
async fn a_chunked_upload_gives_up_after_four_failures_in_a_row() {
    const DATA: &[u8] = b"0123456789";
    let (reg, f, _dir) = start(
        Faults {
            refuse: vec![(Method::PATCH, 0)],
            ..Faults::default()
        },
        4,
    )
    .await;
    let err = reg
        .upload_blob_resumable("r", &Digest::sha256(DATA), 10, &ranges(DATA))
        .await
        .unwrap_err();
    assert_eq!(f.count(&Method::PATCH), 4);
    let text = format!("{err:#}");
    assert!(text.contains("failed 4 times at offset 0"), "{text}");
}

#[tokio::test]
async fn a_first_chunk_lost_whole_starts_over_in_a_new_session() {
    const DATA: &[u8] = b"0123456789";
    // The registry never sees the first PATCH: its session answers `Range: 0-0`, which also
    // means "one byte". The client must not resume at 1 (every later chunk would be out of
    // order) but start again at 0.
    let (reg, f, _dir) = start(
        Faults {
            refuse: vec![(Method::PATCH, 1)],
            ..Faults::default()
        },
        4,
    )
    .await;
    reg.upload_blob_resumable("r", &Digest::sha256(DATA), 10, &ranges(DATA))
        .await
        .unwrap();
    assert_eq!(f.count(&Method::POST), 2);
    assert_eq!(f.count(&Method::PATCH), 4);
    assert_eq!(stored(&reg, DATA).await, DATA);
}
