//! [`ConnectionGuard`]: the per-connection rules that need time: the heartbeat that finds dead
//! peers, and the rate limit on commands. Time is passed in as milliseconds from any origin the
//! host chooses (it only has to be monotonic), so both hosts run the same timers. The
//! [`crate::Player`] machine owns one.

use crate::close::CloseReason;
use crate::command::Rejection;
use crate::error::ErrorCode;
use crate::reply::ServerCommand;

/// Settings of a connection's heartbeat and rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// After this long without hearing from the client, the server pings it.
    pub ping_after_ms: u64,
    /// After this long without hearing from the client, it is taken for dead and closed.
    pub timeout_ms: u64,
    /// Commands per second a client may send, sustained.
    pub commands_per_second: u32,
    /// Commands a client may send at once above the sustained rate.
    pub command_burst: u32,
    /// Refused commands a client may send (regaining one per second) before it is closed.
    pub max_refused: u32,
    /// The protocol extensions the host offers in `hello` (none by default: a host offers
    /// what it carries out).
    pub features: crate::features::Features,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            ping_after_ms: 10_000,
            timeout_ms: 30_000,
            commands_per_second: 100,
            command_burst: 200,
            max_refused: 100,
            features: crate::features::Features::NONE,
        }
    }
}

/// What to do with a frame that just arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Carry it out.
    Accept,
    /// Don't; answer with this error 18 rejection instead, in order with the other replies
    /// (hosts pass it on as the command's outcome).
    Refuse(Rejection),
    /// Don't; close the connection.
    Close(CloseReason),
}

/// What a timer asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerAction {
    /// Send a WebSocket ping.
    Ping,
    /// Close the connection: the peer is gone.
    Close(CloseReason),
}

/// A token bucket in thousandths of a token, so that integer time in milliseconds refills it
/// exactly. Its rate and size are passed in from the connection's config rather than kept in
/// every connection (memory per idle player).
#[derive(Clone, Debug)]
struct Bucket {
    milli_tokens: u64,
    updated_ms: u64,
}

impl Bucket {
    /// A full bucket of `capacity` tokens.
    fn new(now_ms: u64, capacity: u32) -> Self {
        Bucket {
            milli_tokens: Self::milli(capacity),
            updated_ms: now_ms,
        }
    }

    fn milli(capacity: u32) -> u64 {
        u64::from(capacity.max(1)) * 1000
    }

