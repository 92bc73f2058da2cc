//! A registry client for the OCI Distribution API (Docker Registry HTTP API V2), on reqwest.
//!
//! - Auth: anonymous, HTTP basic, and the Bearer token flow of `WWW-Authenticate` challenges,
//!   with credentials given explicitly or found in `~/.docker/config.json` (see
//!   [`credentials`]). Tokens are cached per scope.
//! - Transport: HTTPS with the system roots (webpki), plain HTTP for loopback hosts or when
//!   `insecure` is set.
//! - Blobs stream in both directions and downloads are verified (digest and size) as they
//!   arrive; nothing is held whole in memory except manifests and configs.
//! - Transient failures (connection errors, 429, 5xx) are retried with backoff.

pub mod credentials;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use ddiff_core::{Descriptor, Digest, RawManifest, Verifier};
use futures::StreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

pub use credentials::Credentials;

use crate::hash::fast_hasher;

/// Every manifest type we accept, for `Accept`.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Client settings.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Use plain HTTP even for non-loopback hosts (and accept any TLS certificate).
    pub insecure: bool,
    /// Credentials to use; `None` looks them up in the Docker config.
    pub credentials: Option<Credentials>,
    /// Blobs larger than this are uploaded in chunks of this size (PATCH with
    /// `Content-Range`), resuming from the registry's offset after a failure. 0 = default.
    pub chunk_size: u64,
}

/// Default chunk size for chunked uploads (and the threshold above which they are used).
pub const DEFAULT_CHUNK_SIZE: u64 = 128 * 1024 * 1024;

/// An error answered by a registry, with the spec's error code when it sent one.
#[derive(Debug, thiserror::Error)]
#[error("{method} {url}: {status}{}", code.as_ref().map(|c| format!(" {c}: {message}")).unwrap_or_default())]
pub struct RegistryError {
    /// HTTP method.
    pub method: Method,
    /// URL (without credentials).
    pub url: String,
    /// HTTP status.
    pub status: StatusCode,
    /// First error code of the envelope (`BLOB_UNKNOWN`, …).
    pub code: Option<String>,
    /// Its message.
    pub message: String,
}

/// A connection to one registry host.
pub struct Registry {
    host: String,
    base: String,
    http: reqwest::Client,
    credentials: Option<Credentials>,
    /// scope → `Authorization` header value.
    auth: Mutex<HashMap<String, HeaderValue>>,
    chunk_size: u64,
}

/// Whether `host` (with optional port) is a loopback name.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost" || name == "::1" || name.starts_with("127.")
}

/// Retry schedule for transient failures.
const RETRY_DELAYS_MS: [u64; 3] = [200, 1000, 3000];

impl Registry {
    /// A client for `host` (`localhost:5000`, `registry.example.com`).
    pub fn new(host: &str, opts: ClientOptions) -> Result<Registry> {
        let plain = opts.insecure || is_loopback(host);
        let scheme = if plain { "http" } else { "https" };
        let api_host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("ddiff/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .danger_accept_invalid_certs(opts.insecure)
            .pool_max_idle_per_host(8)
            .build()
            .context("cannot build the HTTP client")?;
        let credentials = match opts.credentials {
            Some(c) => Some(c),
            None => credentials::lookup(host)?,
        };
        Ok(Registry {
            host: host.to_string(),
            base: format!("{scheme}://{api_host}"),
            http,
            credentials,
            auth: Mutex::new(HashMap::new()),
            chunk_size: if opts.chunk_size == 0 {
                DEFAULT_CHUNK_SIZE
            } else {
                opts.chunk_size
            },
        })
    }

    /// The registry host as given.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn cached_auth(&self, scope: &str) -> Option<HeaderValue> {
        self.auth.lock().ok()?.get(scope).cloned()
    }

    /// Sends a request built by `make` (called again for each attempt), handling auth
    /// challenges and retrying transient failures. `scope` is e.g. `repository:app:pull`.
    async fn send(
        &self,
        scope: &str,
        make: &(dyn Fn(&reqwest::Client) -> Result<RequestBuilder> + Sync),
    ) -> Result<Response> {
        let mut attempt = 0;
        let mut authed_once = false;
        loop {
            let mut rb = make(&self.http)?;
            if let Some(h) = self.cached_auth(scope) {
                rb = rb.header(AUTHORIZATION, h);
            }
            let result = rb.send().await;
            let transient = match &result {
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
                Ok(r) => {
                    r.status() == StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error()
                }
            };
            if transient && attempt < RETRY_DELAYS_MS.len() {
                tracing::debug!(
                    "transient failure ({}), retrying",
                    match &result {
                        Err(e) => e.to_string(),
                        Ok(r) => r.status().to_string(),
                    }
                );
                tokio::time::sleep(Duration::from_millis(RETRY_DELAYS_MS[attempt])).await;
                attempt += 1;
                continue;
            }
            let resp = result.with_context(|| format!("cannot reach registry {}", self.host))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !authed_once {
                authed_once = true;
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let header = self.answer_challenge(&challenge, scope).await?;
                if let Ok(mut m) = self.auth.lock() {
                    m.insert(scope.to_string(), header);
                }
                continue;
            }
            return Ok(resp);
        }
    }

