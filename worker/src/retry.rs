//! When a failed call to a Durable Object is tried again. Cloudflare's errors from a stub
//! carry two flags: `.retryable` (the call may succeed if made again: the object was reset,
//! moved, or its connection broke) and `.overloaded` (the object is over its limits: another
//! call only adds to its load). A retryable call is made again with a new stub after a
//! backoff; an overloaded one never. Platform-free, so that the policy is tested natively; the
//! Worker reads the flags off the error ([`crate::link`]) and sleeps.

/// What a failed stub call says about trying it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// `.retryable` and not `.overloaded`: try again, with a new stub, after
    /// [`stub_delay_ms`].
    Retryable,
    /// `.overloaded` (whatever `.retryable` says): never try again. The client is told to
    /// come back later (close 1013), or a relay's own resume gives up.
    Overloaded,
    /// Neither flag: not known to be transient; not tried again.
    Other,
}

impl Failure {
    /// The failure the two flags of an error describe.
    pub fn of(retryable: bool, overloaded: bool) -> Failure {
        match (retryable, overloaded) {
            (_, true) => Failure::Overloaded,
            (true, false) => Failure::Retryable,
            (false, false) => Failure::Other,
        }
    }
}

/// Calls of one stub request at most, the first included.
pub const STUB_TRIES: u32 = 4;

/// The wait before try `attempt` (1 for the first retry) of a stub call, in milliseconds,
/// or `None` once [`STUB_TRIES`] are used up: an exponential backoff from 50 ms (50, 100, 200:
/// at most 350 ms of waiting in all, short next to a client's patience for a join), each with
/// "full jitter" (a random share of it, from `random`), so that the relays of one object
/// that broke do not all call again at the same instant.
pub fn stub_delay_ms(attempt: u32, random: u64) -> Option<u64> {
    if attempt == 0 || attempt >= STUB_TRIES {
        return None;
    }
    // attempt < STUB_TRIES: no overflow.
    let cap = 50u64 << (attempt - 1);
    // Half fixed, half random: never 0, never more than the cap.
    Some(cap / 2 + random % (cap / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overloaded_is_never_retried_and_retryable_is() {
        assert_eq!(Failure::of(true, false), Failure::Retryable);
        assert_eq!(Failure::of(true, true), Failure::Overloaded);
        assert_eq!(Failure::of(false, true), Failure::Overloaded);
        assert_eq!(Failure::of(false, false), Failure::Other);
    }

    #[test]
    fn the_backoff_grows_stays_bounded_and_ends() {
        assert_eq!(stub_delay_ms(0, 0), None);
        let mut total_max = 0;
        for attempt in 1..STUB_TRIES {
            let cap = 50u64 << (attempt - 1);
            for random in [0, 1, 7, cap, u64::MAX] {
                let delay = stub_delay_ms(attempt, random).expect("a retry");
                assert!(delay >= cap / 2 && delay <= cap, "{attempt}: {delay}");
            }
            total_max += cap;
        }
        assert_eq!(total_max, 350);
        assert_eq!(stub_delay_ms(STUB_TRIES, 0), None);
        assert_eq!(stub_delay_ms(u32::MAX, u64::MAX), None);
    }
}
