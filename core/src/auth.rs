//! Connect-time auth: where a WebSocket upgrade carries its token ([`find_token`]) and the
//! check of an HS256 JSON Web Token ([`verify_hs256`]). Pure: the host passes the request's
//! query and `Authorization` values, the secret and the time, so both hosts share the rules.
//!
//! The rules (PROTOCOL.md, "Connect-time auth"):
//! - The token is `?token=<JWT>` (percent-decoded) or `Authorization: Bearer <JWT>`; exactly
//!   one of them ([`AuthError::TwoTokens`] otherwise, RFC 6750 §2).
//! - Compact JWS (RFC 7515 §7.1): three parts of base64url without padding, separated by
//!   dots, at most [`MAX_TOKEN_BYTES`] in all. The header is a JSON object whose `alg` is
//!   exactly `"HS256"` (`none`, `HS384`, `RS256`, … are refused before anything else is
//!   looked at) and that has no `crit`. The signature is HMAC-SHA256 of `header.claims` with
//!   the secret, compared in constant time; the claims are only read once it matched.
//! - Claims (RFC 7519 §4.1): a JSON object. `exp` and `nbf` are optional NumericDates
//!   (non-negative numbers of seconds since 1970, at most 2^64 − 1; fractions allowed). No
//!   clock leeway: a token is refused from the second `exp` says (`exp <= now`) and before
//!   the second `nbf` says (`nbf > now`). `sub` is optional and, when present, a string; it
//!   is what the host knows the connection by. Other claims are ignored.
//! - A field given twice in the header or the claims makes the token malformed.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

/// The longest token accepted, in bytes (a JWT with a few claims is a few hundred).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The shortest secret RFC 7518 §3.2 allows for HS256: 256 bits. [`verify_hs256`] takes any
/// secret; hosts refuse shorter ones when they are configured.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: who the token was issued to, if it says.
    pub sub: Option<String>,
    /// `exp`: the second from which it is no longer accepted (fractions cut off).
    pub exp: Option<u64>,
    /// `nbf`: the second before which it is not accepted yet (fractions rounded up).
    pub nbf: Option<u64>,
}

/// A part of a compact JWT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The JOSE header, the first part.
    Header,
    /// The claims set (payload), the second part.
    Claims,
    /// The signature, the third part.
    Signature,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Header => "header",
            Part::Claims => "claims",
            Part::Signature => "signature",
        }
    }
}

/// Why a request's token was refused. Its `Display` is a short sentence for the refusal's
/// body; it never holds `"` or `\`, so it can also go in an RFC 6750 `error_description`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No token in the request.
    Missing,
    /// More than one token: `?token=` and `Authorization: Bearer`, or either one twice.
    TwoTokens,
    /// Longer than [`MAX_TOKEN_BYTES`].
    TooLong,
    /// A character that is not base64url or `.` (padding `=`, `+`, `/`, spaces, …).
    BadCharacter,
    /// Not three parts separated by dots.
    NotThreeParts,
    /// A part that is not canonical base64url without padding.
    BadBase64(Part),
    /// The header or the claims are not a JSON object (or give a field twice).
    NotAnObject(Part),
    /// The header's `alg` is missing or not `"HS256"`.
    Algorithm,
    /// The header has `crit`: extensions this server does not know (RFC 7515 §4.1.11).
    Critical,
    /// The signature does not match: another secret, or an altered token.
    Signature,
    /// `sub` is not a string.
    Subject,
    /// `exp` or `nbf` (the claim named) is not a NumericDate from 0 to 2^64 − 1.
    Time(&'static str),
    /// `exp <= now`.
    Expired,
    /// `nbf > now`.
    NotYetValid,
}