    async fn answer_challenge(&self, challenge: &str, scope: &str) -> Result<HeaderValue> {
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            let c = self.credentials.as_ref().ok_or_else(|| {
                anyhow!(
                    "registry {} requires credentials (docker login {} or --username/--password)",
                    self.host,
                    self.host
                )
            })?;
            return basic_header(c);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            bail!(
                "registry {} asked for unsupported auth scheme {scheme:?}",
                self.host
            );
        }
        let realm = params
            .get("realm")
            .ok_or_else(|| anyhow!("registry {}: Bearer challenge without realm", self.host))?;
        let mut req = self.http.get(realm.as_str());
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = params.get("service") {
            query.push(("service", s));
        }
        if !scope.is_empty() {
            query.push(("scope", scope));
        }
        req = req.query(&query);
        if let Some(c) = &self.credentials {
            req = req.header(AUTHORIZATION, basic_header(c)?);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach token service {realm}"))?;
        if !resp.status().is_success() {
            bail!(
                "token service {realm} refused scope {scope:?}: {}",
                resp.status()
            );
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = resp
            .json()
            .await
            .context("token service returned invalid JSON")?;
        let tok = t
            .token
            .or(t.access_token)
            .ok_or_else(|| anyhow!("token service {realm} returned no token"))?;
        HeaderValue::from_str(&format!("Bearer {tok}")).context("token is not a valid header value")
    }

    async fn check(&self, method: Method, url: &str, resp: Response) -> Result<Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(error_from(method, url, resp).await.into())
    }

    /// `GET /v2/`: checks the registry answers the API.
    pub async fn ping(&self) -> Result<()> {
        let url = self.url("/v2/");
        let resp = self.send("", &|c| Ok(c.get(&url))).await?;
        self.check(Method::GET, &url, resp).await.map(|_| ())
    }

