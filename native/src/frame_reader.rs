//! Reading a client's WebSocket messages straight from its socket.
//!
//! Why not tokio-tungstenite's stream for this: it keeps a read buffer of fixed size per
//! connection for the connection's whole life (and zero-fills it before every read), plus a
//! boxed stream and two waker proxies: about 1 KB of every idle player's memory. Here the
//! buffer exists only while bytes wait in it (a partial frame, or the frames of one read), and
//! is let go as soon as they are consumed. Frame headers are parsed by tungstenite's
//! `FrameHeader`; the rules kept here are RFC 6455's for a server: every client frame masked,
//! no reserved bits or opcodes, control frames short and whole, fragments reassembled in order
//! with control frames allowed between them, text checked for UTF-8 once whole, close frames
//! checked (a code that may be sent, a UTF-8 reason), and a size limit on messages that holds
//! before any of a large one is buffered.
//!
//! Every length is the peer's word: it is compared, never added to anything, before it is
//! trusted (tungstenite's `IncompleteMessage::extend` does the same), and a 64-bit length with
//! its top bit set is a protocol error (RFC 6455 5.2). Whatever the bytes, the reader returns
//! an item or an error and never panics; `fuzz/fuzz_targets/frame_reader.rs` drives it on
//! arbitrary bytes cut into arbitrary reads through `fuzzing::read_frames`.

use std::io::{self, Cursor};
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// Bytes asked of the socket per read: a few commands' worth. Larger messages take more reads.
const READ_CHUNK: usize = 2048;

/// Longest payload of a control frame (RFC 6455 5.5).
const MAX_CONTROL: u64 = 125;

/// Longest payload a frame can declare: the most significant bit of a 64-bit length must be 0
/// (RFC 6455 5.2).
const MAX_LENGTH: u64 = i64::MAX as u64;

/// One message or control frame from the client. Borrows the reader until the next call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    Text(&'a str),
    /// A binary message, of this many bytes (its content is of no use to the server).
    Binary(usize),
    Ping(&'a [u8]),
    Pong,
    /// The client's close frame, with its status code if it gave one (always one that
    /// [`close_code_may_be_sent`]; its reason, if any, was UTF-8).
    Close(Option<u16>),
    /// Bytes arrived that completed no item (part of a frame, or a fragment of a message):
    /// the reader holds more than before, and a fragmented message may have begun. Nothing
    /// to act on but the reader's own state ([`FrameReader::buffered_len`],
    /// [`FrameReader::is_mid_message`]).
    Partial,
}

/// Why reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The connection ended without a close frame (or failed).
    Gone,
    /// A message over the size limit.
    TooBig,
    /// A text message, or the reason in a close frame, that is not UTF-8.
    InvalidUtf8,
    /// A frame RFC 6455 does not allow from a client (unmasked, reserved bits or opcode, a
    /// 64-bit length with its top bit set, a fragmented or long control frame, a continuation
    /// of nothing, an unfinished message interrupted by a new one, a close frame of one byte or
    /// with a code that may not be sent).
    Protocol,
}

/// Where bytes come from: the socket, or a script of reads in the tests.
pub(crate) trait Source {
    /// Ready when a read may succeed. A poll, not an async fn: waiting then stores no future
    /// in the connection's task (memory per idle player).
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Appends what can be read now without waiting; `Ok(0)` at the end of the stream.
    fn try_read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize>;
}

impl Source for OwnedReadHalf {
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Only this reader waits for the socket to be readable.
        let stream: &TcpStream = self.as_ref();
        stream.poll_read_ready(cx)
    }

    fn try_read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let stream: &TcpStream = self.as_ref();
        let mut got = 0;
        let read = stream.try_io(Interest::READABLE, || {
            let asked = if buf.is_empty() {
                // Into the stack first: the socket may have nothing after all, and an idle
                // connection then keeps no buffer; the heap gets what was read, not a chunk.
                let mut chunk = [0u8; READ_CHUNK];
                got = stream.try_read(&mut chunk)?;
                buf.extend_from_slice(&chunk[..got]);
                READ_CHUNK
            } else {
                buf.reserve(READ_CHUNK);
                let asked = buf.capacity() - buf.len();
                got = stream.try_read_buf(buf)?;
                asked
            };
            // A short read emptied the socket: tell tokio now (it then waits for the next
            // readiness event) rather than learn it from one more system call.
            if got > 0 && got < asked {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(got)
            }
        });
        match read {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
            other => other,
        }
    }
}

