//! No registry needed: bundles from and into the real Docker engine (Debian docker.io,
//! classic `docker save` layout), docker-archive: and oci: without an engine, and round trips
//! between the engine and `ddiff server`. Each test names its images apart (the engine is
//! shared).

use std::process::{Command, Output};

use crate::common::{ddiff_quiet, docker, docker_build, image_id, require_peer, run, DdiffServer};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn base_image() -> String {
    std::env::var("DDIFF_TEST_BASE_IMAGE").unwrap_or_else(|_| "bb:base".into())
}

fn docker_run(image: &str, cmd: &str) -> String {
    let o = run(docker().args(["run", "--rm", "--network", "none", image, "sh", "-c", cmd]));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn engine_build_multistage_rmi_load_run() {
    if !require_peer("docker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("payload.txt"), "from the context\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "# syntax=docker/dockerfile:1\nARG BASE={}\n\
             FROM ${{BASE}} AS build\n# a comment\nRUN echo built > /artifact\n\n\
             FROM $BASE\nCOPY --from=build /artifact /app/artifact\nCOPY payload.txt /app/\n\
             RUN head -c 300000 /dev/urandom > /app/blob && echo ok > /app/ok\n",
            base_image()
        ),
    )
    .unwrap();
    let tag = "ddiff-it-engine/build:1";
    let bundle = dir.path().join("b.ddiff");
    let o = run(ddiff_quiet()
        .args(["build", "--bundle"])
        .arg(&bundle)
        .args(["-t", tag, "--network", "none"])
        .arg(&ctx));
    assert!(text(&o).contains("ddiff load"), "{}", text(&o));
    let id = image_id(tag).expect("built");
    run(docker().args(["rmi", tag]));
    let o = run(ddiff_quiet()
        .arg("load")
        .arg(&bundle)
        .args(["--to", "docker-daemon:"]));
    assert!(text(&o).contains(tag), "{}", text(&o));
    assert_eq!(image_id(tag).as_deref(), Some(id.as_str()), "same image ID");
    assert_eq!(
        docker_run(
            tag,
            "cat /app/artifact /app/payload.txt /app/ok; wc -c < /app/blob"
        ),
        "built\nfrom the context\nok\n300000\n"
    );
    run(docker().args(["rmi", tag]));
}

