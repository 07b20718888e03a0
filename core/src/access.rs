//! Who may play: a session's options ([`SessionOptions`]: `maxPlayers`, `private`,
//! `password`, `hostOnlySessionUpdates`), the password a join carries ([`Password`]), and
//! what a session keeps of them ([`Access`]): the digest of its password, its lock, and the
//! allowance of wrong guesses that rate-limits the password.
//!
//! The host of a session is its earliest member (the creator, then whoever joined first of
//! those left); [`crate::Session`] keeps the join order, so nothing here stores it.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::data::JsonObject;

/// The largest metadata a session may have (`options.metadata`, `setMetadata`), in bytes of
/// JSON.
pub const MAX_METADATA_BYTES: usize = 4096;

/// The longest password a session may have, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Wrong passwords a session takes at once before it checks none for a while.
pub const WRONG_PASSWORD_BURST: u32 = 10;

/// How often a session regains one wrong guess, in milliseconds: brute force gets one guess
/// per second per session, however many connections it uses.
pub const WRONG_PASSWORD_REFILL_MS: u64 = 1000;

/// A password as a client sent it (in `createSession`'s options or in `joinSession`). Its
/// text stays out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Box<str>);

impl Password {
    /// The password `text`, if it is one a session may have: 1 to [`MAX_PASSWORD_BYTES`]
    /// bytes.
    pub fn new(text: &str) -> Option<Password> {
        (!text.is_empty() && text.len() <= MAX_PASSWORD_BYTES).then(|| Password(text.into()))
    }

    /// A join's password, whatever its length: one that no session can have is simply
    /// wrong.
    pub fn guess(text: &str) -> Password {
        Password(text.into())
    }

    /// The text, to send it on (the edge host's relay re-encodes commands).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What a session keeps of it.
    pub fn digest(&self) -> PasswordDigest {
        PasswordDigest(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

/// The SHA-256 of a session's password: what the session (and the edge host's storage)
/// keeps, so that its text is held nowhere once the session exists.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PasswordDigest(pub [u8; 32]);

impl PasswordDigest {
    /// Whether `password` is the one this is the digest of, compared in constant time.
    pub fn matches(&self, password: &Password) -> bool {
        let other = password.digest();
        let diff = self
            .0
            .iter()
            .zip(other.0)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }

    /// As 64 lowercase hex digits (for storage).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads [`PasswordDigest::to_hex`]'s text back.
    pub fn from_hex(text: &str) -> Option<PasswordDigest> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(PasswordDigest(bytes))
    }
}

impl fmt::Debug for PasswordDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordDigest(…)")
    }
}

/// `createSession`'s `"options"`: each optional, none by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// `maxPlayers`: joins beyond it get error 16 (as the server-wide cap does). At most the
    /// server's [`crate::Limits::max_players_per_session`].
    pub max_players: Option<u32>,
    /// `private`: not found by `joinSession -1` (nor listed), and its ID is random.
    pub private: bool,
    /// `password`: every `joinSession` must carry it.
    pub password: Option<Password>,
    /// `hostOnlySessionUpdates`: `updateSession` is the host's alone.
    pub host_only_session_updates: bool,
    /// `metadata`: public information about the session, for `listSessions`.
    pub metadata: Option<JsonObject>,
}

impl SessionOptions {
    /// Whether every option is its default (a createSession without `options`).
    pub fn is_default(&self) -> bool {
        *self == SessionOptions::default()
    }