pub(crate) struct FrameReader<S = OwnedReadHalf> {
    source: S,
    /// Bytes read and not yet consumed. Unallocated while empty.
    buffered: Vec<u8>,
    /// Bytes at the front of `buffered` that the last returned item still borrows.
    consumed: usize,
    /// A fragmented message so far: whether it is text, and its payload.
    partial: Option<MessageSoFar>,
    /// `partial` was returned whole and is dropped on the next call.
    partial_done: bool,
    /// The client agreed to permessage-deflate: a message whose first frame has RSV1 set is
    /// compressed (deflate.rs), and is inflated once whole.
    deflate: bool,
    max_message: usize,
}

/// A fragmented message so far, or a compressed message once inflated.
#[derive(Debug, PartialEq, Eq)]
struct MessageSoFar {
    text: bool,
    /// Its first frame had RSV1 set: `payload` is still compressed.
    compressed: bool,
    payload: Vec<u8>,
}

impl<S: Source> FrameReader<S> {
    pub(crate) fn new(source: S, already_read: Vec<u8>, max_message: usize) -> Self {
        FrameReader {
            source,
            buffered: already_read,
            consumed: 0,
            partial: None,
            partial_done: false,
            deflate: false,
            max_message,
        }
    }

    /// For a client that agreed to permessage-deflate: messages with RSV1 are inflated.
    pub(crate) fn with_deflate(mut self, deflate: bool) -> Self {
        self.deflate = deflate;
        self
    }

