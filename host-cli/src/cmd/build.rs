//! `ddiff build [DOCKER BUILD ARGS...]`: run `docker build` with the arguments unchanged, find
//! the base the Dockerfile builds on (the core's resolver: stages, `ARG` in `FROM`, comments,
//! `--target`, `--build-arg`) and write the bundle of what the build added to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use ddiff_core::dockerfile::{resolve_base, BaseImage, ResolveOptions};

use super::diff::DiffArgs;
use super::{Global, PlatformArgs};
use crate::compress::CompressArgs;
use crate::progress::human_bytes;

/// Build an image with `docker build` and write a bundle of what it adds to its base.
///
/// Every argument after ddiff's own options goes to `docker build` unchanged (BuildKit or the
/// legacy builder, -f, --target, --build-arg, --platform, the context). The image must be
/// tagged (-t NAME:TAG): the bundle loads under that name. The base is the image the target
/// stage's FROM names; `FROM scratch` carries everything.
///
/// Example: ddiff build -t app:2 --build-arg VERSION=2 .
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Bundle file [default: <repository>-<tag>.ddiff].
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub compress: CompressArgs,
    #[command(flatten)]
    pub delta: crate::delta::DeltaArgs,
    #[command(flatten)]
    pub sign: crate::signing::SignArgs,
    #[command(flatten)]
    pub volumes: crate::volume_io::VolumeArgs,
    /// Arguments for `docker build`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "DOCKER BUILD ARGS"
    )]
    pub docker_args: Vec<String>,
}