    /// The options as the JSON object `createSession` carries (the inverse of parsing it),
    /// or `None` when all are defaults.
    pub fn encode(&self) -> Option<String> {
        if self.is_default() {
            return None;
        }
        let mut fields = Vec::new();
        if let Some(max) = self.max_players {
            fields.push(format!(r#""maxPlayers":{max}"#));
        }
        if self.private {
            fields.push(r#""private":true"#.to_owned());
        }
        if let Some(password) = &self.password {
            // Serializing a str cannot fail.
            let text = serde_json::to_string(password.as_str()).unwrap_or_default();
            fields.push(format!(r#""password":{text}"#));
        }
        if self.host_only_session_updates {
            fields.push(r#""hostOnlySessionUpdates":true"#.to_owned());
        }
        if let Some(metadata) = &self.metadata {
            fields.push(format!(r#""metadata":{}"#, metadata.as_str()));
        }
        Some(format!("{{{}}}", fields.join(",")))
    }
}

/// What a session keeps of its options, and its lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// `maxPlayers`, if the creator set one.
    pub max_players: Option<u32>,
    /// Not found by `-1`, random ID.
    pub private: bool,
    /// The password's digest, if it has one.
    pub password: Option<PasswordDigest>,
    /// `updateSession` from the host only.
    pub host_only_session_updates: bool,
    /// The host locked the session: no new members.
    pub locked: bool,
    /// Its metadata, as the creator (or later the host) sent it.
    pub metadata: Option<JsonObject>,
    /// Wrong passwords it may still take now, refilled over time (not stored: a restarted
    /// edge object starts with a full allowance).
    guesses: Guesses,
}

impl Access {
    /// What a session created with `options` keeps.
    pub fn new(options: &SessionOptions) -> Access {
        Access {
            max_players: options.max_players,
            private: options.private,
            password: options.password.as_ref().map(Password::digest),
            host_only_session_updates: options.host_only_session_updates,
            locked: false,
            metadata: options.metadata.clone(),
            guesses: Guesses::default(),
        }
    }

    /// Whether a join carrying `password` may come in, at `now_ms`: `Ok` if the session has no
    /// password or it is the right one; a wrong or missing one is counted against the
    /// session's allowance, and once that is used up no password is checked until it has
    /// refilled.
    pub fn check_password(
        &mut self,
        now_ms: u64,
        password: Option<&Password>,
    ) -> Result<(), PasswordRefusal> {
        let Some(digest) = &self.password else {
            return Ok(());
        };
        if !self.guesses.available(now_ms) {
            return Err(PasswordRefusal::TooManyGuesses);
        }
        match password {
            Some(password) if digest.matches(password) => Ok(()),
            // A join without one is no guess: it costs nothing.
            None => Err(PasswordRefusal::Wrong),
            Some(_) => {
                self.guesses.take(now_ms);
                Err(PasswordRefusal::Wrong)
            }
        }
    }
}

/// Why a join's password was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordRefusal {
    /// Missing or wrong: error 26.
    Wrong,
    /// The session's allowance of wrong guesses is used up: error 27.
    TooManyGuesses,
}

/// A token bucket of wrong guesses: [`WRONG_PASSWORD_BURST`] at once, one more every
/// [`WRONG_PASSWORD_REFILL_MS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Guesses {
    /// Wrong guesses taken and not yet refilled, as of `updated_ms`.
    used: u32,
    updated_ms: u64,
}

impl Guesses {
    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms);
        let regained = elapsed / WRONG_PASSWORD_REFILL_MS;
        let regained = u32::try_from(regained).unwrap_or(u32::MAX);
        if regained > 0 {
            self.used = self.used.saturating_sub(regained);
            // Keep the part of an interval that has not yet earned a guess.
            self.updated_ms = self
                .updated_ms
                .saturating_add(u64::from(regained) * WRONG_PASSWORD_REFILL_MS);
        }
        if self.used == 0 {
            self.updated_ms = now_ms;
        }
    }

    fn available(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        self.used < WRONG_PASSWORD_BURST
    }

    fn take(&mut self, now_ms: u64) {
        self.refill(now_ms);
        self.used = self.used.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn with_password(text: &str) -> Access {
        Access::new(&SessionOptions {
            password: Password::new(text),
            ..SessionOptions::default()
        })
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn passwords_match_only_themselves_and_stay_out_of_logs() {
        let secret = Password::new("hunter2").unwrap();
        let digest = secret.digest();
        assert!(digest.matches(&secret));
        assert!(!digest.matches(&Password::new("hunter3").unwrap()));
        assert_eq!(PasswordDigest::from_hex(&digest.to_hex()), Some(digest));
        assert_eq!(PasswordDigest::from_hex("00"), None);
        assert!(!format!("{secret:?}{digest:?}").contains("hunter"));
        assert_eq!(Password::new(""), None);
        assert!(Password::new(&"x".repeat(MAX_PASSWORD_BYTES)).is_some());
        assert_eq!(Password::new(&"x".repeat(MAX_PASSWORD_BYTES + 1)), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn wrong_guesses_run_out_and_come_back_one_per_interval() {
        let mut access = with_password("right");
        let right = Password::new("right").unwrap();
        let wrong = Password::new("wrong").unwrap();
        assert_eq!(access.check_password(0, None), Err(PasswordRefusal::Wrong));
        for _ in 0..WRONG_PASSWORD_BURST {
            assert_eq!(
                access.check_password(0, Some(&wrong)),
                Err(PasswordRefusal::Wrong)
            );
        }
        // Used up: even the right one is not checked now.
        assert_eq!(
            access.check_password(999, Some(&right)),
            Err(PasswordRefusal::TooManyGuesses)
        );
        assert_eq!(access.check_password(1000, Some(&right)), Ok(()));
        assert_eq!(
            access.check_password(1000, Some(&wrong)),
            Err(PasswordRefusal::Wrong)
        );
        assert_eq!(
            access.check_password(1500, Some(&right)),
            Err(PasswordRefusal::TooManyGuesses)
        );
        assert_eq!(access.check_password(2000, Some(&right)), Ok(()));
        // A session without a password takes anything.
        assert_eq!(Access::default().check_password(0, Some(&wrong)), Ok(()));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn options_encode_as_they_are_read() {
        assert_eq!(SessionOptions::default().encode(), None);
        let options = SessionOptions {
            max_players: Some(4),
            private: true,
            password: Password::new("a\"b"),
            host_only_session_updates: true,
            metadata: JsonObject::parse(r#"{"mode":"ctf"}"#).ok(),
        };
        assert_eq!(
            options.encode().as_deref(),
            Some(
                r#"{"maxPlayers":4,"private":true,"password":"a\"b","hostOnlySessionUpdates":true,"metadata":{"mode":"ctf"}}"#
            )
        );
    }
}