    /// The next message or control frame.
    pub(crate) async fn next(&mut self) -> Result<Incoming<'_>, ReadError> {
        self.release_last();
        let mut read_some = false;
        loop {
            if let Some(found) = self.complete_frame()? {
                return self.item(found);
            }
            // The connection learns of what is held as it arrives: its memory and the
            // deadline of a fragmented message count from the first fragment, not from the
            // next item.
            if read_some {
                // What was taken is in `partial` now: the buffer keeps only what is unfinished.
                self.forget_consumed();
                return Ok(Incoming::Partial);
            }
            // Nothing borrows the frames taken so far (their payloads were copied into
            // `partial`): they go before more is read, so that the buffer holds at most one
            // unfinished frame however many fragments a message has.
            self.forget_consumed();
            std::future::poll_fn(|cx| self.source.poll_readable(cx))
                .await
                .map_err(|_| ReadError::Gone)?;
            match self.source.try_read_into(&mut self.buffered) {
                Ok(0) => return Err(ReadError::Gone),
                Ok(_) => read_some = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(ReadError::Gone),
            }
        }
    }

    /// Forgets what the previous item borrowed.
    fn release_last(&mut self) {
        self.forget_consumed();
        if self.partial_done {
            self.partial = None;
            self.partial_done = false;
        }
    }

    /// Drops the consumed bytes at the front of the buffer, and the buffer itself if empty.
    fn forget_consumed(&mut self) {
        if self.consumed > 0 {
            self.buffered.drain(..self.consumed);
            self.consumed = 0;
        }
        if self.buffered.is_empty() && self.buffered.capacity() > 0 {
            self.buffered = Vec::new();
        }
    }

    /// Takes the frames at the front of the buffer until one completes an item. `Some`: the
    /// item's frame header and where its (unmasked) payload lies in `buffered`.
    fn complete_frame(&mut self) -> Result<Option<Found>, ReadError> {
        loop {
            let mut cursor = Cursor::new(&self.buffered[self.consumed..]);
            let Some((header, length)) =
                FrameHeader::parse(&mut cursor).map_err(|_| ReadError::Protocol)?
            else {
                return Ok(None);
            };
            let Some(mask) = header.mask else {
                return Err(ReadError::Protocol);
            };
            if header.rsv2 || header.rsv3 {
                return Err(ReadError::Protocol);
            }
            // RSV1 marks a compressed message (RFC 7692 6): only once agreed, and only on a
            // message's first frame (never on a continuation or a control frame).
            if header.rsv1
                && (!self.deflate
                    || !matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary)))
            {
                return Err(ReadError::Protocol);
            }
            if length > MAX_LENGTH {
                return Err(ReadError::Protocol);
            }
            let control = matches!(header.opcode, OpCode::Control(_));
            if control && (!header.is_final || length > MAX_CONTROL) {
                return Err(ReadError::Protocol);
            }
            if !control {
                // Refused before it is read, however large it says it is, and whatever came
                // between the fragments (control frames do not count towards the message).
                // Careful about integer overflow: the peer's length is compared with what
                // remains, never added to what came before.
                let so_far = self.partial.as_ref().map_or(0, |p| p.payload.len() as u64);
                let max = self.max_message as u64;
                if so_far > max || length > max - so_far {
                    return Err(ReadError::TooBig);
                }
            }
            let start = self.consumed + cursor.position() as usize;
            // Cannot fail: the length is at most the message limit (a usize) or 125, and the
            // buffer is far from the end of memory. Checked all the same, as a peer's word.
            let end = usize::try_from(length)
                .ok()
                .and_then(|length| start.checked_add(length))
                .ok_or(ReadError::TooBig)?;
            if self.buffered.len() < end {
                return Ok(None);
            }
            for (i, byte) in self.buffered[start..end].iter_mut().enumerate() {
                *byte ^= mask[i & 3];
            }
            self.consumed = end;
            let found = Found {
                opcode: header.opcode,
                payload: start..end,
            };
            match (header.opcode, &mut self.partial) {
                (OpCode::Data(Data::Continue), None) => return Err(ReadError::Protocol),
                (OpCode::Data(Data::Continue), Some(message)) => {
                    message
                        .payload
                        .extend_from_slice(&self.buffered[start..end]);
                    if header.is_final {
                        if message.compressed {
                            message.payload = inflate(&message.payload, self.max_message)?;
                            message.compressed = false;
                        }
                        self.partial_done = true;
                        return Ok(Some(found));
                    }
                }
                (OpCode::Data(Data::Text | Data::Binary), Some(_)) => {
                    return Err(ReadError::Protocol)
                }
                (OpCode::Data(data @ (Data::Text | Data::Binary)), None) => {
                    let text = data == Data::Text;
                    if header.is_final && header.rsv1 {
                        // Inflated into `partial`, and handed out from there as a
                        // fragmented message's end is.
                        let payload = inflate(&self.buffered[start..end], self.max_message)?;
                        self.partial = Some(MessageSoFar {
                            text,
                            compressed: false,
                            payload,
                        });
                        self.partial_done = true;
                        return Ok(Some(Found {
                            opcode: OpCode::Data(Data::Continue),
                            payload: start..end,
                        }));
                    }
                    if header.is_final {
                        return Ok(Some(found));
                    }
                    self.partial = Some(MessageSoFar {
                        text,
                        compressed: header.rsv1,
                        payload: self.buffered[start..end].to_vec(),
                    });
                }
                (OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)), _) => {
                    return Err(ReadError::Protocol)
                }
                (OpCode::Control(_), _) => return Ok(Some(found)),
            }
        }
    }

    fn item(&self, found: Found) -> Result<Incoming<'_>, ReadError> {
        let payload = &self.buffered[found.payload];
        let (text, message) = match (found.opcode, &self.partial) {
            (OpCode::Data(Data::Continue), Some(message)) => (message.text, &message.payload[..]),
            (OpCode::Data(data), _) => (data == Data::Text, payload),
            (OpCode::Control(Control::Ping), _) => return Ok(Incoming::Ping(payload)),
            (OpCode::Control(Control::Pong), _) => return Ok(Incoming::Pong),
            (OpCode::Control(Control::Close), _) => return close(payload),
            // Refused in `complete_frame`.
            (OpCode::Control(Control::Reserved(_)), _) => return Err(ReadError::Protocol),
        };
        if !text {
            return Ok(Incoming::Binary(message.len()));
        }
        std::str::from_utf8(message)
            .map(Incoming::Text)
            .map_err(|_| ReadError::InvalidUtf8)
    }
}

/// A close frame's payload, checked as RFC 6455 5.5.1 and 7.4 say: nothing, or a code that
/// may be sent followed by a UTF-8 reason.
fn close(payload: &[u8]) -> Result<Incoming<'static>, ReadError> {
    match payload {
        [] => Ok(Incoming::Close(None)),
        [_] => Err(ReadError::Protocol),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !close_code_may_be_sent(code) {
                return Err(ReadError::Protocol);
            }
            std::str::from_utf8(reason).map_err(|_| ReadError::InvalidUtf8)?;
            Ok(Incoming::Close(Some(code)))
        }
    }
}

/// Whether a close frame may carry this code (RFC 6455 7.4 and IANA's registry): the codes
/// defined for the protocol (1000-1003, 1007-1014), and those for libraries, frameworks and
/// applications (3000-4999). 1004 is reserved; 1005, 1006 and 1015 must never be sent (they
/// stand for "no code", "no close frame" and "TLS failed"); the rest of 0-2999 is unassigned
/// and 5000 up is out of range.
pub(crate) fn close_code_may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

