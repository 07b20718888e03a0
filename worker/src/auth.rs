//! Connect-time auth at the edge: with the Worker secret `AUTH_SECRET` set
//! ([`crate::settings::auth_secret`]), the relay checks every WebSocket upgrade before it
//! accepts it, by the core's rules (`sessionserver_core::auth`: [`find_token`],
//! [`verify_hs256`]), and refuses it exactly as the native host does: the same status,
//! `WWW-Authenticate` challenge and plain-text body ([`Refusal`]). Platform-free, so that
//! `cargo test` checks it natively; the relay only reads the request's query, its
//! `Authorization` header and the clock.

use sessionserver_core::auth::{find_token, verify_hs256, AuthError};

/// A refused upgrade: the plain-text HTTP answer the client gets instead of the 101, as the
/// native host's (`native/src/auth.rs`, `Rejection::from(AuthError)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 401, or 400 for more than one token.
    pub status: u16,
    /// The `WWW-Authenticate` value (RFC 6750 §3): `Bearer` for no token, else
    /// `Bearer error="…", error_description="…"`.
    pub challenge: String,
    /// The body: one sentence saying why, ending with a line break.
    pub body: String,
}

/// The `Content-Type` of a refusal's body.
pub const CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        let challenge = match e.rfc6750_error() {
            None => "Bearer".to_owned(),
            // The message never holds `"` or `\` (a core test checks every one).
            Some(code) => format!("Bearer error=\"{code}\", error_description=\"{message}\""),
        };
        Refusal {
            status: if e == AuthError::TwoTokens { 400 } else { 401 },
            challenge,
            body: format!("{message}\n"),
        }
    }
}

/// Checks an upgrade request: its `query` (what follows `?`, as in the URL), its
/// `Authorization` header as the Fetch API gives it (repeated headers joined by `, `), against
/// `secret` at `now_unix_s`. `Ok` with the token's `sub`, or the refusal.
pub fn check(
    query: Option<&str>,
    authorization: Option<&str>,
    secret: &[u8],
    now_unix_s: u64,
) -> Result<Option<String>, Refusal> {
    let values = authorization.map(authorization_values).unwrap_or_default();
    let token = find_token(query, values.iter().map(|v| v.as_bytes()))?;
    Ok(verify_hs256(&token, secret, now_unix_s)?.sub)
}

/// The `Authorization` headers a request was sent with, from the one string the Fetch API
/// makes of them (`Headers.get` joins repeated headers with `, `), so that two `Bearer`
/// headers are two tokens (400), as natively. A comma starts a new value only where a
/// `Bearer` scheme follows it: no JWT holds a comma, and a comma inside one value (a
/// malformed token, or another scheme's parameters) stays in it, as the native host sees it.
pub fn authorization_values(combined: &str) -> Vec<&str> {
    let mut values = Vec::new();
    let mut start = 0;
    for (comma, _) in combined.match_indices(',') {
        let rest = combined[comma + 1..].trim_start_matches([' ', '\t']);
        if is_bearer(rest) {
            values.push(&combined[start..comma]);
            start = combined.len() - rest.len();
        }
    }
    values.push(&combined[start..]);
    values
}

