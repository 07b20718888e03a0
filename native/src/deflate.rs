//! permessage-deflate (RFC 7692): the offer a client makes in its upgrade, and the codec.
//!
//! Client to server there is no context takeover (`client_no_context_takeover`): every message
//! a client sends is inflated on its own. Server to client, a message is compressed on its own
//! too, with one exception: a joiner's burst (a `playerJoin` per member, mostly the same keys
//! over and over) is compressed with one context across its frames, which the client's
//! inflater keeps (RFC 7692 7.2.3: the server may use the context of earlier messages; it
//! need not). That is only done when the client did not ask for `server_no_context_takeover`
//! and did not limit the server's window; then `server_no_context_takeover` is answered and
//! every message stands alone. A connection holds no zlib state between messages, only the
//! [`Deflate`] byte in its outbox and a flag in its frame reader (memory per idle player): the
//! compressor and the decompressor are one per thread (`thread_local!`), reset before each
//! message, and a burst's compressor lives only while its burst is being written, at most
//! [`MAX_BURST_COMPRESSORS`] at once in the server (others are compressed frame by frame).
//!
//! Outgoing: a message of at least [`THRESHOLD`] bytes is compressed (once per broadcast,
//! shared by every member that agreed to it) and sent with RSV1 set when that makes it
//! smaller; anything else goes plain, which RFC 7692 allows per message. A broadcast never
//! refers to an earlier message, so it is right for every member whatever it received
//! before. Incoming: a message whose first frame has RSV1 set is inflated (with `00 00 ff
//! ff` appended) into at most the server's message size limit; more is refused as an
//! oversize message (1009) before it is allocated, and data that does not inflate is a
//! protocol error (1002).

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

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
/// `2^bits` (the client's `server_max_window_bits`, 15 when it named none), and whether the
/// server may refer to earlier messages ([`Deflate::keeps_context`]). Copied wherever frames
/// for the connection are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Deflate(u8);

/// The bit of [`Deflate`] that says the client keeps its context (no
/// `server_no_context_takeover`, a window of 15 bits).
const CONTEXT: u8 = 0x80;

impl Deflate {
    pub(crate) const OFF: Deflate = Deflate(0);

    /// Compression with a window of `2^bits` bytes (8 to 15), every message on its own.
    pub(crate) fn with_window_bits(bits: u8) -> Deflate {
        Deflate(bits.clamp(8, 15))
    }

    /// Compression with a window of 2^15 bytes, where a message may refer to earlier ones.
    pub(crate) fn with_context() -> Deflate {
        Deflate(15 | CONTEXT)
    }

    pub(crate) fn is_on(self) -> bool {
        self.0 != 0
    }

    /// Whether the client keeps the context between messages, so that a join burst can be
    /// compressed with one context across its frames.
    pub(crate) fn keeps_context(self) -> bool {
        self.0 & CONTEXT != 0
    }

    fn window_bits(self) -> u8 {
        self.0 & !CONTEXT
    }

    /// Whether a message of `len` bytes goes compressed to this connection. With no context
    /// takeover an LZ77 distance is always shorter than the message, so a message of at most
    /// `2^bits` bytes keeps within a window of `2^bits` whatever window the compressor has
    /// (miniz_oxide's is always 2^15); longer ones go plain to a client with a smaller window.
    pub(crate) fn takes(self, len: usize) -> bool {
        let bits = self.window_bits();
        self.0 != 0 && len >= THRESHOLD && (bits >= 15 || len <= 1usize << bits)
    }
}

/// The answer to a client's offers: what goes in the response's `Sec-WebSocket-Extensions`,
/// and what the connection then does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Agreement {
    /// The `server_max_window_bits` the client asked for, if any (echoed in the response).
    pub(crate) server_max_window_bits: Option<u8>,
    /// The client asked for `server_no_context_takeover`.
    pub(crate) server_no_context_takeover: bool,
}

impl Agreement {
    pub(crate) fn deflate(&self) -> Deflate {
        if self.stands_alone() {
            Deflate::with_window_bits(self.server_max_window_bits.unwrap_or(15))
        } else {
            Deflate::with_context()
        }
    }

    /// Every message the server sends stands on its own: asked for, or a window smaller
    /// than the compressor's (2^15 bytes), which a context across messages would exceed.
    fn stands_alone(&self) -> bool {
        self.server_no_context_takeover || self.server_max_window_bits.is_some_and(|b| b < 15)
    }

