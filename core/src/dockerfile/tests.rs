#![allow(clippy::unwrap_used)]
use super::*;

fn image(reference: &str, platform: Option<&str>, chain: &[&str]) -> BaseImage {
    BaseImage::Image {
        reference: reference.to_string(),
        platform: platform.map(str::to_string),
        stage_chain: chain.iter().map(|s| s.to_string()).collect(),
    }
}

fn opts(target: Option<&str>, args: &[(&str, &str)]) -> ResolveOptions {
    ResolveOptions {
        target: target.map(str::to_string),
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn resolves_valid_table() {
    let none = opts(None, &[]);
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, ResolveOptions, BaseImage)> = vec![
        ("simple", "FROM alpine:3.19\nRUN true\n", none.clone(),
         image("alpine:3.19", None, &["stage-0"])),
        ("lowercase instruction, leading space, CRLF, BOM",
         "\u{feff}  from   alpine\r\n\tcmd [\"sh\"]\r\n", none.clone(),
         image("alpine", None, &["stage-0"])),
        ("final stage of several", "FROM a AS one\nFROM b AS two\nFROM c\n", none.clone(),
         image("c", None, &["stage-2"])),
        ("chain through earlier stages",
         "FROM golang:1.22 AS build\nRUN go build\nFROM build AS test\nFROM test\n", none.clone(),
         image("golang:1.22", None, &["stage-2", "test", "build"])),
        ("target, case-insensitive, AS case-insensitive",
         "FROM golang AS Build\nFROM alpine AS release\n", opts(Some("BUILD"), &[]),
         image("golang", None, &["build"])),
        ("AS names are lowercased",
         "FROM busybox as Base\nFROM base\n", none.clone(),
         image("busybox", None, &["stage-1", "base"])),
        ("own name is the image", "FROM node AS node\nRUN npm i\n", none.clone(),
         image("node", None, &["node"])),
        ("ARG default", "ARG TAG=3.19\nFROM alpine:$TAG\n", none.clone(),
         image("alpine:3.19", None, &["stage-0"])),
        ("build arg overrides default", "ARG TAG=3.19\nFROM alpine:${TAG}\n", opts(None, &[("TAG", "3.20")]),
         image("alpine:3.20", None, &["stage-0"])),
        ("build arg gives a value", "ARG IMG\nFROM ${IMG}\n", opts(None, &[("IMG", "debian:12")]),
         image("debian:12", None, &["stage-0"])),
        ("several ARGs on one line, quoted, using earlier ones",
         "ARG REG=\"registry.example.com\" REPO=team/app\nARG FULL=${REG}/${REPO}\nFROM $FULL:1\n", none.clone(),
         image("registry.example.com/team/app:1", None, &["stage-0"])),
        (":- default when unset", "ARG V\nFROM alpine:${V:-3.18}\n", none.clone(),
         image("alpine:3.18", None, &["stage-0"])),
        (":- default when empty", "ARG V=\nFROM alpine:${V:-3.18}\n", none.clone(),
         image("alpine:3.18", None, &["stage-0"])),
        ("- keeps empty", "ARG S=\nFROM alpine${S-:x}\n", none.clone(),
         image("alpine", None, &["stage-0"])),
        (":- default undeclared, nested", "ARG D=3.17\nFROM alpine:${V:-$D}\n", none.clone(),
         image("alpine:3.17", None, &["stage-0"])),
        (":+ alternative when set", "ARG DEBUG=1\nFROM alpine${DEBUG:+:edge}\n", none.clone(),
         image("alpine:edge", None, &["stage-0"])),
        (":+ nothing when unset", "ARG DEBUG\nFROM alpine${DEBUG:+:edge}\n", none.clone(),
         image("alpine", None, &["stage-0"])),
        ("platform flag kept, not the image",
         "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nFROM build\n", none.clone(),
         image("golang:1.22", Some("$BUILDPLATFORM"), &["stage-1", "build"])),
        ("platform flag substituted",
         "FROM --platform=${BUILDPLATFORM} golang\n", opts(None, &[("BUILDPLATFORM", "linux/amd64")]),
         image("golang", Some("linux/amd64"), &["stage-0"])),
        ("platform from ARG", "ARG P=linux/arm64\nFROM --platform=$P alpine\n", none.clone(),
         image("alpine", Some("linux/arm64"), &["stage-0"])),
        ("platform of the stage naming the image",
         "FROM --platform=linux/arm64 alpine AS a\nFROM --platform=linux/amd64 a\n", none.clone(),
         image("alpine", Some("linux/arm64"), &["stage-1", "a"])),
        ("TARGETARCH from build args", "FROM ${TARGETARCH}/alpine\n", opts(None, &[("TARGETARCH", "arm64v8")]),
         image("arm64v8/alpine", None, &["stage-0"])),
        ("comments, also between continuation lines",
         "# a comment\nFROM \\\n  # not an argument\n  alpine \\\n\n  AS x\n", none.clone(),
         image("alpine", None, &["x"])),
        ("continuation with trailing spaces", "FROM alpine \\  \n AS x\n", none.clone(),
         image("alpine", None, &["x"])),
        ("directives and backtick escape",
         "# syntax=docker/dockerfile:1\n# escape=`\nFROM mcr.microsoft.com/windows/nanoserver:ltsc2022 `\n  AS w\nRUN dir C:\\ `\n  && echo\n", none.clone(),
         image("mcr.microsoft.com/windows/nanoserver:ltsc2022", None, &["w"])),
        ("directive names and spacing are loose", "#  ESCAPE = ` \nFROM alpine`\n AS x\n", none.clone(),
         image("alpine", None, &["x"])),
        ("escape directive after a comment is just a comment",
         "# hello\n# escape=`\nFROM alpine \\\n  AS x\n", none.clone(),
         image("alpine", None, &["x"])),
        ("heredoc body is not parsed",
         "FROM alpine AS a\nRUN <<EOF\nFROM evil\nEOF\nFROM a\n", none.clone(),
         image("alpine", None, &["stage-1", "a"])),
        ("two heredocs, <<- and quotes",
         "FROM alpine\nCOPY <<-\"ONE\" 2<<'TWO' /dst/\n\tFROM x\n\tONE\nFROM y\nTWO\n", none.clone(),
         image("alpine", None, &["stage-0"])),
        ("heredoc after continuation",
         "FROM alpine\nRUN set -e; \\\n  cat <<EOF > /f\nFROM x\nEOF\n", none.clone(),
         image("alpine", None, &["stage-0"])),
        ("quoted <<EOF is not a heredoc", "FROM busybox\nRUN echo '<<EOF'\nFROM alpine\n", none.clone(),
         image("alpine", None, &["stage-1"])),
        ("quotes in FROM", "ARG V=1\nFROM \"alpine:$V\"\n", none.clone(),
         image("alpine:1", None, &["stage-0"])),
        ("escape removed outside quotes", "FROM alp\\ine\n", none.clone(),
         image("alpine", None, &["stage-0"])),
        ("unused stage's ARG problems do not matter",
         "ARG REL\nFROM alpine AS test\nFROM $REL AS release\n", opts(Some("test"), &[]),
         image("alpine", None, &["test"])),
        ("ARG after FROM is not global", "FROM alpine\nARG X=1\n", none.clone(),
         image("alpine", None, &["stage-0"])),
        ("digest reference", "FROM alpine@sha256:0123456789012345678901234567890123456789012345678901234567890123\n", none.clone(),
         image("alpine@sha256:0123456789012345678901234567890123456789012345678901234567890123", None, &["stage-0"])),
        ("scratch", "FROM scratch\nCOPY app /\n", none.clone(), BaseImage::Scratch),
        ("scratch via stage", "FROM scratch AS base\nFROM base\n", none.clone(), BaseImage::Scratch),
        ("scratch via ARG", "ARG B=scratch\nFROM $B\n", none.clone(), BaseImage::Scratch),
        ("continuation at end of file", "FROM alpine \\", none.clone(),
         image("alpine", None, &["stage-0"])),
    ];
    for (what, df, o, want) in cases {
        let got = resolve_base(df, &o).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn rejects_invalid_table() {
    let none = opts(None, &[]);
    #[rustfmt::skip]
    let cases: Vec<(&str, ResolveOptions, &str)> = vec![
        ("", none.clone(), "no-from"),
        ("# only\n\n", none.clone(), "no-from"),
        ("ARG X=1\n", none.clone(), "no-from"),
        ("RUN <<EOF\nFROM alpine\nEOF\n", none.clone(), "before-from"),
        ("RUN true\nFROM alpine\n", none.clone(), "before-from"),
        ("FROM alpine AS a\n", opts(Some("b"), &[]), "target"),
        ("ARG V\nFROM alpine:$V\n", none.clone(), "unset"),
        ("ARG V\nFROM alpine:${V}\n", none.clone(), "unset"),
        ("FROM alpine:$V\n", opts(None, &[("V", "1")]), "undeclared"),
        ("FROM $TARGETARCH/alpine\n", none.clone(), "platform-arg"),
        ("ARG V\nFROM alpine:${V:?required}\n", none.clone(), "required"),
        ("ARG V=\nFROM alpine:${V:?}\n", none.clone(), "required"),
        ("FROM alpine:${V\n", none.clone(), "substitution"),
        ("FROM alpine:${V/x/y}\n", none.clone(), "substitution"),
        ("FROM alpine:${}\n", none.clone(), "substitution"),
        ("FROM 'alpine\n", none.clone(), "substitution"),
        ("ARG A='x\nFROM $A\n", none.clone(), "substitution"),
        ("FROM\n", none.clone(), "from-syntax"),
        ("FROM a b\n", none.clone(), "from-syntax"),
        ("FROM a b c\n", none.clone(), "from-syntax"),
        ("FROM a AS b c\n", none.clone(), "from-syntax"),
        ("FROM --platform alpine\n", none.clone(), "from-syntax"),
        ("FROM --platform= alpine\n", none.clone(), "from-syntax"),
        ("FROM --pull=always alpine\n", none.clone(), "from-flag"),
        ("ARG\nFROM a\n", none.clone(), "arg-syntax"),
        ("ARG =1\nFROM a\n", none.clone(), "arg-syntax"),
        ("ARG E=\nFROM $E\n", none.clone(), "empty"),
        ("FROM Alpine\n", none.clone(), "invalid-base"),
        ("FROM alpine:-x\n", none.clone(), "invalid-base"),
        ("FROM SCRATCH\n", none.clone(), "invalid-base"),
        // BuildKit looks FROM names up as written, so this is the image "BASE".
        ("FROM busybox AS base\nFROM BASE\n", none.clone(), "invalid-base"),
        ("FROM later AS first\nFROM alpine AS later\nFROM first\n", none.clone(), "forward"),
        ("FROM a AS 1st\n", none.clone(), "stage-name"),
        ("FROM a AS my$name\n", none.clone(), "stage-name"),
        ("FROM a AS x\nFROM b AS X\n", none.clone(), "duplicate-stage"),
        ("# escape=x\nFROM a\n", none.clone(), "escape"),
        ("# escape=`\n# escape=\\\nFROM a\n", none.clone(), "duplicate-directive"),
        ("# syntax=a\n# SYNTAX=b\nFROM a\n", none.clone(), "duplicate-directive"),
        ("FROM a\nRUN <<EOF\nFROM b\n", none.clone(), "heredoc"),
        ("FROM a\nRUN <<-EOF\n  EOF\n", none.clone(), "heredoc"),
    ];
    for (df, o, kind) in cases {
        let err = resolve_base(df, &o).unwrap_err();
        let ok = matches!(
            (&err, kind),
            (DockerfileError::NoFrom, "no-from")
                | (DockerfileError::InstructionBeforeFrom { .. }, "before-from")
                | (DockerfileError::UnknownTarget { .. }, "target")
                | (DockerfileError::UnsetArg { .. }, "unset")
                | (DockerfileError::UndeclaredArg { .. }, "undeclared")
                | (DockerfileError::PlatformArg { .. }, "platform-arg")
                | (DockerfileError::RequiredArg { .. }, "required")
                | (DockerfileError::BadSubstitution { .. }, "substitution")
                | (DockerfileError::FromSyntax { .. }, "from-syntax")
                | (DockerfileError::UnknownFromFlag { .. }, "from-flag")
                | (DockerfileError::ArgSyntax { .. }, "arg-syntax")
                | (DockerfileError::EmptyBase { .. }, "empty")
                | (DockerfileError::InvalidBase { .. }, "invalid-base")
                | (DockerfileError::ForwardStageReference { .. }, "forward")
                | (DockerfileError::InvalidStageName { .. }, "stage-name")
                | (
                    DockerfileError::DuplicateStageName { .. },
                    "duplicate-stage"
                )
                | (DockerfileError::InvalidEscape { .. }, "escape")
                | (
                    DockerfileError::DuplicateDirective { .. },
                    "duplicate-directive"
                )
                | (DockerfileError::UnterminatedHeredoc { .. }, "heredoc")
        );
        assert!(ok, "{df:?}: expected {kind}, got {err:?}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}

#[test]
fn error_messages_say_what_and_where() {
    let e = resolve_base(
        "FROM a AS build\nFROM b AS test\n",
        &opts(Some("prod"), &[]),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "target stage \"prod\" not found; stages: build, test"
    );
    let e = resolve_base("ARG BASE\n\nFROM $BASE\n", &opts(None, &[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile line 3: ARG BASE is used in FROM but has no value; give it a default or pass --build-arg BASE=VALUE"
    );
    let e = resolve_base("FROM b AS a\nFROM a\nFROM c AS b\n", &opts(Some("a"), &[])).unwrap_err();
    assert_eq!(
        e,
        DockerfileError::ForwardStageReference {
            line: 1,
            name: "b".into(),
            defined_at: 3
        }
    );
    let e = resolve_base("FROM a\nRUN x\n", &opts(Some("a"), &[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "target stage \"a\" not found; stages: none are named"
    );
}