// Accessors for the connection (memory budget, fragment deadline, lingering after a close).
impl<S> FrameReader<S> {
    /// Bytes this reader holds: its buffer and a fragmented message so far.
    pub(crate) fn buffered_len(&self) -> usize {
        self.buffered.capacity() + self.partial.as_ref().map_or(0, |p| p.payload.capacity())
    }

    /// A fragmented message has begun and is not finished.
    pub(crate) fn is_mid_message(&self) -> bool {
        self.partial.is_some() && !self.partial_done
    }

    /// The source, and the bytes read but not consumed (from the start of the frame that
    /// reading stopped at, if it stopped at one).
    pub(crate) fn into_parts(mut self) -> (S, Vec<u8>) {
        self.buffered.drain(..self.consumed);
        (self.source, self.buffered)
    }
}

/// A compressed message's payload inflated, within the message size limit.
fn inflate(compressed: &[u8], max: usize) -> Result<Vec<u8>, ReadError> {
    crate::deflate::inflate(compressed, max).map_err(|e| match e {
        crate::deflate::InflateError::TooBig => ReadError::TooBig,
        crate::deflate::InflateError::Invalid => ReadError::Protocol,
    })
}

/// A frame that completed an item.
struct Found {
    opcode: OpCode,
    payload: std::ops::Range<usize>,
}

/// Reads handed out one by one, as the socket would; then the end of the stream.
#[cfg(any(test, fuzzing))]
struct Script(std::collections::VecDeque<Vec<u8>>);

#[cfg(any(test, fuzzing))]
impl Source for Script {
    fn poll_readable(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn try_read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let Some(read) = self.0.pop_front() else {
            return Ok(0);
        };
        buf.extend_from_slice(&read);
        Ok(read.len())
    }
}

/// The reader on raw bytes, for cargo-fuzz (which builds every crate with `--cfg fuzzing`):
/// `fuzz/fuzz_targets/frame_reader.rs`.
#[cfg(fuzzing)]
pub mod fuzzing {
    use super::{FrameReader, Incoming, ReadError, Script};
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    /// What the reader returned, owned.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Item {
        /// A text message's bytes (the reader hands out a `&str`: they are UTF-8).
        Text(Vec<u8>),
        Binary(usize),
        Ping(Vec<u8>),
        Pong,
        Close(Option<u16>),
    }

    /// Why the reader stopped (its `ReadError`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum End {
        Gone,
        TooBig,
        InvalidUtf8,
        Protocol,
    }

    /// Whether the reader's close frames may carry this code (see `close_code_may_be_sent`).
    pub fn close_code_may_be_sent(code: u16) -> bool {
        super::close_code_may_be_sent(code)
    }

    /// Reads `bytes` as a client's stream: the first `already_read` bytes as if they came with
    /// the upgrade request, the rest in reads of `read_lengths` bytes (a 0 counts as 1; past
    /// the last length, the rest in one read). Everything the reader returns until it stops.
    pub fn read_frames(
        bytes: &[u8],
        already_read: usize,
        read_lengths: &[usize],
        max_message: usize,
    ) -> (Vec<Item>, End) {
        let (first, mut rest) = bytes.split_at(already_read.min(bytes.len()));
        let mut reads = std::collections::VecDeque::new();
        let mut lengths = read_lengths.iter();
        while !rest.is_empty() {
            let length = lengths
                .next()
                .map_or(rest.len(), |&n| n.clamp(1, rest.len()));
            let (read, after) = rest.split_at(length);
            reads.push_back(read.to_vec());
            rest = after;
        }
        let mut reader = FrameReader::new(Script(reads), first.to_vec(), max_message);
        let mut items = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let next = std::pin::pin!(reader.next());
            let Poll::Ready(next) = next.poll(&mut cx) else {
                unreachable!("a script of reads is always ready");
            };
            let item = match next {
                Ok(Incoming::Text(text)) => Item::Text(text.as_bytes().to_vec()),
                Ok(Incoming::Binary(len)) => Item::Binary(len),
                Ok(Incoming::Ping(payload)) => Item::Ping(payload.to_vec()),
                Ok(Incoming::Pong) => Item::Pong,
                Ok(Incoming::Close(code)) => Item::Close(code),
                // Depends on how the bytes were cut: not an item.
                Ok(Incoming::Partial) => continue,
                Err(e) => {
                    let end = match e {
                        ReadError::Gone => End::Gone,
                        ReadError::TooBig => End::TooBig,
                        ReadError::InvalidUtf8 => End::InvalidUtf8,
                        ReadError::Protocol => End::Protocol,
                    };
                    return (items, end);
                }
            };
            items.push(item);
        }
    }
}

