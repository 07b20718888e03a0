//! A thin wrapper over Linux epoll, for the fan-out's and the churn's worker threads: one epoll
//! per thread, level-triggered, the token of each socket being its index in the thread's table.
//!
//! Why not mio: a worker wakes up for its next scheduled send, and mio (like tokio's timer)
//! rounds every timeout up to a whole millisecond. `epoll_pwait2` takes a timespec, so a send
//! starts within tens of microseconds of its time instead of up to a millisecond late, and the
//! sends stay spread as evenly as the schedule says.

use std::io;
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
}