/// Whether `value` uses the `Bearer` scheme (any case), as `find_token` reads it.
fn is_bearer(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() >= 6
        && bytes[..6].eq_ignore_ascii_case(b"Bearer")
        && (bytes.len() == 6 || bytes[6] == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use sessionserver_core::auth::{Part, MAX_TOKEN_BYTES};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A JWT of this header and these claims (JSON text), signed HS256 with `secret`.
    fn jwt(header: &str, claims: &str, secret: &[u8]) -> String {
        sessionserver_core::auth::sign_hs256(header, claims, secret)
    }

    fn hs256(claims: &str) -> String {
        jwt(r#"{"alg":"HS256","typ":"JWT"}"#, claims, SECRET)
    }

    #[test]
    fn a_good_token_in_the_query_or_the_header_gives_its_subject() {
        let token = hs256(r#"{"sub":"ada","exp":1700000001}"#);
        let query = format!("room=3&token={token}");
        assert_eq!(
            check(Some(&query), None, SECRET, NOW),
            Ok(Some("ada".into()))
        );
        // Percent-encoded in the query (a dot as %2E): decoded, as natively.
        let encoded = format!("token={}", token.replace('.', "%2E"));
        assert_eq!(
            check(Some(&encoded), None, SECRET, NOW),
            Ok(Some("ada".into()))
        );
        for header in [
            format!("Bearer {token}"),
            format!("bearer  {token} "),
            format!("Basic YWxhZGRpbjpvcGVu, Bearer {token}"),
        ] {
            assert_eq!(
                check(Some("room=3"), Some(&header), SECRET, NOW),
                Ok(Some("ada".into())),
                "{header}"
            );
        }
        // No `sub`: a connection without a subject.
        let anonymous = format!("Bearer {}", hs256("{}"));
        assert_eq!(check(None, Some(&anonymous), SECRET, NOW), Ok(None));
    }

    #[test]
    fn refusals_are_the_native_hosts() {
        // The same strings as native/src/auth.rs's test of its answers.
        let missing = Refusal::from(AuthError::Missing);
        assert_eq!(missing.status, 401);
        assert_eq!(missing.challenge, "Bearer");
        assert!(missing.body.starts_with("no token"), "{}", missing.body);
        let expired = Refusal::from(AuthError::Expired);
        assert_eq!(expired.status, 401);
        assert_eq!(
            expired.challenge,
            "Bearer error=\"invalid_token\", error_description=\"token expired (exp is now or past)\""
        );
        assert_eq!(expired.body, "token expired (exp is now or past)\n");
        let two = Refusal::from(AuthError::TwoTokens);
        assert_eq!(two.status, 400);
        assert!(two
            .challenge
            .starts_with("Bearer error=\"invalid_request\", error_description=\"more than one"));
    }

    #[test]
    fn no_token_or_two_are_refused_before_any_check() {
        for (query, authorization) in [
            (None, None),
            (Some("a=1"), Some("Basic YWxhZGRpbjpvcGVu")),
            (Some("tokens=x"), Some("Bearerx.y.z")),
        ] {
            assert_eq!(
                check(query, authorization, SECRET, NOW),
                Err(Refusal::from(AuthError::Missing)),
                "{query:?} {authorization:?}"
            );
        }
        let good = hs256("{}");
        let (in_query, in_header) = (format!("token={good}"), format!("Bearer {good}"));
        let twice = format!("{in_header}, {in_header}");
        let two_in_query = format!("{in_query}&{in_query}");
        for (query, authorization) in [
            (Some(in_query.as_str()), Some(in_header.as_str())),
            (Some(two_in_query.as_str()), None),
            (None, Some(twice.as_str())),
        ] {
            assert_eq!(
                check(query, authorization, SECRET, NOW),
                Err(Refusal::from(AuthError::TwoTokens)),
                "{query:?} {authorization:?}"
            );
        }
    }

    #[test]
    fn bad_tokens_are_refused_with_the_cores_reason() {
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        let other_secret = jwt(
            r#"{"alg":"HS256"}"#,
            "{}",
            b"another secret, thirty-two bytes long",
        );
        // `alg: none`, unsigned.
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(br#"{"sub":"ada"}"#)
        );
        let cases = [
            (long, AuthError::TooLong),
            ("x.y.z".to_owned(), AuthError::BadBase64(Part::Header)),
            ("a.b".to_owned(), AuthError::NotThreeParts),
            (none, AuthError::Algorithm),
            (other_secret, AuthError::Signature),
            (hs256(r#"{"exp":1700000000}"#), AuthError::Expired),
            (hs256(r#"{"nbf":1700000001}"#), AuthError::NotYetValid),
            (hs256(r#"{"sub":7}"#), AuthError::Subject),
        ];
        for (token, why) in cases {
            let query = format!("token={token}");
            assert_eq!(
                check(Some(&query), None, SECRET, NOW),
                Err(Refusal::from(why)),
                "{token:.80}"
            );
            let bearer = format!("Bearer {token}");
            assert_eq!(
                check(None, Some(&bearer), SECRET, NOW),
                Err(Refusal::from(why)),
                "{token:.80}"
            );
        }
    }

    #[test]
    fn fetch_joins_repeated_headers_and_they_are_split_again() {
        assert_eq!(authorization_values("Bearer a"), ["Bearer a"]);
        assert_eq!(
            authorization_values("Bearer a, Bearer b"),
            ["Bearer a", "Bearer b"]
        );
        assert_eq!(
            authorization_values("Basic abc, bearer x.y.z"),
            ["Basic abc", "bearer x.y.z"]
        );
        // A comma that no Bearer scheme follows stays in its value.
        assert_eq!(authorization_values("Bearer a,b"), ["Bearer a,b"]);
        assert_eq!(
            authorization_values(r#"Digest realm="x", nonce="y", Bearer t"#),
            [r#"Digest realm="x", nonce="y""#, "Bearer t"]
        );
        assert_eq!(
            authorization_values("Bearer a, Bearerx"),
            ["Bearer a, Bearerx"]
        );
        assert_eq!(
            authorization_values("Bearer a, Bearer"),
            ["Bearer a", "Bearer"]
        );
        assert_eq!(authorization_values(""), [""]);
    }
}