/// What ddiff needs to know from a `docker build` command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BuildLine {
    /// `-f`/`--file`.
    pub file: Option<String>,
    /// `-t`/`--tag` values.
    pub tags: Vec<String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--build-arg` values (`NAME=VALUE`, or `NAME` taken from the environment).
    pub build_args: BTreeMap<String, String>,
    /// `--platform`.
    pub platform: Option<String>,
    /// The context (PATH, URL or `-`).
    pub context: Option<String>,
}

/// Options of `docker build` / `docker buildx build` that take a value (the rest are flags).
const WITH_VALUE: &[&str] = &[
    "-f",
    "--file",
    "-t",
    "--tag",
    "--target",
    "--build-arg",
    "--platform",
    "--network",
    "--label",
    "--cache-from",
    "--cache-to",
    "-o",
    "--output",
    "--secret",
    "--ssh",
    "--iidfile",
    "--progress",
    "--add-host",
    "-c",
    "--cpu-shares",
    "-m",
    "--memory",
    "--memory-swap",
    "--shm-size",
    "--ulimit",
    "--isolation",
    "--cgroup-parent",
    "--cpuset-cpus",
    "--cpuset-mems",
    "--cpu-period",
    "--cpu-quota",
    "--security-opt",
    "--build-context",
    "--allow",
    "--attest",
    "--sbom",
    "--provenance",
    "--builder",
    "--metadata-file",
    "--annotation",
    "--call",
    "--check",
];

/// Reads a `docker build` command line (`-t x`, `-tx`, `--tag x`, `--tag=x` forms).
pub fn parse_build_line(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<BuildLine> {
    let mut b = BuildLine::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            if let Some(c) = args.get(i) {
                b.context = Some(c.clone());
            }
            break;
        }
        if !a.starts_with('-') || a == "-" {
            b.context = Some(a.clone());
            continue;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ if !a.starts_with("--") && a.len() > 2 && WITH_VALUE.contains(&&a[..2]) => {
                (a[..2].to_string(), Some(a[2..].to_string()))
            }
            _ => (a.clone(), None),
        };
        if !WITH_VALUE.contains(&name.as_str()) {
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .with_context(|| format!("docker build option {name} needs a value"))?;
                i += 1;
                v.clone()
            }
        };
        match name.as_str() {
            "-f" | "--file" => b.file = Some(value),
            "-t" | "--tag" => b.tags.push(value),
            "--target" => b.target = Some(value),
            "--platform" => b.platform = Some(value),
            "--build-arg" => {
                let (k, v) = match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.clone(), env(&value)),
                };
                // `--build-arg NAME` with NAME unset passes nothing, as docker does.
                if let Some(v) = v {
                    b.build_args.insert(k, v);
                }
            }
            _ => {}
        }
    }
    Ok(b)
}

fn stderr_stdio() -> Result<Stdio> {
    use std::os::fd::AsFd;
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("cannot duplicate stderr")?;
    Ok(Stdio::from(fd))
}

/// Runs `build`.
pub async fn run(args: BuildArgs, global: &Global) -> Result<ExitCode> {
    let line = parse_build_line(&args.docker_args, |k| std::env::var(k).ok())?;
    let Some(tag) = line.tags.first().cloned() else {
        bail!("ddiff build needs -t NAME:TAG for the image (the bundle loads under that name)");
    };
    let context = line
        .context
        .clone()
        .context("docker build needs a context (PATH, URL or -)")?;
    // The Dockerfile as docker build reads it: -f (relative to the current directory), else
    // Dockerfile in the context.
    let df_path = match &line.file {
        Some(f) if f == "-" => {
            bail!("ddiff build cannot read the Dockerfile from stdin (-f -); pass a file")
        }
        Some(f) => PathBuf::from(f),
        None if context == "-" || context.contains("://") || context.starts_with("git@") => {
            bail!("ddiff build needs a local context directory to read the Dockerfile from (or -f FILE)")
        }
        None => Path::new(&context).join("Dockerfile"),
    };
    let text = std::fs::read_to_string(&df_path)
        .with_context(|| format!("cannot read the Dockerfile {}", df_path.display()))?;
    // Resolve before building: a Dockerfile we cannot read is reported before a long build.
    let mut opts = ResolveOptions {
        target: line.target.clone(),
        build_args: line.build_args.clone(),
    };
    if let Some(p) = &line.platform {
        let (os, arch) = p.split_once('/').unwrap_or(("linux", p));
        for k in ["TARGETPLATFORM", "BUILDPLATFORM"] {
            opts.build_args.entry(k.into()).or_insert_with(|| p.clone());
        }
        opts.build_args
            .entry("TARGETOS".into())
            .or_insert_with(|| os.into());
        opts.build_args
            .entry("TARGETARCH".into())
            .or_insert_with(|| arch.split('/').next().unwrap_or(arch).into());
    }
    let base = resolve_base(&text, &opts)
        .with_context(|| format!("{}: cannot find the base image", df_path.display()))?;
    let progress = global.progress();
    progress.println(format!("docker build {}", args.docker_args.join(" ")));
    let status = Command::new("docker")
        .arg("build")
        .args(&args.docker_args)
        .stdin(Stdio::inherit())
        // docker build's output goes to stderr: stdout carries only ddiff's result.
        .stdout(stderr_stdio()?)
        .status()
        .context("cannot run docker (is the docker CLI installed?)")?;
    if !status.success() {
        bail!("docker build failed ({status}); no bundle was written");
    }
    let base_ref = match &base {
        BaseImage::Scratch => {
            progress.println("FROM scratch: the bundle carries every layer");
            "scratch".to_string()
        }
        BaseImage::Image { reference, .. } => reference.clone(),
        _ => bail!("unsupported base image kind"),
    };
    let dargs = DiffArgs {
        base: base_ref.clone(),
        targets: vec![tag.clone()],
        output: args.bundle.clone(),
        platform: PlatformArgs::default(),
        compress: args.compress.clone(),
        delta: args.delta.clone(),
        sign: args.sign.clone(),
        no_provenance: false,
        volumes: args.volumes.clone(),
    };
    let s = super::diff::diff(&dargs, global).await?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!(
            "wrote {} ({}): {tag} on {base_ref}, carries {} of {}",
            s.bundle,
            human_bytes(s.bundle_bytes),
            human_bytes(s.carried_bytes),
            human_bytes(s.full_bytes)
        );
        let first = s.volumes.first().unwrap_or(&s.bundle);
        println!("offline, run: ddiff load {first}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn reads_docker_build_lines() {
        let b = parse_build_line(
            &v("-t app:2 --no-cache -f ctx/Dockerfile.app --target=release --build-arg V=3 --build-arg FROMENV --build-arg UNSET --platform linux/amd64 --network none ctx"),
            |k| (k == "FROMENV").then(|| "e".to_string()),
        )
        .unwrap();
        assert_eq!(b.tags, vec!["app:2"]);
        assert_eq!(b.file.as_deref(), Some("ctx/Dockerfile.app"));
        assert_eq!(b.target.as_deref(), Some("release"));
        assert_eq!(b.build_args["V"], "3");
        assert_eq!(b.build_args["FROMENV"], "e");
        assert!(!b.build_args.contains_key("UNSET"));
        assert_eq!(b.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(b.context.as_deref(), Some("ctx"));
        let short = parse_build_line(&v("-tapp:3 -q ."), |_| None).unwrap();
        assert_eq!(short.tags, vec!["app:3"]);
        assert_eq!(short.context.as_deref(), Some("."));
        assert!(parse_build_line(&v("-t"), |_| None).is_err());
    }
}
