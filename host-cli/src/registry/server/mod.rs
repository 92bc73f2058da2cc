//! The embedded OCI registry (`ddiff server`): OCI Distribution v1.1 over a filesystem
//! store laid out like `registry:2`, so the offline side needs nothing but `ddiff`.
//!
//! ```text
//!  client ──HTTP(S)──► frontdoor (log line, auth, read-only, API-version header)
//!                         │
//!                         ├─ GET /v2/            routes::base
//!                         ├─ GET /v2/_catalog    routes::catalog (routes/listing.rs)
//!                         └─ /v2/<name>/…        routes::dispatch (routes/path.rs parses)
//!                                                  ├─ routes/manifests.rs ─┐
//!                                                  ├─ routes/blobs.rs      ├► storage (registry:2 layout)
//!                                                  ├─ routes/uploads.rs ───┴► sessions (stream, hash, verify)
//!                                                  ├─ routes/listing.rs (tags)
//!                                                  └─ routes/referrers.rs
//! ```
//!
//! Errors are [`RegistryError`] (error.rs), with the codes and envelope of
//! [`ddiff_core::distribution`], which the client reads them with.
//!
//! Tests and other commands build the service with [`router`] and [`AppState::new`], and run
//! it in-process with [`serve_on`]; the CLI calls [`run`]. See `docs/server.md`.

mod auth;
mod error;
mod gc;
mod routes;
mod sessions;
mod storage;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ddiff_core::{Digest, RawManifest};

pub use auth::{Htpasswd, HtpasswdError};
pub use error::{ErrorCode, RegistryError};
pub use gc::{collect_garbage, GcReport};
pub use storage::Storage;

/// Default port, as the original tool's `registry:2` container used.
pub const DEFAULT_PORT: u16 = 5000;

/// Run the embedded OCI registry (replaces the `registry:2` container).
///
/// Speaks the OCI Distribution API v1.1 that docker, skopeo, crane and ddiff use, and stores
/// blobs and manifests in registry:2's directory layout, so an existing registry:2 volume is
/// served as it is. Binds to loopback by default; use --htpasswd and --tls-cert/--tls-key
/// before exposing it. Also serves the bundle inspector page at /ui/. Stops cleanly on
/// SIGINT/SIGTERM (in-flight requests drain).
///
/// Example: ddiff server --addr 0.0.0.0:5000 --root /srv/registry --htpasswd /etc/ddiff/htpasswd
#[derive(clap::Args, Debug, Clone, Default)]
#[command(args_conflicts_with_subcommands = false)]
pub struct ServerArgs {
    /// Maintenance commands on the storage directory.
    #[command(subcommand)]
    pub command: Option<ServerCommand>,

    /// Address to listen on [default: 127.0.0.1:$DDIFF_PORT, else 127.0.0.1:5000].
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,

    /// Storage directory, laid out like registry:2's (a registry:2 volume can be served as is)
    /// [default: $DDIFF_REGISTRY_VOLUME, else $XDG_DATA_HOME/ddiff/registry, else
    /// ~/.local/share/ddiff/registry].
    #[arg(long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,

    /// Refuse every write (push, delete) with 405 UNSUPPORTED.
    #[arg(long)]
    pub read_only: bool,

    /// Require HTTP basic auth against this htpasswd file (bcrypt entries, `htpasswd -B`).
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Largest blob accepted, in bytes [default: no limit].
    #[arg(long, value_name = "BYTES")]
    pub max_blob_size: Option<u64>,

    /// Upload sessions idle this many seconds are deleted.
    #[arg(long, value_name = "SECS", default_value_t = 24 * 3600)]
    pub upload_ttl: u64,
}

/// Subcommands of `ddiff server`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ServerCommand {
    /// Delete blobs that no manifest references (run it while no push is in progress).
    Gc(GcArgs),
}

/// `ddiff server gc`.
#[derive(clap::Args, Debug, Clone)]
pub struct GcArgs {
    /// Only report what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep unreferenced blobs younger than this many seconds: a push in progress has
    /// uploaded layers that its manifest does not reference yet.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub min_age: u64,
}

