//! permessage-deflate (RFC 7692): the offer a client makes in its upgrade, and the codec.
//!
//! The server agrees to compression only with no context takeover in both directions
//! (`server_no_context_takeover; client_no_context_takeover`): every message is compressed and
//! inflated on its own, so a connection holds no zlib state, only the [`Deflate`] byte in its
//! outbox and a flag in its frame reader (memory per idle player). The compressor and the
//! decompressor are one per thread (`thread_local!`), reset before each message.
//!
//! Outgoing: a message of at least [`THRESHOLD`] bytes is compressed (once per broadcast,
//! shared by every member that agreed to it) and sent with RSV1 set when that makes it
//! smaller; anything else goes plain, which RFC 7692 allows per message. Incoming: a message
//! whose first frame has RSV1 set is inflated (with `00 00 ff ff` appended) into at most the
//! server's message size limit; more is refused as an oversize message (1009) before it is
//! allocated, and data that does not inflate is a protocol error (1002).

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Payloads shorter than this go plain even to clients that agreed to compression: deflate
/// gains little on them and costs a compressor reset and a frame of its own. Chosen from
/// measurement (BENCHMARKS.md, "Compression"): a 100-byte `playerUpdate` deflates to about
/// 80 bytes alone, and the CPU per delivery is what the bench looks at.
pub(crate) const THRESHOLD: usize = 128;

/// The last four bytes of a sync flush, stripped from every message sent and appended to every
/// one received (RFC 7692 7.2.1, 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What one connection agreed to: nothing, or compression with LZ77 distances within
/// `2^bits` (the client's `server_max_window_bits`, 15 when it named none). Copied wherever
/// frames for the connection are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Deflate(u8);

impl Deflate {
    pub(crate) const OFF: Deflate = Deflate(0);

    /// Compression with a window of `2^bits` bytes (8 to 15).
    pub(crate) fn with_window_bits(bits: u8) -> Deflate {
        Deflate(bits.clamp(8, 15))
    }

    pub(crate) fn is_on(self) -> bool {
        self.0 != 0
    }

    /// Whether a message of `len` bytes goes compressed to this connection. With no context
    /// takeover an LZ77 distance is always shorter than the message, so a message of at most
    /// `2^bits` bytes keeps within a window of `2^bits` whatever window the compressor has
    /// (miniz_oxide's is always 2^15); longer ones go plain to a client with a smaller window.
    pub(crate) fn takes(self, len: usize) -> bool {
        self.0 != 0 && len >= THRESHOLD && (self.0 >= 15 || len <= 1usize << self.0)
    }
}

/// The answer to a client's offers: what goes in the response's `Sec-WebSocket-Extensions`,
/// and what the connection then does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Agreement {
    /// The `server_max_window_bits` the client asked for, if any (echoed in the response).
    pub(crate) server_max_window_bits: Option<u8>,
}

impl Agreement {
    pub(crate) fn deflate(&self) -> Deflate {
        Deflate::with_window_bits(self.server_max_window_bits.unwrap_or(15))
    }

    /// The response header's value. `client_max_window_bits` is never sent: the server
    /// inflates with a window of 15 bits, the most a client may use.
    pub(crate) fn response(&self) -> String {
        let mut value = String::from(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        );
        if let Some(bits) = self.server_max_window_bits {
            value.push_str(&format!("; server_max_window_bits={bits}"));
        }
        value
    }
}

/// The first `permessage-deflate` offer among the values of the request's
/// `Sec-WebSocket-Extensions` headers that the server can accept (RFC 7692 5, 7.1), or `None`.
/// Headers that do not parse (RFC 6455 9.1's grammar) are ignored altogether; an offer with an
/// unknown parameter, a parameter twice, or a value out of range is skipped (7.1: declined).
pub(crate) fn negotiate<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Agreement> {
    for value in values {
        let Some(extensions) = parse_extensions(value) else {
            continue;
        };
        for (name, params) in extensions {
            if !name.eq_ignore_ascii_case("permessage-deflate") {
                continue;
            }
            if let Some(agreement) = accept_offer(&params) {
                return Some(agreement);
            }
        }
    }
    None
}

/// One offer's parameters, if the server can accept it.
fn accept_offer(params: &[(String, Option<String>)]) -> Option<Agreement> {
    let mut seen = [false; 4];
    let mut server_max_window_bits = None;
    for (name, value) in params {
        let slot = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return None,
        };
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        match (slot, value) {
            // Flags: no value allowed.
            (0 | 1, Some(_)) => return None,
            (0 | 1, None) => {}
            // A value of 8 to 15 is required.
            (2, value) => server_max_window_bits = Some(window_bits(value.as_deref()?)?),
            // Optional; the server never asks the client for a smaller window.
            (_, Some(value)) => {
                window_bits(value)?;
            }
            (_, None) => {}
        }
    }
    Some(Agreement {
        server_max_window_bits,
    })
}

