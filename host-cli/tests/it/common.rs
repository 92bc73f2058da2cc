//! Shared harness for tests against real peers: the built `ddiff` binary, Debian's
//! `docker-registry` (distribution 2.8, the code of `registry:2`), the Docker engine, skopeo.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether `peer` ("docker", "skopeo" or "docker-registry") can be used. When it cannot,
/// prints `SKIPPED <test>: <reason>` and returns false, unless `DDIFF_REQUIRE_PEERS=1`, in
/// which case it panics (the full suite must not skip silently).
pub fn require_peer(peer: &str) -> bool {
    let reason = match peer {
        "docker" => match std::env::var("DDIFF_TEST_DOCKER_HOST") {
            Err(_) => Some("DDIFF_TEST_DOCKER_HOST is not set".to_owned()),
            Ok(host) => match Command::new("docker")
                .args(["version", "--format", "{{.Server.Version}}"])
                .env("DOCKER_HOST", &host)
                .output()
            {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(format!(
                    "no Docker engine at {host}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Some(format!("cannot run the docker CLI: {e}")),
            },
        },
        "skopeo" | "docker-registry" => match Command::new(peer).arg("--version").output() {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "{peer} --version failed: {}",
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Some(format!("{peer} is not installed: {e}")),
        },
        other => panic!("unknown peer {other}"),
    };
    let Some(reason) = reason else {
        return true;
    };
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    if std::env::var("DDIFF_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{test}: peer {peer} required (DDIFF_REQUIRE_PEERS=1) but unavailable: {reason}");
    }
    println!("SKIPPED {test}: {reason}");
    false
}

/// The built `ddiff` binary, kept apart from the developer's environment: no default
/// registry (`DDIFF_URL`, `DDIFF_PORT` removed) and the test engine as `DOCKER_HOST`. A test
/// that needs another value sets it on the returned command.
pub fn ddiff() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ddiff"));
    c.env(
        "DOCKER_HOST",
        std::env::var("DDIFF_TEST_DOCKER_HOST").unwrap_or_default(),
    )
    .env_remove("DDIFF_URL")
    .env_remove("DDIFF_PORT");
    c
}

/// [`ddiff`] with `--quiet` (no progress lines on stderr).
pub fn ddiff_quiet() -> Command {
    let mut c = ddiff();
    c.arg("--quiet");
    c
}

/// Runs a command that must succeed and returns its stdout, which must be UTF-8 (panics with
/// its output if not).
/// Every file (not directory) under `root`, as paths relative to it, sorted; none when
/// `root` does not exist. The tests' "the destination is unchanged" listings are built on it.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

pub fn ok(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("stdout is UTF-8")
}

/// Runs a command that must fail and returns its output (panics with its output if not).
pub fn fails(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A command's stdout, lossily decoded.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr, lossily decoded.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A `docker` CLI command aimed at the test engine.
pub fn docker() -> Command {
    let mut c = Command::new("docker");
    c.env(
        "DOCKER_HOST",
        std::env::var("DDIFF_TEST_DOCKER_HOST").unwrap_or_default(),
    );
    c
}

/// A `skopeo` command.
pub fn skopeo() -> Command {
    Command::new("skopeo")
}

/// The original tool's base image (busybox, Docker v2s2, as skopeo's `dir:` transport keeps
/// it), from the fixtures.
pub fn bb_base_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/original-ddiff/bb-base-dir")
}

/// Copies [`bb_base_dir`] with skopeo to `dest` (a plain-HTTP `docker://` reference here);
/// skopeo keeps its Docker v2s2 media types.
pub fn push_bb_base(dest: &str) {
    run(skopeo()
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("dir:{}", bb_base_dir().display()))
        .arg(dest));
}

/// A `ddiff server` child process on `127.0.0.1:0`.
pub struct DdiffServer {
    pub child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub root: PathBuf,
    pub log: PathBuf,
}

impl DdiffServer {
    /// Starts the built binary and reads the port from its one stdout line.
    pub fn start(root: &Path, extra: &[&str]) -> DdiffServer {
        Self::start_with_env(root, extra, &[])
    }