    /// Takes `tokens` if the bucket (refilled at `per_second`, holding at most `capacity`)
    /// holds them (never more than it can hold: a larger cost takes a full bucket).
    fn take(&mut self, now_ms: u64, tokens: u64, per_second: u32, capacity: u32) -> bool {
        let capacity = Self::milli(capacity);
        let elapsed = now_ms.saturating_sub(self.updated_ms);
        self.updated_ms = self.updated_ms.max(now_ms);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(elapsed.saturating_mul(u64::from(per_second)))
            .min(capacity);
        let cost = tokens.saturating_mul(1000).min(capacity);
        if self.milli_tokens >= cost {
            self.milli_tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// Bytes of a frame that count as one command for the rate limit: a frame costs one token per
/// started 4 KiB (a frame of up to 4 KiB one, a 64 KiB frame 16), and at most a full burst.
pub const BYTES_PER_TOKEN: usize = 4096;

/// The rate-limit tokens a frame of `bytes` bytes costs (before the burst cap).
pub fn tokens_for(bytes: usize) -> u64 {
    bytes.div_ceil(BYTES_PER_TOKEN).max(1) as u64
}

/// One connection's heartbeat and rate limit.
#[derive(Clone, Debug)]
pub struct ConnectionGuard {
    config: ConnectionConfig,
    last_heard_ms: u64,
    pinged: bool,
    commands: Bucket,
    refusals: Bucket,
}

impl ConnectionGuard {
    /// A connection that opened at `now_ms`.
    pub fn new(config: ConnectionConfig, now_ms: u64) -> Self {
        ConnectionGuard {
            config,
            last_heard_ms: now_ms,
            pinged: false,
            commands: Bucket::new(now_ms, config.command_burst),
            refusals: Bucket::new(now_ms, config.max_refused),
        }
    }

    /// The timers, rates and extensions it was made with.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// A frame or pong arrived: the peer is alive.
    pub fn handle_activity(&mut self, now_ms: u64) {
        self.last_heard_ms = self.last_heard_ms.max(now_ms);
        self.pinged = false;
    }

    /// A command frame of `frame_bytes` bytes arrived, not yet read: it takes
    /// [`tokens_for`]`(frame_bytes)` tokens of the rate limit, before any work is done on it.
    /// `reply` gives the reply command its refusal carries; it is called only for a refusal.
    /// Counts as activity.
    pub fn admit(
        &mut self,
        now_ms: u64,
        frame_bytes: usize,
        reply: impl FnOnce() -> ServerCommand,
    ) -> Admission {
        self.handle_activity(now_ms);
        let config = self.config;
        let tokens = tokens_for(frame_bytes);
        if self.commands.take(
            now_ms,
            tokens,
            config.commands_per_second,
            config.command_burst,
        ) {
            return Admission::Accept;
        }
        if !self.refusals.take(now_ms, 1, 1, config.max_refused) {
            return Admission::Close(CloseReason::RateLimit);
        }
        let message = format!(
            "more than {} commands per second (bursts up to {}; a frame counts as one command \
             per started {} KiB): this command was not carried out",
            self.config.commands_per_second,
            self.config.command_burst,
            BYTES_PER_TOKEN / 1024
        );
        Admission::Refuse(Rejection::new(reply(), ErrorCode::RateLimited, message))
    }

    /// When [`ConnectionGuard::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> u64 {
        let dead_at = self.last_heard_ms.saturating_add(self.config.timeout_ms);
        if self.pinged {
            dead_at
        } else {
            self.last_heard_ms
                .saturating_add(self.config.ping_after_ms)
                .min(dead_at)
        }
    }

    /// Time has come to `now_ms`: maybe ping, maybe give up on the peer.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Option<TimerAction> {
        let silent = now_ms.saturating_sub(self.last_heard_ms);
        if silent >= self.config.timeout_ms {
            return Some(TimerAction::Close(CloseReason::HeartbeatTimeout));
        }
        if !self.pinged && silent >= self.config.ping_after_ms {
            self.pinged = true;
            return Some(TimerAction::Ping);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn config() -> ConnectionConfig {
        ConnectionConfig {
            ping_after_ms: 100,
            timeout_ms: 300,
            commands_per_second: 10,
            command_burst: 5,
            max_refused: 3,
            features: crate::features::Features::NONE,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn silence_brings_one_ping_then_the_close() {
        let mut c = ConnectionGuard::new(config(), 1000);
        assert_eq!(c.poll_timeout(), 1100);
        assert_eq!(c.handle_timeout(1099), None);
        assert_eq!(c.handle_timeout(1100), Some(TimerAction::Ping));
        assert_eq!(c.poll_timeout(), 1300);
        assert_eq!(c.handle_timeout(1200), None);
        assert_eq!(
            c.handle_timeout(1300),
            Some(TimerAction::Close(CloseReason::HeartbeatTimeout))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_pong_resets_the_heartbeat() {
        let mut c = ConnectionGuard::new(config(), 0);
        assert_eq!(c.handle_timeout(100), Some(TimerAction::Ping));
        c.handle_activity(150);
        assert_eq!(c.poll_timeout(), 250);
        assert_eq!(c.handle_timeout(449), Some(TimerAction::Ping));
        assert_eq!(
            c.handle_timeout(450),
            Some(TimerAction::Close(CloseReason::HeartbeatTimeout))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn bursts_pass_floods_are_refused_then_closed() {
        let mut c = ConnectionGuard::new(config(), 0);
        for _ in 0..5 {
            assert_eq!(
                c.admit(0, 100, || ServerCommand::PlayerUpdate),
                Admission::Accept
            );
        }
        for _ in 0..3 {
            match c.admit(0, 100, || ServerCommand::PlayerUpdate) {
                Admission::Refuse(rejection) => assert!(rejection
                    .frame()
                    .as_str()
                    .starts_with(r#"{"command":"playerUpdate","error":18,"#)),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(
            c.admit(0, 100, || ServerCommand::PlayerUpdate),
            Admission::Close(CloseReason::RateLimit)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_frame_costs_one_token_per_started_4_kib() {
        assert_eq!(tokens_for(0), 1);
        assert_eq!(tokens_for(4096), 1);
        assert_eq!(tokens_for(4097), 2);
        assert_eq!(tokens_for(64 << 10), 16);
        // Burst 5: five small frames pass, or one of 16 KiB and then one small one.
        let mut c = ConnectionGuard::new(config(), 0);
        assert_eq!(
            c.admit(0, 16 << 10, || ServerCommand::Error),
            Admission::Accept
        );
        assert_eq!(c.admit(0, 1, || ServerCommand::Error), Admission::Accept);
        assert!(matches!(
            c.admit(0, 1, || ServerCommand::Error),
            Admission::Refuse(_)
        ));
        // 10 per second: after 300 ms three tokens are back, not enough for 16 KiB.
        assert!(matches!(
            c.admit(300, 16 << 10, || ServerCommand::Error),
            Admission::Refuse(_)
        ));
        assert_eq!(
            c.admit(400, 16 << 10, || ServerCommand::Error),
            Admission::Accept
        );
        // A frame costing more than the burst takes a full bucket.
        assert_eq!(
            c.admit(900, 1 << 20, || ServerCommand::Error),
            Admission::Accept
        );
        assert!(matches!(
            c.admit(900, 1, || ServerCommand::Error),
            Admission::Refuse(_)
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_reply_is_worked_out_for_refusals_only() {
        let mut c = ConnectionGuard::new(config(), 0);
        for _ in 0..5 {
            let admission = c.admit(0, 1, || panic!("an accepted frame needs no reply"));
            assert_eq!(admission, Admission::Accept);
        }
        match c.admit(0, 1, || ServerCommand::SessionLeave) {
            Admission::Refuse(r) => assert_eq!(r.reply, ServerCommand::SessionLeave),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_sustained_rate_is_allowed_forever() {
        let mut c = ConnectionGuard::new(config(), 0);
        for i in 0..1000u64 {
            assert_eq!(
                c.admit(i * 100, 4096, || ServerCommand::Error),
                Admission::Accept,
                "command {i}"
            );
        }
    }
}