    /// The response header's value. `client_max_window_bits` is never sent: the server
    /// inflates with a window of 15 bits, the most a client may use.
    pub(crate) fn response(&self) -> String {
        let mut value = String::from("permessage-deflate");
        if self.stands_alone() {
            value.push_str("; server_no_context_takeover");
        }
        value.push_str("; client_no_context_takeover");
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
        server_no_context_takeover: seen[0],
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

/// The most join bursts compressed with a context of their own at once, in the whole server:
/// each holds a compressor (a few hundred KiB with miniz_oxide) while its burst is written,
/// so that many joiners that do not read cannot make the server hold many. Beyond it a burst
/// is compressed frame by frame.
pub(crate) const MAX_BURST_COMPRESSORS: usize = 16;

static BURST_COMPRESSORS: AtomicUsize = AtomicUsize::new(0);

/// A join burst's frames for a client that agreed to `deflate`: compressed with one context
/// across them when the client keeps its context (every frame compressed, RSV1 set: a frame
/// sent plain would be missing from the client's window), frame by frame otherwise.
pub(crate) fn burst_frames(
    deflate: Deflate,
    frames: impl Iterator<Item = sessionserver_core::ServerFrame> + Send + 'static,
) -> crate::socket::FrameSource {
    Box::new(BurstFrames {
        deflate,
        frames,
        compressor: None,
        started: false,
    })
}

struct BurstFrames<I> {
    deflate: Deflate,
    frames: I,
    /// The burst's own compressor, while its frames are being made.
    compressor: Option<BurstCompressor>,
    started: bool,
}

impl<I: Iterator<Item = sessionserver_core::ServerFrame>> Iterator for BurstFrames<I> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let Some(frame) = self.frames.next() else {
            // Let go of the compressor as soon as the burst is made.
            self.compressor = None;
            return None;
        };
        if !self.started {
            self.started = true;
            if self.deflate.keeps_context() {
                self.compressor = BurstCompressor::take();
            }
        }
        if let Some(compressor) = &mut self.compressor {
            if let Some(compressed) = compressor.frame(frame.bytes()) {
                return Some(compressed);
            }
            // The compressor failed (it does not): the client's context now lacks what it
            // was fed, so nothing more refers to it; the rest goes frame by frame.
            self.compressor = None;
            self.deflate = Deflate::with_window_bits(15);
        }
        Some(crate::peer::ws_frame_for(self.deflate, &frame))
    }
}

/// A compressor that keeps its context across a burst's frames; counted in
/// `BURST_COMPRESSORS` until dropped.
struct BurstCompressor {
    compress: Box<Compress>,
    out: Vec<u8>,
}

impl BurstCompressor {
    fn take() -> Option<BurstCompressor> {
        let taken = BURST_COMPRESSORS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_BURST_COMPRESSORS).then_some(n + 1)
        });
        // Level 6 (zlib's default), not 1 as for broadcasts: a burst is compressed once per
        // joiner, and with one context a higher level finds more of the repeated keys.
        taken.ok().map(|_| BurstCompressor {
            compress: Box::new(Compress::new(Compression::default(), false)),
            out: Vec::new(),
        })
    }

    /// `payload` compressed with the context of the burst's frames before it, as a text
    /// frame with RSV1 set.
    fn frame(&mut self, payload: &[u8]) -> Option<Bytes> {
        self.out.clear();
        // Deflate never grows data by more than a few bytes per 16 KiB block; the loop takes
        // more room if it needs it.
        self.out.reserve(payload.len() + payload.len() / 64 + 64);
        let start = self.compress.total_in();
        loop {
            let done = usize::try_from(self.compress.total_in() - start).ok()?;
            self.compress
                .compress_vec(&payload[done..], &mut self.out, FlushCompress::Sync)
                .ok()?;
            let done = usize::try_from(self.compress.total_in() - start).ok()?;
            if done >= payload.len() && self.out.len() < self.out.capacity() {
                break;
            }
            self.out.reserve(self.out.capacity().max(64));
        }
        let compressed = self.out.strip_suffix(&TAIL)?;
        // FIN, RSV1 (compressed), text.
        Some(crate::socket::frame_with(0xC1, compressed))
    }
}

impl Drop for BurstCompressor {
    fn drop(&mut self) {
        BURST_COMPRESSORS.fetch_sub(1, Ordering::AcqRel);
    }
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
    fn a_plain_offer_is_accepted_with_the_clients_context_kept() {
        let agreed = offer("permessage-deflate").unwrap();
        assert_eq!(agreed.server_max_window_bits, None);
        assert_eq!(
            agreed.response(),
            "permessage-deflate; client_no_context_takeover"
        );
        assert!(agreed.deflate().keeps_context());
        assert!(agreed.deflate().takes(THRESHOLD));
    }

