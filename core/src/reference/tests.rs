#![allow(clippy::unwrap_used)]
use super::*;
use crate::Digest;

#[test]
fn repository_names() {
    for ok in ["a", "library/busybox", "a-b/c__d/e.f", "a--b", "x/y/z/0"] {
        validate_repository(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let long = "a".repeat(256);
    for bad in [
        "",
        "A",
        "a/../b",
        "..",
        "a//b",
        "/a",
        "a/",
        "a_.b",
        "a___b",
        "-a",
        "a-",
        "a%2fb",
        long.as_str(),
    ] {
        assert!(validate_repository(bad).is_err(), "{bad}");
    }
}

#[test]
fn tags() {
    for ok in ["1", "latest", "v1.2.3-rc_1", "_x", &"a".repeat(128)] {
        validate_tag(ok).unwrap();
    }
    for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
        assert!(validate_tag(bad).is_err(), "{bad}");
    }
}

/// (input, registry, repository, tag, has digest, canonical, familiar)
type Row = (
    String,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
    String,
    String,
);

#[test]
fn parses_valid_table() {
    let h = "a".repeat(64);
    let d = format!("sha256:{h}");
    #[rustfmt::skip]
    let cases: Vec<Row> = vec![
        ("busybox".into(), "docker.io", "library/busybox", Some("latest"), false,
         "docker.io/library/busybox:latest".into(), "busybox:latest".into()),
        ("busybox:1.36".into(), "docker.io", "library/busybox", Some("1.36"), false,
         "docker.io/library/busybox:1.36".into(), "busybox:1.36".into()),
        ("team/app:2".into(), "docker.io", "team/app", Some("2"), false,
         "docker.io/team/app:2".into(), "team/app:2".into()),
        ("docker.io/busybox".into(), "docker.io", "library/busybox", Some("latest"), false,
         "docker.io/library/busybox:latest".into(), "busybox:latest".into()),
        ("index.docker.io/library/busybox:latest".into(), "docker.io", "library/busybox", Some("latest"), false,
         "docker.io/library/busybox:latest".into(), "busybox:latest".into()),
        ("index.docker.io/busybox".into(), "docker.io", "library/busybox", Some("latest"), false,
         "docker.io/library/busybox:latest".into(), "busybox:latest".into()),
        ("library/a/b".into(), "docker.io", "library/a/b", Some("latest"), false,
         "docker.io/library/a/b:latest".into(), "library/a/b:latest".into()),
        ("localhost/app".into(), "localhost", "app", Some("latest"), false,
         "localhost/app:latest".into(), "localhost/app:latest".into()),
        ("localhost:5000/app:1".into(), "localhost:5000", "app", Some("1"), false,
         "localhost:5000/app:1".into(), "localhost:5000/app:1".into()),
        ("[::1]:5000/x".into(), "[::1]:5000", "x", Some("latest"), false,
         "[::1]:5000/x:latest".into(), "[::1]:5000/x:latest".into()),
        ("[fe80::1]/x/y".into(), "[fe80::1]", "x/y", Some("latest"), false,
         "[fe80::1]/x/y:latest".into(), "[fe80::1]/x/y:latest".into()),
        ("10.0.0.1:443/a:b".into(), "10.0.0.1:443", "a", Some("b"), false,
         "10.0.0.1:443/a:b".into(), "10.0.0.1:443/a:b".into()),
        ("registry.example.com/a/b/c:tag".into(), "registry.example.com", "a/b/c", Some("tag"), false,
         "registry.example.com/a/b/c:tag".into(), "registry.example.com/a/b/c:tag".into()),
        ("myhost:5000/a".into(), "myhost:5000", "a", Some("latest"), false,
         "myhost:5000/a:latest".into(), "myhost:5000/a:latest".into()),
        // Uppercase first component: a domain, as in distribution/reference.
        ("Registry/app".into(), "Registry", "app", Some("latest"), false,
         "Registry/app:latest".into(), "Registry/app:latest".into()),
        (format!("busybox@{d}"), "docker.io", "library/busybox", None, true,
         format!("docker.io/library/busybox@{d}"), format!("busybox@{d}")),
        (format!("busybox:1@{d}"), "docker.io", "library/busybox", Some("1"), true,
         format!("docker.io/library/busybox:1@{d}"), format!("busybox:1@{d}")),
        (format!("localhost:5000/app@{d}"), "localhost:5000", "app", None, true,
         format!("localhost:5000/app@{d}"), format!("localhost:5000/app@{d}")),
        // Without a '/', "localhost:5000" is Docker Hub's `localhost` at tag 5000 (Docker does the same).
        ("localhost:5000".into(), "docker.io", "library/localhost", Some("5000"), false,
         "docker.io/library/localhost:5000".into(), "localhost:5000".into()),
        ("a__b-c/e---f.g:_T.1-x".into(), "docker.io", "a__b-c/e---f.g", Some("_T.1-x"), false,
         "docker.io/a__b-c/e---f.g:_T.1-x".into(), "a__b-c/e---f.g:_T.1-x".into()),
    ];
    for (input, reg, repo, tag, has_digest, canonical, familiar) in cases {
        let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.registry(), reg, "{input}");
        assert_eq!(r.repository(), repo, "{input}");
        assert_eq!(r.tag(), tag, "{input}");
        assert_eq!(r.digest().is_some(), has_digest, "{input}");
        assert_eq!(r.to_string(), canonical, "{input}");
        assert_eq!(r.familiar(), familiar, "{input}");
        // Both printed forms parse back to the same value.
        assert_eq!(Reference::parse(&canonical).unwrap(), r, "{input}");
        assert_eq!(Reference::parse(&familiar).unwrap(), r, "{input}");
    }
}