    /// [`DdiffServer::start`] with extra environment variables.
    pub fn start_with_env(root: &Path, extra: &[&str], env: &[(&str, &str)]) -> DdiffServer {
        let log = root.with_extension(format!("ddiff-{}.log", std::process::id()));
        let mut child = ddiff()
            .args(["server", "--addr", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("DDIFF_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("ddiff server listening on http://")
            .or_else(|| line.strip_prefix("ddiff server listening on https://"))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_owned();
        assert!(
            line.contains(&format!("(root: {})", root.display())),
            "{line}"
        );
        DdiffServer {
            child,
            addr,
            root: root.to_owned(),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DdiffServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `GET http://addr/v2/` until it answers (readiness, not a fixed sleep).
pub fn wait_ready(addr: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server at {addr} exited early: {status}");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes());
            let mut buf = [0u8; 16];
            if s.read(&mut buf)
                .map(|n| buf[..n].starts_with(b"HTTP/1."))
                .unwrap_or(false)
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server at {addr} never became ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Debian's `docker-registry serve` with filesystem storage under `root`, deletes enabled.
pub struct RefRegistry {
    pub child: Child,
    pub addr: String,
    _config: tempfile::NamedTempFile,
}

impl RefRegistry {
    pub fn start(root: &Path) -> RefRegistry {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut config = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
        std::io::Write::write_all(
            &mut config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                root.display()
            )
            .as_bytes(),
        )
        .unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(config.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_ready(&addr, &mut child);
        RefRegistry {
            child,
            addr,
            _config: config,
        }
    }
}

impl Drop for RefRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a tiny image in the test engine from the host's static busybox (there is no Docker
/// Hub here), tagged `tag`, with a layer saying `msg` on top.
pub fn docker_image(tag: &str, msg: &str) {
    let base = "ddiff-test/bb:base";
    let have = docker().args(["image", "inspect", base]).output().unwrap();
    if !have.status.success() {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox (busybox-static) is needed to build a test image");
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        for c in ["sh", "echo", "cat", "ls"] {
            std::os::unix::fs::symlink("busybox", bin.join(c)).unwrap();
        }
        let tar = dir.path().join("base.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-cf")
            .arg(&tar)
            .arg("bin"));
        run(docker().arg("import").arg(&tar).arg(base));
    }
    docker_build(
        base,
        tag,
        &[
            &format!("RUN echo {msg} > /msg.txt"),
            "CMD [\"cat\", \"/msg.txt\"]",
        ],
    );
}

/// Builds `tag` in the test engine from `FROM from` and these Dockerfile lines, with the
/// legacy builder and no network.
pub fn docker_build(from: &str, tag: &str, lines: &[&str]) {
    let ctx = tempfile::tempdir().unwrap();
    let mut df = format!("FROM {from}\n");
    for l in lines {
        df.push_str(l);
        df.push('\n');
    }
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    run(docker()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "--network", "none", "-t", tag])
        .arg(ctx.path()));
}

/// The engine's image ID for `name`, or `None` when it has no such image.
pub fn image_id(name: &str) -> Option<String> {
    let o = docker()
        .args(["image", "inspect", "--format", "{{.Id}}", name])
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// `docker push` under another name, leaving the local image as it was.
pub fn push(local: &str, remote: &str) {
    run(docker().args(["tag", local, remote]));
    run(docker().args(["push", remote]).stdout(Stdio::null()));
    run(docker().args(["rmi", remote]).stdout(Stdio::null()));
}

/// A tar of these (path, data) entries written by the core's tar writer, as the bundle
/// writer lays them out.
pub fn tar_of<P: AsRef<str>, D: AsRef<[u8]>>(entries: &[(P, D)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (p, d) in entries {
        ddiff_core::tar::write_file(&mut out, p.as_ref(), d.as_ref(), 0o644, 0);
    }
    ddiff_core::tar::write_end(&mut out);
    out
}

/// The names directly in `dir`, sorted.
pub fn top_level(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
