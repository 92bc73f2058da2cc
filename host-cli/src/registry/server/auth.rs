//! Basic authentication against an htpasswd file with bcrypt entries, the only kind
//! `registry:2` accepts (`htpasswd -Bbn user pass` writes `$2y$` lines; bcrypt 0.19 reads them).
//!
//! bcrypt is deliberately slow (tens of milliseconds per check), and Docker sends credentials
//! on every request, so a successful check is remembered as a SHA-256 of `user:password`;
//! the cache is cleared if it grows past [`CACHE_MAX`] entries.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;

const CACHE_MAX: usize = 1024;

/// Why an htpasswd file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HtpasswdError {
    /// Reading failed.
    #[error("cannot read htpasswd file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// A line is not `user:$2…$…`.
    #[error("{path}:{line}: not a bcrypt htpasswd entry (create entries with `htpasswd -B`)")]
    BadLine { path: String, line: usize },
    /// No users at all.
    #[error("{path}: no users")]
    Empty { path: String },
}

/// Users and their bcrypt hashes.
pub struct Htpasswd {
    users: HashMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.len())
            .finish()
    }
}

impl Htpasswd {
    /// Reads a file.
    pub fn load(path: &Path) -> Result<Self, HtpasswdError> {
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses htpasswd text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, HtpasswdError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || HtpasswdError::BadLine {
                path: origin.to_owned(),
                line: i + 1,
            };
            let (user, hash) = line.split_once(':').ok_or_else(bad)?;
            if user.is_empty() || !hash.starts_with("$2") {
                return Err(bad());
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        if users.is_empty() {
            return Err(HtpasswdError::Empty {
                path: origin.to_owned(),
            });
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Checks an `Authorization` header value. Runs bcrypt on the blocking pool.
    pub async fn check(&self, authorization: Option<&str>) -> bool {
        let Some((user, pass)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        let key: [u8; 32] = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{user}:{pass}:{hash}").as_bytes(),
        )
        .as_ref()
        .try_into()
        // SHA-256 output is 32 bytes.
        .expect("sha256 is 32 bytes");
        if self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return true;
        }
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }
}

fn parse_basic(v: &str) -> Option<(String, String)> {
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn bcrypt_entries_and_cache() {
        let hash = bcrypt::hash("s3cret", 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1);
        let h = Htpasswd::parse(&format!("# c\nalice:{hash}\n"), "t").unwrap();
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
        );
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:nope")
        );
        assert!(h.check(Some(&good)).await);
        assert!(h.check(Some(&good)).await, "cached path");
        assert!(!h.check(Some(&bad)).await);
        assert!(!h.check(None).await);
        assert!(!h.check(Some("Bearer x")).await);
    }

    #[test]
    fn rejects_non_bcrypt_lines() {
        assert!(matches!(
            Htpasswd::parse("bob:{SHA}abc\n", "f"),
            Err(HtpasswdError::BadLine { line: 1, .. })
        ));
        assert!(matches!(
            Htpasswd::parse("\n", "f"),
            Err(HtpasswdError::Empty { .. })
        ));
    }
}