#[test]
fn rejects_invalid_table() {
    let h = "a".repeat(64);
    let long = format!("x/{}", "a".repeat(254));
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        ("Busybox".into(), "uppercase"),
        ("library/Busybox".into(), "uppercase"),
        ("registry.example.com/Team/app".into(), "uppercase"),
        (h.clone(), "image-id"),
        ("busybox:".into(), "tag"),
        ("busybox:.x".into(), "tag"),
        (format!("busybox:{}", "a".repeat(129)), "tag"),
        ("busybox@".into(), "digest"),
        ("busybox@sha256:abc".into(), "digest"),
        (format!("busybox@md5:{h}"), "digest"),
        (format!("@sha256:{h}"), "format"),
        ("example.com/".into(), "format"),
        ("-bad.example.com/a".into(), "registry"),
        ("bad_host.com/a".into(), "registry"),
        ("host.com:/a".into(), "registry"),
        ("host.com:50x0/a".into(), "registry"),
        ("[::1/a".into(), "registry"),
        ("[zz::1]/a".into(), "registry"),
        ("[::1]x/a".into(), "registry"),
        ("a//b".into(), "repository"),
        ("a/b/".into(), "repository"),
        ("a..b".into(), "repository"),
        ("a b".into(), "repository"),
        ("é".into(), "repository"),
        (long, "repository"),
    ];
    for (input, kind) in cases {
        let err = Reference::parse(&input).unwrap_err();
        let ok = matches!(
            (&err, kind),
            (ReferenceError::Empty, "empty")
                | (ReferenceError::Uppercase { .. }, "uppercase")
                | (ReferenceError::ImageId { .. }, "image-id")
                | (ReferenceError::InvalidTag { .. }, "tag")
                | (ReferenceError::InvalidDigest { .. }, "digest")
                | (ReferenceError::InvalidFormat { .. }, "format")
                | (ReferenceError::InvalidRegistry { .. }, "registry")
                | (ReferenceError::InvalidRepository { .. }, "repository")
        );
        assert!(ok, "{input:?}: expected {kind}, got {err:?}");
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{msg}");
    }
}

#[test]
fn error_messages_name_the_input() {
    let e = Reference::parse("registry.example.com/Team/App:1").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid image reference \"registry.example.com/Team/App:1\": repository name \"Team/App\" must be lowercase"
    );
}

#[test]
fn length_limit_is_on_the_repository_path() {
    let path = format!("x/{}", "a".repeat(253));
    assert_eq!(path.len(), MAX_REPOSITORY_LEN);
    let r = Reference::parse(&format!("registry.example.com/{path}")).unwrap();
    assert_eq!(r.repository(), path);
    // docker.io adds "library/" before the check, as upstream does.
    let single = "a".repeat(MAX_REPOSITORY_LEN - 7);
    assert!(Reference::parse(&single).is_err());
}

