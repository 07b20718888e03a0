//! Who may see `GET /sessions` and `/monitor`: they show every player's data.
//!
//! - With an admin token configured, every request must carry it (`Authorization: Bearer
//!   <token>`, or `?token=<token>` percent-encoded), wherever it comes from, loopback included.
//! - Without one, they are served only when the server listens on a loopback address, and
//!   then only to a request that comes from a loopback address, names a loopback host in
//!   `Host` (`localhost`, `127.0.0.1` or `[::1]`, any port) and carries no header that proxies
//!   add (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`, `Via`). The Host check refuses a
//!   DNS-rebinding page (its requests name the attacker's host); the proxy headers refuse a
//!   reverse proxy on the same machine, whose requests come from loopback too. A proxy that
//!   rewrites Host to a loopback name and adds none of those headers cannot be told apart
//!   from a local client: behind a proxy, set a token.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderName};
use hyper::{Request, Response, StatusCode};
use subtle::ConstantTimeEq;

/// Headers that a reverse proxy adds to the requests it forwards.
const PROXY_HEADERS: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "via",
];

#[derive(Clone, Debug)]
pub(crate) struct Admin {
    token: Option<String>,
    loopback_only: bool,
}

impl Admin {
    pub(crate) fn new(token: Option<String>, bind: std::net::IpAddr) -> Self {
        Admin {
            token: token.filter(|t| !t.is_empty()),
            loopback_only: bind.is_loopback(),
        }
    }

    /// Whether the request, which came from `peer`, may see the admin endpoints (see the
    /// module's doc).
    pub(crate) fn allows(&self, req: &Request<Incoming>, peer: SocketAddr) -> bool {
        match &self.token {
            Some(token) => carries_token(req, token.as_bytes()),
            None => self.loopback_only && is_local(req, peer),
        }
    }

    pub(crate) fn refusal(&self) -> Response<Full<Bytes>> {
        if self.token.is_some() {
            crate::response::text(
                StatusCode::UNAUTHORIZED,
                "Send the admin token: Authorization: Bearer <token>, or ?token=<token>.\n",
            )
        } else if self.loopback_only {
            crate::response::text(
                StatusCode::FORBIDDEN,
                "Without --admin-token, admin endpoints are served only to this machine: \
                 from a loopback address, with Host localhost, 127.0.0.1 or [::1], and through \
                 no proxy.\n",
            )
        } else {
            crate::response::text(
                StatusCode::FORBIDDEN,
                "Admin endpoints are off: set --admin-token, or listen on 127.0.0.1 only.\n",
            )
        }
    }
}

/// The token as `Authorization: Bearer <token>` or as `?token=<token>` (percent-decoded; a
/// `+` is a plus, not a space). Both are checked, each in constant time.
fn carries_token(req: &Request<Incoming>, token: &[u8]) -> bool {
    let mut found = false;
    for value in req.headers().get_all(header::AUTHORIZATION) {
        let value = value.as_bytes();
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"Bearer ") {
            found |= same(&value[7..], token);
        }
    }
    for pair in req.uri().query().unwrap_or("").split('&') {
        if let Some(given) = pair.strip_prefix("token=") {
            let given: Vec<u8> = percent_encoding::percent_decode_str(given).collect();
            found |= same(&given, token);
        }
    }
    found
}

/// Constant-time equality: the time taken does not depend on where the bytes differ.
/// (Only the length can show, and a token's length is no secret worth keeping.)
fn same(given: &[u8], token: &[u8]) -> bool {
    bool::from(given.ct_eq(token))
}

/// A request from this machine, to a loopback name, not through a proxy.
fn is_local(req: &Request<Incoming>, peer: SocketAddr) -> bool {
    if !peer.ip().to_canonical().is_loopback() {
        return false;
    }
    let headers = req.headers();
    if PROXY_HEADERS
        .iter()
        .any(|name| headers.contains_key(HeaderName::from_static(name)))
    {
        return false;
    }
    // Exactly one Host header, naming loopback; an absolute-form target must too.
    let mut hosts = headers.get_all(header::HOST).iter();
    let host_ok = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().is_ok_and(is_loopback_host),
        _ => false,
    };
    let authority_ok = req
        .uri()
        .authority()
        .is_none_or(|a| is_loopback_host(a.as_str()));
    host_ok && authority_ok
}

/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, after)) => (inside, after),
            None => return false,
        },
        // The port part keeps its colon: "localhost:7000" is ("localhost", ":7000").
        None => host.split_at(host.find(':').unwrap_or(host.len())),
    };
    let port_ok = match port.strip_prefix(':') {
        Some(digits) => {
            !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => port.is_empty(),
    };
    port_ok && (name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "::1")
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_with_and_without_a_port() {
        for host in [
            "localhost",
            "LocalHost:7000",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:7000",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "127.0.0.2",
            "::1",
            "[::1]x",
            "[::1]:",
            "localhost:",
            "localhost:70a",
            "localhost:7000:1",
            "[::2]",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