    /// Fetches a manifest by tag or digest, verifying it when asked by digest.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<RawManifest> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let scope = format!("repository:{repo}:pull");
        let resp = self
            .send(&scope, &|c| Ok(c.get(&url).header(ACCEPT, MANIFEST_ACCEPT)))
            .await?;
        let resp = self.check(Method::GET, &url, resp).await?;
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_limited(resp, ddiff_core::manifest::MAX_MANIFEST_BYTES).await?;
        let expected = Digest::parse(reference).ok();
        RawManifest::parse_with_digest(bytes, ct.as_deref(), expected.as_ref())
            .with_context(|| format!("{}/{repo}:{reference}", self.host))
    }

    /// Whether a manifest exists (HEAD); returns its digest.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Result<Option<Digest>> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let scope = format!("repository:{repo}:pull");
        let resp = self
            .send(&scope, &|c| {
                Ok(c.head(&url).header(ACCEPT, MANIFEST_ACCEPT))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self.check(Method::HEAD, &url, resp).await?;
        let d = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| Digest::parse(s).ok());
        Ok(d)
    }

    /// Puts a manifest under a tag or its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let scope = format!("repository:{repo}:pull,push");
        let body = Bytes::copy_from_slice(bytes);
        let resp = self
            .send(&scope, &|c| {
                Ok(c.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone()))
            })
            .await?;
        self.check(Method::PUT, &url, resp).await.map(|_| ())
    }

    /// Whether a blob exists in `repo`; returns its size.
    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let scope = format!("repository:{repo}:pull");
        let resp = self.send(&scope, &|c| Ok(c.head(&url))).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self.check(Method::HEAD, &url, resp).await?;
        Ok(resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok()))
    }

    /// Fetches a small blob (a config) whole, verified.
    pub async fn get_blob_bytes(&self, repo: &str, desc: &Descriptor) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(desc.size).unwrap_or(0).min(16 << 20));
        self.download_blob(repo, desc, &mut |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Streams a blob into `sink`, verifying digest and size as it arrives. On a mismatch the
    /// error names the blob; what `sink` received must then be discarded by the caller.
    pub async fn download_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
    ) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/blobs/{}", desc.digest));
        let scope = format!("repository:{repo}:pull");
        let resp = self.send(&scope, &|c| Ok(c.get(&url))).await?;
        let resp = self.check(Method::GET, &url, resp).await?;
        let mut v = Verifier::with_factory(desc.digest.clone(), desc.size, fast_hasher);
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| {
                format!(
                    "download of {} from {} broke off after {} bytes",
                    desc.digest,
                    self.host,
                    v.bytes_seen()
                )
            })?;
            v.update(&chunk)
                .with_context(|| format!("{}/{repo}: blob {}", self.host, desc.digest))?;
            sink(&chunk)?;
        }
        v.finish()
            .with_context(|| format!("{}/{repo}: blob {}", self.host, desc.digest))?;
        Ok(())
    }

    /// Tries a cross-repository mount; `Ok(true)` when the registry mounted it.
    pub async fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let scope = format!("repository:{repo}:pull,push repository:{from}:pull");
        let d = digest.to_string();
        let resp = self
            .send(&scope, &|c| {
                Ok(c.post(&url)
                    .query(&[("mount", d.as_str()), ("from", from)])
                    .header(CONTENT_LENGTH, 0))
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            // An upload session was opened instead: the blob is not mountable. Cancel it.
            StatusCode::ACCEPTED => {
                if let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                    let loc = self.absolute(loc);
                    let _ = self.send(&scope, &|c| Ok(c.delete(&loc))).await;
                }
                Ok(false)
            }
            // Token registries may refuse the cross-repository scope: treat as not mountable.
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Ok(false),
            _ => Err(error_from(Method::POST, &url, resp).await.into()),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            self.url(location)
        }
    }

    /// Uploads a blob with a monolithic `PUT` of a streamed body (`POST` opens the session).
    /// `open` yields a fresh body stream for each attempt; the registry verifies the digest.
    pub async fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: &(dyn Fn() -> Result<reqwest::Body> + Sync),
    ) -> Result<()> {
        let scope = format!("repository:{repo}:pull,push");
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let mut last_err = None;
        for attempt in 0..=RETRY_DELAYS_MS.len() {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(RETRY_DELAYS_MS[attempt - 1])).await;
            }
            let resp = self
                .send(&scope, &|c| Ok(c.post(&start).header(CONTENT_LENGTH, 0)))
                .await?;
            let resp = self.check(Method::POST, &start, resp).await?;
            let loc = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    anyhow!("registry {} opened an upload without a Location", self.host)
                })?;
            let loc = self.absolute(loc);
            let sep = if loc.contains('?') { '&' } else { '?' };
            let put = format!("{loc}{sep}digest={digest}");
            let result = self
                .send(&scope, &|c| {
                    Ok(c.put(&put)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(open()?))
                })
                .await;
            match result {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_server_error() => {
                    last_err = Some(anyhow::Error::from(error_from(Method::PUT, &put, r).await))
                }
                Ok(r) => return Err(error_from(Method::PUT, &put, r).await.into()),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow!("upload failed"))
            .context(format!("upload of {digest} to {}/{repo}", self.host)))
    }

    /// Uploads a blob whose bytes can be re-read from any offset: monolithic when small,
    /// otherwise in chunks (PATCH with `Content-Range`), and after a broken chunk asks the
    /// registry how much it has (GET on the session, `Range` header) and resumes from there.
    /// `open(from, len)` yields a body of `len` bytes starting at `from`.
    pub async fn upload_blob_resumable(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: &(dyn Fn(u64, u64) -> Result<reqwest::Body> + Sync),
    ) -> Result<()> {
        if size <= self.chunk_size {
            return self
                .upload_blob(repo, digest, size, &|| open(0, size))
                .await;
        }
        let scope = format!("repository:{repo}:pull,push");
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let resp = self
            .send(&scope, &|c| Ok(c.post(&start).header(CONTENT_LENGTH, 0)))
            .await?;
        let resp = self.check(Method::POST, &start, resp).await?;
        let mut loc = self.absolute(
            resp.headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    anyhow!("registry {} opened an upload without a Location", self.host)
                })?,
        );
        let mut offset = 0u64;
        let mut failures = 0usize;
        while offset < size {
            let len = self.chunk_size.min(size - offset);
            let range = format!("{}-{}", offset, offset + len - 1);
            let l = loc.clone();
            let result = self
                .send(&scope, &|c| {
                    Ok(c.patch(&l)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header("content-range", range.as_str())
                        .header(CONTENT_LENGTH, len)
                        .body(open(offset, len)?))
                })
                .await;
            match result {
                Ok(r) if r.status().is_success() => {
                    if let Some(next) = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                        loc = self.absolute(next);
                    }
                    offset += len;
                    failures = 0;
                    continue;
                }
                Ok(r)
                    if !(r.status().is_server_error()
                        || r.status() == StatusCode::RANGE_NOT_SATISFIABLE) =>
                {
                    return Err(error_from(Method::PATCH, &l, r).await.into());
                }
                Ok(_) | Err(_) => {}
            }
            failures += 1;
            if failures > RETRY_DELAYS_MS.len() {
                bail!(
                    "upload of {digest} to {}/{repo} failed {failures} times at offset {offset}",
                    self.host
                );
            }
            tokio::time::sleep(Duration::from_millis(RETRY_DELAYS_MS[failures - 1])).await;
            // Resume where the registry says it is.
            let l = loc.clone();
            let st = self.send(&scope, &|c| Ok(c.get(&l))).await?;
            let st = self.check(Method::GET, &l, st).await?;
            if let Some(next) = st.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                loc = self.absolute(next);
            }
            offset = st
                .headers()
                .get("range")
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.rsplit('-').next()?.parse::<u64>().ok())
                .map_or(0, |end| end + 1);
            tracing::info!("resuming upload of {digest} at offset {offset}");
        }
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={digest}");
        let resp = self
            .send(&scope, &|c| Ok(c.put(&put).header(CONTENT_LENGTH, 0)))
            .await?;
        self.check(Method::PUT, &put, resp).await.map(|_| ())
    }

    /// Lists tags (following `Link` pagination).
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let scope = format!("repository:{repo}:pull");
        let mut url = self.url(&format!("/v2/{repo}/tags/list"));
        let mut out = Vec::new();
        for _ in 0..1000 {
            let u = url.clone();
            let resp = self.send(&scope, &|c| Ok(c.get(&u))).await?;
            let resp = self.check(Method::GET, &u, resp).await?;
            let next = next_link(resp.headers());
            let t: Tags = resp.json().await.context("invalid tags/list JSON")?;
            out.extend(t.tags.unwrap_or_default());
            match next {
                Some(n) => url = self.absolute(&n),
                None => break,
            }
        }
        Ok(out)
    }
}