/// The mask every hand-built client frame in the crate's tests uses (any key will do: the
/// server must unmask).
#[cfg(test)]
const TEST_MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// For the crate's tests: the header of a masked client frame that says its payload is
/// `length` bytes long (true or not), with the length in its shortest form and the mask key.
#[cfg(test)]
pub(crate) fn client_frame_header(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
    let mut out = vec![u8::from(fin) << 7 | opcode];
    match length {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out.extend_from_slice(&TEST_MASK);
    out
}

/// For the crate's tests: a whole client frame, masked (as RFC 6455 requires of clients).
#[cfg(test)]
pub(crate) fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = client_frame_header(fin, opcode, payload.len() as u64);
    out.extend(
        payload
            .iter()
            .zip(TEST_MASK.iter().cycle())
            .map(|(b, m)| b ^ m),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(reads: Vec<Vec<u8>>) -> FrameReader<Script> {
        FrameReader::new(Script(reads.into()), Vec::new(), 1000)
    }

    /// Everything the reader yields until it stops (but `Partial`, which depends on how the
    /// bytes were cut), as owned values.
    fn read_all(mut reader: FrameReader<Script>) -> (Vec<String>, ReadError) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut items = Vec::new();
            loop {
                match reader.next().await {
                    Ok(Incoming::Partial) => {}
                    Ok(item) => items.push(format!("{item:?}")),
                    Err(e) => return (items, e),
                }
            }
        })
    }

    /// A deflate reader (as after an agreed permessage-deflate) over these reads.
    fn deflate_reader(reads: Vec<Vec<u8>>) -> FrameReader<Script> {
        reader(reads).with_deflate(true)
    }

    /// A client frame with RSV1 set.
    fn rsv1(mut frame: Vec<u8>) -> Vec<u8> {
        frame[0] |= 0x40;
        frame
    }

    fn compressed(text: &str) -> Vec<u8> {
        crate::deflate::compress(text.as_bytes()).expect("compressible")
    }

    #[test]
    fn compressed_messages_are_inflated_whole_or_in_fragments() {
        let text =
            r#"{"command":"updatePlayer","data":{"x":1,"y":1,"name":"aaaaaaaaaaaaaaaaaaaaaa"}}"#;
        let packed = compressed(text);
        let (head, tail) = packed.split_at(packed.len() / 2);
        let mut bytes = rsv1(client_frame(true, 1, &packed));
        // Fragmented: RSV1 on the first frame only, a ping between the fragments.
        bytes.extend(rsv1(client_frame(false, 1, head)));
        bytes.extend(client_frame(true, 9, b"p"));
        bytes.extend(client_frame(true, 0, tail));
        // A plain message between compressed ones (RSV1 is per message).
        bytes.extend(client_frame(true, 1, b"plain"));
        let (items, end) = read_all(deflate_reader(vec![bytes]));
        let text = format!("{:?}", Incoming::Text(text));
        assert_eq!(
            items,
            [
                text.clone(),
                "Ping([112])".into(),
                text,
                format!("{:?}", Incoming::Text("plain"))
            ]
        );
        assert_eq!(end, ReadError::Gone);
    }

    #[test]
    fn rsv1_is_a_protocol_error_unless_agreed_and_on_a_first_frame() {
        let packed = compressed("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        // Not agreed.
        let (items, end) = read_all(reader(vec![rsv1(client_frame(true, 1, &packed))]));
        assert!(items.is_empty());
        assert_eq!(end, ReadError::Protocol);
        // On a control frame, on a continuation.
        let mut continuation = client_frame(false, 1, b"a");
        continuation.extend(rsv1(client_frame(true, 0, b"b")));
        for bytes in [rsv1(client_frame(true, 9, b"")), continuation] {
            let (items, end) = read_all(deflate_reader(vec![bytes]));
            assert!(items.is_empty());
            assert_eq!(end, ReadError::Protocol);
        }
    }

    #[test]
    fn an_inflate_bomb_is_too_big_and_bad_data_a_protocol_error() {
        // 2 MB of zeros in a few kilobytes: under the frame limit (1,000 here) only once
        // cut, so the reader's limit is raised for the frame and kept for the output.
        let bomb = crate::deflate::compress(&vec![b'0'; 2 << 20]).unwrap();
        let mut reader = deflate_reader(vec![rsv1(client_frame(true, 1, &bomb))]);
        reader.max_message = 64 * 1024;
        assert!(bomb.len() < reader.max_message);
        let (items, end) = read_all(reader);
        assert!(items.is_empty());
        assert_eq!(end, ReadError::TooBig);
        // In fragments too.
        let (head, tail) = bomb.split_at(100);
        let mut bytes = rsv1(client_frame(false, 1, head));
        bytes.extend(client_frame(true, 0, tail));
        let mut reader = deflate_reader(vec![bytes]);
        reader.max_message = 64 * 1024;
        assert_eq!(read_all(reader).1, ReadError::TooBig);
        // Block type 3 is reserved: not deflate.
        let (items, end) = read_all(deflate_reader(vec![rsv1(client_frame(
            true, 1, &[0xff; 8],
        ))]));
        assert!(items.is_empty());
        assert_eq!(end, ReadError::Protocol);
        // Inflated text that is not UTF-8 is what plain text would be.
        let latin1 = crate::deflate::compress(&[0xe9; 300]).unwrap();
        let (_, end) = read_all(deflate_reader(vec![rsv1(client_frame(true, 1, &latin1))]));
        assert_eq!(end, ReadError::InvalidUtf8);
    }

    #[test]
    fn messages_split_across_reads_and_packed_in_one_read() {
        let one = client_frame(true, 1, br#"{"command":"leaveSession"}"#);
        let two = client_frame(true, 1, "h\u{e9}llo".as_bytes());
        let mut packed = one.clone();
        packed.extend_from_slice(&two);
        // Every way of cutting the two frames into two reads gives the same messages (an empty
        // read is the end of the stream, so each read holds at least a byte).
        for cut in 1..packed.len() {
            let reads = vec![packed[..cut].to_vec(), packed[cut..].to_vec()];
            let (items, end) = read_all(reader(reads));
            assert_eq!(
                items,
                [
                    r#"Text("{\"command\":\"leaveSession\"}")"#,
                    "Text(\"h\u{e9}llo\")"
                ],
                "cut at {cut}"
            );
            assert_eq!(end, ReadError::Gone);
        }
    }

    #[test]
    fn lengths_in_16_and_64_bits() {
        let medium = "m".repeat(300);
        let (items, _) = read_all(reader(vec![client_frame(true, 1, medium.as_bytes())]));
        assert_eq!(items, [format!("Text({medium:?})")]);
        let mut long = vec![0x81, 0x80 | 127];
        long.extend_from_slice(&(200u64).to_be_bytes());
        long.extend_from_slice(&[0; 4]);
        long.extend_from_slice(&[b'x'; 200]);
        let (items, _) = read_all(reader(vec![long]));
        assert_eq!(items, [format!("Text({:?})", "x".repeat(200))]);
    }

    #[test]
    fn fragments_are_joined_with_control_frames_between_them() {
        let mut bytes = client_frame(false, 1, b"{\"command\":");
        bytes.extend(client_frame(true, 9, b"are you there"));
        bytes.extend(client_frame(false, 0, b"\"leave"));
        bytes.extend(client_frame(true, 10, b""));
        bytes.extend(client_frame(true, 0, b"Session\"}"));
        bytes.extend(client_frame(true, 2, &[0, 1, 2]));
        bytes.extend(client_frame(true, 8, &[0x03, 0xe8, b'b', b'y', b'e']));
        let (items, end) = read_all(reader(vec![bytes]));
        assert_eq!(
            items,
            [
                "Ping([97, 114, 101, 32, 121, 111, 117, 32, 116, 104, 101, 114, 101])",
                "Pong",
                r#"Text("{\"command\":\"leaveSession\"}")"#,
                "Binary(3)",
                "Close(Some(1000))",
            ]
        );
        assert_eq!(end, ReadError::Gone);
    }

    #[test]
    fn a_close_without_a_code() {
        let (items, _) = read_all(reader(vec![client_frame(true, 8, b"")]));
        assert_eq!(items, ["Close(None)"]);
    }

    #[test]
    fn frames_a_client_may_not_send_end_the_connection() {
        let mut unmasked = vec![0x81, 2];
        unmasked.extend_from_slice(b"hi");
        let mut reserved_bit = client_frame(true, 1, b"hi");
        reserved_bit[0] |= 0x40;
        let long_ping = client_frame(true, 9, &[0; 126]);
        let mut interrupted = client_frame(false, 1, b"a");
        interrupted.extend(client_frame(true, 1, b"b"));
        let cases = [
            ("unmasked", unmasked),
            ("reserved bit", reserved_bit),
            ("reserved opcode", client_frame(true, 3, b"")),
            ("reserved control opcode", client_frame(true, 11, b"")),
            ("fragmented ping", client_frame(false, 9, b"")),
            ("long ping", long_ping),
            ("continuation of nothing", client_frame(true, 0, b"x")),
            ("message interrupted by another", interrupted),
        ];
        for (name, bytes) in cases {
            let (items, end) = read_all(reader(vec![bytes]));
            assert_eq!((items.len(), end), (0, ReadError::Protocol), "{name}");
        }
    }

    #[test]
    fn size_limit_holds_for_one_frame_and_for_fragments_before_they_arrive() {
        // Only the header of a 1001-byte frame is sent: refused without waiting for the rest.
        let header_only = client_frame(true, 1, &[b'x'; 1001])[..8].to_vec();
        let (items, end) = read_all(reader(vec![header_only]));
        assert_eq!((items.len(), end), (0, ReadError::TooBig));
        let mut fragments = client_frame(false, 1, &[b'x'; 600]);
        fragments.extend(client_frame(true, 0, &[b'x'; 401]));
        let (items, end) = read_all(reader(vec![fragments]));
        assert_eq!((items.len(), end), (0, ReadError::TooBig));
        let exactly = client_frame(true, 1, &[b'x'; 1000]);
        let (items, end) = read_all(reader(vec![exactly]));
        assert_eq!((items.len(), end), (1, ReadError::Gone));
    }

    #[test]
    fn a_64_bit_length_with_its_top_bit_set_is_a_protocol_error() {
        for length in [1 << 63, (1 << 63) + 5, u64::MAX] {
            let (items, end) = read_all(reader(vec![client_frame_header(true, 1, length)]));
            assert_eq!((items.len(), end), (0, ReadError::Protocol), "{length:#x}");
        }
        // The largest length it may declare is only too big.
        let largest = client_frame_header(true, 2, (1 << 63) - 1);
        let (items, end) = read_all(reader(vec![largest]));
        assert_eq!((items.len(), end), (0, ReadError::TooBig));
    }

    #[test]
    fn a_continuation_whose_length_would_wrap_the_sum_is_refused_not_a_panic() {
        // After 3 bytes, a length of 2^64 - 2 made `so_far + length` wrap to 1: under the
        // limit, then a slice from `start` to before `start`.
        for length in [u64::MAX - 1, u64::MAX - 2, u64::MAX] {
            let mut bytes = client_frame(false, 1, b"abc");
            bytes.extend(client_frame_header(true, 0, length));
            bytes.extend_from_slice(b"more bytes than the length says are left");
            let (items, end) = read_all(reader(vec![bytes]));
            assert_eq!((items.len(), end), (0, ReadError::Protocol), "{length:#x}");
        }
    }

    #[test]
    fn a_wrapping_continuation_after_a_ping_cannot_lift_the_size_limit() {
        // The ping is returned, so the fragment's bytes are gone from the buffer when the
        // continuation comes: there, the wrapped end lay far past the buffer, and the reader
        // kept reading (48 MiB against a 64 KiB limit in the probe).
        let mut bytes = client_frame(false, 1, b"abc");
        bytes.extend(client_frame(true, 9, b"ping"));
        bytes.extend(client_frame_header(false, 0, u64::MAX - 1));
        let mut reads = vec![bytes];
        reads.extend((0..20).map(|_| vec![b'x'; 1000]));
        let (items, end) = read_all(reader(reads));
        assert_eq!(items, ["Ping([112, 105, 110, 103])"]);
        assert_eq!(end, ReadError::Protocol);
        // Just under the top bit: too big, with or without control frames before it.
        for between in [&[][..], &[9, 10, 9][..]] {
            let mut bytes = client_frame(false, 1, b"abc");
            for &opcode in between {
                bytes.extend(client_frame(true, opcode, b""));
            }
            bytes.extend(client_frame_header(true, 0, (1 << 63) - 3));
            let (items, end) = read_all(reader(vec![bytes]));
            assert_eq!((items.len(), end), (between.len(), ReadError::TooBig));
        }
    }

    #[test]
    fn the_size_limit_counts_every_fragment_across_control_frames() {
        let fragments = |last: usize| {
            let mut bytes = client_frame(false, 1, &[b'x'; 300]);
            bytes.extend(client_frame(true, 9, b""));
            bytes.extend(client_frame(false, 0, &[b'x'; 300]));
            bytes.extend(client_frame(true, 10, b""));
            bytes.extend(client_frame(true, 9, &[b'p'; 125]));
            bytes.extend(client_frame(false, 0, &[b'x'; 300]));
            bytes.extend(client_frame(true, 0, &vec![b'x'; last]));
            bytes
        };
        let (items, end) = read_all(reader(vec![fragments(100)]));
        assert_eq!(items.len(), 4);
        assert_eq!(items[3], format!("Text({:?})", "x".repeat(1000)));
        assert_eq!(end, ReadError::Gone);
        let (items, end) = read_all(reader(vec![fragments(101)]));
        assert_eq!((items.len(), end), (3, ReadError::TooBig));
    }

    #[test]
    fn the_buffer_holds_at_most_one_unfinished_frame_between_reads() {
        // Empty fragments add nothing to the message; their headers must not pile up either.
        let mut fragments = client_frame(false, 1, b"a");
        for _ in 0..1000 {
            fragments.extend(client_frame(false, 0, b""));
        }
        let unfinished = client_frame(true, 0, b"bc");
        fragments.extend_from_slice(&unfinished[..5]);
        let mut reader = reader(vec![fragments]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Reads the fragments (and says so), then finds the stream ends inside the last one.
        assert_eq!(runtime.block_on(reader.next()), Ok(Incoming::Partial));
        assert_eq!(runtime.block_on(reader.next()), Err(ReadError::Gone));
        assert_eq!(reader.buffered, unfinished[..5]);
        assert_eq!(
            reader.partial,
            Some(MessageSoFar {
                text: true,
                compressed: false,
                payload: b"a".to_vec()
            })
        );
    }

    #[test]
    fn close_frames_carry_a_code_that_may_be_sent_and_a_utf8_reason() {
        for code in (1000..=1003)
            .chain(1007..=1014)
            .chain([3000, 3999, 4000, 4999])
        {
            let mut payload = u16::to_be_bytes(code).to_vec();
            payload.extend_from_slice("bye \u{e9}".as_bytes());
            let (items, end) = read_all(reader(vec![client_frame(true, 8, &payload)]));
            assert_eq!(items, [format!("Close(Some({code}))")], "{code}");
            assert_eq!(end, ReadError::Gone);
        }
        let (items, _) = read_all(reader(vec![client_frame(true, 8, &[0x03, 0xe8])]));
        assert_eq!(items, ["Close(Some(1000))"]);
    }

    #[test]
    fn close_frames_rfc_6455_forbids_are_protocol_errors() {
        let (items, end) = read_all(reader(vec![client_frame(true, 8, &[0x03])]));
        assert_eq!((items.len(), end), (0, ReadError::Protocol), "one byte");
        let forbidden = [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for code in forbidden {
            let payload = u16::to_be_bytes(code);
            let (items, end) = read_all(reader(vec![client_frame(true, 8, &payload)]));
            assert_eq!((items.len(), end), (0, ReadError::Protocol), "{code}");
        }
    }

    #[test]
    fn a_close_reason_that_is_not_utf8_is_invalid_utf8() {
        for reason in [
            &[0xce, 0xba, 0xe1, 0xbd][..],
            &[0xff],
            &[b'o', b'k', 0xc0, 0x80],
        ] {
            let mut payload = vec![0x03, 0xe8];
            payload.extend_from_slice(reason);
            let (items, end) = read_all(reader(vec![client_frame(true, 8, &payload)]));
            assert_eq!(
                (items.len(), end),
                (0, ReadError::InvalidUtf8),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn text_must_be_utf8_once_whole() {
        // "é" split between two fragments is fine; a lone continuation byte is not.
        let mut split = client_frame(false, 1, &[0xc3]);
        split.extend(client_frame(true, 0, &[0xa9]));
        let (items, _) = read_all(reader(vec![split]));
        assert_eq!(items, ["Text(\"\u{e9}\")"]);
        let (items, end) = read_all(reader(vec![client_frame(true, 1, &[0xa9])]));
        assert_eq!((items.len(), end), (0, ReadError::InvalidUtf8));
    }

    #[test]
    fn bytes_read_with_the_upgrade_come_first_and_no_buffer_stays_once_consumed() {
        let first = client_frame(true, 1, b"first");
        let mut reader = FrameReader::new(
            Script(vec![client_frame(true, 1, b"second")].into()),
            first,
            1000,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert_eq!(reader.next().await, Ok(Incoming::Text("first")));
            assert_eq!(reader.next().await, Ok(Incoming::Text("second")));
            assert_eq!(reader.next().await, Err(ReadError::Gone));
        });
        assert_eq!(reader.buffered.capacity(), 0);
    }
}
