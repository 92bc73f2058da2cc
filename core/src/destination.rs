//! Where a load writes (`ddiff load --to`), and the names images get there: one parser for
//! every transport, and the naming rules every destination shares (which repository a name
//! goes to in a private registry, which name the base had on the online side).

use crate::{ImageRef, Reference, ReferenceError};

/// A load's destination, as `--to` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `docker://HOST` (the bundle's names) or `docker://HOST/REPO:TAG` (one-target bundles).
    Registry {
        /// `host[:port]`.
        host: String,
        /// The name to write the only target under.
        rename: Option<Reference>,
    },
    /// `docker-daemon:` or `docker-daemon:NAME:TAG` (one-target bundles).
    Engine {
        /// The name to load the only target as.
        rename: Option<Reference>,
    },
    /// `oci:DIR`: an OCI image layout directory; images keep the bundle's tags.
    Layout {
        /// The directory.
        path: String,
    },
    /// `oci-archive:FILE`: a tar of an OCI image layout, rewritten whole.
    OciArchive {
        /// The file.
        path: String,
    },
    /// `docker-archive:FILE`: a `docker load` file (one-target bundles).
    DockerArchive {
        /// The file.
        path: String,
    },
}

/// Why `--to` is not a destination.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DestinationError {
    /// Not a transport a load writes to.
    #[error("expected docker://HOST or docker://HOST/REPO:TAG")]
    Transport,
    /// A layout or archive destination with an image name: they keep the bundle's tags.
    #[error("name the {what} only ({form}); images keep the bundle's tags")]
    Named {
        /// `file` or `layout`.
        what: &'static str,
        /// `oci:DIR` etc.
        form: &'static str,
    },
    /// The name does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A rename with a bundle of several targets.
    #[error("{form} needs a one-target bundle; this one has {targets} targets{hint}")]
    NotOneTarget {
        /// What was asked.
        form: &'static str,
        /// How many targets the bundle has.
        targets: usize,
        /// What to do instead.
        hint: &'static str,
    },
}

impl Destination {
    /// Parses `--to`.
    pub fn parse(to: &str) -> Result<Destination, DestinationError> {
        if to == "docker-daemon:" || to == "docker-daemon" {
            return Ok(Destination::Engine { rename: None });
        }
        if let Some(rest) = to.strip_prefix("docker://") {
            if !rest.contains('/') {
                return Ok(Destination::Registry {
                    host: rest.to_string(),
                    rename: None,
                });
            }
            let r = Reference::parse(rest)?;
            return Ok(Destination::Registry {
                host: r.registry().to_string(),
                rename: Some(r),
            });
        }
        let named = |what, form| Err(DestinationError::Named { what, form });
        match ImageRef::parse(to) {
            Ok(ImageRef::DockerDaemon(r)) => Ok(Destination::Engine { rename: Some(r) }),
            Ok(ImageRef::Oci { path, reference }) => match reference {
                None => Ok(Destination::Layout { path }),
                Some(_) => named("layout", "oci:DIR"),
            },
            Ok(ImageRef::OciArchive { path, reference }) => match reference {
                None => Ok(Destination::OciArchive { path }),
                Some(_) => named("file", "oci-archive:FILE"),
            },
            Ok(ImageRef::DockerArchive { path, reference }) => match reference {
                None => Ok(Destination::DockerArchive { path }),
                Some(_) => named("file", "docker-archive:FILE"),
            },
            Err(e) if has_local_transport(to) => Err(e.into()),
            _ => Err(DestinationError::Transport),
        }
    }

    /// Checks the destination can take a bundle of `targets` targets: a rename, and a
    /// `docker load` file, name one image.
    pub fn check_targets(&self, targets: usize) -> Result<(), DestinationError> {
        let (form, hint) = match self {
            Destination::Registry {
                rename: Some(_), ..
            } => ("--to with a repository", " (use --to docker://HOST)"),
            Destination::Engine { rename: Some(_) } => ("--to docker-daemon:NAME", ""),
            Destination::DockerArchive { .. } => ("--to docker-archive:", ""),
            _ => return Ok(()),
        };
        if targets == 1 {
            return Ok(());
        }
        Err(DestinationError::NotOneTarget {
            form,
            targets,
            hint,
        })
    }
}

fn has_local_transport(to: &str) -> bool {
    ["docker-daemon:", "oci:", "oci-archive:", "docker-archive:"]
        .iter()
        .any(|p| to.starts_with(p))
}

/// A name as written on the online side, without a `docker://` or `docker-daemon:` prefix.
fn unprefixed(written: &str) -> &str {
    written
        .strip_prefix("docker://")
        .or_else(|| written.strip_prefix("docker-daemon:"))
        .unwrap_or(written)
}

/// The repository an image named `written` goes to in a private registry: names written
/// without a registry (`bb:new`, as the original tool and Docker users write them) keep their
/// short path (`bb`), not Docker Hub's `library/bb`.
pub fn destination_repository(written: &str, parsed: &Reference) -> String {
    let w = unprefixed(written);
    let explicit_hub = w.starts_with("docker.io/") || w.starts_with("index.docker.io/");
    if parsed.registry() == "docker.io" && !explicit_hub {
        parsed.familiar_name()
    } else {
        parsed.repository().to_string()
    }
}