/// Server behaviour that is not the storage location.
#[derive(Debug)]
pub struct Options {
    /// Refuse writes.
    pub read_only: bool,
    /// Basic auth users; `None` means open.
    pub htpasswd: Option<Htpasswd>,
    /// Largest blob accepted.
    pub max_blob_size: u64,
    /// Idle upload sessions older than this are deleted.
    pub upload_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            read_only: false,
            htpasswd: None,
            max_blob_size: u64::MAX,
            upload_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// What the referrers API and manifest GETs need to know about a stored manifest. Manifests
/// are immutable (named by digest), so this is cached.
#[derive(Debug)]
pub(crate) struct ManifestMeta {
    media_type: String,
    size: u64,
    subject: Option<Digest>,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

impl ManifestMeta {
    fn of(raw: &RawManifest) -> Self {
        let (subject, artifact_type, annotations) = match (raw.as_image(), raw.as_index()) {
            (Some(m), _) => (
                m.subject.as_ref().map(|s| s.digest.clone()),
                m.artifact_type
                    .clone()
                    .or_else(|| Some(m.config.media_type.to_string())),
                m.annotations.clone(),
            ),
            (None, Some(i)) => (
                i.subject.as_ref().map(|s| s.digest.clone()),
                i.artifact_type.clone(),
                i.annotations.clone(),
            ),
            (None, None) => (None, None, None),
        };
        ManifestMeta {
            media_type: raw.media_type().to_string(),
            size: raw.bytes().len() as u64,
            subject,
            artifact_type,
            annotations,
        }
    }

