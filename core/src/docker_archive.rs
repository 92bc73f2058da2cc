//! The metadata files of a `docker save` archive (`docker-archive:`): `manifest.json` and the
//! legacy `repositories`.
//!
//! ```text
//! manifest.json   [{"Config":"<hex>.json","RepoTags":["app:2"],"Layers":["<id>/layer.tar",…]}]
//!                 Docker ≥ 25 writes "blobs/sha256/<hex>" paths instead (the tar is also an
//!                 OCI layout); both forms are read and written the same way.
//! repositories    {"app":{"2":"<id of the top layer directory>"}}   (Docker < 25, skopeo)
//! ```
//!
//! Field names are exactly Docker's (`Config`, `RepoTags`, `Layers`, `Parent`, `LayerSources`);
//! unknown fields are ignored. Encoding is deterministic and, for the fields Docker writes, byte
//! for byte what `docker save` writes: compact JSON in field order, map keys sorted, a trailing
//! newline, and `"RepoTags":null` for an image saved by ID.
//!
//! Every path in these files names a tar entry chosen by whoever wrote the archive, so
//! [`parse_manifest`] checks them with [`validate_entry_path`] before a host opens anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::truncate_for_error;
use crate::{Descriptor, Digest, Reference, ReferenceError};

/// Largest `manifest.json` or `repositories` accepted (real ones are a few hundred bytes per
/// image).
pub const MAX_METADATA_BYTES: usize = 4 * 1024 * 1024;

/// Name of the manifest entry in the archive.
pub const MANIFEST_PATH: &str = "manifest.json";
/// Name of the legacy tag file in the archive.
pub const REPOSITORIES_PATH: &str = "repositories";

/// One image of a `docker save` archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path of the image config: `<hex>.json` (Docker < 25, skopeo) or `blobs/sha256/<hex>`.
    #[serde(rename = "Config")]
    pub config: String,
    /// Familiar names (`app:2`, `localhost:5000/team/app:v1`); `None` (`null`) when the image
    /// was saved by ID.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the uncompressed layer tars, base first: `<id>/layer.tar`, `<diffid>.tar`
    /// (skopeo) or `blobs/sha256/<hex>`.
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
    /// Legacy parent image ID; Docker omits it when empty.
    #[serde(rename = "Parent", default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Foreign layers (Windows base layers) not in the archive, by diff ID.
    #[serde(
        rename = "LayerSources",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub layer_sources: Option<BTreeMap<Digest, Descriptor>>,
}

impl ManifestEntry {
    /// The config digest (the image ID) from its file name: `<hex>.json` or
    /// `blobs/<alg>/<hex>`. The host must still hash the file to trust it.
    pub fn config_digest(&self) -> Option<Digest> {
        let c = self.config.strip_prefix("./").unwrap_or(&self.config);
        if let Some(hex) = c.strip_suffix(".json") {
            return Digest::parse(&format!("sha256:{hex}")).ok();
        }
        let mut parts = c.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("blobs"), Some(alg), Some(hex), None) => {
                Digest::parse(&format!("{alg}:{hex}")).ok()
            }
            _ => None,
        }
    }
}

/// The legacy `repositories` file: repository → tag → top layer ID.
pub type Repositories = BTreeMap<String, BTreeMap<String, String>>;

/// Why a path from an archive's metadata is unsafe to open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryPathError {
    /// The empty string (or only `.` and `/`).
    #[error("empty archive path {path:?}")]
    Empty { path: String },
    /// Starts with `/`.
    #[error("archive path {path:?} is absolute")]
    Absolute { path: String },
    /// Has a `..` component.
    #[error("archive path {path:?} leaves the archive with '..'")]
    ParentDir { path: String },
    /// Has a `\`, which Windows tools treat as a separator (`..\x`, `C:\x`).
    #[error("archive path {path:?} contains a backslash")]
    Backslash { path: String },
    /// Has a NUL byte.
    #[error("archive path {path:?} contains a NUL byte")]
    Nul { path: String },
}

