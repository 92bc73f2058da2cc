//! Registry credentials from `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`):
//! `auths` entries (base64 `user:password`), `credHelpers` per registry and the default
//! `credsStore`, both through `docker-credential-<name> get`, as the Docker CLI does.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde::Deserialize;

/// A user name and password (or identity token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// User name (`<token>` for identity tokens).
    pub username: String,
    /// Password or token.
    pub password: String,
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The keys Docker uses for a registry host (Docker Hub has a historical URL key).
fn keys_for(host: &str) -> Vec<String> {
    if host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io" {
        return vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ];
    }
    vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
    ]
}

/// Looks up credentials for `host`. `Ok(None)` when none are configured.
pub fn lookup(host: &str) -> Result<Option<Credentials>> {
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let cfg: DockerConfig = serde_json::from_str(&text)
        .with_context(|| format!("invalid JSON in {}", path.display()))?;
    lookup_in(&cfg, host)
}

fn lookup_in(cfg: &DockerConfig, host: &str) -> Result<Option<Credentials>> {
    let keys = keys_for(host);
    for k in &keys {
        if let Some(helper) = cfg.cred_helpers.get(k) {
            return helper_get(helper, &keys[0]);
        }
    }
    for k in &keys {
        if let Some(e) = cfg.auths.get(k) {
            if let Some(tok) = &e.identity_token {
                return Ok(Some(Credentials {
                    username: "<token>".into(),
                    password: tok.clone(),
                }));
            }
            if let (Some(u), Some(p)) = (&e.username, &e.password) {
                return Ok(Some(Credentials {
                    username: u.clone(),
                    password: p.clone(),
                }));
            }
            if let Some(a) = &e.auth {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .context("invalid base64 in an auths entry of the Docker config")?;
                let s = String::from_utf8(raw).context("auths entry is not UTF-8")?;
                let (u, p) = s
                    .split_once(':')
                    .context("auths entry is not user:password")?;
                return Ok(Some(Credentials {
                    username: u.into(),
                    password: p.into(),
                }));
            }
        }
    }
    if let Some(store) = &cfg.creds_store {
        return helper_get(store, &keys[0]);
    }
    Ok(None)
}

/// Runs `docker-credential-<helper> get` with the server URL on stdin.
fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    run_helper(&format!("docker-credential-{helper}"), server)
}

fn run_helper(prog: &str, server: &str) -> Result<Option<Credentials>> {
    #[derive(Deserialize)]
    struct Out {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let mut child = Command::new(prog)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run credential helper {prog}"))?;
    child
        .stdin
        .take()
        .context("credential helper stdin")?
        .write_all(server.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout);
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        bail!("{prog} get failed: {}", msg.trim());
    }
    let o: Out = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{prog} printed invalid JSON"))?;
    Ok(Some(Credentials {
        username: o.username,
        password: o.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_entries() {
        let cfg: DockerConfig = serde_json::from_str(r#"{"auths":{"localhost:5000":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="}}}"#).unwrap();
        assert_eq!(
            lookup_in(&cfg, "localhost:5000").unwrap(),
            Some(Credentials {
                username: "user".into(),
                password: "pass".into()
            })
        );
        assert_eq!(
            lookup_in(&cfg, "docker.io").unwrap().unwrap().username,
            "hub"
        );
        assert_eq!(lookup_in(&cfg, "other:1").unwrap(), None);
    }

    #[test]
    fn runs_credential_helpers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-ddifftest");
        std::fs::write(&helper, "#!/bin/sh\nread host\necho \"{\\\"Username\\\":\\\"u-$host\\\",\\\"Secret\\\":\\\"s\\\"}\"\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = run_helper(helper.to_str().unwrap(), "reg.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            c,
            Credentials {
                username: "u-reg.example:5000".into(),
                password: "s".into()
            }
        );
        let err = helper_get("ddiff-no-such-helper", "x").unwrap_err();
        assert!(
            err.to_string()
                .contains("docker-credential-ddiff-no-such-helper"),
            "{err}"
        );
    }
}
