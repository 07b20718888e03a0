// The client's settings.
using System;
using System.Collections.Generic;

namespace SessionServer
{
    /// <summary>The field spelling a client sends: <c>session</c>/<c>player</c> (Short, the
    /// default) or <c>sessionData</c>/<c>playerData</c> (Long). Replies are read in either.</summary>
    public enum Spelling
    {
        Short,
        Long,
    }

    /// <summary>Settings of reconnecting; the defaults are the JavaScript client's.</summary>
    public sealed class ReconnectOptions
    {
        public ReconnectOptions()
        {
            MaxAttempts = 30;
            MaxTimeMs = 30000;
            BaseDelayMs = 250;
            MaxDelayMs = 5000;
            AttemptTimeoutMs = 5000;
        }

        /// <summary>Attempts at most, per drop (at least 1).</summary>
        public int MaxAttempts { get; set; }
        /// <summary>Milliseconds from the drop after which no attempt starts (the server's default grace).</summary>
        public int MaxTimeMs { get; set; }
        /// <summary>The first attempt's delay is drawn from [0, BaseDelayMs]; the bound doubles per attempt…</summary>
        public int BaseDelayMs { get; set; }
        /// <summary>…up to MaxDelayMs (exponential backoff with full jitter).</summary>
        public int MaxDelayMs { get; set; }
        /// <summary>Milliseconds one attempt may take, from opening its connection to the server's answer.</summary>
        public int AttemptTimeoutMs { get; set; }

        internal ReconnectOptions Checked()
        {
            if (MaxAttempts < 1) throw new ArgumentException("Reconnect.MaxAttempts must be at least 1, got " + MaxAttempts);
            Check("MaxTimeMs", MaxTimeMs);
            Check("BaseDelayMs", BaseDelayMs);
            Check("MaxDelayMs", MaxDelayMs);
            Check("AttemptTimeoutMs", AttemptTimeoutMs);
            return (ReconnectOptions)MemberwiseClone();
        }

        static void Check(string name, int value)
        {
            if (value < 0) throw new ArgumentException("Reconnect." + name + " must be a number of milliseconds, 0 or more, got " + value);
        }
    }

    /// <summary>Settings of a <see cref="SessionClient"/>; every one has a default.</summary>
    public sealed class SessionClientOptions
    {
        public SessionClientOptions()
        {
            Reconnect = new ReconnectOptions();
        }

        /// <summary>The field spelling to send (default Short).</summary>
        public Spelling Spelling { get; set; }

        /// <summary>Ask for <c>resume</c> and, when the connection drops in a session, reconnect
        /// and take the seat back (default: on, with the defaults). null: off.</summary>
        public ReconnectOptions Reconnect { get; set; }

        /// <summary>Makes the transport of each connection (default: a new WebSocketTransport).
        /// Set it for Unity WebGL (WebGLTransport), for headers (a JWT) or for tests.</summary>
        public Func<ITransport> Transport { get; set; }

        /// <summary>Ask for the <c>host</c> extension (default false): Session.HostID, the
        /// HostChange and SessionLock events, and Kicked in the SessionLeave of a kick. hello is
        /// sent when this or Reconnect asks for something; with neither, the client speaks the
        /// original protocol byte for byte.</summary>
        public bool Host { get; set; }

        /// <summary>Ask for the <c>messages</c> extension (default false): Message events of
        /// other members' SendMessage.</summary>
        public bool Messages { get; set; }
    }
}