    /// For stored bytes ddiff cannot parse (schema 1 written by an old registry:2, say):
    /// serve them with the type they declare.
    fn fallback(bytes: &[u8]) -> Self {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
        let media_type = match (
            v.get("mediaType").and_then(|m| m.as_str()),
            v.get("schemaVersion"),
        ) {
            (Some(m), _) => m.to_owned(),
            (None, Some(s)) if s == 1 => {
                "application/vnd.docker.distribution.manifest.v1+prettyjws".to_owned()
            }
            _ => ddiff_core::MediaType::OciManifest.as_str().to_owned(),
        };
        ManifestMeta {
            media_type,
            size: bytes.len() as u64,
            subject: None,
            artifact_type: None,
            annotations: None,
        }
    }
}

const META_CACHE_MAX: usize = 65_536;

pub(crate) struct Inner {
    storage: Storage,
    options: Options,
    sessions: sessions::Sessions,
    meta: Mutex<HashMap<Digest, Arc<ManifestMeta>>>,
}

/// Shared state of one registry: its storage, options and live upload sessions.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl AppState {
    /// A registry storing under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>, options: Options) -> Self {
        AppState {
            inner: Arc::new(Inner {
                storage: Storage::new(root),
                options,
                sessions: sessions::Sessions::default(),
                meta: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    fn cached_meta(&self, d: &Digest) -> Option<Arc<ManifestMeta>> {
        let map = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
        map.get(d).cloned()
    }

    fn insert_meta(&self, d: Digest, m: Arc<ManifestMeta>) {
        let mut map = self.inner.meta.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= META_CACHE_MAX {
            map.clear();
        }
        map.insert(d, m);
    }

    pub(crate) fn manifest_meta(&self, d: &Digest, bytes: &[u8]) -> Arc<ManifestMeta> {
        if let Some(m) = self.cached_meta(d) {
            return m;
        }
        let meta = match RawManifest::parse_with_digest(bytes.to_vec(), None, Some(d)) {
            Ok(raw) => ManifestMeta::of(&raw),
            Err(_) => ManifestMeta::fallback(bytes),
        };
        let meta = Arc::new(meta);
        self.insert_meta(d.clone(), meta.clone());
        meta
    }

    pub(crate) fn remember_manifest(&self, raw: &RawManifest) {
        self.insert_meta(raw.digest().clone(), Arc::new(ManifestMeta::of(raw)));
    }

    /// Deletes upload sessions idle longer than the TTL; returns how many.
    pub async fn purge_stale_uploads(&self) -> std::io::Result<usize> {
        let state = self.clone();
        let ttl = self.inner.options.upload_ttl;
        let stale = {
            let s = state.clone();
            tokio::task::spawn_blocking(move || s.inner.storage.stale_uploads(ttl))
                .await
                .map_err(std::io::Error::other)??
        };
        let mut n = 0;
        for (repo, id) in stale {
            if self.inner.sessions.busy(&id) {
                continue;
            }
            let dir = self.inner.storage.upload_dir(&repo, &id);
            if tokio::fs::remove_dir_all(&dir).await.is_ok() {
                self.inner.sessions.remove(&id);
                tracing::info!("removed stale upload session {repo}/{id}");
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The registry's HTTP service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2/", get(routes::base))
        .route("/v2", get(routes::base))
        .route("/v2/_catalog", get(routes::catalog))
        // The bundle inspector page, built into the binary (see docs/web.md).
        .merge(crate::ui::router())
        .fallback(routes::dispatch)
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), frontdoor))
        .with_state(state)
}

/// Logs one line per request and applies auth and read-only mode before any route runs.
async fn frontdoor(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let opts = &state.inner.options;
    let mut resp = 'resp: {
        if let Some(users) = &opts.htpasswd {
            let auth = req
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if !users.check(auth).await {
                break 'resp RegistryError::unauthorized().into_response();
            }
        }
        if opts.read_only && !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
            break 'resp RegistryError::new(ErrorCode::Unsupported, "this registry is read-only")
                .into_response();
        }
        next.run(req).await
    };
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    tracing::info!(
        target: "ddiff::server",
        "{method} {uri} {} {}ms",
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    resp
}

/// Serves plain HTTP on `listener` until `shutdown` completes, then lets requests in flight
/// finish (for at most [`DRAIN_TIMEOUT`]). Also runs the stale-upload janitor.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let janitor = tokio::spawn(janitor(state.clone()));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut rx2 = rx.clone();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let drained = async move {
        let _ = rx2.wait_for(|v| *v).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    drop(rx);
    let r = tokio::select! {
        r = server => r,
        () = drained => {
            tracing::warn!("requests still running {DRAIN_TIMEOUT:?} after shutdown began; exiting anyway");
            Ok(())
        }
    };
    janitor.abort();
    r
}

/// How long a shutdown waits for requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

async fn janitor(state: AppState) {
    let period = (state.inner.options.upload_ttl / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        if let Err(e) = state.purge_stale_uploads().await {
            tracing::warn!("cleaning stale uploads: {e}");
        }
        tokio::time::sleep(period).await;
    }
}

/// The default storage directory: `$DDIFF_REGISTRY_VOLUME`, else
/// `$XDG_DATA_HOME/ddiff/registry`, else `~/.local/share/ddiff/registry`.
pub fn default_root() -> anyhow::Result<PathBuf> {
    if let Some(v) = std::env::var_os("DDIFF_REGISTRY_VOLUME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("ddiff").join("registry"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("cannot choose a storage directory: neither --root, DDIFF_REGISTRY_VOLUME, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/ddiff/registry"))
}

/// The default address: `127.0.0.1:$DDIFF_PORT`, else `127.0.0.1:5000`.
pub fn default_addr() -> anyhow::Result<String> {
    match std::env::var("DDIFF_PORT") {
        Ok(p) if !p.is_empty() => {
            let port: u16 = p
                .trim()
                .parse()
                .with_context(|| format!("DDIFF_PORT={p:?} is not a port number"))?;
            Ok(format!("127.0.0.1:{port}"))
        }
        _ => Ok(format!("127.0.0.1:{DEFAULT_PORT}")),
    }
}

/// SIGINT/SIGTERM, registered when made. The server makes it before it prints
/// "listening", so a signal sent right after that line always ends in a graceful
/// shutdown (tokio installs a handler only when the stream is created, and a
/// signal before that would kill the process with the default action).
struct ShutdownSignal {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    fn register() -> ShutdownSignal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(i), Ok(t)) => Some((i, t)),
                _ => {
                    tracing::warn!(
                        "cannot install SIGINT/SIGTERM handlers; the server ends only when killed"
                    );
                    None
                }
            };
            ShutdownSignal { streams }
        }
        #[cfg(not(unix))]
        ShutdownSignal {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        match self.streams {
            Some((mut int, mut term)) => {
                tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                }
            }
            None => std::future::pending::<()>().await,
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    }
}

