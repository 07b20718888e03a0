//! Arbitrary bytes as a client's stream, cut into arbitrary reads, through the native server's
//! frame reader (`native/src/frame_reader.rs`, via its `cfg(fuzzing)` entry). Checked: no
//! panic; no message over the limit; text is UTF-8; control frames within RFC 6455's bounds;
//! close codes ones that may be sent; and the same items and end however the bytes are cut
//! (all in one read, or in the fuzzer's reads after some bytes that came with the upgrade).
//!
//! Half of the inputs are built from frames (masked, with the fuzzer's lengths, opcodes and
//! bits) so that fragments, continuations and hostile 64-bit lengths are reached often; the
//! others are the raw bytes as they came.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sessionserver::fuzzing::{close_code_may_be_sent, read_frames, End, Item};

/// Small, so that the limit is reached by small inputs.
const MAX_MESSAGE: usize = 300;

#[derive(Arbitrary, Debug)]
struct Frame {
    /// FIN, RSV1-3 and the opcode, as sent.
    first: u8,
    /// Whether to mask (clients must).
    masked: bool,
    /// The length as declared: the payload's own, or one the fuzzer chose.
    length: Length,
    payload: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Length {
    Actual,
    /// A 64-bit length near the ends of the range (2^64 - n, 2^63 - n, 2^63 + n).
    Hostile(u8, u8),
    Any(u64),
}

impl Frame {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.first);
        let mask_bit = if self.masked { 0x80 } else { 0 };
        let length = match self.length {
            Length::Actual => self.payload.len() as u64,
            Length::Hostile(kind, n) => match kind % 3 {
                0 => u64::MAX - u64::from(n),
                1 => (1 << 63) - u64::from(n),
                _ => (1 << 63) + u64::from(n),
            },
            Length::Any(n) => n,
        };
        match length {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        if self.masked {
            out.extend_from_slice(&mask);
        }
        out.extend(self.payload.iter().enumerate().map(|(i, b)| {
            if self.masked {
                b ^ mask[i % 4]
            } else {
                *b
            }
        }));
    }
}

fn check(items: &[Item], end: End) {
    for item in items {
        match item {
            Item::Text(text) => {
                assert!(text.len() <= MAX_MESSAGE, "text of {} bytes", text.len());
                assert!(
                    std::str::from_utf8(text).is_ok(),
                    "text not UTF-8: {text:?}"
                );
            }
            Item::Binary(len) => assert!(*len <= MAX_MESSAGE, "binary of {len} bytes"),
            Item::Ping(payload) => assert!(payload.len() <= 125, "ping of {}", payload.len()),
            Item::Pong => {}
            Item::Close(code) => {
                if let Some(code) = code {
                    assert!(close_code_may_be_sent(*code), "close code {code}");
                }
            }
        }
    }
    // Once a close frame is returned the connection stops reading; the reader itself may go
    // on, so nothing is asserted after it.
    let _ = end;
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((structured, already_read, read_lengths)) = <(bool, u8, Vec<u8>)>::arbitrary(&mut u)
    else {
        return;
    };
    let bytes = if structured {
        let Ok(frames) = Vec::<Frame>::arbitrary_take_rest(u) else {
            return;
        };
        let mut bytes = Vec::new();
        for frame in &frames {
            frame.write(&mut bytes);
        }
        bytes
    } else {
        u.take_rest().to_vec()
    };
    let read_lengths: Vec<usize> = read_lengths.iter().map(|&n| usize::from(n)).collect();
    let (items, end) = read_frames(
        &bytes,
        usize::from(already_read),
        &read_lengths,
        MAX_MESSAGE,
    );
    check(&items, end);
    let whole = read_frames(&bytes, 0, &[], MAX_MESSAGE);
    assert_eq!((items, end), whole, "the same bytes cut differently");
});