#[test]
fn helpers() {
    let r = Reference::parse("busybox@sha256:".to_string().as_str());
    assert!(r.is_err());
    let d = Digest::sha256(b"x");
    let r = Reference::parse("busybox").unwrap().with_digest(d.clone());
    assert_eq!(r.tag_or_latest(), "latest");
    let r = r.with_tag("1.36").unwrap();
    assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
    assert!(matches!(
        r.with_tag("-x"),
        Err(ReferenceError::InvalidTag { .. })
    ));
    let pinned = Reference::parse(&format!("busybox@{d}")).unwrap();
    assert_eq!(pinned.tag(), None);
    assert_eq!(pinned.tag_or_latest(), "latest");

    let moved = r.with_registry("localhost:5000").unwrap();
    assert_eq!(moved.to_string(), "localhost:5000/library/busybox:1.36");
    assert_eq!(moved.familiar(), "localhost:5000/library/busybox:1.36");
    let back = moved.with_registry("index.docker.io").unwrap();
    assert_eq!(back, r);
    let app = Reference::parse("localhost:5000/app:2").unwrap();
    assert_eq!(app.with_registry("docker.io").unwrap().familiar(), "app:2");
    assert!(matches!(
        r.with_registry("myhost"),
        Err(ReferenceError::AmbiguousRegistry { .. })
    ));
    assert!(matches!(
        r.with_registry("bad host"),
        Err(ReferenceError::InvalidRegistry { .. })
    ));
    assert_eq!(app.name(), "localhost:5000/app");
    assert_eq!(app.familiar_name(), "localhost:5000/app");
    let j = serde_json::to_string(&app).unwrap();
    assert_eq!(j, "\"localhost:5000/app:2\"");
    assert_eq!(serde_json::from_str::<Reference>(&j).unwrap(), app);
    assert!(serde_json::from_str::<Reference>("\"A\"").is_err());
}

#[test]
fn image_refs_valid_table() {
    let bb = || Reference::parse("busybox").unwrap();
    let d = format!("sha256:{}", "b".repeat(64));
    #[rustfmt::skip]
    let cases: Vec<(String, ImageRef, String)> = vec![
        ("docker://busybox".into(), ImageRef::Docker(bb()), "docker://busybox:latest".into()),
        ("docker://registry.example.com/a/b:1".into(),
         ImageRef::Docker(Reference::parse("registry.example.com/a/b:1").unwrap()),
         "docker://registry.example.com/a/b:1".into()),
        ("docker-daemon:busybox:latest".into(), ImageRef::DockerDaemon(bb()), "docker-daemon:busybox:latest".into()),
        (format!("docker-daemon:app@{d}"),
         ImageRef::DockerDaemon(Reference::parse(&format!("app@{d}")).unwrap()),
         format!("docker-daemon:app@{d}")),
        ("oci:/tmp/layout".into(), ImageRef::Oci { path: "/tmp/layout".into(), reference: None }, "oci:/tmp/layout".into()),
        ("oci:/tmp/layout:".into(), ImageRef::Oci { path: "/tmp/layout".into(), reference: None }, "oci:/tmp/layout".into()),
        ("oci:layout:v1.0".into(), ImageRef::Oci { path: "layout".into(), reference: Some("v1.0".into()) }, "oci:layout:v1.0".into()),
        // The path ends at the first ':'; the rest, colons included, is the reference.
        ("oci:dir:example.com/app:2".into(),
         ImageRef::Oci { path: "dir".into(), reference: Some("example.com/app:2".into()) },
         "oci:dir:example.com/app:2".into()),
        ("oci:dir:@1".into(), ImageRef::Oci { path: "dir".into(), reference: Some("@1".into()) }, "oci:dir:@1".into()),
        ("oci-archive:img.tar:Latest".into(),
         ImageRef::OciArchive { path: "img.tar".into(), reference: Some("Latest".into()) },
         "oci-archive:img.tar:Latest".into()),
        ("docker-archive:/tmp/app.tar".into(),
         ImageRef::DockerArchive { path: "/tmp/app.tar".into(), reference: None },
         "docker-archive:/tmp/app.tar".into()),
        ("docker-archive:app.tar:app:2".into(),
         ImageRef::DockerArchive { path: "app.tar".into(), reference: Some("app:2".into()) },
         "docker-archive:app.tar:app:2".into()),
        ("docker-archive:app.tar:localhost:5000/app".into(),
         ImageRef::DockerArchive { path: "app.tar".into(), reference: Some("localhost:5000/app".into()) },
         "docker-archive:app.tar:localhost:5000/app".into()),
        ("docker-archive:app.tar:@0".into(),
         ImageRef::DockerArchive { path: "app.tar".into(), reference: Some("@0".into()) },
         "docker-archive:app.tar:@0".into()),
        ("busybox".into(), ImageRef::Bare(bb()), "busybox:latest".into()),
        ("app:2".into(), ImageRef::Bare(Reference::parse("app:2").unwrap()), "app:2".into()),
        // `docker:` without `//` is Docker Hub's docker image.
        ("docker:24-dind".into(), ImageRef::Bare(Reference::parse("library/docker:24-dind").unwrap()), "docker:24-dind".into()),
        ("localhost:5000/app:2".into(), ImageRef::Bare(Reference::parse("localhost:5000/app:2").unwrap()), "localhost:5000/app:2".into()),
        // Found by the fuzz smoke test: an image named like a transport prints in full.
        ("oci".into(), ImageRef::Bare(Reference::parse("library/oci").unwrap()), "docker.io/library/oci:latest".into()),
        ("docker-archive".into(), ImageRef::Bare(Reference::parse("library/docker-archive").unwrap()),
         "docker.io/library/docker-archive:latest".into()),
    ];
    for (input, want, shown) in cases {
        let got = ImageRef::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got, want, "{input}");
        assert_eq!(got.to_string(), shown, "{input}");
        assert_eq!(ImageRef::parse(&shown).unwrap(), got, "{input}");
    }
}

