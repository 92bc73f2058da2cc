//! Upload sessions: streaming request bodies to disk while hashing them.
//!
//! A session is a directory `_uploads/<uuid>/` with the bytes received so far in `data`; its
//! offset is the file's length, so a session survives a dropped connection (the client asks
//! `GET …/uploads/<uuid>` for the offset and resumes) and even a server restart. While the
//! server runs it also keeps a running SHA-256 of `data` in memory, so the final `PUT` need not
//! read the file again; whenever that state could be out of step with the file (a failed
//! write, a restart, a sha512 digest) the file is hashed again at the end instead.
//!
//! Writes are pipelined: the body is read from the network in batches of [`BATCH`] bytes and
//! each batch is written and hashed on the blocking pool while the next one arrives.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use ddiff_core::{Algorithm, Digest};
use futures::StreamExt;

/// Bytes gathered from the network before one write+hash on the blocking pool.
const BATCH: usize = 1 << 20;

/// In-memory state of one session: the hash of `data[..offset]`, when known.
#[derive(Default)]
pub(crate) struct SessionState {
    hash: Option<(ring::digest::Context, u64)>,
}

impl SessionState {
    /// A session that starts empty: the running hash is valid from byte 0.
    pub(crate) fn fresh() -> Self {
        SessionState {
            hash: Some((ring::digest::Context::new(&ring::digest::SHA256), 0)),
        }
    }
}

/// The live sessions. Each has an async mutex so two requests on one session (a client
/// retrying while its dropped request is still being torn down) run one after the other.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<SessionState>>>>,
}

impl Sessions {
    /// The state of session `id`, created empty-but-unknown if the server has not seen it
    /// (e.g. it was started before a restart).
    pub(crate) fn get(&self, id: &str) -> Arc<tokio::sync::Mutex<SessionState>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_owned()).or_default().clone()
    }

    /// Registers a brand-new session.
    pub(crate) fn insert_fresh(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            id.to_owned(),
            Arc::new(tokio::sync::Mutex::new(SessionState::fresh())),
        );
    }

    /// Forgets a session.
    pub(crate) fn remove(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    /// Whether a request is working on the session right now.
    pub(crate) fn busy(&self, id: &str) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).is_some_and(|m| m.try_lock().is_err())
    }
}

/// Why appending a body to a session failed.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// The client's stream broke off; what arrived is kept and the offset reflects it.
    Body(String),
    /// The body's length is not the one its `Content-Range` announced; nothing was kept.
    Length { expected: u64, found: u64 },
    /// The blob would grow past the server's size limit; nothing of this body was kept.
    TooLarge { limit: u64 },
    /// Disk trouble.
    Io(io::Error),
}

impl From<io::Error> for AppendError {
    fn from(e: io::Error) -> Self {
        AppendError::Io(e)
    }
}

struct Sink {
    file: File,
    hash: Option<ring::digest::Context>,
    written: u64,
}

impl Sink {
    fn write_batch(mut self, batch: Vec<Bytes>) -> (Sink, io::Result<()>) {
        for b in &batch {
            if let Err(e) = self.file.write_all(b) {
                // Part of `b` may be on disk: the running hash can no longer be trusted.
                self.hash = None;
                return (self, Err(e));
            }
            if let Some(h) = self.hash.as_mut() {
                h.update(b);
            }
            self.written += b.len() as u64;
        }
        (self, Ok(()))
    }
}

async fn run_batch(sink: Sink, batch: Vec<Bytes>) -> io::Result<Sink> {
    let (sink, r) = tokio::task::spawn_blocking(move || sink.write_batch(batch))
        .await
        .map_err(io::Error::other)?;
    r.map(|()| sink)
}

/// The sink back from the batch in flight (or the idle one, if none is). A failed write
/// leaves the running hash unknown.
async fn take_sink(
    pending: &mut Option<tokio::task::JoinHandle<io::Result<Sink>>>,
    idle: &mut Option<Sink>,
    state: &mut SessionState,
) -> Result<Sink, AppendError> {
    match pending.take() {
        Some(h) => match h.await.map_err(io::Error::other).and_then(|r| r) {
            Ok(s) => Ok(s),
            Err(e) => {
                state.hash = None;
                Err(e.into())
            }
        },
        None => Ok(idle.take().ok_or_else(|| io::Error::other("sink lost"))?),
    }
}

