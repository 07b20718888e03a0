//! Reading a client's WebSocket messages straight from its socket.
//!
//! Why not tokio-tungstenite's stream for this: it keeps a read buffer of fixed size per
//! connection for the connection's whole life (and zero-fills it before every read), plus a
//! boxed stream and two waker proxies: about 1 KB of every idle player's memory. Here the
//! buffer exists only while bytes wait in it (a partial frame, or the frames of one read), and
//! is let go as soon as they are consumed. Frame headers are parsed by tungstenite's
//! `FrameHeader`; the rules kept here are RFC 6455's for a server: every client frame masked,
//! no reserved bits or opcodes, control frames short and whole, fragments reassembled in order
//! with control frames allowed between them, text checked for UTF-8 once whole, and a size
//! limit on messages that holds before any of a large one is buffered.

use std::io::{self, Cursor};
use std::task::{Context, Poll};

use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// Bytes asked of the socket per read: a few commands' worth. Larger messages take more reads.
const READ_CHUNK: usize = 2048;

/// Longest payload of a control frame (RFC 6455 5.5).
const MAX_CONTROL: u64 = 125;

/// One message or control frame from the client. Borrows the reader until the next call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    Text(&'a str),
    /// A binary message, of this many bytes (its content is of no use to the server).
    Binary(usize),
    Ping(&'a [u8]),
    Pong,
    /// The client's close frame, with its status code if it gave one.
    Close(Option<u16>),
}

/// Why reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The connection ended without a close frame (or failed).
    Gone,
    /// A message over the size limit.
    TooBig,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// A frame RFC 6455 does not allow from a client (unmasked, reserved bits or opcode, a
    /// fragmented or long control frame, a continuation of nothing, an unfinished message
    /// interrupted by a new one).
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
        if !buf.is_empty() {
            buf.reserve(READ_CHUNK);
            return self.try_read_buf(buf);
        }
        // Into the stack first: the socket may have nothing after all (tokio reports a socket
        // readable until a read finds it empty), and an idle connection then keeps no buffer;
        // the heap buffer gets what was read, not a chunk's worth.
        let mut chunk = [0u8; READ_CHUNK];
        let n = self.try_read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

pub(crate) struct FrameReader<S = OwnedReadHalf> {
    source: S,
    /// Bytes read and not yet consumed. Unallocated while empty.
    buffered: Vec<u8>,
    /// Bytes at the front of `buffered` that the last returned item still borrows.
    consumed: usize,
    /// A fragmented message so far: whether it is text, and its payload.
    partial: Option<(bool, Vec<u8>)>,
    /// `partial` was returned whole and is dropped on the next call.
    partial_done: bool,
    max_message: usize,
}

impl<S: Source> FrameReader<S> {
    pub(crate) fn new(source: S, already_read: Vec<u8>, max_message: usize) -> Self {
        FrameReader {
            source,
            buffered: already_read,
            consumed: 0,
            partial: None,
            partial_done: false,
            max_message,
        }
    }

    /// The next message or control frame.
    pub(crate) async fn next(&mut self) -> Result<Incoming<'_>, ReadError> {
        self.release_last();
        loop {
            if let Some(found) = self.complete_frame()? {
                return self.item(found);
            }
            std::future::poll_fn(|cx| self.source.poll_readable(cx))
                .await
                .map_err(|_| ReadError::Gone)?;
            match self.source.try_read_into(&mut self.buffered) {
                Ok(0) => return Err(ReadError::Gone),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(ReadError::Gone),
            }
        }
    }

    /// Forgets what the previous item borrowed.
    fn release_last(&mut self) {
        if self.consumed > 0 {
            self.buffered.drain(..self.consumed);
            self.consumed = 0;
        }
        if self.buffered.is_empty() && self.buffered.capacity() > 0 {
            self.buffered = Vec::new();
        }
        if self.partial_done {
            self.partial = None;
            self.partial_done = false;
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
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(ReadError::Protocol);
            }
            let control = matches!(header.opcode, OpCode::Control(_));
            if control && (!header.is_final || length > MAX_CONTROL) {
                return Err(ReadError::Protocol);
            }
            let so_far = self.partial.as_ref().map_or(0, |(_, p)| p.len());
            if !control && so_far as u64 + length > self.max_message as u64 {
                // Refused before it is read, however large it says it is.
                return Err(ReadError::TooBig);
            }
            let start = self.consumed + cursor.position() as usize;
            let end = start + length as usize;
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
                (OpCode::Data(Data::Continue), Some((_, message))) => {
                    message.extend_from_slice(&self.buffered[start..end]);
                    if header.is_final {
                        self.partial_done = true;
                        return Ok(Some(found));
                    }
                }
                (OpCode::Data(Data::Text | Data::Binary), Some(_)) => {
                    return Err(ReadError::Protocol)
                }
                (OpCode::Data(data @ (Data::Text | Data::Binary)), None) => {
                    if header.is_final {
                        return Ok(Some(found));
                    }
                    let text = data == Data::Text;
                    self.partial = Some((text, self.buffered[start..end].to_vec()));
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
            (OpCode::Data(Data::Continue), Some((text, message))) => (*text, &message[..]),
            (OpCode::Data(data), _) => (data == Data::Text, payload),
            (OpCode::Control(Control::Ping), _) => return Ok(Incoming::Ping(payload)),
            (OpCode::Control(Control::Pong), _) => return Ok(Incoming::Pong),
            (OpCode::Control(_), _) => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                return Ok(Incoming::Close(code));
            }
        };
        if !text {
            return Ok(Incoming::Binary(message.len()));
        }
        std::str::from_utf8(message)
            .map(Incoming::Text)
            .map_err(|_| ReadError::InvalidUtf8)
    }
}

/// A frame that completed an item.
struct Found {
    opcode: OpCode,
    payload: std::ops::Range<usize>,
}
