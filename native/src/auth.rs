//! Who may connect: the check every WebSocket upgrade passes before it is answered
//! ([`Authorizer`], set in [`Config::authorize`](crate::Config::authorize)).
//!
//! An authorizer is a function of the upgrade request ([`UpgradeRequest`]: its path, query,
//! headers and peer address) that answers `Ok(subject)` to let it through, the subject being
//! who the connection is (or `None`), or `Err(`[`Rejection`]`)` to refuse it with a plain HTTP
//! answer (401 or 403 and a short message) instead of the upgrade. It runs on the server's
//! runtime for every upgrade, after the version, key and origin checks and before the memory
//! and connection caps: it must be quick and must not block (no IO). A check that panics
//! refuses that upgrade with HTTP 500; the server goes on.
//!
//! [`Authorizer::jwt_hs256`] is the one `--auth-secret` sets up: an HS256 JWT in `?token=` or
//! `Authorization: Bearer`, checked by `sessionserver_core::auth` (PROTOCOL.md, "Connect-time
//! auth"), its `sub` the subject. The subject of a connection is kept by its task
//! (`PlayerConnection::subject`).

use std::fmt;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode, Uri};
use sessionserver_core::auth::{find_token, verify_hs256, AuthError, MIN_SECRET_BYTES};

/// What an [`Authorizer`] sees of a WebSocket upgrade request.
#[derive(Clone, Copy)]
pub struct UpgradeRequest<'a> {
    uri: &'a Uri,
    headers: &'a HeaderMap,
    peer: SocketAddr,
}

impl<'a> UpgradeRequest<'a> {
    pub(crate) fn new(uri: &'a Uri, headers: &'a HeaderMap, peer: SocketAddr) -> Self {
        UpgradeRequest { uri, headers, peer }
    }

    /// The path of the request target (`/`, `/game/3`).
    pub fn path(&self) -> &'a str {
        self.uri.path()
    }

    /// The query (what follows `?`), as sent: not percent-decoded.
    pub fn query(&self) -> Option<&'a str> {
        self.uri.query()
    }

    /// Every value of the header `name` (any case), in the order sent, as bytes.
    pub fn header_values(&self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.headers
            .get_all(name)
            .into_iter()
            .map(HeaderValue::as_bytes)
    }

    /// The first value of the header `name` (any case), if it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The address the connection comes from.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The request's one bearer token: `?token=<token>` (percent-decoded) or
    /// `Authorization: Bearer <token>`. [`AuthError::Missing`] when there is none,
    /// [`AuthError::TwoTokens`] when there are several (`sessionserver_core::auth::find_token`).
    pub fn bearer_token(&self) -> Result<String, AuthError> {
        find_token(self.query(), self.header_values("authorization"))
    }
}

impl fmt::Debug for UpgradeRequest<'_> {
    /// The path and the peer: the query and the headers may hold a token, which must not end
    /// up in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeRequest")
            .field("path", &self.path())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// An upgrade refused by an [`Authorizer`]: the HTTP status and the plain-text message the
/// client gets instead of the upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    message: String,
    /// The `WWW-Authenticate` challenge (RFC 9110 §11.6.1), on a 401 or 400.
    challenge: Option<HeaderValue>,
}

impl Rejection {
    /// 401 Unauthorized, with `WWW-Authenticate: Bearer`: the request did not show who it
    /// is, or not in a way that counts.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Rejection {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            challenge: Some(HeaderValue::from_static("Bearer")),
        }
    }

    /// 403 Forbidden: who the request is may not connect.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Rejection {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            challenge: None,
        }
    }

    /// The HTTP status: 401, 403, or for a token given twice 400.
    pub fn status(&self) -> u16 {
        self.status.as_u16()
    }

    /// The message, the response's body (which ends it with a line break).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The plain-text response.
    pub(crate) fn response(&self) -> Response<Full<Bytes>> {
        let mut body = self.message.clone();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(challenge) = &self.challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge.clone());
        }
        res
    }
}

/// A refused token, as RFC 6750 §3 answers it: 401 with `WWW-Authenticate: Bearer` (no
/// token), or `Bearer error="invalid_token", error_description="…"` (a bad one); 400 with
/// `error="invalid_request"` for more than one token. The message says which.
impl From<AuthError> for Rejection {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        let challenge = match e.rfc6750_error() {
            None => "Bearer".to_owned(),
            // The message never holds `"` or `\` (a core test checks every one).
            Some(code) => format!("Bearer error=\"{code}\", error_description=\"{message}\""),
        };
        let status = if e == AuthError::TwoTokens {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        };
        Rejection {
            status,
            challenge: HeaderValue::from_str(&challenge)
                .ok()
                .or(Some(HeaderValue::from_static("Bearer"))),
            message,
        }
    }
}