/// A window-bits value: 1*DIGIT in 8..=15, no leading zero (RFC 7692 7.1.2.1).
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match value.parse::<u8>() {
        Ok(bits @ 8..=15) => Some(bits),
        _ => None,
    }
}

type Extension = (String, Vec<(String, Option<String>)>);

/// RFC 6455 9.1: `1#extension`, `extension = token *( ";" extension-param )`,
/// `extension-param = token [ "=" (token | quoted-string) ]`, with optional white space
/// around the separators. A quoted value is unescaped and must then be a token. `None` for
/// anything else.
fn parse_extensions(value: &[u8]) -> Option<Vec<Extension>> {
    let text = std::str::from_utf8(value).ok()?;
    let mut p = Parser {
        rest: text.as_bytes(),
    };
    let mut out = Vec::new();
    loop {
        p.skip_ows();
        // Empty list elements (`a, , b`) are allowed by RFC 7230's #rule.
        if p.eat(b',') {
            continue;
        }
        if p.rest.is_empty() {
            break;
        }
        let name = p.token()?;
        let mut params = Vec::new();
        loop {
            p.skip_ows();
            if p.eat(b';') {
                p.skip_ows();
                let param = p.token()?;
                p.skip_ows();
                let value = if p.eat(b'=') {
                    p.skip_ows();
                    let value = if p.rest.first() == Some(&b'"') {
                        p.quoted()?
                    } else {
                        p.token()?
                    };
                    if value.is_empty() || !value.bytes().all(is_tchar) {
                        return None;
                    }
                    Some(value)
                } else {
                    None
                };
                params.push((param, value));
            } else if p.eat(b',') || p.rest.is_empty() {
                break;
            } else {
                return None;
            }
        }
        out.push((name, params));
    }
    (!out.is_empty()).then_some(out)
}

struct Parser<'a> {
    rest: &'a [u8],
}