impl AuthError {
    /// The RFC 6750 §3.1 error code of a `WWW-Authenticate: Bearer` challenge: none for a
    /// request without a token, `invalid_request` for two, `invalid_token` for the rest.
    pub fn rfc6750_error(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing => None,
            AuthError::TwoTokens => Some("invalid_request"),
            _ => Some("invalid_token"),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => {
                f.write_str("no token: send a JWT as ?token=<JWT> or Authorization: Bearer <JWT>")
            }
            AuthError::TwoTokens => f.write_str(
                "more than one token: send one, either ?token= or Authorization: Bearer",
            ),
            AuthError::TooLong => write!(f, "malformed token: longer than {MAX_TOKEN_BYTES} bytes"),
            AuthError::BadCharacter => f.write_str(
                "malformed token: a character that is not base64url or a dot (no padding)",
            ),
            AuthError::NotThreeParts => {
                f.write_str("malformed token: not three base64url parts separated by dots")
            }
            AuthError::BadBase64(part) => write!(
                f,
                "malformed token: its {} is not base64url without padding",
                part.name()
            ),
            AuthError::NotAnObject(part) => write!(
                f,
                "malformed token: its {} is not a JSON object (or gives a field twice)",
                part.name()
            ),
            AuthError::Algorithm => {
                f.write_str("token refused: its alg is not HS256, the only one accepted")
            }
            AuthError::Critical => {
                f.write_str("token refused: its header has crit (no extension is supported)")
            }
            AuthError::Signature => f.write_str("token refused: wrong signature"),
            AuthError::Subject => f.write_str("malformed token: sub is not a string"),
            AuthError::Time(claim) => write!(
                f,
                "malformed token: {claim} is not a number of seconds from 0 to 2^64-1"
            ),
            AuthError::Expired => f.write_str("token expired (exp is now or past)"),
            AuthError::NotYetValid => f.write_str("token not valid yet (nbf is in the future)"),
        }
    }
}

impl std::error::Error for AuthError {}

/// The one token of an upgrade request: the `token` parameters of its `query` (the part
/// after `?`, each percent-decoded, `+` being a plus) and the `Authorization` values using
/// the `Bearer` scheme (case-insensitive; values of other schemes are not looked at).
/// [`AuthError::Missing`] for none, [`AuthError::TwoTokens`] for more than one.
pub fn find_token<'a>(
    query: Option<&str>,
    authorization: impl IntoIterator<Item = &'a [u8]>,
) -> Result<String, AuthError> {
    let from_query = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.strip_prefix("token="))
        .map(|value| percent_encoding::percent_decode_str(value).decode_utf8_lossy());
    let from_header = authorization.into_iter().filter_map(|value| {
        let scheme = value.get(..6)?;
        let rest = value.get(6..)?;
        let bearer =
            scheme.eq_ignore_ascii_case(b"Bearer") && (rest.is_empty() || rest.starts_with(b" "));
        bearer.then(|| String::from_utf8_lossy(rest))
    });
    let mut tokens = from_query.chain(from_header);
    match (tokens.next(), tokens.next()) {
        (None, _) => Err(AuthError::Missing),
        (Some(token), None) => Ok(token.trim_matches(' ').to_owned()),
        (Some(_), Some(_)) => Err(AuthError::TwoTokens),
    }
}

/// A compact JWT of `header` and `claims` (JSON text, used as is), signed HMAC-SHA256 with
/// `secret`: what an issuer writes (a Rust game backend, or a test). `verify_hs256` checks
/// what the text says, so a header other than `{"alg":"HS256",…}` makes a token it refuses.
pub fn sign_hs256(header: &str, claims: &str, secret: &[u8]) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// Checks `token`, a compact JWT, against `secret` at `now_unix_s` (seconds since 1970), by
/// the rules of the module's doc; what it claims, if it is good.
pub fn verify_hs256(token: &str, secret: &[u8], now_unix_s: u64) -> Result<Claims, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLong);
    }
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    if !token.bytes().all(base64url) {
        return Err(AuthError::BadCharacter);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::NotThreeParts);
    };

    // The header first: nothing else is looked at unless it asks for HS256.
    let header_len = header.len();
    let header: Header = json_object(&decode(header, Part::Header)?, Part::Header)?;
    if header.alg != Some(Value::String("HS256".into())) {
        return Err(AuthError::Algorithm);
    }
    if header.crit.is_some() {
        return Err(AuthError::Critical);
    }
    let signature = decode(signature, Part::Signature)?;
    let signed = &token[..header_len + 1 + claims.len()];
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| AuthError::Signature)?;
    mac.update(signed.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| AuthError::Signature)?;

    // Signed by the holder of the secret: now its claims count.
    let raw: RawClaims = json_object(&decode(claims, Part::Claims)?, Part::Claims)?;
    let sub = match raw.sub {
        None => None,
        Some(Value::String(sub)) => Some(sub),
        Some(_) => return Err(AuthError::Subject),
    };
    let exp = raw
        .exp
        .map(|v| numeric_date(&v, f64::floor).ok_or(AuthError::Time("exp")))
        .transpose()?;
    let nbf = raw
        .nbf
        .map(|v| numeric_date(&v, f64::ceil).ok_or(AuthError::Time("nbf")))
        .transpose()?;
    if exp.is_some_and(|exp| exp <= now_unix_s) {
        return Err(AuthError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now_unix_s) {
        return Err(AuthError::NotYetValid);
    }
    Ok(Claims { sub, exp, nbf })
}

