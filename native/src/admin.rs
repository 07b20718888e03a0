//! Who may see `GET /sessions` and `/monitor`: they show every player's data, so they are off
//! unless an admin token is configured (then the request must carry it) or the server listens
//! on loopback only (then only this machine can reach them anyway).

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};

#[derive(Clone, Debug)]
pub(crate) struct Admin {
    token: Option<String>,
    loopback_only: bool,
}

impl Admin {
    pub(crate) fn new(token: Option<String>, bind: IpAddr) -> Self {
        Admin {
            token: token.filter(|t| !t.is_empty()),
            loopback_only: bind.is_loopback(),
        }
    }

    /// Whether the request may see the admin endpoints: with a token configured, it must come
    /// as `Authorization: Bearer <token>` or `?token=<token>`.
    pub(crate) fn allows(&self, req: &Request<Incoming>) -> bool {
        match &self.token {
            Some(token) => {
                let bearer = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .is_some_and(|given| given == token);
                let query = req
                    .uri()
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .any(|pair| pair.strip_prefix("token=") == Some(token.as_str()));
                bearer || query
            }
            None => self.loopback_only,
        }
    }

    pub(crate) fn refusal(&self) -> Response<Full<Bytes>> {
        if self.token.is_some() {
            crate::http::text(
                StatusCode::UNAUTHORIZED,
                "Send the admin token: Authorization: Bearer <token>, or ?token=<token>.\n",
            )
        } else {
            crate::http::text(
                StatusCode::FORBIDDEN,
                "Admin endpoints are off: set --admin-token, or listen on 127.0.0.1 only.\n",
            )
        }
    }
}