#[test]
fn engine_missing_base_is_refused_and_nothing_is_loaded() {
    if !require_peer("docker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (base, app) = ("ddiff-it-engine/mbase:1", "ddiff-it-engine/mapp:1");
    docker_build(&base_image(), base, &["RUN echo base > /base.txt"]);
    docker_build(base, app, &["RUN echo app > /app.txt"]);
    let bundle = dir.path().join("m.ddiff");
    run(ddiff_quiet().args(["diff", base, app, "-o"]).arg(&bundle));
    run(docker().args(["rmi", app, base]));
    let o = ddiff_quiet()
        .arg("load")
        .arg(&bundle)
        .args(["--to", "docker-daemon:"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(
        msg.contains("lacks the base ddiff-it-engine/mbase:1")
            && msg.contains("nothing was loaded"),
        "{msg}"
    );
    assert_eq!(
        msg.trim().lines().last().unwrap().matches("error").count(),
        1
    );
    assert!(image_id(app).is_none(), "nothing loaded");
}

#[test]
fn archives_to_oci_layout_and_back_without_engine() {
    if !require_peer("docker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let app = "ddiff-it-engine/arch:1";
    docker_build(&base_image(), app, &["RUN echo archived > /a.txt"]);
    run(docker()
        .args(["save", "-o"])
        .arg(d.join("base.tar"))
        .arg(base_image()));
    run(docker()
        .args(["save", "-o"])
        .arg(d.join("app.tar"))
        .arg(app));
    let id = image_id(app).unwrap();
    // From here on there is no engine.
    let offline = |args: &[&str]| {
        let mut c = ddiff_quiet();
        c.current_dir(d)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(args);
        run(&mut c)
    };
    offline(&[
        "diff",
        "scratch",
        "docker-archive:base.tar",
        "-o",
        "base.ddiff",
    ]);
    offline(&["load", "base.ddiff", "--to", "oci:layout"]);
    offline(&[
        "diff",
        "docker-archive:base.tar",
        "docker-archive:app.tar",
        "-o",
        "app.ddiff",
    ]);
    // Only the new layer is carried.
    let bsize = std::fs::metadata(d.join("app.ddiff")).unwrap().len();
    assert!(bsize < 100_000, "bundle is {bsize} bytes");
    offline(&["load", "app.ddiff", "--to", "oci:layout"]);
    let index = std::fs::read_to_string(d.join("layout/index.json")).unwrap();
    assert!(
        index.contains("\"base\"") && index.contains("\"1\""),
        "{index}"
    );
    // skopeo reads the merged layout.
    if require_peer("skopeo") {
        run(crate::common::skopeo()
            .arg("inspect")
            .arg(format!("oci:{}:1", d.join("layout").display())));
    }
    // And back: the layout's image as a docker load archive.
    offline(&["diff", "scratch", "oci:layout:1", "-o", "full.ddiff"]);
    offline(&["load", "full.ddiff", "--to", "docker-archive:back.tar"]);
    run(docker().args(["rmi", app]));
    run(docker().args(["load", "-i"]).arg(d.join("back.tar")));
    assert_eq!(image_id(app).as_deref(), Some(id.as_str()));
    assert_eq!(docker_run(app, "cat /a.txt"), "archived\n");
    run(docker().args(["rmi", app]));
}

#[test]
fn engine_bundle_into_registry_and_registry_bundle_into_engine() {
    if !require_peer("docker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let srv = DdiffServer::start(&d.join("reg"), &[]);
    let (base, app) = ("ddiff-it-engine/rbase:1", "ddiff-it-engine/rapp:1");
    docker_build(&base_image(), base, &["RUN echo rbase > /b.txt"]);
    docker_build(base, app, &["RUN echo rapp > /a.txt"]);
    let id = image_id(app).unwrap();
    let with_reg = |c: &mut Command| {
        c.env("DDIFF_URL", format!("http://{}", srv.addr));
    };
    // The base reaches the registry with ddiff push (no docker push, no insecure-registries).
    let mut c = ddiff_quiet();
    with_reg(&mut c);
    run(c.args(["push", base]));
    // Engine -> bundle -> registry: relied layers are matched by diff_id there.
    let b1 = d.join("e.ddiff");
    run(ddiff_quiet().args(["diff", base, app, "-o"]).arg(&b1));
    run(ddiff_quiet()
        .arg("load")
        .arg(&b1)
        .args(["--no-pull", "--to"])
        .arg(format!("docker://{}", srv.addr)));
    // Registry -> bundle -> engine.
    let b2 = d.join("r.ddiff");
    run(ddiff_quiet()
        .arg("diff")
        .arg(format!("docker://{}/{base}", srv.addr))
        .arg(format!("docker://{}/{app}", srv.addr))
        .arg("-o")
        .arg(&b2));
    run(docker().args(["rmi", app]));
    let o = run(ddiff_quiet()
        .arg("load")
        .arg(&b2)
        .args(["--to", &format!("docker-daemon:{app}")]));
    assert!(text(&o).contains(app), "{}", text(&o));
    assert_eq!(image_id(app).as_deref(), Some(id.as_str()));
    assert_eq!(docker_run(app, "cat /b.txt /a.txt"), "rbase\nrapp\n");
    // ddiff pull from the registry back into the engine, by the same ID.
    run(docker().args(["rmi", app]));
    let mut c = ddiff_quiet();
    with_reg(&mut c);
    run(c.args(["pull", app]));
    assert_eq!(image_id(app).as_deref(), Some(id.as_str()));
    run(docker().args(["rmi", app, base]));
}