/// Appends `body` to `data`. `range_len` is the length announced by `Content-Range` (or
/// `Content-Length`), checked once the body is complete; `limit` caps the session's total size.
/// Returns the new offset.
pub(crate) async fn append(
    data: PathBuf,
    state: &mut SessionState,
    body: Body,
    range_len: Option<u64>,
    limit: u64,
) -> Result<u64, AppendError> {
    let data2 = data.clone();
    let file = tokio::task::spawn_blocking(move || {
        let mut f = OpenOptions::new().append(true).open(&data2)?;
        f.seek(io::SeekFrom::End(0))?;
        Ok::<_, io::Error>(f)
    })
    .await
    .map_err(io::Error::other)??;
    let start = file.metadata()?.len();
    let saved = state.hash.clone();
    let hash = match state.hash.take() {
        Some((ctx, off)) if off == start => Some(ctx),
        _ => None,
    };
    let mut sink = Some(Sink {
        file,
        hash,
        written: 0,
    });
    let mut pending: Option<tokio::task::JoinHandle<io::Result<Sink>>> = None;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0usize;
    let mut stream = body.into_data_stream();
    let mut body_error = None;
    let mut received = 0u64;
    let mut too_large = false;
    loop {
        let next = stream.next().await;
        let last = match next {
            Some(Ok(chunk)) if start + received + chunk.len() as u64 > limit => {
                too_large = true;
                true
            }
            Some(Ok(chunk)) => {
                received += chunk.len() as u64;
                batch_len += chunk.len();
                batch.push(chunk);
                false
            }
            Some(Err(e)) => {
                body_error = Some(e.to_string());
                true
            }
            None => true,
        };
        if batch_len >= BATCH || (last && !batch.is_empty()) {
            let s = take_sink(&mut pending, &mut sink, state).await?;
            let b = std::mem::take(&mut batch);
            batch_len = 0;
            pending = Some(tokio::spawn(run_batch(s, b)));
        }
        if last {
            break;
        }
    }
    let sink = take_sink(&mut pending, &mut sink, state).await?;
    let new_offset = start + sink.written;
    if let Some(e) = body_error {
        state.hash = sink.hash.map(|h| (h, new_offset));
        return Err(AppendError::Body(e));
    }
    if too_large || range_len.is_some_and(|expected| expected != sink.written) {
        // Take the chunk back out: the client announced something else.
        let file = sink.file;
        tokio::task::spawn_blocking(move || file.set_len(start))
            .await
            .map_err(io::Error::other)??;
        state.hash = saved.filter(|(_, off)| *off == start);
        if too_large {
            return Err(AppendError::TooLarge { limit });
        }
        return Err(AppendError::Length {
            expected: range_len.unwrap_or_default(),
            found: sink.written,
        });
    }
    state.hash = sink.hash.map(|h| (h, new_offset));
    Ok(new_offset)
}

/// fsyncs `data` and computes its digest with `algorithm`, using the running hash when it
/// covers the whole file. Returns the digest and the size.
pub(crate) async fn finish(
    data: PathBuf,
    state: &mut SessionState,
    algorithm: Algorithm,
) -> io::Result<(Digest, u64)> {
    let running = state.hash.take();
    tokio::task::spawn_blocking(move || {
        let f = File::open(&data)?;
        f.sync_all()?;
        let len = f.metadata()?.len();
        if let (Algorithm::Sha256, Some((ctx, off))) = (algorithm, running) {
            if off == len {
                return Ok((crate::hash::digest_of(algorithm, ctx.finish()), len));
            }
        }
        Ok((hash_file(f, algorithm)?, len))
    })
    .await
    .map_err(io::Error::other)?
}

/// Hashes a file with `ring`.
pub(crate) fn hash_file(mut f: File, algorithm: Algorithm) -> io::Result<Digest> {
    let alg = match algorithm {
        Algorithm::Sha256 => &ring::digest::SHA256,
        Algorithm::Sha512 => &ring::digest::SHA512,
    };
    let mut ctx = ring::digest::Context::new(alg);
    let mut buf = vec![0u8; BATCH];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(crate::hash::digest_of(algorithm, ctx.finish()))
}