/// The JOSE header, as far as it matters here. A field given twice is an error (serde's
/// derive refuses duplicates); unknown ones are ignored.
#[derive(Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "present")]
    alg: Option<Value>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// The registered claims read here; the rest are ignored.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default, deserialize_with = "present")]
    sub: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<Value>,
}

/// A field that is there, `null` included: `"exp": null` is a wrong `exp`, not a missing one.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn decode(part: &str, which: Part) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::BadBase64(which))
}

/// `bytes` as a JSON object of type `T`. serde_json refuses nesting deeper than 128 levels
/// (an error, not a stack overflow), and the token's length bounds the rest.
fn json_object<T: for<'de> Deserialize<'de>>(bytes: &[u8], which: Part) -> Result<T, AuthError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_)) => {}
        _ => return Err(AuthError::NotAnObject(which)),
    }
    // Parsed again as the struct, which refuses a field given twice (the `Value` kept the
    // last one).
    serde_json::from_slice(bytes).map_err(|_| AuthError::NotAnObject(which))
}

/// A NumericDate (RFC 7519 §2) as whole seconds: an integer from 0 to 2^64 − 1, or a finite
/// non-negative number below 2^64 made whole by `round` (`floor` for `exp`, `ceil` for
/// `nbf`, so that a fraction never lengthens a token's life). Anything else is `None`.
fn numeric_date(value: &Value, round: fn(f64) -> f64) -> Option<u64> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(whole) = n.as_u64() {
        return Some(whole);
    }
    if n.is_i64() {
        return None; // a negative integer
    }
    // 2^64, exactly representable: every finite f64 below it fits in a u64 once made whole.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    let f = round(n.as_f64()?);
    // `as` from a float saturates rather than wraps; the range check makes it exact.
    (f.is_finite() && (0.0..LIMIT).contains(&f)).then_some(f as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn token(header: &str, claims: &str, secret: &[u8]) -> String {
        sign_hs256(header, claims, secret)
    }

    fn hs256(claims: &str) -> String {
        token(r#"{"alg":"HS256","typ":"JWT"}"#, claims, SECRET)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_good_token_gives_its_claims() {
        let t = hs256(r#"{"sub":"ada","exp":1700000060,"nbf":1699999990,"name":"x"}"#);
        assert_eq!(
            verify_hs256(&t, SECRET, NOW),
            Ok(Claims {
                sub: Some("ada".into()),
                exp: Some(1_700_000_060),
                nbf: Some(1_699_999_990),
            })
        );
        // Every claim is optional.
        assert_eq!(
            verify_hs256(&hs256("{}"), SECRET, NOW),
            Ok(Claims {
                sub: None,
                exp: None,
                nbf: None
            })
        );
    }

    /// RFC 7515, Appendix A.1: the example HS256 JWS and its key, made by another
    /// implementation (its header has a line break inside; its exp is 1300819380).
    #[wasm_bindgen_test(unsupported = test)]
    fn the_rfc_7515_example_verifies() {
        let key = URL_SAFE_NO_PAD
            .decode(
                "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
            )
            .unwrap();
        let jws = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
                   .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
                   .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let claims = verify_hs256(jws, &key, 1_300_819_379).unwrap();
        assert_eq!(claims.exp, Some(1_300_819_380));
        assert_eq!(claims.sub, None);
        assert_eq!(
            verify_hs256(jws, &key, 1_300_819_380),
            Err(AuthError::Expired)
        );
        assert_eq!(
            verify_hs256(jws, SECRET, 1_300_819_379),
            Err(AuthError::Signature)
        );
        // The signer writes the same bytes from the example's header and claims (so that
        // the hosts' tests, which sign with it, sign as another implementation would).
        let header = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
        let claims =
            "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
        assert_eq!(sign_hs256(header, claims, &key), jws);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn expired_from_the_second_of_exp_on() {
        let t = hs256(r#"{"exp":1700000000}"#);
        assert_eq!(verify_hs256(&t, SECRET, NOW), Err(AuthError::Expired));
        assert_eq!(verify_hs256(&t, SECRET, NOW + 1), Err(AuthError::Expired));
        assert!(verify_hs256(&t, SECRET, NOW - 1).is_ok());
        // A fraction is cut off: 1700000000.9 has expired at 1700000000.
        let t = hs256(r#"{"exp":1700000000.9}"#);
        assert_eq!(verify_hs256(&t, SECRET, NOW), Err(AuthError::Expired));
        assert_eq!(
            verify_hs256(&t, SECRET, NOW - 1).unwrap().exp,
            Some(1_700_000_000)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn not_valid_before_nbf() {
        let t = hs256(r#"{"nbf":1700000001}"#);
        assert_eq!(verify_hs256(&t, SECRET, NOW), Err(AuthError::NotYetValid));
        assert!(verify_hs256(&t, SECRET, NOW + 1).is_ok());
        // A fraction is rounded up: 1700000000.1 is not valid at 1700000000 yet.
        let t = hs256(r#"{"nbf":1700000000.1}"#);
        assert_eq!(verify_hs256(&t, SECRET, NOW), Err(AuthError::NotYetValid));
        assert!(verify_hs256(&t, SECRET, NOW + 1).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_wrong_signature_is_refused() {
        let claims = r#"{"sub":"ada"}"#;
        let other = token(
            r#"{"alg":"HS256"}"#,
            claims,
            b"another secret, also 32 bytes lon",
        );
        assert_eq!(verify_hs256(&other, SECRET, NOW), Err(AuthError::Signature));
        // The claims changed under a good signature.
        let good = hs256(claims);
        let (signed, signature) = good.rsplit_once('.').unwrap();
        let (header, _) = signed.split_once('.').unwrap();
        let forged = format!("{header}.{}.{signature}", b64(br#"{"sub":"root"}"#));
        assert_eq!(
            verify_hs256(&forged, SECRET, NOW),
            Err(AuthError::Signature)
        );
        // A signature cut short (40 characters: 30 whole bytes), or none.
        let short = &good[..good.len() - 3];
        assert_eq!(verify_hs256(short, SECRET, NOW), Err(AuthError::Signature));
        let none = format!("{signed}.");
        assert_eq!(verify_hs256(&none, SECRET, NOW), Err(AuthError::Signature));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn alg_none_with_an_empty_signature_is_refused() {
        for header in [r#"{"alg":"none"}"#, r#"{"alg":"None","typ":"JWT"}"#] {
            let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(br#"{"sub":"root"}"#));
            assert_eq!(
                verify_hs256(&unsigned, SECRET, NOW),
                Err(AuthError::Algorithm),
                "{header}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_alg_but_hs256_is_refused_even_when_signed() {
        for header in [
            r#"{"alg":"HS384"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"ES256"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"HS256 "}"#,
            r#"{"alg":null}"#,
            r#"{"alg":["HS256"]}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            // Signed with HS256 and the right secret: only the header is wrong.
            let t = token(header, "{}", SECRET);
            assert_eq!(
                verify_hs256(&t, SECRET, NOW),
                Err(AuthError::Algorithm),
                "{header}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn crit_and_repeated_header_fields_are_refused() {
        let t = token(r#"{"alg":"HS256","crit":["exp"]}"#, "{}", SECRET);
        assert_eq!(verify_hs256(&t, SECRET, NOW), Err(AuthError::Critical));
        let t = token(r#"{"alg":"none","alg":"HS256"}"#, "{}", SECRET);
        assert_eq!(
            verify_hs256(&t, SECRET, NOW),
            Err(AuthError::NotAnObject(Part::Header))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn malformed_base64_is_refused() {
        let good = hs256(r#"{"sub":"ada"}"#);
        let (header, rest) = good.split_once('.').unwrap();
        // Padding, the standard alphabet's characters, spaces: not base64url.
        for bad in [
            format!("{header}=.{rest}"),
            format!("{header}.{rest}="),
            good.replacen('-', "+", 1).replacen('_', "/", 1),
            format!("{header} .{rest}"),
            format!("{header}.{rest}\u{e9}"),
        ] {
            if bad != good {
                assert_eq!(
                    verify_hs256(&bad, SECRET, NOW),
                    Err(AuthError::BadCharacter),
                    "{bad}"
                );
            }
        }
        // A length base64 cannot have (4n + 1), and trailing bits that are not zero.
        let t = format!("{header}x.{rest}");
        assert_eq!(
            verify_hs256(&t, SECRET, NOW),
            Err(AuthError::BadBase64(Part::Header))
        );
        let (signed, signature) = good.rsplit_once('.').unwrap();
        // 32 bytes are 43 characters, the last one with 2 bits that must be zero: one set.
        assert_eq!(signature.len(), 43);
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = signature.as_bytes()[42];
        let index = ALPHABET.iter().position(|&c| c == last).unwrap();
        assert_eq!(index % 4, 0, "a canonical last character");
        let noncanonical = format!(
            "{signed}.{}{}",
            &signature[..42],
            char::from(ALPHABET[index + 1])
        );
        assert_eq!(
            verify_hs256(&noncanonical, SECRET, NOW),
            Err(AuthError::BadBase64(Part::Signature))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn missing_parts_are_refused() {
        let good = hs256("{}");
        let (signed, _) = good.rsplit_once('.').unwrap();
        let (header, _) = signed.split_once('.').unwrap();
        for bad in [
            String::new(),
            ".".into(),
            "..".into(),
            header.to_owned(),
            signed.to_owned(),
            format!("{good}."),
            format!("{good}.{header}"),
        ] {
            let got = verify_hs256(&bad, SECRET, NOW);
            assert!(
                matches!(
                    got,
                    Err(AuthError::NotThreeParts | AuthError::NotAnObject(Part::Header))
                ),
                "{bad:?}: {got:?}"
            );
        }
        assert_eq!(
            verify_hs256(signed, SECRET, NOW),
            Err(AuthError::NotThreeParts)
        );
        assert_eq!(verify_hs256("", SECRET, NOW), Err(AuthError::NotThreeParts));
        // Empty header and claims, and a header that is not JSON.
        assert_eq!(
            verify_hs256("..", SECRET, NOW),
            Err(AuthError::NotAnObject(Part::Header))
        );
        let t = token("not json", "{}", SECRET);
        assert_eq!(
            verify_hs256(&t, SECRET, NOW),
            Err(AuthError::NotAnObject(Part::Header))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn claims_that_are_not_an_object_are_refused() {
        for claims in [
            "[]",
            "5",
            "\"ada\"",
            "null",
            "",
            "{",
            r#"{"sub":"a"} x"#,
            r#"{"exp":1,"exp":9999999999}"#,
        ] {
            assert_eq!(
                verify_hs256(&hs256(claims), SECRET, NOW),
                Err(AuthError::NotAnObject(Part::Claims)),
                "{claims}"
            );
        }
        // Deep nesting is an error, not a stack overflow.
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(3000), "]".repeat(3000));
        assert_eq!(
            verify_hs256(&hs256(&deep), SECRET, NOW),
            Err(AuthError::NotAnObject(Part::Claims))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn sub_must_be_a_string() {
        for claims in [r#"{"sub":5}"#, r#"{"sub":null}"#, r#"{"sub":["ada"]}"#] {
            assert_eq!(
                verify_hs256(&hs256(claims), SECRET, NOW),
                Err(AuthError::Subject),
                "{claims}"
            );
        }
        // Any string, escapes decoded.
        let t = hs256(r#"{"sub":"a\u00e9\"b"}"#);
        assert_eq!(
            verify_hs256(&t, SECRET, NOW).unwrap().sub.as_deref(),
            Some("a\u{e9}\"b")
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn huge_negative_or_non_numeric_times_are_refused_without_wrapping() {
        for (claims, claim) in [
            (r#"{"exp":1e400}"#, None), // beyond f64: serde_json refuses the whole object
            (r#"{"exp":1e300}"#, Some("exp")),
            (r#"{"exp":18446744073709551616}"#, Some("exp")), // 2^64
            (r#"{"exp":-1}"#, Some("exp")),
            (r#"{"exp":-0.5}"#, Some("exp")),
            (r#"{"exp":"9999999999"}"#, Some("exp")),
            (r#"{"exp":null}"#, Some("exp")),
            (r#"{"exp":true}"#, Some("exp")),
            (r#"{"nbf":-9223372036854775808}"#, Some("nbf")),
            (r#"{"nbf":1e20}"#, Some("nbf")),
            (r#"{"nbf":{}}"#, Some("nbf")),
        ] {
            let want = match claim {
                Some(claim) => AuthError::Time(claim),
                None => AuthError::NotAnObject(Part::Claims),
            };
            assert_eq!(
                verify_hs256(&hs256(claims), SECRET, NOW),
                Err(want),
                "{claims}"
            );
        }
        // The largest exp there is: valid, and compared without overflow at the end of time.
        let t = hs256(r#"{"exp":18446744073709551615}"#);
        assert_eq!(verify_hs256(&t, SECRET, NOW).unwrap().exp, Some(u64::MAX));
        assert_eq!(verify_hs256(&t, SECRET, u64::MAX), Err(AuthError::Expired));
        // nbf 0 and exp 0 at time 0.
        let t = hs256(r#"{"nbf":0,"exp":0}"#);
        assert_eq!(verify_hs256(&t, SECRET, 0), Err(AuthError::Expired));
        let t = hs256(r#"{"nbf":0}"#);
        assert!(verify_hs256(&t, SECRET, 0).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_token_over_the_size_limit_is_refused_before_anything_else() {
        let long = hs256(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_TOKEN_BYTES)));
        assert_eq!(verify_hs256(&long, SECRET, NOW), Err(AuthError::TooLong));
        let at_limit = "a".repeat(MAX_TOKEN_BYTES);
        assert_eq!(
            verify_hs256(&at_limit, SECRET, NOW),
            Err(AuthError::NotThreeParts)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_token_is_found_in_the_query_or_the_bearer_header_once() {
        let none: [&[u8]; 0] = [];
        assert_eq!(find_token(None, none), Err(AuthError::Missing));
        assert_eq!(find_token(Some("a=1&b=2"), none), Err(AuthError::Missing));
        assert_eq!(
            find_token(Some("a=1&token=x.y.z&b=2"), none),
            Ok("x.y.z".into())
        );
        // Percent-decoded; a plus stays a plus.
        assert_eq!(
            find_token(Some("token=x%2Ey%2ez+"), none),
            Ok("x.y.z+".into())
        );
        assert_eq!(find_token(Some("token="), none), Ok(String::new()));
        assert_eq!(find_token(None, [&b"Bearer x.y.z"[..]]), Ok("x.y.z".into()));
        assert_eq!(
            find_token(None, [&b"bearer   x.y.z "[..]]),
            Ok("x.y.z".into())
        );
        // Other schemes are not tokens.
        for other in [&b"Basic YWxhZGRpbjpvcGVu"[..], b"Bearerx.y.z", b"Bear", b""] {
            assert_eq!(find_token(None, [other]), Err(AuthError::Missing));
        }
        assert_eq!(
            find_token(None, [&b"Basic abc"[..], b"Bearer x.y.z"]),
            Ok("x.y.z".into())
        );
        // Two tokens, however they come.
        assert_eq!(
            find_token(Some("token=a"), [&b"Bearer a"[..]]),
            Err(AuthError::TwoTokens)
        );
        assert_eq!(
            find_token(Some("token=a&token=a"), none),
            Err(AuthError::TwoTokens)
        );
        assert_eq!(
            find_token(None, [&b"Bearer a"[..], b"Bearer b"]),
            Err(AuthError::TwoTokens)
        );
        // Bytes that are not UTF-8 become U+FFFD, which no JWT holds.
        let t = find_token(Some("token=%FF"), none).unwrap();
        assert_eq!(verify_hs256(&t, SECRET, NOW), Err(AuthError::BadCharacter));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn messages_fit_in_an_error_description() {
        let all = [
            AuthError::Missing,
            AuthError::TwoTokens,
            AuthError::TooLong,
            AuthError::BadCharacter,
            AuthError::NotThreeParts,
            AuthError::BadBase64(Part::Header),
            AuthError::BadBase64(Part::Claims),
            AuthError::BadBase64(Part::Signature),
            AuthError::NotAnObject(Part::Header),
            AuthError::NotAnObject(Part::Claims),
            AuthError::Algorithm,
            AuthError::Critical,
            AuthError::Signature,
            AuthError::Subject,
            AuthError::Time("exp"),
            AuthError::Time("nbf"),
            AuthError::Expired,
            AuthError::NotYetValid,
        ];
        for e in all {
            let text = e.to_string();
            // RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E.
            assert!(
                text.bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "{text}"
            );
            assert_eq!(e.rfc6750_error().is_none(), e == AuthError::Missing);
        }
    }
}
