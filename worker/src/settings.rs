//! The edge host's settings: Worker variables (wrangler.toml `[vars]`, `wrangler dev --var`,
//! or the dashboard), read the same way by the relay and the session objects. Compiled on
//! every target, so that `cargo test` checks the parsing natively.

use sessionserver_core::auth::MIN_SECRET_BYTES;
use sessionserver_core::{ConnectionConfig, Features, Limits};

/// The variable holding the resume grace period in milliseconds, as the native host's
/// `--resume-grace-ms` / `RESUME_GRACE_MS`: how long a member whose connection is gone keeps
/// its seat (0: no grace, `resume` not offered).
pub const RESUME_GRACE_VAR: &str = "RESUME_GRACE_MS";

/// The variable that enables the test hooks (`"1"`): `POST /__test/reset?session=ID` resets
/// that session's object as the platform does when it evicts or restarts one, while the relays
/// stay up. Set only by scripts/edge-test.sh (`wrangler dev --var`); never in wrangler.toml.
pub const TEST_HOOKS_VAR: &str = "TEST_HOOKS";

/// The secret of connect-time auth (`wrangler secret put AUTH_SECRET`; locally `.dev.vars` or
/// `wrangler dev --var AUTH_SECRET:…`), as the native host's `--auth-secret` / `AUTH_SECRET`:
/// when set, every WebSocket upgrade must carry an HS256 JWT signed with it ([`crate::auth`]).
pub const AUTH_SECRET_VAR: &str = "AUTH_SECRET";

/// The number of registry shards ([`crate::shard`]): `"1"` to `"256"`, default 16. Only ever
/// raise it: a session stays in the shard it registered in, and a shard at or above the
/// number is no longer asked (its sessions would not be found until they end).
pub const REGISTRY_SHARDS_VAR: &str = "REGISTRY_SHARDS";

/// A variable's value as the platform gives it: a string (`[vars] X = "30000"`), a number
/// (`X = 30000`), or absent.
#[derive(Clone, Debug, PartialEq)]
pub enum VarValue {
    /// Not set.
    Absent,
    /// A string.
    Text(String),
    /// A number.
    Number(f64),
    /// Anything else (an object, a boolean).
    Other,
}

/// The resume grace period: the default (30 s, as natively) when unset, else a whole number
/// of milliseconds. Anything else is an error naming the variable, so that a typo does not
/// silently change what members get.
pub fn resume_grace_ms(value: &VarValue) -> Result<u64, String> {
    let bad = |shown: &str| {
        format!(
            "{RESUME_GRACE_VAR} must be a whole number of milliseconds (0: no resume), got {shown}"
        )
    };
    match value {
        VarValue::Absent => Ok(Limits::default().resume_grace_ms),
        VarValue::Text(text) => {
            let text = text.trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("{text:?}")));
            }
            text.parse().map_err(|_| bad(&format!("{text:?}")))
        }
        VarValue::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n <= 9_007_199_254_740_991.0 => {
            Ok(*n as u64)
        }
        VarValue::Number(n) => Err(bad(&n.to_string())),
        VarValue::Other => Err(bad("a value that is neither a string nor a number")),
    }
}

/// The auth secret's bytes: `None` when unset (no check, as natively without
/// `--auth-secret`), else the string's bytes as given, at least [`MIN_SECRET_BYTES`] of them
/// (RFC 7518 §3.2), as natively. Anything else is an error naming the variable and never
/// showing its value (the relay then answers every upgrade with 500).
pub fn auth_secret(value: &VarValue) -> Result<Option<Vec<u8>>, String> {
    match value {
        VarValue::Absent => Ok(None),
        VarValue::Text(text) if text.len() >= MIN_SECRET_BYTES => Ok(Some(text.as_bytes().to_vec())),
        VarValue::Text(text) => Err(format!(
            "{AUTH_SECRET_VAR} is {} bytes; HS256 needs at least {MIN_SECRET_BYTES} (RFC 7518 §3.2)",
            text.len()
        )),
        VarValue::Number(_) | VarValue::Other => Err(format!(
            "{AUTH_SECRET_VAR} must be a string (a secret of {MIN_SECRET_BYTES} bytes or more)"
        )),
    }
}

/// The core's limits on this host: the defaults, as on the native host, with the resume grace
/// period set. (The relay's and the objects' must agree: the objects keep seats, the relays
/// offer `resume`.)
pub fn limits(resume_grace_ms: u64) -> Limits {
    Limits {
        resume_grace_ms,
        ..Limits::default()
    }
}

/// The rate limit of each connection, as on the native host, and the extensions offered in
/// `hello`: `resume` while the grace period is above 0, `host` and `messages`, as natively. (The heartbeat settings
/// are not used: a Worker cannot send WebSocket pings, see worker/README.md.)
pub fn connection_config(limits: &Limits) -> ConnectionConfig {
    ConnectionConfig {
        features: if limits.resume_grace_ms > 0 {
            Features::RESUME
                .union(Features::HOST)
                .union(Features::MESSAGES)
        } else {
            Features::HOST.union(Features::MESSAGES)
        },
        ..ConnectionConfig::default()
    }
}