    #[test]
    fn server_no_context_takeover_is_honoured_and_answered() {
        for header in [
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=14",
        ] {
            let agreed = offer(header).unwrap();
            assert!(agreed.response().starts_with(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
            ));
            assert!(!agreed.deflate().keeps_context(), "{header}");
            assert!(agreed.deflate().is_on());
        }
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
                    server_max_window_bits: None,
                    server_no_context_takeover: false,
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
                server_max_window_bits: Some(15),
                server_no_context_takeover: true,
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

    /// Join frames like a game's: the same keys, a few values differing.
    fn joins(n: u64) -> Vec<sessionserver_core::ServerFrame> {
        use sessionserver_core::{reply, JsonObject, PlayerId, ServerCommand, Spelling};
        (0..n)
            .map(|i| {
                let data = JsonObject::parse(&format!(
                    r##"{{"name":"player-{i}","x":{},"y":{},"color":"#3fa2c4","score":{},"ready":false}}"##,
                    i * 37 % 800,
                    i * 91 % 600,
                    i * 7
                ))
                .unwrap();
                reply::player_data(ServerCommand::PlayerJoin, Spelling::Short, PlayerId(i + 1), &data)
            })
            .collect()
    }

    /// A server frame's payload (unmasked).
    fn payload_of(frame: &[u8]) -> &[u8] {
        match frame[1] {
            126 => &frame[4..],
            127 => &frame[10..],
            _ => &frame[2..],
        }
    }

    /// The tests that count burst compressors, one at a time (they share the server's count).
    static BURSTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Inflates `frames` (their payloads) as a client that keeps its context does.
    fn inflate_in_order(frames: &[Bytes]) -> Vec<Vec<u8>> {
        let mut inflater = Decompress::new(false);
        frames
            .iter()
            .map(|frame| {
                assert_eq!(frame[0], 0xC1, "FIN, RSV1, text");
                let mut input = payload_of(frame).to_vec();
                input.extend_from_slice(&TAIL);
                let mut out = Vec::with_capacity(64 * 1024);
                inflater
                    .decompress_vec(&input, &mut out, FlushDecompress::Sync)
                    .unwrap();
                out
            })
            .collect()
    }

    #[test]
    fn a_burst_shares_one_context_when_the_client_keeps_it() {
        let _one = BURSTS.lock().unwrap();
        let frames = joins(99);
        let plain: usize = frames.iter().map(|f| f.bytes().len()).sum();
        let alone: usize = frames
            .iter()
            .map(|f| crate::peer::ws_frame_for(Deflate::with_window_bits(15), f).len())
            .sum();
        let burst: Vec<Bytes> =
            burst_frames(Deflate::with_context(), frames.clone().into_iter()).collect();
        let sent: usize = burst.iter().map(Bytes::len).sum();
        // Every frame is compressed and inflates, in order, to the plain frame.
        let inflated = inflate_in_order(&burst);
        for (got, frame) in inflated.iter().zip(&frames) {
            assert_eq!(&got[..], frame.bytes());
        }
        assert_eq!(inflated.len(), 99);
        assert!(
            sent * 3 < plain,
            "{sent} bytes with one context, {plain} plain"
        );
        assert!(
            sent < alone,
            "{sent} with one context, {alone} frame by frame"
        );
        // The compressor was let go once the burst was made.
        assert_eq!(BURST_COMPRESSORS.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_burst_stands_frame_by_frame_without_the_clients_context() {
        let frames = joins(20);
        let burst: Vec<Bytes> =
            burst_frames(Deflate::with_window_bits(15), frames.clone().into_iter()).collect();
        for (sent, frame) in burst.iter().zip(&frames) {
            assert_eq!(
                sent,
                &crate::peer::ws_frame_for(Deflate::with_window_bits(15), frame)
            );
        }
    }

    #[test]
    fn bursts_beyond_the_limit_are_compressed_frame_by_frame() {
        let _one = BURSTS.lock().unwrap();
        let held: Vec<BurstCompressor> = std::iter::from_fn(BurstCompressor::take)
            .take(100)
            .collect();
        assert_eq!(held.len(), MAX_BURST_COMPRESSORS);
        let frames = joins(5);
        let burst: Vec<Bytes> =
            burst_frames(Deflate::with_context(), frames.clone().into_iter()).collect();
        for (sent, frame) in burst.iter().zip(&frames) {
            assert_eq!(
                sent,
                &crate::peer::ws_frame_for(Deflate::with_context(), frame)
            );
        }
        drop(held);
        assert!(BurstCompressor::take().is_some());
    }
}