/// Why `manifest.json` or `repositories` cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DockerArchiveError {
    /// Not valid JSON of the expected shape.
    #[error("invalid {file}: {message}")]
    Json { file: &'static str, message: String },
    /// Over [`MAX_METADATA_BYTES`].
    #[error("{file} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        file: &'static str,
        size: usize,
        limit: usize,
    },
    /// `manifest.json` lists no image.
    #[error("manifest.json lists no images")]
    NoImages,
    /// A path field names an unsafe tar entry.
    #[error("{file} {field}")]
    Path {
        file: &'static str,
        /// Where the path is, e.g. `[0].Layers[2]`.
        field: String,
        source: EntryPathError,
    },
    /// A `RepoTags` entry that `docker load` would refuse.
    #[error("manifest.json [{image}].RepoTags")]
    RepoTag {
        image: usize,
        source: ReferenceError,
    },
    /// A `RepoTags` entry with a digest (`docker load` needs `name:tag`).
    #[error(
        "manifest.json [{image}].RepoTags: {tag:?} has a digest; archives tag images by name:tag"
    )]
    RepoTagDigest { image: usize, tag: String },
    /// A `repositories` name or tag that is not valid.
    #[error("repositories {repository:?}")]
    Repository {
        repository: String,
        source: ReferenceError,
    },
    /// A `repositories` layer ID that is not 64 lowercase hex (it names a directory).
    #[error("repositories {repository:?} tag {tag:?}: layer ID {id:?} is not 64 lowercase hex characters")]
    LayerId {
        repository: String,
        tag: String,
        id: String,
    },
}

/// Checks that `path` names an entry inside the archive: relative, no `..`, no `\`, no NUL.
/// `.` components and repeated `/` are harmless and allowed (see [`normalize_entry_path`]).
pub fn validate_entry_path(path: &str) -> Result<(), EntryPathError> {
    normalize_entry_path(path).map(|_| ())
}

/// Validates `path` like [`validate_entry_path`] and returns it without `.` and empty
/// components (`./blobs//sha256/x` → `blobs/sha256/x`), the form to compare tar entry names in.
pub fn normalize_entry_path(path: &str) -> Result<String, EntryPathError> {
    let shown = || truncate_for_error(path);
    if path.contains('\0') {
        return Err(EntryPathError::Nul { path: shown() });
    }
    if path.contains('\\') {
        return Err(EntryPathError::Backslash { path: shown() });
    }
    if path.starts_with('/') {
        return Err(EntryPathError::Absolute { path: shown() });
    }
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(EntryPathError::ParentDir { path: shown() }),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(EntryPathError::Empty { path: shown() });
    }
    Ok(parts.join("/"))
}

fn check_size(file: &'static str, bytes: &[u8]) -> Result<(), DockerArchiveError> {
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(DockerArchiveError::TooLarge {
            file,
            size: bytes.len(),
            limit: MAX_METADATA_BYTES,
        });
    }
    Ok(())
}

/// Parses `manifest.json` and checks every path and tag in it.
pub fn parse_manifest(bytes: &[u8]) -> Result<Vec<ManifestEntry>, DockerArchiveError> {
    const FILE: &str = MANIFEST_PATH;
    check_size(FILE, bytes)?;
    let entries: Vec<ManifestEntry> =
        serde_json::from_slice(bytes).map_err(|e| DockerArchiveError::Json {
            file: FILE,
            message: e.to_string(),
        })?;
    if entries.is_empty() {
        return Err(DockerArchiveError::NoImages);
    }
    for (i, e) in entries.iter().enumerate() {
        let path_err = |field: String| {
            move |source| DockerArchiveError::Path {
                file: FILE,
                field,
                source,
            }
        };
        validate_entry_path(&e.config).map_err(path_err(format!("[{i}].Config")))?;
        for (j, l) in e.layers.iter().enumerate() {
            validate_entry_path(l).map_err(path_err(format!("[{i}].Layers[{j}]")))?;
        }
        for tag in e.repo_tags.iter().flatten() {
            let r = Reference::parse(tag)
                .map_err(|source| DockerArchiveError::RepoTag { image: i, source })?;
            if r.digest().is_some() {
                return Err(DockerArchiveError::RepoTagDigest {
                    image: i,
                    tag: truncate_for_error(tag),
                });
            }
        }
    }
    Ok(entries)
}

