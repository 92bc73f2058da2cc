//! Reading a `WWW-Authenticate` header: which challenge the client answers, and its parameters.
//!
//! The header is a list of challenges whose parameters are comma-separated too, with quoted
//! values that may contain commas and escaped quotes (RFC 9110 §11.6.1). The `http-auth`
//! crate parses that grammar; this module only picks the challenge.

/// A challenge the client can answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic`: send the credentials.
    Basic,
    /// `Bearer`: get a token from `realm` for `service`.
    Bearer {
        realm: Option<String>,
        service: Option<String>,
    },
}

/// The first challenge of `header` the client can answer (`Basic` or `Bearer`, in the order
/// the registry gave them). `Err` holds the scheme of the first challenge otherwise (empty
/// when the header has none, or none that parses).
pub(crate) fn pick(header: &str) -> Result<Challenge, String> {
    let mut first_scheme = None;
    // A syntax error ends the list; the challenges before it still count.
    for c in http_auth::ChallengeParser::new(header).map_while(Result::ok) {
        let param = |name: &str| {
            c.params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_unescaped())
        };
        if c.scheme.eq_ignore_ascii_case("basic") {
            return Ok(Challenge::Basic);
        }
        if c.scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Challenge::Bearer {
                realm: param("realm"),
                service: param("service"),
            });
        }
        first_scheme.get_or_insert_with(|| c.scheme.to_owned());
    }
    Err(first_scheme.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>) -> Result<Challenge, String> {
        Ok(Challenge::Bearer {
            realm: Some(realm.to_owned()),
            service: service.map(str::to_owned),
        })
    }

    #[test]
    fn picks_the_first_answerable_challenge() {
        let cases: &[(&str, Result<Challenge, String>)] = &[
            (
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
                bearer("https://auth.example/token", Some("registry.example")),
            ),
            (r#"Basic realm="Registry Realm""#, Ok(Challenge::Basic)),
            // Scheme and parameter names are case-insensitive; spaces around `,` and `=`.
            (
                r#"bearer Realm = "https://a/t" , SERVICE="s""#,
                bearer("https://a/t", Some("s")),
            ),
            // Several challenges: the first one the client can answer.
            (
                r#"Negotiate, Bearer realm="https://a/t", Basic realm="r""#,
                bearer("https://a/t", None),
            ),
            (
                r#"Basic realm="simple", Bearer realm="https://a/t",service="s""#,
                Ok(Challenge::Basic),
            ),
            // A quoted comma does not end a parameter, nor an escaped quote a value.
            (
                r#"Bearer scope="repository:x:pull,push",realm="https://a/t?x=\"1\"",service="s,t""#,
                bearer(r#"https://a/t?x="1""#, Some("s,t")),
            ),
            // Unanswerable: the first scheme is reported.
            (r#"Digest realm="r", nonce="n""#, Err("Digest".into())),
            ("", Err(String::new())),
        ];
        for (header, want) in cases {
            assert_eq!(&pick(header), want, "{header}");
        }
    }

    #[test]
    fn a_bearer_challenge_without_realm_is_still_picked() {
        // The caller reports the missing realm; the parser does not invent one.
        assert_eq!(
            pick(r#"Bearer service="s""#),
            Ok(Challenge::Bearer {
                realm: None,
                service: Some("s".into())
            })
        );
    }
}
