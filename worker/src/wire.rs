//! What travels on a relay's socket to a session object, and in the answer to a join: the
//! core's [`ToSession`](sessionserver_core::ToSession) inputs and
//! [`ToPlayer`](sessionserver_core::ToPlayer) events mapped onto WebSocket messages. Nothing
//! here decides anything; it only encodes and decodes. Compiled on every target, so that
//! `cargo test` checks the encodings natively.
//!
//! Relay to object:
//! - a text message is a member's command ([`encode_command`]); the object parses it back with
//!   `core::parse`, which gives the same [`Command`] (the data objects are spliced in as the
//!   client wrote them, the fields in the spelling the command was read in);
//! - a binary message is the reply frame of a rejected frame (error 14 for a binary frame, 18
//!   for the rate limit, 9-15 for a frame that is no command), which the object sends back as
//!   text so that it reaches the client in order with the session's replies; an empty one
//!   comes back as an empty text message, the relay's marker that every earlier message has
//!   been answered;
//! - closing it is the player's disconnect.
//!
//! Object to relay:
//! - a text message is a frame for the client;
//! - the binary message [`JOINED`] is `ToPlayer::Joined` for the creator of a session (a joiner
//!   learns it from the 101 answer to its join);
//! - the binary message [`encode_resumed`] ends the welcome of a resume (`ToPlayer::Resumed`):
//!   the `sessionResume` and its replay or snapshot come before it, on the socket the 101
//!   answer to the resume opened; it carries the session's default playerData, which a relay
//!   needs to tell an original client what a snapshot changed ([`crate::resync`]);
//! - a close with `link::close::LEFT` is `ToPlayer::Left`, after the player's `sessionLeave`;
//! - the binary message [`KICKED`] is `ToPlayer::Kicked`, after the kicked player's
//!   `sessionLeave`: the relay forwards the answers to what it sent before, then closes the
//!   socket (the player's disconnect from the session it is no member of);
//! - the answer `link::status::ANSWERED` to a join is `ToPlayer::JoinRefused`; its body holds
//!   the frames for the refused player ([`encode_frames`]).
//!
//! A create, join or resume (the request for the socket, `link::Ask`) carries the player's
//! subject, when connect-time auth gave it one, in a header ([`encode_subject`]).

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use sessionserver_core::Command;

/// What a subject's header value percent-encodes besides every non-ASCII byte: controls
/// (a header value cannot hold a line break, and workerd refuses NUL), `%` itself, and space
/// and tab (the Fetch API trims them off a value's ends).
const SUBJECT_ESCAPES: &AsciiSet = &CONTROLS.add(b'%').add(b' ');

/// A subject (a JWT's `sub`: any string) as a header value: its UTF-8 bytes, percent-encoded
/// where a header could not carry them as they are.
pub fn encode_subject(subject: &str) -> String {
    utf8_percent_encode(subject, SUBJECT_ESCAPES).to_string()
}

/// The subject of a header value made by [`encode_subject`]; `None` if it is no UTF-8.
pub fn decode_subject(value: &str) -> Option<String> {
    let bytes: Vec<u8> = percent_decode_str(value).collect();
    String::from_utf8(bytes).ok()
}

/// Object to relay: the player is a member of the session it created (`ToPlayer::Joined`),
/// after its `sessionJoin`.
pub const JOINED: &[u8] = b"joined";

/// Object to relay: the session's host kicked the player (`ToPlayer::Kicked`), after its
/// `sessionLeave`. The object keeps the socket, and answers what the relay sent meanwhile,
/// until the relay closes it.
pub const KICKED: &[u8] = b"kicked";

/// Object to relay: the end of a resume's welcome; the default playerData follows.
const RESUMED: &[u8] = b"resumed:";

/// The end of a resume's welcome, with the session's default playerData.
pub fn encode_resumed(default_player_data: &str) -> Vec<u8> {
    [RESUMED, default_player_data.as_bytes()].concat()
}

/// The default playerData of a message made by [`encode_resumed`]; `None` if it is not one.
pub fn decode_resumed(message: &[u8]) -> Option<&str> {
    std::str::from_utf8(message.strip_prefix(RESUMED)?).ok()
}

/// A command as a client frame that `core::parse` reads back as the same command
/// ([`Command::encode`], where its round-trip test is).
pub fn encode_command(command: &Command) -> String {
    command.encode()
}

/// Frames in one text: each as its length in bytes, a colon, and the frame.
pub fn encode_frames<'a>(frames: impl IntoIterator<Item = &'a str>) -> String {
    let mut body = String::new();
    for frame in frames {
        body.push_str(&frame.len().to_string());
        body.push(':');
        body.push_str(frame);
    }
    body
}

/// The frames of a text made by [`encode_frames`]; `None` if it is not one.
pub fn decode_frames(mut body: &str) -> Option<Vec<&str>> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        let (len, rest) = body.split_once(':')?;
        let len: usize = len.parse().ok()?;
        if len > rest.len() || !rest.is_char_boundary(len) {
            return None;
        }
        let (frame, rest) = rest.split_at(len);
        frames.push(frame);
        body = rest;
    }
    Some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionserver_core::{parse, Limits};

    #[test]
    fn a_command_goes_as_the_core_encodes_it() {
        let frame = r#"{"player":{"z":1},"command":"updateSession","session":{"y":2}}"#;
        let command = parse(frame, &Limits::default()).unwrap();
        assert_eq!(encode_command(&command), command.encode());
        assert_eq!(
            parse(&encode_command(&command), &Limits::default()),
            Ok(command)
        );
    }

    #[test]
    fn frames_survive_the_body() {
        let frames = [
            r#"{"command":"sessionJoin","error":16,"message":"full: 3:4"}"#,
            "",
            "é:ü",
        ];
        let body = encode_frames(frames);
        assert_eq!(decode_frames(&body), Some(frames.to_vec()));
        assert_eq!(decode_frames(""), Some(vec![]));
    }

    #[test]
    fn the_end_of_a_welcome_carries_the_default() {
        let message = encode_resumed(r#"{"x":"é"}"#);
        assert_eq!(decode_resumed(&message), Some(r#"{"x":"é"}"#));
        assert_eq!(decode_resumed(JOINED), None);
        assert_eq!(decode_resumed(b"resumed:\xff"), None);
        assert_eq!(decode_resumed(&[b'r', 0xff]), None);
    }

    #[test]
    fn a_subject_survives_its_header() {
        for subject in [
            "ada",
            "",
            " spaced\t",
            "line\r\nbreak\0",
            "100% é 🎲 \u{7f}",
            "user:42|a=b,c;\"q\"",
        ] {
            let value = encode_subject(subject);
            // Visible ASCII only: what a header keeps as it is.
            assert!(value.bytes().all(|b| b.is_ascii_graphic()), "{value}");
            assert_eq!(decode_subject(&value).as_deref(), Some(subject), "{value}");
        }
        assert_eq!(encode_subject("ada"), "ada");
        assert_eq!(decode_subject("%FF"), None);
    }

    #[test]
    fn a_broken_body_is_no_frames() {
        for body in ["5:abc", "x:abc", "abc", "1:é", "1:ab:"] {
            assert_eq!(decode_frames(body), None, "{body}");
        }
    }
}