/// Appends `manifest.json` for `entries` to `out`, exactly as `docker save` lays it out.
pub fn encode_manifest(entries: &[ManifestEntry], out: &mut Vec<u8>) {
    encode_json(entries, out);
}

/// Parses the legacy `repositories` file and checks names, tags and layer IDs.
pub fn parse_repositories(bytes: &[u8]) -> Result<Repositories, DockerArchiveError> {
    const FILE: &str = REPOSITORIES_PATH;
    check_size(FILE, bytes)?;
    let repos: Repositories =
        serde_json::from_slice(bytes).map_err(|e| DockerArchiveError::Json {
            file: FILE,
            message: e.to_string(),
        })?;
    for (name, tags) in &repos {
        let repo_err = |source| DockerArchiveError::Repository {
            repository: truncate_for_error(name),
            source,
        };
        // A name with a tag or digest would make "name:tag" ambiguous.
        Reference::parse(name).map_err(repo_err)?;
        let has_tag = name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        if has_tag || name.contains('@') {
            return Err(repo_err(ReferenceError::InvalidFormat {
                input: truncate_for_error(name),
                reason: "a repositories key is a name without tag or digest",
            }));
        }
        for (tag, id) in tags {
            crate::reference::validate_tag(tag).map_err(repo_err)?;
            let hex = id.len() == 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(DockerArchiveError::LayerId {
                    repository: truncate_for_error(name),
                    tag: truncate_for_error(tag),
                    id: truncate_for_error(id),
                });
            }
        }
    }
    Ok(repos)
}

/// Appends the `repositories` file for `repos` to `out` (keys sorted, trailing newline, as
/// `docker save` writes it).
pub fn encode_repositories(repos: &Repositories, out: &mut Vec<u8>) {
    encode_json(repos, out);
}

fn encode_json<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Serialising into a Vec cannot fail for these types: all map keys are strings (Digest
    // serialises as one) and no Serialize impl here returns an error.
    #[allow(clippy::expect_used)]
    serde_json::to_writer(&mut *out, value).expect("docker archive metadata serialises");
    out.push(b'\n');
}

/// Why no image of a `docker save` archive was chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChooseError {
    /// No name given and the archive holds several images.
    #[error("the archive holds {0} images; name one as docker-archive:FILE:NAME:TAG")]
    Ambiguous(usize),
    /// `@N` with something else than a number after `@`.
    #[error("bad {0} (expected @N)")]
    BadPosition(String),
    /// `@N` past the end.
    #[error("no image {0}")]
    NoPosition(String),
    /// The name asked for is not an image name (the cause says why).
    #[error("{name:?}")]
    BadName {
        /// As written.
        name: String,
        /// Why.
        source: ReferenceError,
    },
    /// No image has this name.
    #[error("no image {name}; it has {}", available.join(", "))]
    NoName {
        /// As written.
        name: String,
        /// The archive's names.
        available: Vec<String>,
    },
}

/// Chooses the image of an archive's `manifest.json` that `select` names: `NAME:TAG` (compared
/// in familiar form, so `library/bb:1` finds `bb:1`), `@N` for the N-th, or (none) the only one.
pub fn choose(
    entries: Vec<ManifestEntry>,
    select: Option<&str>,
) -> Result<ManifestEntry, ChooseError> {
    let Some(s) = select else {
        return match <[ManifestEntry; 1]>::try_from(entries) {
            Ok([only]) => Ok(only),
            Err(all) => Err(ChooseError::Ambiguous(all.len())),
        };
    };
    if let Some(n) = s.strip_prefix('@') {
        let n: usize = n.parse().map_err(|_| ChooseError::BadPosition(s.into()))?;
        return entries
            .into_iter()
            .nth(n)
            .ok_or_else(|| ChooseError::NoPosition(s.into()));
    }
    let want = Reference::parse(s)
        .map_err(|source| ChooseError::BadName {
            name: s.into(),
            source,
        })?
        .familiar();
    let available: Vec<String> = entries
        .iter()
        .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
        .collect();
    entries
        .into_iter()
        .find(|e| {
            e.repo_tags
                .iter()
                .flatten()
                .any(|t| Reference::parse(t).is_ok_and(|r| r.familiar() == want))
        })
        .ok_or(ChooseError::NoName {
            name: s.into(),
            available,
        })
}