/// The signature of a check (see the module's doc): `Ok(subject)` lets the upgrade through.
type Check = dyn Fn(&UpgradeRequest<'_>) -> Result<Option<String>, Rejection> + Send + Sync;

/// The check every WebSocket upgrade passes (see the module's doc).
///
/// ```
/// use sessionserver::{Authorizer, Rejection};
///
/// // A fixed key per game client, its name the subject.
/// let authorize = Authorizer::new(|req| match req.header("x-game-key") {
///     Some("k-7f3a") => Ok(Some("tablet".to_owned())),
///     Some(_) => Err(Rejection::forbidden("unknown game key")),
///     None => Err(Rejection::unauthorized("send X-Game-Key")),
/// });
/// let config = sessionserver::Config {
///     authorize: Some(authorize),
///     ..Default::default()
/// };
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct Authorizer {
    check: Arc<Check>,
}

impl Authorizer {
    /// An authorizer that runs `check` on every upgrade.
    pub fn new<F>(check: F) -> Self
    where
        F: Fn(&UpgradeRequest<'_>) -> Result<Option<String>, Rejection> + Send + Sync + 'static,
    {
        Authorizer {
            check: Arc::new(check),
        }
    }

    /// `--auth-secret`: every upgrade must carry a JWT signed HS256 with `secret` (its
    /// bytes as given), valid now by the server's clock, with no leeway; its `sub` (if any)
    /// is the subject. Refusals are 401 (400 for two tokens) and say why. A secret shorter
    /// than 32 bytes is refused (RFC 7518 §3.2).
    pub fn jwt_hs256(secret: impl Into<Vec<u8>>) -> Result<Self, SecretTooShort> {
        let secret: Vec<u8> = secret.into();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretTooShort { len: secret.len() });
        }
        Ok(Authorizer::new(move |req| {
            let token = req.bearer_token()?;
            Ok(verify_hs256(&token, &secret, unix_now())?.sub)
        }))
    }

    /// The check's answer; a check that panics refuses with 500.
    pub(crate) fn check(&self, req: &UpgradeRequest<'_>) -> Result<Option<String>, Rejection> {
        catch_unwind(AssertUnwindSafe(|| (self.check)(req))).unwrap_or_else(|_| {
            tracing::error!(peer = %req.peer_addr(), "the upgrade's auth check panicked");
            Err(Rejection {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "The server's auth check failed.".to_owned(),
                challenge: None,
            })
        })
    }
}

impl fmt::Debug for Authorizer {
    /// Shows nothing of the check (a JWT check holds its secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorizer(..)")
    }
}

/// A secret too short for HS256 (under 32 bytes, RFC 7518 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretTooShort {
    /// Its length, in bytes.
    pub len: usize,
}

impl fmt::Display for SecretTooShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the auth secret is {} bytes; HS256 needs at least {MIN_SECRET_BYTES} (RFC 7518 §3.2)",
            self.len
        )
    }
}

impl std::error::Error for SecretTooShort {}

/// Seconds since 1970 by the system clock (0 for a clock set before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_answers_as_rfc_6750_says() {
        let missing = Rejection::from(AuthError::Missing).response();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(missing.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let expired = Rejection::from(AuthError::Expired).response();
        assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            expired.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"token expired (exp is now or past)\""
        );
        let two = Rejection::from(AuthError::TwoTokens).response();
        assert_eq!(two.status(), StatusCode::BAD_REQUEST);
        assert!(two.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_request\""));
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert_eq!(
            Authorizer::jwt_hs256(vec![7; 31]).err(),
            Some(SecretTooShort { len: 31 })
        );
        assert!(Authorizer::jwt_hs256(vec![7; 32]).is_ok());
    }

    #[test]
    fn a_check_that_panics_refuses_with_500() {
        let authorizer = Authorizer::new(|_| panic!("a bug in the check"));
        let uri: Uri = "/".parse().unwrap();
        let headers = HeaderMap::new();
        let req = UpgradeRequest::new(&uri, &headers, "127.0.0.1:9".parse().unwrap());
        assert_eq!(authorizer.check(&req).unwrap_err().status(), 500);
    }
}
