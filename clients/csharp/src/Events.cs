// What the client's events carry. Every event is raised inside Poll(), on the thread that calls it.
using System;
using System.Collections.Generic;
using Newtonsoft.Json.Linq;

namespace SessionServer
{
    public sealed class SessionJoinEventArgs : EventArgs
    {
        public long SessionID { get; internal set; }
        public long PlayerID { get; internal set; }
        public JToken Data { get; internal set; }
        public JToken PlayerData { get; internal set; }
        /// <summary>True when this client created the session.</summary>
        public bool Created { get; internal set; }
    }

    public sealed class SessionLeaveEventArgs : EventArgs
    {
        public long? SessionID { get; internal set; }
        /// <summary>True when the host removed this player (kickPlayer) rather than a leaveSession of its own.</summary>
        public bool Kicked { get; internal set; }
    }

    public sealed class PlayerJoinEventArgs : EventArgs
    {
        public long PlayerID { get; internal set; }
        public JToken Data { get; internal set; }
        /// <summary>The playerData's text exactly as the server sent it.</summary>
        public string Raw { get; internal set; }
    }

    public sealed class PlayerUpdateEventArgs : EventArgs
    {
        public long PlayerID { get; internal set; }
        public JToken Data { get; internal set; }
        /// <summary>The playerData's text exactly as the server sent it.</summary>
        public string Raw { get; internal set; }
        /// <summary>True for this client's own update.</summary>
        public bool Self { get; internal set; }
    }

    public sealed class PlayerLeaveEventArgs : EventArgs
    {
        public long PlayerID { get; internal set; }
        /// <summary>The leaving player's last playerData (null if it was not known).</summary>
        public JToken Data { get; internal set; }
        /// <summary>True when this client kicked it (the reply to its kickPlayer).</summary>
        public bool Kicked { get; internal set; }
    }

    public sealed class SessionUpdateEventArgs : EventArgs
    {
        public JToken Data { get; internal set; }
        /// <summary>The new default playerData; every member's playerData was reset to it.</summary>
        public JToken PlayerData { get; internal set; }
        /// <summary>The sessionData's text exactly as the server sent it.</summary>
        public string Raw { get; internal set; }
        /// <summary>True for this client's own update.</summary>
        public bool Self { get; internal set; }
    }

    public sealed class HostChangeEventArgs : EventArgs
    {
        /// <summary>The new host.</summary>
        public long PlayerID { get; internal set; }
    }

    public sealed class SessionLockEventArgs : EventArgs
    {
        public bool Locked { get; internal set; }
        /// <summary>True for the reply to this client's own lockSession.</summary>
        public bool Self { get; internal set; }
    }

    /// <summary>A member's sendMessage (with the messages feature).</summary>
    public sealed class MessageEventArgs : EventArgs
    {
        /// <summary>The sender.</summary>
        public long PlayerID { get; internal set; }
        /// <summary>Its data (any JSON value).</summary>
        public JToken Data { get; internal set; }
        /// <summary>The data's text exactly as the sender sent it.</summary>
        public string Raw { get; internal set; }
    }

    /// <summary>One public session in a ListSessions page.</summary>
    public sealed class ListedSession
    {
        public long SessionID { get; internal set; }
        public int Players { get; internal set; }
        /// <summary>Null: no maxPlayers.</summary>
        public int? MaxPlayers { get; internal set; }
        /// <summary>Its metadata ({} without).</summary>
        public JToken Metadata { get; internal set; }
    }

    /// <summary>A page of ListSessions: the sessions, newest first, and the cursor of the next
    /// page (null on the last; pass it as <c>after</c>).</summary>
    public sealed class SessionList
    {
        public IList<ListedSession> Sessions { get; internal set; }
        public long? Next { get; internal set; }
    }

    /// <summary>What Ping() measured, in milliseconds.</summary>
    public sealed class PingResult
    {
        /// <summary>The round trip (JS: <c>rtt</c>).</summary>
        public double Rtt { get; internal set; }
        /// <summary>The server's clock minus this one's, estimated at the middle of the round trip.</summary>
        public double Offset { get; internal set; }
        /// <summary>The server's clock in milliseconds since the Unix epoch.</summary>
        public long ServerTime { get; internal set; }
    }

    public sealed class CloseEventArgs : EventArgs
    {
        public int Code { get; internal set; }
        public string Reason { get; internal set; }
        public string Meaning { get; internal set; }
    }

    public sealed class ReconnectingEventArgs : EventArgs
    {
        /// <summary>1 for the first attempt after a drop, then 2, 3, …</summary>
        public int Attempt { get; internal set; }
        /// <summary>Milliseconds before this attempt starts (full jitter).</summary>
        public int Delay { get; internal set; }
        /// <summary>The close code of the connection lost (attempt 1) or of the failed attempt before.</summary>
        public int Code { get; internal set; }
        public string Reason { get; internal set; }
        /// <summary>The server's refusal of the attempt before, if it was one (error 24).</summary>
        public SessionException Error { get; internal set; }
    }

    /// <summary>How a resume's missed events came.</summary>
    public enum Replay
    {
        /// <summary>The missed frames came as the usual events.</summary>
        Frames,
        /// <summary>The state was rebuilt: redraw from client.Session.</summary>
        Snapshot,
    }

    public sealed class ResumedEventArgs : EventArgs
    {
        public Replay Replay { get; internal set; }
        /// <summary>How many frames were replayed; null for a snapshot.</summary>
        public int? Missed { get; internal set; }
        /// <summary>The attempts it took.</summary>
        public int Attempts { get; internal set; }
    }

    public sealed class LostEventArgs : EventArgs
    {
        public LostReason Reason { get; internal set; }
        public long? SessionID { get; internal set; }
        /// <summary>The SessionException (Rejected) or ConnectionClosedException (Timeout, Closed) behind it.</summary>
        public Exception Error { get; internal set; }
    }

    /// <summary>Every frame from the server, before the client acts on it.</summary>
    public sealed class FrameEventArgs : EventArgs
    {
        public Frame Frame { get; internal set; }
    }

    public sealed class ErrorEventArgs : EventArgs
    {
        /// <summary>An error not tied to a request: an unexpected frame, a transport error, a
        /// handler that threw.</summary>
        public Exception Error { get; internal set; }
    }

    /// <summary>How the connection ended for good.</summary>
    public sealed class CloseInfo
    {
        public int Code { get; internal set; }
        public string Reason { get; internal set; }
        public string Meaning { get { return Meanings.OfClose(Code); } }
    }

    /// <summary>While the client takes its seat back after a drop.</summary>
    public sealed class ReconnectState
    {
        public int Attempt { get; internal set; }
        public int Delay { get; internal set; }
        /// <summary>When the connection dropped (UTC).</summary>
        public DateTime Since { get; internal set; }
    }
}