impl Parser<'_> {
    fn skip_ows(&mut self) {
        while let [b' ' | b'\t', rest @ ..] = self.rest {
            self.rest = rest;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        match self.rest.split_first() {
            Some((&b, rest)) if b == byte => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    fn token(&mut self) -> Option<String> {
        let n = self.rest.iter().take_while(|&&b| is_tchar(b)).count();
        if n == 0 {
            return None;
        }
        let (token, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(String::from_utf8_lossy(token).into_owned())
    }

    /// A quoted-string (RFC 7230 3.2.6), unescaped.
    fn quoted(&mut self) -> Option<String> {
        let mut rest = self.rest.strip_prefix(b"\"")?;
        let mut out = Vec::new();
        loop {
            match rest {
                [b'"', after @ ..] => {
                    self.rest = after;
                    return String::from_utf8(out).ok();
                }
                [b'\\', c, after @ ..] if *c == b'\t' || *c >= 0x20 && *c != 0x7f => {
                    out.push(*c);
                    rest = after;
                }
                [c, after @ ..] if *c == b'\t' || *c >= 0x20 && *c != 0x7f && *c != b'\\' => {
                    out.push(*c);
                    rest = after;
                }
                _ => return None,
            }
        }
    }
}

/// RFC 7230 3.2.6 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

thread_local! {
    /// Level 1 (fastest): the frames are small JSON, where higher levels gain little and cost
    /// CPU per broadcast. Raw deflate (no zlib header), reset per message.
    static COMPRESSOR: RefCell<(Compress, Vec<u8>)> =
        RefCell::new((Compress::new(Compression::fast(), false), Vec::new()));
    static DECOMPRESSOR: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// Scratch space kept per thread for compressed output: let go when a message made it larger.
const SCRATCH_KEPT: usize = 64 * 1024;

/// `payload` deflated on its own (no context), without the trailing `00 00 ff ff`, if that is
/// shorter than `payload`; `None` otherwise.
#[cfg(test)]
pub(crate) fn compress(payload: &[u8]) -> Option<Vec<u8>> {
    compress_with(payload, |compressed| compressed.to_vec())
}

/// The WebSocket text frame of `payload`, compressed (RSV1 set), when compression makes it
/// shorter.
pub(crate) fn text_frame(payload: &[u8]) -> Option<Bytes> {
    compress_with(payload, |compressed| {
        // FIN, RSV1 (compressed), text.
        crate::socket::frame_with(0xC1, compressed)
    })
}

fn compress_with<T>(payload: &[u8], make: impl FnOnce(&[u8]) -> T) -> Option<T> {
    COMPRESSOR.with_borrow_mut(|(compressor, out)| {
        compressor.reset();
        out.clear();
        // Room for the payload and the flush's tail: more output than that is no gain.
        out.reserve(payload.len() + TAIL.len());
        let mut consumed = 0;
        // A sync flush into a buffer with room ends in one call; a few more are allowed for
        // whatever the compressor holds back.
        for _ in 0..4 {
            compressor
                .compress_vec(&payload[consumed..], out, FlushCompress::Sync)
                .ok()?;
            consumed = usize::try_from(compressor.total_in()).ok()?;
            if consumed >= payload.len() && out.len() < out.capacity() {
                break;
            }
            if out.len() >= payload.len() + TAIL.len() {
                break;
            }
        }
        let result = (consumed >= payload.len() && out.ends_with(&TAIL))
            .then(|| &out[..out.len() - TAIL.len()])
            .filter(|compressed| compressed.len() < payload.len())
            .map(make);
        if out.capacity() > SCRATCH_KEPT {
            *out = Vec::new();
        }
        result
    })
}

/// Why a compressed message was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It inflates to more than the limit (1009).
    TooBig,
    /// It is not a deflate stream (1002).
    Invalid,
}

/// Inflates one message (no context: a fresh decompressor), `00 00 ff ff` appended, into at
/// most `max` bytes. The output grows as it is produced and never beyond `max`: an inflate
/// bomb is refused before more than the limit is allocated.
pub(crate) fn inflate(compressed: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
    DECOMPRESSOR.with_borrow_mut(|decompressor| {
        decompressor.reset(false);
        let mut out: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        for part in [compressed, &TAIL[..]] {
            let mut part = part;
            loop {
                let (in_before, out_before) = (decompressor.total_in(), decompressor.total_out());
                let status = decompressor
                    .decompress(part, &mut chunk, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Invalid)?;
                // Both at most the lengths of the buffers given.
                let used = usize::try_from(decompressor.total_in() - in_before)
                    .map_err(|_| InflateError::Invalid)?;
                let made = usize::try_from(decompressor.total_out() - out_before)
                    .map_err(|_| InflateError::Invalid)?;
                part = part.get(used..).ok_or(InflateError::Invalid)?;
                let room = max - out.len();
                if made > room {
                    return Err(InflateError::TooBig);
                }
                if out.capacity() - out.len() < made {
                    // Doubling, but never past the limit.
                    let grow = out.len().max(1024).min(room).max(made);
                    out.reserve_exact(grow);
                }
                out.extend_from_slice(&chunk[..made]);
                if status == Status::StreamEnd {
                    // A final block (BFINAL) ends the message; only the tail may follow it.
                    return if TAIL.ends_with(part) {
                        Ok(out)
                    } else {
                        Err(InflateError::Invalid)
                    };
                }
                if part.is_empty() && made < chunk.len() {
                    break;
                }
                if used == 0 && made == 0 {
                    return Err(InflateError::Invalid);
                }
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(header: &str) -> Option<Agreement> {
        negotiate([header.as_bytes()])
    }

    #[test]
    fn a_plain_offer_is_accepted_with_no_context_takeover() {
        let agreed = offer("permessage-deflate").unwrap();
        assert_eq!(agreed.server_max_window_bits, None);
        assert_eq!(
            agreed.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert_eq!(agreed.deflate(), Deflate(15));
    }

    #[test]
    fn the_browsers_offer_is_accepted() {
        // What Chrome and Firefox send.
        let agreed = offer("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(agreed.server_max_window_bits, None);
        assert!(!agreed.response().contains("client_max_window_bits"));
    }

    #[test]
    fn server_max_window_bits_is_honoured_and_echoed() {
        let agreed = offer("permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(agreed.server_max_window_bits, Some(10));
        assert!(agreed.response().ends_with("; server_max_window_bits=10"));
        let deflate = agreed.deflate();
        assert!(deflate.takes(1024));
        assert!(!deflate.takes(1025), "longer than the window: plain");
        assert!(!deflate.takes(THRESHOLD - 1));
        let quoted = offer("permessage-deflate; server_max_window_bits=\"9\"").unwrap();
        assert_eq!(quoted.server_max_window_bits, Some(9));
    }

    #[test]
    fn offers_the_server_cannot_accept_are_skipped_for_the_next() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; unknown_param",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(offer(bad), None, "{bad}");
            // The next offer in the same header, or in another header, is taken.
            let two = format!("{bad}, permessage-deflate; server_max_window_bits=12");
            assert_eq!(
                offer(&two).map(|a| a.server_max_window_bits),
                Some(Some(12)),
                "{two}"
            );
            let agreed = negotiate([bad.as_bytes(), b"permessage-deflate".as_slice()]);
            assert_eq!(
                agreed,
                Some(Agreement {
                    server_max_window_bits: None
                })
            );
        }
    }

    #[test]
    fn the_grammar_is_followed() {
        // White space, case, empty list elements, every parameter once.
        let agreed = offer(
            " , foo; bar=\"ab\" ,PerMessage-Deflate ;\tSERVER_NO_CONTEXT_TAKEOVER ; \
             client_no_context_takeover;server_max_window_bits = 15; client_max_window_bits=15",
        );
        assert_eq!(
            agreed,
            Some(Agreement {
                server_max_window_bits: Some(15)
            })
        );
        // Quoted values may hold escapes, and must unescape to a token.
        assert_eq!(
            parse_extensions(br#"a; b="\1\2""#),
            Some(vec![("a".into(), vec![("b".into(), Some("12".into()))])])
        );
        // Broken headers are ignored whole.
        for broken in [
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate server_no_context_takeover",
            "permessage-deflate;",
            "permessage-deflate; =1",
            "permessage-deflate; client_max_window_bits=\"\"",
            "permessage-deflate; x=\"a,b\"",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "\"permessage-deflate\"",
            "",
        ] {
            assert_eq!(offer(broken), None, "{broken:?}");
        }
        assert_eq!(negotiate(std::iter::empty()), None);
    }

    #[test]
    fn compression_round_trips_and_strips_the_tail() {
        let payload = br#"{"command":"playerUpdate","playerID":12,"data":{"x":10,"y":20,"name":"Ada","inventory":["sword","shield","potion","potion","potion"]}}"#.repeat(3);
        let compressed = compress(&payload).expect("repetitive JSON compresses");
        assert!(compressed.len() < payload.len() / 2);
        assert!(!compressed.ends_with(&TAIL));
        assert_eq!(inflate(&compressed, 1 << 20).unwrap(), payload);
        // Independent messages: the same input gives the same output (no context kept).
        assert_eq!(compress(&payload).unwrap(), compressed);
        // flate2's own raw inflater agrees (what a client does).
        let with_tail = [&compressed[..], &TAIL].concat();
        let mut reader = flate2::read::DeflateDecoder::new(&with_tail[..]);
        let mut back = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut back);
        assert_eq!(back, payload);
    }

    #[test]
    fn incompressible_payloads_are_not_compressed() {
        let noise: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert_eq!(compress(&noise), None);
        assert_eq!(compress(b""), None);
    }

    #[test]
    fn the_compressed_frame_has_rsv1_and_the_right_length() {
        let payload = vec![b'a'; 300];
        let frame = text_frame(&payload).unwrap();
        assert_eq!(frame[0], 0xC1, "FIN, RSV1, text");
        let len = frame[1] as usize;
        assert_eq!(len, frame.len() - 2);
        assert_eq!(inflate(&frame[2..], 1000).unwrap(), payload);
    }

    #[test]
    fn an_inflate_bomb_is_refused_at_the_limit() {
        let bomb = compress(&vec![0u8; 10 << 20]).unwrap();
        // It passes the frame size limit: only inflating shows what it is.
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert_eq!(inflate(&bomb, 64 * 1024), Err(InflateError::TooBig));
        // Exactly the limit is allowed.
        let exact = compress(&vec![b'x'; 1000]).unwrap();
        assert_eq!(inflate(&exact, 1000).unwrap().len(), 1000);
        assert_eq!(inflate(&exact, 999), Err(InflateError::TooBig));
    }

    #[test]
    fn data_that_is_not_deflate_is_invalid() {
        // Block type 3 is reserved.
        assert_eq!(
            inflate(&[0xff, 0xff, 0xff], 1000),
            Err(InflateError::Invalid)
        );
        // A final block followed by more data.
        let mut final_block = Vec::with_capacity(64);
        let mut c = Compress::new(Compression::fast(), false);
        c.compress_vec(b"hello", &mut final_block, FlushCompress::Finish)
            .unwrap();
        assert_eq!(inflate(&final_block, 1000).unwrap(), b"hello");
        final_block.extend_from_slice(b"garbage");
        assert_eq!(inflate(&final_block, 1000), Err(InflateError::Invalid));
    }

    #[test]
    fn an_empty_message_inflates_to_nothing() {
        // An empty stored block (RFC 7692 7.2.3.6): the tail alone.
        assert_eq!(inflate(&[0x00], 10).unwrap(), b"");
        assert_eq!(inflate(&[], 10).unwrap(), b"");
    }
}