/// A bundle's base as a destination registry knows it: the repository it goes to there (see
/// [`destination_repository`]) and its tag, whatever transport or registry it was named with
/// on the source side. `None` for names that are not image references.
pub fn base_repository(written: &str) -> Option<(String, String)> {
    let r = Reference::parse(unprefixed(written)).ok()?;
    Some((
        destination_repository(written, &r),
        r.tag_or_latest().to_string(),
    ))
}

/// Names under which a Docker engine may hold an image named `written` on the online side:
/// as written, and without a registry host (`reg:5000/team/app:1` is pulled as
/// `team/app:1`); a `docker-archive:FILE:NAME` gives `NAME`.
pub fn engine_names(written: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(ir) = ImageRef::parse(written) else {
        return out;
    };
    if let Some(reference) = ir.reference() {
        out.push(reference.familiar());
        let short = format!("{}:{}", reference.repository(), reference.tag_or_latest());
        if let Ok(s) = Reference::parse(&short) {
            out.push(s.familiar());
        }
    } else if let ImageRef::DockerArchive {
        reference: Some(n), ..
    } = ir
    {
        out.push(n);
    }
    out.dedup();
    out
}

/// The engine name of an image loaded into a registry at `repo:tag`: the same name without
/// the registry host (`perf/app:2`), which is the name it had on the online side unless
/// `--to` renamed it.
pub fn engine_name(repo: &str, tag: &str) -> Result<String, ReferenceError> {
    Ok(Reference::parse(&format!("{repo}:{tag}"))?.familiar())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_transport_parses_to_one_destination() {
        let reg = Destination::parse("docker://reg.local:5000").unwrap();
        assert_eq!(
            reg,
            Destination::Registry {
                host: "reg.local:5000".into(),
                rename: None
            }
        );
        let Destination::Registry {
            host,
            rename: Some(r),
        } = Destination::parse("docker://reg.local:5000/team/app:3").unwrap()
        else {
            panic!("rename");
        };
        assert_eq!(
            (host.as_str(), r.repository()),
            ("reg.local:5000", "team/app")
        );
        assert_eq!(
            Destination::parse("docker-daemon:").unwrap(),
            Destination::Engine { rename: None }
        );
        let Destination::Engine { rename: Some(r) } =
            Destination::parse("docker-daemon:app:9").unwrap()
        else {
            panic!("engine rename");
        };
        assert_eq!(r.familiar(), "app:9");
        assert_eq!(
            Destination::parse("oci:/tmp/lay").unwrap(),
            Destination::Layout {
                path: "/tmp/lay".into()
            }
        );
        assert_eq!(
            Destination::parse("oci-archive:a.tar").unwrap(),
            Destination::OciArchive {
                path: "a.tar".into()
            }
        );
        assert_eq!(
            Destination::parse("docker-archive:a.tar").unwrap(),
            Destination::DockerArchive {
                path: "a.tar".into()
            }
        );
        for (to, msg) in [
            ("oci:/tmp/lay:2", "name the layout only (oci:DIR)"),
            (
                "oci-archive:a.tar:2",
                "name the file only (oci-archive:FILE)",
            ),
            ("docker-archive:a.tar:app:2", "name the file only"),
            ("reg:5000/app:2", "expected docker://HOST"),
            ("http://reg", "expected docker://HOST"),
        ] {
            let e = Destination::parse(to).unwrap_err().to_string();
            assert!(e.contains(msg), "{to}: {e}");
        }
        assert!(matches!(
            Destination::parse("docker://reg/App:2"),
            Err(DestinationError::Reference(_))
        ));
    }

    #[test]
    fn renames_and_docker_load_files_take_one_target() {
        let d = Destination::parse("docker://reg/team/app:3").unwrap();
        assert!(d.check_targets(1).is_ok());
        let e = d.check_targets(2).unwrap_err().to_string();
        assert!(
            e.contains("this one has 2 targets (use --to docker://HOST)"),
            "{e}"
        );
        assert!(Destination::parse("docker://reg")
            .unwrap()
            .check_targets(5)
            .is_ok());
        assert!(Destination::parse("docker-archive:x.tar")
            .unwrap()
            .check_targets(2)
            .is_err());
        assert!(Destination::parse("oci:x")
            .unwrap()
            .check_targets(2)
            .is_ok());
    }

    #[test]
    fn names_keep_their_short_path_in_private_registries() {
        let r = Reference::parse("bb:new").unwrap();
        assert_eq!(destination_repository("bb:new", &r), "bb");
        let r = Reference::parse("docker.io/library/bb:new").unwrap();
        assert_eq!(
            destination_repository("docker.io/library/bb:new", &r),
            "library/bb"
        );
        assert_eq!(
            base_repository("docker://online:5000/team/base:1"),
            Some(("team/base".into(), "1".into()))
        );
        assert_eq!(
            base_repository("docker-daemon:bb"),
            Some(("bb".into(), "latest".into()))
        );
        assert_eq!(
            engine_names("docker://online:5000/team/base:1"),
            vec!["online:5000/team/base:1", "team/base:1"]
        );
        assert_eq!(engine_names("docker-archive:b.tar:bb:1"), vec!["bb:1"]);
        assert_eq!(engine_name("perf/app", "2").unwrap(), "perf/app:2");
    }
}
