//! [`CloseReason`]: every WebSocket close code the server sends, with its reason text.

/// Why the server closes a connection, with the WebSocket close code it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// 1001: the server is shutting down.
    Shutdown,
    /// 1002: a frame the WebSocket protocol does not allow from a client (unmasked, reserved
    /// bits or opcode, a broken fragment sequence, a fragmented or long control frame).
    ProtocolError,
    /// 1007: a text frame that is not UTF-8.
    InvalidUtf8,
    /// 1008: the client kept sending commands faster than its rate limit.
    RateLimit,
    /// 1009: a message larger than the maximum.
    TooBig,
    /// 4000: nothing heard from the client (not even a pong) within the heartbeat timeout.
    HeartbeatTimeout,
    /// 4001: the client stopped reading and its send queue filled up.
    SendQueueFull,
    /// 4003: the player's seat was resumed on another connection (`resumeSession` with its
    /// token) while this one still seemed open.
    Replaced,
    /// 1011: the player's session was lost by the server (its task or object failed); the
    /// player is out of it.
    SessionLost,
}

impl CloseReason {
    /// Every close reason, in a fixed order (for metrics tables).
    pub const ALL: [CloseReason; 9] = [
        CloseReason::Shutdown,
        CloseReason::ProtocolError,
        CloseReason::InvalidUtf8,
        CloseReason::RateLimit,
        CloseReason::TooBig,
        CloseReason::HeartbeatTimeout,
        CloseReason::SendQueueFull,
        CloseReason::Replaced,
        CloseReason::SessionLost,
    ];

    /// A short name, for metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            CloseReason::Shutdown => "shutdown",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::InvalidUtf8 => "invalid_utf8",
            CloseReason::RateLimit => "rate_limit",
            CloseReason::TooBig => "too_big",
            CloseReason::HeartbeatTimeout => "heartbeat_timeout",
            CloseReason::SendQueueFull => "send_queue_full",
            CloseReason::Replaced => "replaced",
            CloseReason::SessionLost => "session_lost",
        }
    }

    /// The close code.
    pub const fn code(self) -> u16 {
        match self {
            CloseReason::Shutdown => 1001,
            CloseReason::ProtocolError => 1002,
            CloseReason::InvalidUtf8 => 1007,
            CloseReason::RateLimit => 1008,
            CloseReason::TooBig => 1009,
            CloseReason::HeartbeatTimeout => 4000,
            CloseReason::SendQueueFull => 4001,
            CloseReason::Replaced => 4003,
            CloseReason::SessionLost => 1011,
        }
    }

    /// The close reason text.
    pub const fn text(self) -> &'static str {
        match self {
            CloseReason::Shutdown => "server shutting down",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::InvalidUtf8 => "text frame is not UTF-8",
            CloseReason::RateLimit => "too many commands",
            CloseReason::TooBig => "message too big",
            CloseReason::HeartbeatTimeout => "heartbeat timeout",
            CloseReason::SendQueueFull => "send queue full: the client is not reading",
            CloseReason::Replaced => "replaced: the player resumed on another connection",
            CloseReason::SessionLost => "session lost by the server",
        }
    }
}