/// The number of registry shards: [`crate::shard::DEFAULT_SHARDS`] when unset, else a whole
/// number from 1 to [`crate::shard::MAX_SHARDS`]; anything else is an error naming the
/// variable.
pub fn registry_shards(value: &VarValue) -> Result<u32, String> {
    use crate::shard::{DEFAULT_SHARDS, MAX_SHARDS};
    let bad = |shown: &str| {
        format!("{REGISTRY_SHARDS_VAR} must be a whole number from 1 to {MAX_SHARDS}, got {shown}")
    };
    let n = match value {
        VarValue::Absent => return Ok(DEFAULT_SHARDS),
        VarValue::Text(text) => {
            let text = text.trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("{text:?}")));
            }
            text.parse::<u32>().map_err(|_| bad(&format!("{text:?}")))?
        }
        VarValue::Number(n) if n.fract() == 0.0 && *n >= 1.0 && *n <= f64::from(MAX_SHARDS) => {
            *n as u32
        }
        VarValue::Number(n) => return Err(bad(&n.to_string())),
        VarValue::Other => return Err(bad("a value that is neither a string nor a number")),
    };
    match n {
        1..=MAX_SHARDS => Ok(n),
        _ => Err(bad(&n.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_period_is_read_as_natively_and_a_bad_one_is_an_error() {
        assert_eq!(resume_grace_ms(&VarValue::Absent), Ok(30_000));
        assert_eq!(resume_grace_ms(&VarValue::Text("2500".into())), Ok(2500));
        assert_eq!(resume_grace_ms(&VarValue::Text(" 0 ".into())), Ok(0));
        assert_eq!(resume_grace_ms(&VarValue::Number(1500.0)), Ok(1500));
        for bad in [
            VarValue::Text("".into()),
            VarValue::Text("-1".into()),
            VarValue::Text("1.5".into()),
            VarValue::Text("30s".into()),
            VarValue::Text("99999999999999999999999".into()),
            VarValue::Number(-1.0),
            VarValue::Number(0.5),
            VarValue::Other,
        ] {
            let error = resume_grace_ms(&bad).unwrap_err();
            assert!(error.starts_with("RESUME_GRACE_MS must be"), "{error}");
        }
    }

    #[test]
    fn the_auth_secret_is_its_bytes_and_a_short_one_is_an_error() {
        assert_eq!(auth_secret(&VarValue::Absent), Ok(None));
        let secret = "a secret of thirty-two bytes, ok";
        assert_eq!(secret.len(), 32);
        assert_eq!(
            auth_secret(&VarValue::Text(secret.into())),
            Ok(Some(secret.as_bytes().to_vec()))
        );
        // As given: not trimmed.
        let spaced = format!(" {secret} ");
        assert_eq!(
            auth_secret(&VarValue::Text(spaced.clone())),
            Ok(Some(spaced.into_bytes()))
        );
        let short = &secret[..31];
        let error = auth_secret(&VarValue::Text(short.into())).unwrap_err();
        assert_eq!(
            error,
            "AUTH_SECRET is 31 bytes; HS256 needs at least 32 (RFC 7518 §3.2)"
        );
        assert!(!error.contains(short));
        assert!(auth_secret(&VarValue::Text(String::new()))
            .unwrap_err()
            .starts_with("AUTH_SECRET is 0 bytes"));
        for other in [VarValue::Number(1e40), VarValue::Other] {
            let error = auth_secret(&other).unwrap_err();
            assert!(error.starts_with("AUTH_SECRET must be a string"), "{error}");
        }
    }

    #[test]
    fn resume_is_offered_while_there_is_a_grace_period() {
        let offered = connection_config(&limits(1)).features;
        assert!(offered.contains(Features::RESUME));
        assert!(offered.contains(Features::HOST));
        assert_eq!(
            connection_config(&limits(0)).features,
            Features::HOST.union(Features::MESSAGES)
        );
        assert_eq!(limits(7).resume_grace_ms, 7);
        assert_eq!(
            limits(7).max_players_per_session,
            Limits::default().max_players_per_session
        );
    }

    #[test]
    fn registry_shards_default_to_16_and_take_1_to_256() {
        assert_eq!(registry_shards(&VarValue::Absent), Ok(16));
        assert_eq!(registry_shards(&VarValue::Text("4".into())), Ok(4));
        assert_eq!(registry_shards(&VarValue::Text(" 256 ".into())), Ok(256));
        assert_eq!(registry_shards(&VarValue::Number(1.0)), Ok(1));
        for bad in ["0", "257", "-1", "4.0", "", "x", "99999999999"] {
            let e = registry_shards(&VarValue::Text(bad.into())).unwrap_err();
            assert!(e.contains("REGISTRY_SHARDS"), "{e}");
        }
        assert!(registry_shards(&VarValue::Number(0.5)).is_err());
        assert!(registry_shards(&VarValue::Number(300.0)).is_err());
        assert!(registry_shards(&VarValue::Other).is_err());
    }
}