/// `ddiff server`: runs the registry until SIGINT/SIGTERM, or runs `gc`.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    // Logging is configured once, by `main` (DDIFF_LOG, else RUST_LOG).
    let root = match &args.root {
        Some(r) => r.clone(),
        None => default_root()?,
    };
    if let Some(ServerCommand::Gc(gc_args)) = &args.command {
        let storage = Storage::new(&root);
        let min_age = Duration::from_secs(gc_args.min_age);
        let dry = gc_args.dry_run;
        let report = tokio::task::spawn_blocking(move || collect_garbage(&storage, dry, min_age))
            .await?
            .with_context(|| format!("garbage collection in {}", root.display()))?;
        println!("{report}");
        return Ok(());
    }
    let addr_s = match &args.addr {
        Some(a) => a.clone(),
        None => default_addr()?,
    };
    let addr: SocketAddr = tokio::net::lookup_host(&addr_s)
        .await
        .with_context(|| format!("cannot resolve --addr {addr_s:?}"))?
        .next()
        .with_context(|| format!("--addr {addr_s:?} resolves to no address"))?;

    let storage = Storage::new(&root);
    if args.read_only {
        if !storage.base().is_dir() {
            tracing::warn!(
                "{} holds no registry yet; serving an empty read-only registry",
                root.display()
            );
        }
    } else {
        storage.ensure_writable().with_context(|| {
            format!(
                "the storage directory {} is not writable (choose another with --root or DDIFF_REGISTRY_VOLUME, or pass --read-only)",
                root.display()
            )
        })?;
    }
    let htpasswd = match &args.htpasswd {
        Some(p) => Some(Htpasswd::load(p)?),
        None => None,
    };
    let options = Options {
        read_only: args.read_only,
        htpasswd,
        max_blob_size: args.max_blob_size.unwrap_or(u64::MAX),
        upload_ttl: Duration::from_secs(args.upload_ttl.max(1)),
    };
    tracing::debug!(
        root = %root.display(),
        read_only = options.read_only,
        auth = options.htpasswd.is_some(),
        max_blob_size = options.max_blob_size,
        upload_ttl_s = options.upload_ttl.as_secs(),
        "storage opened"
    );
    let state = AppState::new(&root, options);

    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (the port is taken: is another registry running? choose another with --addr or DDIFF_PORT)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot listen on {addr}: {e}{hint}")
    })?;
    let local = listener.local_addr()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            // Several providers may be compiled in; this server uses ring.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(c, k)
                    .await
                    .with_context(|| {
                        format!(
                            "loading TLS certificate {} and key {}",
                            c.display(),
                            k.display()
                        )
                    })?,
            )
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shutdown = ShutdownSignal::register();
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "ddiff server listening on {scheme}://{local} (root: {})",
            root.display()
        )?;
        out.flush()?;
    }
    match tls {
        None => serve_on(listener, state, shutdown.wait()).await?,
        Some(config) => {
            let handle = axum_server::Handle::new();
            let h2 = handle.clone();
            tokio::spawn(async move {
                shutdown.wait().await;
                h2.graceful_shutdown(Some(DRAIN_TIMEOUT));
            });
            let janitor = tokio::spawn(janitor(state.clone()));
            let std_listener = listener.into_std()?;
            axum_server::from_tcp_rustls(std_listener, config)?
                .handle(handle)
                .serve(router(state).into_make_service())
                .await?;
            janitor.abort();
        }
    }
    Ok(())
}
