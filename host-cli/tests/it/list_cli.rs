//! `ddiff list`: a bare NAME:TAG means the default registry ($DDIFF_URL), as in the original
//! tool; engine and docker-archive references get a pointer to `inspect`.

use crate::common::{ddiff, push_bb_base, require_peer, DdiffServer};

const LAYER: &str = "sha256:feb157206a4db810badbff0da9a6c48c9f399cbf83ae6b0d7df8ce9daa022749";

#[test]
fn list_reads_bare_names_from_the_default_registry() {
    if !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    push_bb_base(&format!("docker://{}/team/bb:base", server.addr));
    let list = |arg: &str| {
        ddiff()
            .args(["list", arg])
            .env("DDIFF_URL", format!("http://{}", server.addr))
            .env_remove("DDIFF_PORT")
            .output()
            .unwrap()
    };
    for arg in [
        "team/bb:base".to_string(),
        format!("{}/team/bb:base", server.addr),
        format!("docker://{}/team/bb:base", server.addr),
    ] {
        let out = list(&arg);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{arg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(LAYER) && text.contains("layer"),
            "{arg}: {text}"
        );
    }
    let missing = list("team/nope:1");
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("team/nope"), "{err}");

    for arg in ["docker-archive:/tmp/x.tar", "docker-daemon:bb:base"] {
        let out = list(arg);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("ddiff inspect"),
            "{arg}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