#[test]
fn image_refs_invalid_table() {
    let d = format!("sha256:{}", "b".repeat(64));
    let cases: Vec<(String, &str)> = vec![
        ("docker:/busybox".into(), "slashes"),
        ("docker:///busybox".into(), "repository"),
        ("docker://".into(), "empty"),
        ("docker://Busybox".into(), "uppercase"),
        ("oci:".into(), "path"),
        ("oci::tag".into(), "path"),
        ("oci:dir:bad ref".into(), "layout-ref"),
        ("oci:dir:-x".into(), "layout-ref"),
        ("oci:dir:a//b".into(), "layout-ref"),
        ("oci:dir:@x".into(), "layout-ref"),
        ("oci-archive:".into(), "path"),
        ("docker-archive:".into(), "path"),
        ("docker-archive:a.tar:App".into(), "uppercase"),
        (format!("docker-archive:a.tar:app@{d}"), "archive-digest"),
        (format!("docker-daemon:app:1@{d}"), "daemon"),
        ("docker-daemon:".into(), "empty"),
        (format!("docker-daemon:{d}"), "image-id"),
        ("dir:/tmp/x".into(), "unsupported"),
        ("containers-storage:/x".into(), "unsupported"),
        ("Busybox".into(), "uppercase"),
    ];
    for (input, kind) in cases {
        let err = ImageRef::parse(&input).unwrap_err();
        let ok = matches!(
            (&err, kind),
            (ReferenceError::MissingSlashes { .. }, "slashes")
                | (ReferenceError::InvalidRepository { .. }, "repository")
                | (ReferenceError::Empty, "empty")
                | (ReferenceError::Uppercase { .. }, "uppercase")
                | (ReferenceError::MissingPath { .. }, "path")
                | (ReferenceError::InvalidLayoutReference { .. }, "layout-ref")
                | (ReferenceError::ArchiveDigest { .. }, "archive-digest")
                | (ReferenceError::DaemonTagAndDigest { .. }, "daemon")
                | (ReferenceError::UnsupportedTransport { .. }, "unsupported")
                | (ReferenceError::ImageId { .. }, "image-id")
        );
        assert!(ok, "{input:?}: expected {kind}, got {err:?}");
    }
    // A name that happens to start like a transport we do not support is still a name.
    assert!(matches!(ImageRef::parse("dir:1"), Ok(ImageRef::Bare(_))));
}
