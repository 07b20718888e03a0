//! Protocol extensions a connection asks for in `hello` ([`Features`]), and the resume token
//! ([`ResumeToken`]) of the `resume` extension.
//!
//! An original client never sends `hello` and so gets none of them: every new field in a
//! reply and every new kind of server frame goes only to connections that asked for it.

use std::fmt;

use crate::ids::{PlayerId, SessionId};

/// A set of protocol extensions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Features(u8);

impl Features {
    /// No extension: the original protocol.
    pub const NONE: Features = Features(0);
    /// `resume`: a member whose connection drops keeps its seat for a grace period, and a
    /// new connection takes it back with `resumeSession` (PROTOCOL.md, "resume").
    pub const RESUME: Features = Features(1);
    /// `host`: the member learns who its session's host is (`hostID` in `sessionJoin` and
    /// `sessionResume`, a `hostChange` when it changes, `sessionLock` when the host locks or
    /// unlocks, `"kicked":true` in the `sessionLeave` of a kick).
    pub const HOST: Features = Features(2);
    /// `messages`: the member receives the `message` frames of other members' `sendMessage`.
    pub const MESSAGES: Features = Features(4);
    /// Every extension, with its name on the wire, in the order `hello` lists them.
    pub const ALL: [(Features, &'static str); 3] = [
        (Features::RESUME, "resume"),
        (Features::HOST, "host"),
        (Features::MESSAGES, "messages"),
    ];

    /// The extension called `name`, if the server knows one.
    pub fn named(name: &str) -> Option<Features> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    /// Whether every extension of `other` is in `self`.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// The extensions in both.
    pub const fn intersect(self, other: Features) -> Features {
        Features(self.0 & other.0)
    }

    /// The extensions in either.
    pub const fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// The names of the extensions in the set, in [`Features::ALL`]'s order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::ALL
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

/// A resume token: `<sessionID>.<playerID>.<secret>`, the secret 128 bits from the host's
/// secure random source as 32 lowercase hex digits. The IDs let any host route a resume to
/// the session without a lookup table (the edge host: to its Durable Object); only the
/// secret, which the session keeps for that member alone and replaces at every resume,
/// makes the token worth anything.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ResumeToken {
    /// The session it was issued in.
    pub session: SessionId,
    /// The member it was issued to.
    pub player: PlayerId,
    /// The member's current secret.
    pub secret: u128,
}

/// A `resumeSession`: the seat to take back, and how many of its session events the client
/// got ([`ResumeRequest::received`]), so that what was in flight to the old connection is
/// replayed too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeRequest {
    /// The token it sent.
    pub token: ResumeToken,
    /// How many session events (`playerJoin`, `playerUpdate`, `playerLeave`, `sessionUpdate`
    /// with error 0) the client received since its last `sessionJoin` or `sessionResume`;
    /// `None`: replay from when the server found the old connection gone.
    pub received: Option<u64>,
}

impl ResumeToken {
    /// Reads a token as a client sent it; `None` if it is not one this server issues.
    pub fn parse(text: &str) -> Option<ResumeToken> {
        let mut parts = text.split('.');
        let session = parts.next()?;
        let player = parts.next()?;
        let secret = parts.next()?;
        let decimal = |s: &str| {
            (!s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let hex = secret.len() == 32
            && secret
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if parts.next().is_some() || !hex {
            return None;
        }
        Some(ResumeToken {
            session: SessionId(decimal(session)?),
            player: PlayerId(decimal(player)?),
            secret: u128::from_str_radix(secret, 16).ok()?,
        })
    }

    /// Whether `secret` is this token's, compared in constant time (the comparison's duration
    /// tells nothing about how much of a guess was right).
    pub fn has_secret(&self, secret: u128) -> bool {
        let diff = self.secret ^ secret;
        diff.to_le_bytes().iter().fold(0u8, |acc, b| acc | b) == 0
    }
}

impl fmt::Display for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{:032x}", self.session, self.player, self.secret)
    }
}

impl fmt::Debug for ResumeToken {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResumeToken({}.{}.…)", self.session, self.player)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn tokens_read_back_what_they_write_and_nothing_else() {
        let token = ResumeToken {
            session: SessionId(12),
            player: PlayerId(7),
            secret: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        };
        let text = token.to_string();
        assert_eq!(text, "12.7.0123456789abcdef0011223344556677");
        assert_eq!(ResumeToken::parse(&text), Some(token));
        assert!(!format!("{token:?}").contains("0123"));
        for bad in [
            "",
            "12.7",
            "12.7.0123456789abcdef001122334455667",
            "12.7.0123456789abcdef00112233445566778",
            "12.7.0123456789ABCDEF0011223344556677",
            "12.7.0123456789abcdef0011223344556677.1",
            "-1.7.0123456789abcdef0011223344556677",
            "+1.7.0123456789abcdef0011223344556677",
            "99999999999999999.7.0123456789abcdef0011223344556677",
        ] {
            assert_eq!(ResumeToken::parse(bad), None, "{bad}");
        }
        assert!(token.has_secret(token.secret));
        assert!(!token.has_secret(token.secret ^ 1));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn features_are_named_and_listed_in_one_order() {
        assert_eq!(Features::named("resume"), Some(Features::RESUME));
        assert_eq!(Features::named("teleport"), None);
        assert_eq!(Features::RESUME.names().collect::<Vec<_>>(), ["resume"]);
        assert_eq!(Features::NONE.names().count(), 0);
        assert!(Features::RESUME
            .union(Features::NONE)
            .contains(Features::RESUME));
        assert_eq!(Features::RESUME.intersect(Features::NONE), Features::NONE);
    }
}