/// A request body streamed from a blocking reader (a file, a bundle range, an inflating gzip)
/// that `open` creates on the blocking pool; `on_read` sees each chunk's length (progress).
/// Errors from `open` or from reading end the body with that error.
pub fn body_from_blocking_reader(
    open: impl FnOnce() -> Result<Box<dyn std::io::Read + Send>> + Send + 'static,
    on_read: impl Fn(u64) + Send + 'static,
) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut r = match open() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(crate::cmd::error_line(&e))));
                return;
            }
        };
        // Starts small (a blob may be a few bytes) and grows to 1 MiB once a read fills it.
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    on_read(n as u64);
                    if n == buf.len() && buf.len() < 1 << 20 {
                        buf.resize(1 << 20, 0);
                    }
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    reqwest::Body::wrap_stream(stream)
}

fn next_link(h: &HeaderMap) -> Option<String> {
    let v = h.get("link")?.to_str().ok()?;
    let (url, rel) = v.split_once(';')?;
    rel.contains("next").then(|| {
        url.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    })
}

fn basic_header(c: &Credentials) -> Result<HeaderValue> {
    let raw = format!("{}:{}", c.username, c.password);
    HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
    .context("credentials are not a valid header value")
}

/// Parses `Bearer realm="…",service="…",scope="…"`.
fn parse_challenge(s: &str) -> (String, HashMap<String, String>) {
    let s = s.trim();
    let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, r)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let r = r.trim_start();
        let (v, r) = if let Some(r) = r.strip_prefix('"') {
            match r.find('"') {
                Some(end) => (&r[..end], &r[end + 1..]),
                None => (r, ""),
            }
        } else {
            match r.find(',') {
                Some(end) => (&r[..end], &r[end..]),
                None => (r, ""),
            }
        };
        params.insert(k, v.to_string());
        rest = r.trim_start_matches(',').trim();
    }
    (scheme.to_string(), params)
}

async fn read_limited(resp: Response, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(c) = s.next().await {
        let c = c.context("connection broke while reading a manifest")?;
        if out.len() + c.len() > limit {
            bail!("manifest larger than {limit} bytes");
        }
        out.extend_from_slice(&c);
    }
    Ok(out)
}

async fn error_from(method: Method, url: &str, resp: Response) -> RegistryError {
    let status = resp.status();
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: String,
        #[serde(default)]
        message: String,
    }
    let body = resp.bytes().await.unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<Envelope>(&body) {
        Ok(e) if !e.errors.is_empty() => {
            (Some(e.errors[0].code.clone()), e.errors[0].message.clone())
        }
        _ => (
            None,
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string(),
        ),
    };
    RegistryError {
        method,
        url: url.to_string(),
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn loopback_hosts_use_plain_http() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.example.com",
            "10.0.0.1:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn follows_link_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static("</v2/a/tags/list?n=2&last=b>; rel=\"next\""),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/a/tags/list?n=2&last=b"));
    }
}