/// The name an archive's image gets in a bundle: the name it was chosen by, else its first
/// tag, else the file's stem (`stem`) as a repository, tagged `latest`.
pub fn image_name(entry: &ManifestEntry, select: Option<&str>, stem: Option<&str>) -> String {
    if let Some(r) = select
        .filter(|s| !s.starts_with('@'))
        .and_then(|s| Reference::parse(s).ok())
    {
        return r.familiar();
    }
    entry
        .repo_tags
        .iter()
        .flatten()
        .next()
        .and_then(|t| Reference::parse(t).ok())
        .map(|r| r.familiar())
        .unwrap_or_else(|| format!("{}:latest", crate::oci_layout::repository_guess(stem)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Real files from `docker save` (Docker 20.10.24) and `skopeo copy … docker-archive:`
    /// (skopeo 1.9.3), embedded so the tests need no filesystem (and run on wasm32).
    fn fixture(name: &str) -> Vec<u8> {
        macro_rules! files {
            ($($f:literal),*) => {
                match name {
                    $($f => include_bytes!(concat!("../tests/data/docker-archive/", $f)).to_vec(),)*
                    _ => panic!("no fixture {name}"),
                }
            };
        }
        files!(
            "docker-20.10-save-two-tags.manifest.json",
            "docker-20.10-save-two-tags.repositories",
            "docker-20.10-save-two-images.manifest.json",
            "docker-20.10-save-two-images.repositories",
            "docker-20.10-save-by-id.manifest.json",
            "skopeo-1.9.3-docker-archive.manifest.json",
            "skopeo-1.9.3-docker-archive.repositories"
        )
    }

    #[test]
    fn docker_save_fixtures_round_trip_byte_for_byte() {
        for name in [
            "docker-20.10-save-two-tags.manifest.json",
            "docker-20.10-save-two-images.manifest.json",
            "docker-20.10-save-by-id.manifest.json",
        ] {
            let bytes = fixture(name);
            let entries = parse_manifest(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut out = Vec::new();
            encode_manifest(&entries, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(bytes).unwrap(),
                "{name}"
            );
        }
        for name in [
            "docker-20.10-save-two-tags.repositories",
            "docker-20.10-save-two-images.repositories",
        ] {
            let bytes = fixture(name);
            let repos = parse_repositories(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut out = Vec::new();
            encode_repositories(&repos, &mut out);
            assert_eq!(out, bytes, "{name}");
        }
    }

    #[test]
    fn docker_save_fixture_contents() {
        let entries = parse_manifest(&fixture("docker-20.10-save-two-tags.manifest.json")).unwrap();
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(
            e.repo_tags.as_deref(),
            Some(
                &[
                    "app:2".to_string(),
                    "localhost:5000/team/app:v1".to_string()
                ][..]
            )
        );
        assert_eq!(e.layers.len(), 3);
        assert!(e.layers.iter().all(|l| l.ends_with("/layer.tar")));
        assert_eq!(
            e.config_digest().unwrap().to_string(),
            "sha256:c4898448403e6a9a83682fd593b9c5f748de7506f9bc0e15e85d13def13b463b"
        );
        let by_id = parse_manifest(&fixture("docker-20.10-save-by-id.manifest.json")).unwrap();
        assert_eq!(by_id[0].repo_tags, None);
        let two = parse_manifest(&fixture("docker-20.10-save-two-images.manifest.json")).unwrap();
        assert_eq!(two.len(), 2);
        let repos =
            parse_repositories(&fixture("docker-20.10-save-two-tags.repositories")).unwrap();
        assert_eq!(
            repos["localhost:5000/team/app"]["v1"],
            "35bac81d4e9b4a1d49e7fb973424a8436b31f62af8c6d011b25bcab39175fc3d"
        );
    }

    #[test]
    fn skopeo_fixture() {
        // skopeo writes no trailing newline and names layers `<diffid>.tar`.
        let bytes = fixture("skopeo-1.9.3-docker-archive.manifest.json");
        let entries = parse_manifest(&bytes).unwrap();
        assert_eq!(
            entries[0].repo_tags.as_deref(),
            Some(&["docker.io/library/app:2".to_string()][..])
        );
        let mut out = Vec::new();
        encode_manifest(&entries, &mut out);
        assert_eq!(out[..out.len() - 1], bytes[..]);
        let repos =
            parse_repositories(&fixture("skopeo-1.9.3-docker-archive.repositories")).unwrap();
        assert!(repos.contains_key("docker.io/library/app"));
    }

    #[test]
    fn docker_25_layout_and_extra_fields() {
        // Shape written by Docker >= 25 (moby image/tarexport), plus a field we do not know.
        let cfg = "a".repeat(64);
        let l1 = "b".repeat(64);
        let diff = format!("sha256:{}", "c".repeat(64));
        let json = format!(
            r#"[{{"Config":"blobs/sha256/{cfg}","RepoTags":["app:2"],"Layers":["blobs/sha256/{l1}"],"LayerSources":{{"{diff}":{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":5,"digest":"{diff}","urls":["https://example.com/l"]}}}},"Future":1}}]"#
        );
        let entries = parse_manifest(json.as_bytes()).unwrap();
        let e = &entries[0];
        assert_eq!(e.config_digest().unwrap().hex(), cfg);
        let sources = e.layer_sources.as_ref().unwrap();
        assert_eq!(sources.len(), 1);
        let mut out = Vec::new();
        encode_manifest(&entries, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&format!(
            r#"[{{"Config":"blobs/sha256/{cfg}","RepoTags":["app:2"],"Layers":["#
        )));
        assert!(!text.contains("Future"));
        assert_eq!(parse_manifest(text.as_bytes()).unwrap(), entries);
    }

    #[test]
    fn rejects_invalid_manifests_table() {
        let cases: Vec<(&str, &str)> = vec![
            ("", "json"),
            ("{}", "json"),
            ("[]", "empty"),
            (r#"[{"RepoTags":[],"Layers":[]}]"#, "json"),
            (r#"[{"config":"a.json","Layers":[]}]"#, "json"),
            (r#"[{"Config":1,"Layers":[]}]"#, "json"),
            (r#"[{"Config":"../a.json","Layers":[]}]"#, "path"),
            (r#"[{"Config":"/etc/passwd","Layers":[]}]"#, "path"),
            (
                r#"[{"Config":"a.json","Layers":["x/layer.tar","../../x"]}]"#,
                "path",
            ),
            (r#"[{"Config":"a.json","Layers":["x\\..\\y"]}]"#, "path"),
            (r#"[{"Config":"a.json","Layers":[""]}]"#, "path"),
            (r#"[{"Config":"a.json","RepoTags":["App:1"]}]"#, "tag"),
            (r#"[{"Config":"a.json","RepoTags":[""]}]"#, "tag"),
        ];
        for (input, kind) in cases {
            let err = parse_manifest(input.as_bytes()).unwrap_err();
            let ok = matches!(
                (&err, kind),
                (DockerArchiveError::Json { .. }, "json")
                    | (DockerArchiveError::NoImages, "empty")
                    | (DockerArchiveError::Path { .. }, "path")
                    | (DockerArchiveError::RepoTag { .. }, "tag")
            );
            assert!(ok, "{input:?}: expected {kind}, got {err:?}");
            assert!(!err.to_string().contains('\n'));
        }
        let digest_tag = format!(
            r#"[{{"Config":"a.json","RepoTags":["app@sha256:{}"]}}]"#,
            "a".repeat(64)
        );
        assert!(matches!(
            parse_manifest(digest_tag.as_bytes()),
            Err(DockerArchiveError::RepoTagDigest { image: 0, .. })
        ));
        let err = parse_manifest(br#"[{"Config":"a.json","Layers":["ok","../x"]}]"#).unwrap_err();
        assert_eq!(
            crate::display::error_chain(&err),
            "manifest.json [0].Layers[1]: archive path \"../x\" leaves the archive with '..'"
        );
        let big = vec![b' '; MAX_METADATA_BYTES + 1];
        assert!(matches!(
            parse_manifest(&big),
            Err(DockerArchiveError::TooLarge { .. })
        ));
    }

    #[test]
    fn rejects_invalid_repositories_table() {
        let id = "d".repeat(64);
        let cases: Vec<(String, &str)> = vec![
            ("[]".into(), "json"),
            (r#"{"app":{"2":1}}"#.into(), "json"),
            (format!(r#"{{"App":{{"2":"{id}"}}}}"#), "repository"),
            (format!(r#"{{"app:2":{{"2":"{id}"}}}}"#), "repository"),
            (format!(r#"{{"app":{{"-x":"{id}"}}}}"#), "repository"),
            (r#"{"app":{"2":"../../etc"}}"#.into(), "layer-id"),
            (
                format!(r#"{{"app":{{"2":"{}"}}}}"#, "D".repeat(64)),
                "layer-id",
            ),
        ];
        for (input, kind) in cases {
            let err = parse_repositories(input.as_bytes()).unwrap_err();
            let ok = matches!(
                (&err, kind),
                (DockerArchiveError::Json { .. }, "json")
                    | (DockerArchiveError::Repository { .. }, "repository")
                    | (DockerArchiveError::LayerId { .. }, "layer-id")
            );
            assert!(ok, "{input:?}: expected {kind}, got {err:?}");
        }
    }

    #[test]
    fn entry_paths_table() {
        for (ok, normal) in [
            ("manifest.json", "manifest.json"),
            ("./manifest.json", "manifest.json"),
            ("blobs//sha256/ab", "blobs/sha256/ab"),
            ("a/./b/", "a/b"),
            ("..a/b..", "..a/b.."),
        ] {
            assert_eq!(normalize_entry_path(ok).unwrap(), normal, "{ok}");
        }
        let cases = [
            ("", "empty"),
            (".", "empty"),
            ("./", "empty"),
            ("/a", "absolute"),
            ("//a", "absolute"),
            ("..", "parent"),
            ("a/../../b", "parent"),
            ("a/..", "parent"),
            ("..\\a", "backslash"),
            ("C:\\a", "backslash"),
            ("a\0b", "nul"),
        ];
        for (input, kind) in cases {
            let err = validate_entry_path(input).unwrap_err();
            let ok = matches!(
                (&err, kind),
                (EntryPathError::Empty { .. }, "empty")
                    | (EntryPathError::Absolute { .. }, "absolute")
                    | (EntryPathError::ParentDir { .. }, "parent")
                    | (EntryPathError::Backslash { .. }, "backslash")
                    | (EntryPathError::Nul { .. }, "nul")
            );
            assert!(ok, "{input:?}: expected {kind}, got {err:?}");
        }
    }

    #[test]
    fn an_image_is_chosen_by_name_position_or_as_the_only_one() {
        let e = |tags: &[&str]| ManifestEntry {
            config: "c.json".into(),
            repo_tags: Some(tags.iter().map(|t| t.to_string()).collect()),
            layers: vec![],
            parent: None,
            layer_sources: None,
        };
        let two = vec![e(&["bb:1"]), e(&["team/app:2", "app:latest"])];
        assert_eq!(choose(two.clone(), Some("library/bb:1")).unwrap(), two[0]);
        assert_eq!(choose(two.clone(), Some("@1")).unwrap(), two[1]);
        assert_eq!(choose(two.clone(), Some("app")).unwrap(), two[1]);
        assert_eq!(choose(two.clone(), None), Err(ChooseError::Ambiguous(2)));
        assert_eq!(
            choose(two.clone(), Some("@2")),
            Err(ChooseError::NoPosition("@2".into()))
        );
        assert_eq!(
            choose(two.clone(), Some("@z")),
            Err(ChooseError::BadPosition("@z".into()))
        );
        assert_eq!(
            choose(two.clone(), Some("other:1"))
                .unwrap_err()
                .to_string(),
            "no image other:1; it has bb:1, team/app:2, app:latest"
        );
        assert!(matches!(
            choose(two.clone(), Some("Bad:1")),
            Err(ChooseError::BadName { .. })
        ));
        assert_eq!(choose(vec![e(&[])], None).unwrap(), e(&[]));
        assert_eq!(image_name(&two[1], None, None), "team/app:2");
        assert_eq!(image_name(&two[1], Some("app"), None), "app:latest");
        assert_eq!(
            image_name(&e(&[]), Some("@0"), Some("My Save")),
            "my-save:latest"
        );
    }
}
