//! A registry client for the OCI Distribution API (Docker Registry HTTP API V2), on reqwest.
//!
//! - Auth: anonymous, HTTP basic, and the Bearer token flow of `WWW-Authenticate` challenges,
//!   with credentials given explicitly or found in `~/.docker/config.json` (see
//!   [`credentials`]). Tokens are cached per scope.
//! - Transport: HTTPS with the system roots (webpki), plain HTTP for loopback hosts or when
//!   `insecure` is set.
//! - Blobs stream in both directions and downloads are verified (digest and size) as they
//!   arrive; nothing is held whole in memory except manifests and configs.
//! - Transient failures (connection errors, 429, 5xx) are retried with backoff, each
//!   operation at exactly one level (see [`retry`]).

mod challenge;
pub mod credentials;
mod retry;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use ddiff_core::distribution::{upload_offset, ErrorBody, ErrorCode};
use ddiff_core::{Descriptor, Digest, MediaType, RawManifest, Verifier};
use futures::StreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

pub use credentials::Credentials;

use crate::hash::fast_hasher;
use challenge::Challenge;
use retry::{transient_error, transient_status, Retry};

/// Every manifest type we accept, for `Accept`.
pub fn manifest_accept() -> String {
    [
        MediaType::OciIndex,
        MediaType::OciManifest,
        MediaType::DockerManifestList,
        MediaType::DockerManifest,
    ]
    .iter()
    .map(MediaType::as_str)
    .collect::<Vec<_>>()
    .join(", ")
}

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
    pub code: Option<ErrorCode>,
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
        let mut retry = Retry::default();
        loop {
            let result = self.send_once(scope, make).await?;
            let why = match &result {
                Err(e) if transient_error(e) => e.to_string(),
                Ok(r) if transient_status(r.status()) => r.status().to_string(),
                _ => String::new(),
            };
            if !why.is_empty() && retry.wait(&why).await {
                continue;
            }
            return result.with_context(|| format!("cannot reach registry {}", self.host));
        }
    }

    /// Sends a request once, answering an auth challenge (a second request) if the registry
    /// asks. No retries: the caller decides. `Err`: `make` or the challenge failed; the inner
    /// result is the transport's.
    async fn send_once(
        &self,
        scope: &str,
        make: &(dyn Fn(&reqwest::Client) -> Result<RequestBuilder> + Sync),
    ) -> Result<reqwest::Result<Response>> {
        let mut authed = false;
        loop {
            let mut rb = make(&self.http)?;
            if let Some(h) = self.cached_auth(scope) {
                rb = rb.header(AUTHORIZATION, h);
            }
            let resp = match rb.send().await {
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !authed => r,
                other => return Ok(other),
            };
            authed = true;
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
        }
    }

    /// Sends once and checks the answer: `Ok(Err(_))` is a failure worth retrying (transport
    /// trouble, 429, 5xx), `Err` one that is not.
    async fn send_checked_once(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        make: &(dyn Fn(&reqwest::Client) -> Result<RequestBuilder> + Sync),
    ) -> Result<Result<Response>> {
        match self.send_once(scope, make).await? {
            Ok(r) if r.status().is_success() => Ok(Ok(r)),
            Ok(r) if transient_status(r.status()) => {
                Ok(Err(error_from(method, url, r).await.into()))
            }
            Ok(r) => Err(error_from(method, url, r).await.into()),
            Err(e) if transient_error(&e) => Ok(Err(
                anyhow::Error::from(e).context(format!("cannot reach registry {}", self.host))
            )),
            Err(e) => {
                Err(anyhow::Error::from(e).context(format!("cannot reach registry {}", self.host)))
            }
        }
    }

    async fn answer_challenge(&self, challenge: &str, scope: &str) -> Result<HeaderValue> {
        let (realm, service) = match challenge::pick(challenge) {
            Ok(Challenge::Basic) => {
                let c = self.credentials.as_ref().ok_or_else(|| {
                    anyhow!(
                        "registry {} requires credentials (docker login {} or --username/--password)",
                        self.host,
                        self.host
                    )
                })?;
                return basic_header(c);
            }
            Ok(Challenge::Bearer { realm, service }) => (realm, service),
            Err(scheme) => bail!(
                "registry {} asked for unsupported auth scheme {scheme:?}",
                self.host
            ),
        };
        let realm = realm
            .ok_or_else(|| anyhow!("registry {}: Bearer challenge without realm", self.host))?;
        let mut req = self.http.get(realm.as_str());
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &service {
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
            .send(&scope, &|c| {
                Ok(c.get(&url).header(ACCEPT, manifest_accept()))
            })
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
                Ok(c.head(&url).header(ACCEPT, manifest_accept()))
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

    /// Puts a manifest that has a `subject` (an OCI 1.1 referrer) by digest; returns whether
    /// the registry answered `OCI-Subject` (it indexes referrers itself). When it did not, the
    /// client maintains the `sha256-<hex>` fallback tag (distribution spec, "Pushing
    /// Manifests with Subject").
    pub async fn put_referrer(
        &self,
        repo: &str,
        digest: &Digest,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/manifests/{digest}"));
        let scope = format!("repository:{repo}:pull,push");
        let body = Bytes::copy_from_slice(bytes);
        let resp = self
            .send(&scope, &|c| {
                Ok(c.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone()))
            })
            .await?;
        let resp = self.check(Method::PUT, &url, resp).await?;
        Ok(resp.headers().contains_key("oci-subject"))
    }

    /// The referrers of `digest` in `repo` as an OCI index (exact bytes): the referrers API,
    /// else the `sha256-<hex>` fallback tag; `None` when neither exists.
    pub async fn referrers(&self, repo: &str, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let url = self.url(&format!("/v2/{repo}/referrers/{digest}"));
        let scope = format!("repository:{repo}:pull");
        let resp = self
            .send(&scope, &|c| {
                Ok(c.get(&url)
                    .header(ACCEPT, "application/vnd.oci.image.index.v1+json"))
            })
            .await?;
        if resp.status().is_success() {
            let bytes = read_limited(resp, ddiff_core::manifest::MAX_MANIFEST_BYTES).await?;
            return Ok(Some(bytes));
        }
        if resp.status() != StatusCode::NOT_FOUND {
            self.check(Method::GET, &url, resp).await?;
        }
        let tag = ddiff_core::provenance::referrers_fallback_tag(digest);
        if self.head_manifest(repo, &tag).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.get_manifest(repo, &tag).await?.bytes().to_vec()))
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

    /// Opens an upload session (`POST`) once; returns its absolute URL. `Ok(Err(_))`: a
    /// failure worth retrying.
    async fn open_session_once(&self, repo: &str, scope: &str) -> Result<Result<String>> {
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let resp = match self
            .send_checked_once(Method::POST, &start, scope, &|c| {
                Ok(c.post(&start).header(CONTENT_LENGTH, 0))
            })
            .await?
        {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let loc = location(&resp)
            .ok_or_else(|| anyhow!("registry {} opened an upload without a Location", self.host))?;
        Ok(Ok(self.absolute(loc)))
    }

    /// Uploads a blob with a monolithic `PUT` of a streamed body (`POST` opens the session).
    /// `open` yields a fresh body stream for each attempt; the registry verifies the digest.
    /// A failed attempt is retried whole, in a new session (see [`retry`]).
    pub async fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: &(dyn Fn() -> Result<reqwest::Body> + Sync),
    ) -> Result<()> {
        let scope = format!("repository:{repo}:pull,push");
        let mut retry = Retry::default();
        loop {
            let failure = match self.upload_once(repo, &scope, digest, size, open).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e,
                Err(e) => return Err(e),
            };
            if !retry.wait(&failure).await {
                return Err(failure.context(format!("upload of {digest} to {}/{repo}", self.host)));
            }
        }
    }

    /// One `POST` and one `PUT`. `Ok(Err(_))`: a failure worth retrying; a `PUT` that fails
    /// in any way but a refusal (4xx other than 429) is one, since the body may have broken.
    async fn upload_once(
        &self,
        repo: &str,
        scope: &str,
        digest: &Digest,
        size: u64,
        open: &(dyn Fn() -> Result<reqwest::Body> + Sync),
    ) -> Result<Result<()>> {
        let loc = match self.open_session_once(repo, scope).await? {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        let put = with_digest(&loc, digest);
        let make = |c: &reqwest::Client| {
            Ok(c.put(&put)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .body(open()?))
        };
        match self.send_once(scope, &make).await {
            Ok(Ok(r)) if r.status().is_success() => Ok(Ok(())),
            Ok(Ok(r)) if transient_status(r.status()) => {
                Ok(Err(error_from(Method::PUT, &put, r).await.into()))
            }
            Ok(Ok(r)) => Err(error_from(Method::PUT, &put, r).await.into()),
            Ok(Err(e)) => Ok(Err(
                anyhow::Error::from(e).context(format!("cannot reach registry {}", self.host))
            )),
            Err(e) => Ok(Err(e)),
        }
    }

    /// Uploads a blob whose bytes can be re-read from any offset: monolithic when small,
    /// otherwise in chunks (PATCH with `Content-Range`), and after a broken chunk asks the
    /// registry how much it has (GET on the session, `Range` header) and resumes from there.
    /// `open(from, len)` yields a body of `len` bytes starting at `from`. Each request is sent
    /// once; the retry budget covers the failures between two chunks that go through.
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
        let mut retry = Retry::default();
        let give_up = |retry: &Retry, offset: u64, e: anyhow::Error| {
            e.context(format!(
                "upload of {digest} to {}/{repo} failed {} times at offset {offset}",
                self.host,
                retry.failures()
            ))
        };
        let mut loc = loop {
            match self.open_session_once(repo, &scope).await? {
                Ok(l) => break l,
                Err(e) if retry.wait(&e).await => {}
                Err(e) => return Err(e),
            }
        };
        let mut offset = 0u64;
        // After a failure: the registry's offset must be asked before the next chunk.
        let mut ask = false;
        while ask || offset < size {
            let failure = if ask {
                let l = loc.clone();
                match self
                    .send_checked_once(Method::GET, &l, &scope, &|c| Ok(c.get(&l)))
                    .await?
                {
                    Ok(st) => {
                        if let Some(next) = location(&st) {
                            loc = self.absolute(next);
                        }
                        let held = st
                            .headers()
                            .get("range")
                            .and_then(|v| v.to_str().ok())
                            .and_then(upload_offset);
                        match held {
                            Some(o) => offset = o,
                            // `0-0` (one byte or none) or no answer: start over, in a new
                            // session, rather than guess.
                            None => match self.open_session_once(repo, &scope).await? {
                                Ok(l) => {
                                    let _ = self.send_once(&scope, &|c| Ok(c.delete(&loc))).await;
                                    loc = l;
                                    offset = 0;
                                }
                                Err(e) => {
                                    if !retry.wait(&e).await {
                                        return Err(give_up(&retry, offset, e));
                                    }
                                    continue;
                                }
                            },
                        }
                        ask = false;
                        tracing::info!("resuming upload of {digest} at offset {offset}");
                        continue;
                    }
                    Err(e) => e,
                }
            } else {
                let len = self.chunk_size.min(size - offset);
                let range = format!("{}-{}", offset, offset + len - 1);
                let l = loc.clone();
                let make = |c: &reqwest::Client| {
                    Ok(c.patch(&l)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header("content-range", range.as_str())
                        .header(CONTENT_LENGTH, len)
                        .body(open(offset, len)?))
                };
                match self.send_once(&scope, &make).await {
                    Ok(Ok(r)) if r.status().is_success() => {
                        if let Some(next) = location(&r) {
                            loc = self.absolute(next);
                        }
                        offset += len;
                        retry.reset();
                        continue;
                    }
                    // Out of step with the registry's offset, or its trouble: ask and resume.
                    Ok(Ok(r))
                        if transient_status(r.status())
                            || r.status() == StatusCode::RANGE_NOT_SATISFIABLE =>
                    {
                        error_from(Method::PATCH, &l, r).await.into()
                    }
                    Ok(Ok(r)) => return Err(error_from(Method::PATCH, &l, r).await.into()),
                    Ok(Err(e)) => anyhow::Error::from(e)
                        .context(format!("cannot reach registry {}", self.host)),
                    Err(e) => e,
                }
            };
            if !retry.wait(&failure).await {
                return Err(give_up(&retry, offset, failure));
            }
            ask = true;
        }
        let put = with_digest(&loc, digest);
        let resp = self
            .send(&scope, &|c| Ok(c.put(&put).header(CONTENT_LENGTH, 0)))
            .await?;
        self.check(Method::PUT, &put, resp).await.map(|_| ())
    }

    /// Lists every repository (`GET /v2/_catalog`, following `Link` pagination).
    pub async fn catalog(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let pages: Vec<Catalog> = self
            .paged(
                "registry:catalog:*",
                "/v2/_catalog?n=1000",
                100_000,
                "_catalog",
            )
            .await?;
        let mut out: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.repositories.unwrap_or_default())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Lists tags (following `Link` pagination).
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let path = format!("/v2/{repo}/tags/list");
        let pages: Vec<Tags> = self
            .paged(&format!("repository:{repo}:pull"), &path, 1000, "tags/list")
            .await?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.tags.unwrap_or_default())
            .collect())
    }

    /// GETs `path` and every page its `Link` headers name (at most `max_pages`), each
    /// parsed as JSON (`what` names the document in errors).
    async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        scope: &str,
        path: &str,
        max_pages: usize,
        what: &str,
    ) -> Result<Vec<T>> {
        let scope = scope.to_string();
        let mut url = self.url(path);
        let mut out = Vec::new();
        for _ in 0..max_pages {
            let u = url.clone();
            let resp = self.send(&scope, &|c| Ok(c.get(&u))).await?;
            let resp = self.check(Method::GET, &u, resp).await?;
            let next = next_link(resp.headers());
            out.push(
                resp.json()
                    .await
                    .with_context(|| format!("invalid {what} JSON"))?,
            );
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
/// A streamed request body over a file, read on a blocking thread; `on_read` is told the
/// bytes as they go (progress).
pub fn body_from_file(
    path: std::path::PathBuf,
    on_read: impl Fn(u64) + Send + 'static,
) -> reqwest::Body {
    body_from_blocking_reader(
        move || {
            let f = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            Ok(Box::new(f) as Box<dyn std::io::Read + Send>)
        },
        on_read,
    )
}

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
                // The whole chain travels as the body error's source, for the one-line printer.
                let _ = tx.blocking_send(Err(std::io::Error::other(e)));
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

/// The `Location` header of a response.
fn location(resp: &Response) -> Option<&str> {
    resp.headers().get(LOCATION).and_then(|v| v.to_str().ok())
}

/// An upload session URL with `digest=` added to its query, for the closing `PUT`.
fn with_digest(session: &str, digest: &Digest) -> String {
    let sep = if session.contains('?') { '&' } else { '?' };
    format!("{session}{sep}digest={digest}")
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
    let body = resp.bytes().await.unwrap_or_default();
    let (code, message) = match ErrorBody::first_of(&body) {
        Some(e) => (Some(e.code), e.message),
        None => (
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
mod upload_tests;

#[cfg(test)]
mod tests {
    use super::*;

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
