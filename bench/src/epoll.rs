//! A thin wrapper over Linux epoll, for the fan-out's and the churn's worker threads: one epoll
//! per thread, level-triggered, the token of each socket being its index in the thread's table;
//! and the one read loop both run on a ready socket (`read_ready`).
//!
//! Why not mio: a worker wakes up for its next scheduled send, and mio (like tokio's timer)
//! rounds every timeout up to a whole millisecond. `epoll_pwait2` takes a timespec, so a send
//! starts within tens of microseconds of its time instead of up to a millisecond late, and the
//! sends stay spread as evenly as the schedule says.

use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub use libc::{EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP};

pub struct Epoll {
    fd: OwnedFd,
    /// Where the kernel writes ready events: allocated once, not per wait.
    raw: Vec<libc::epoll_event>,
    /// `epoll_pwait2` is missing (a kernel before 5.11): millisecond timeouts instead.
    no_pwait2: bool,
}

/// One readiness event: the token given at registration and the `EPOLL*` bits.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub token: u64,
    pub events: u32,
}

impl Epoll {
    /// An epoll set reporting up to `max_events` ready sockets per wait.
    pub fn new(max_events: usize) -> io::Result<Self> {
        // SAFETY: no pointers; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll {
            // SAFETY: a fresh descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            raw: vec![libc::epoll_event { events: 0, u64: 0 }; max_events.max(1)],
            no_pwait2: false,
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: libc::c_int, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: token,
        };
        // SAFETY: `event` lives across the call; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for `events` (`EPOLLIN | ...`). A socket leaves the set when it is closed.
    pub fn add(&self, fd: RawFd, events: libc::c_int, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    pub fn modify(&self, fd: RawFd, events: libc::c_int, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Waits until something is ready or `timeout` has passed; fills `out` with what is
    /// ready. An interrupted wait returns nothing.
    pub fn wait(&mut self, out: &mut Vec<Event>, timeout: Duration) -> io::Result<()> {
        out.clear();
        let n = if self.no_pwait2 {
            self.wait_ms(timeout)
        } else {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
            };
            // SAFETY: `raw` holds `raw.len()` events and `ts` lives across the call; no mask.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.fd.as_raw_fd(),
                    self.raw.as_mut_ptr(),
                    self.raw.len() as libc::c_int,
                    &ts as *const libc::timespec,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.no_pwait2 = true;
                self.wait_ms(timeout)
            } else {
                n as libc::c_int
            }
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        out.extend(self.raw[..n as usize].iter().map(|e| Event {
            token: e.u64,
            events: e.events,
        }));
        Ok(())
    }

    fn wait_ms(&mut self, timeout: Duration) -> libc::c_int {
        // Rounded up: a shorter wait would wake before the deadline and spin.
        let ms = (timeout + Duration::from_nanos(999_999)).as_millis();
        // SAFETY: `raw` is a valid buffer of `raw.len()` events.
        unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.raw.as_mut_ptr(),
                self.raw.len() as libc::c_int,
                ms.min(i32::MAX as u128) as libc::c_int,
            )
        }
    }
}

/// How reading a ready socket ended, once what was read is handled.
#[derive(Debug)]
pub enum ReadEnd {
    /// Everything the socket had is read; level-triggered epoll reports it again when more comes.
    Drained,
    /// The peer's FIN.
    Fin,
    /// The socket failed (a reset, say).
    Failed(io::Error),
}

/// Reads what a ready `stream` has and hands it to `handle` after every read: the bytes kept in
/// `partial` from before, then what came, in the worker's reused `buf` (initialized once, never
/// zeroed again). `handle` returns how many bytes from the start it used; the rest waits in
/// `buf` for the next read, and in `partial` once the socket is drained. One call per read, so
/// that a caller can take one arrival time per read. `events` are the epoll event's bits: with
/// `EPOLLRDHUP` (when watched), a short read means the FIN has come, and no read is spent to see
/// it. An error from `handle` stops the loop and is returned as it is.
pub fn read_ready<E>(
    mut stream: &TcpStream,
    events: u32,
    buf: &mut Vec<u8>,
    partial: &mut Vec<u8>,
    read_size: usize,
    mut handle: impl FnMut(&[u8]) -> Result<usize, E>,
) -> Result<ReadEnd, E> {
    let mut filled = partial.len();
    if buf.len() < filled + read_size {
        buf.resize(filled + read_size, 0);
    }
    buf[..filled].copy_from_slice(partial);
    partial.clear();
    let end = loop {
        let room = buf.len() - filled;
        let n = match stream.read(&mut buf[filled..]) {
            Ok(0) => break ReadEnd::Fin,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ReadEnd::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break ReadEnd::Failed(e),
        };
        filled += n;
        let used = handle(&buf[..filled])?;
        buf.copy_within(used..filled, 0);
        filled -= used;
        if n < room {
            // All that was there is read.
            break if events & EPOLLRDHUP as u32 != 0 {
                ReadEnd::Fin
            } else {
                ReadEnd::Drained
            };
        }
        if buf.len() - filled < read_size {
            // Maybe more, or a frame larger than what is left: make room.
            buf.resize(filled + read_size, 0);
        }
    };
    partial.extend_from_slice(&buf[..filled]);
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    #[test]
    fn waits_for_a_socket_or_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut epoll = Epoll::new(8).unwrap();
        epoll.add(server.as_raw_fd(), EPOLLIN, 7).unwrap();
        let mut events = Vec::with_capacity(8);

        let started = Instant::now();
        epoll
            .wait(&mut events, Duration::from_micros(2500))
            .unwrap();
        let waited = started.elapsed();
        assert!(events.is_empty());
        assert!(waited >= Duration::from_micros(2500), "{waited:?}");

        client.write_all(b"x").unwrap();
        epoll.wait(&mut events, Duration::from_secs(5)).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].token, 7);
        assert_ne!(events[0].events & EPOLLIN as u32, 0);
    }

    /// Handles whole lines, as a worker handles whole frames.
    fn lines(seen: &mut Vec<Vec<u8>>) -> impl FnMut(&[u8]) -> Result<usize, String> + '_ {
        |bytes| {
            let mut used = 0;
            while let Some(nl) = bytes[used..].iter().position(|&b| b == b'\n') {
                seen.push(bytes[used..used + nl].to_vec());
                used += nl + 1;
            }
            Ok(used)
        }
    }

    #[test]
    fn reads_until_drained_and_keeps_the_incomplete_rest() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        // A small read size: the loop reads several times and grows the buffer for a long line.
        let (mut buf, mut partial, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        let long = vec![b'x'; 100];
        client.write_all(b"one\ntw").unwrap();
        client.write_all(&long).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let end = read_ready(&server, 0, &mut buf, &mut partial, 8, lines(&mut seen)).unwrap();
        assert!(matches!(end, ReadEnd::Drained), "{end:?}");
        assert_eq!(seen, vec![b"one".to_vec()]);
        assert_eq!(partial, [&b"tw"[..], &long].concat());

        client.write_all(b"o\nthree\n").unwrap();
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
        let end = read_ready(&server, 0, &mut buf, &mut partial, 8, lines(&mut seen)).unwrap();
        assert!(matches!(end, ReadEnd::Fin), "{end:?}");
        assert_eq!(seen[1], [&b"tw"[..], &long, b"o"].concat());
        assert_eq!(seen[2], b"three");
        assert!(partial.is_empty());

        let failing = read_ready(&server, 0, &mut buf, &mut partial, 8, |_| Err("no"));
        assert!(
            matches!(failing, Ok(ReadEnd::Fin)),
            "nothing left to handle"
        );
    }
}
