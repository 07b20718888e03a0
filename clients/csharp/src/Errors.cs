// Error codes, close codes and the exceptions requests fail with. The same tables as the
// JavaScript client (clients/js/sessionserver.js), from PROTOCOL.md.
using System;
using System.Collections.Generic;

namespace SessionServer
{
    /// <summary>What the protocol's error codes and the server's close codes mean.</summary>
    public static class Meanings
    {
        /// <summary>What every error code means. Code 4 has two meanings, told apart by the reply
        /// command it comes in (see <see cref="OfError"/>).</summary>
        public static readonly IReadOnlyDictionary<int, string> Errors = new Dictionary<int, string>
        {
            { 2, "not in a session" },
            { 4, "createSession while in a session (sessionJoin), or playerData whose key structure differs from the session default (playerUpdate)" },
            { 5, "joinSession while in a session" },
            { 6, "joinSession -1 while no session exists" },
            { 7, "no session with that ID" },
            { 9, "the frame is not valid JSON, or repeats a protocol field" },
            { 10, "the frame is JSON but not an object" },
            { 11, "no `command` field, or it is not a string" },
            { 12, "unknown command" },
            { 13, "a field has the wrong type or is missing" },
            { 14, "a binary frame: commands are JSON text frames" },
            { 15, "objects and arrays nested deeper than the depth limit" },
            { 16, "joinSession to a session that holds its maximum of players" },
            { 17, "createSession while the server holds its maximum of sessions" },
            { 18, "more commands per second than allowed; the command was not carried out" },
            { 19, "the session's data would grow larger than its limit; nothing changes" },
            { 20, "egress budget exceeded: this member broadcast too much too fast; nothing was broadcast" },
            { 21, "hello is answered in the lobby only: send it before creating or joining" },
            { 22, "the resume token is not valid: used already, expired, or never issued" },
            { 23, "resumeSession while in a session: resuming is for a new connection" },
            { 24, "the player to resume is still connected (sent by older servers; current ones take the seat over); try again in a moment" },
            { 25, "resumeSession counted more events received than the session sent that seat; nothing changes" },
            { 26, "the session has a password: joinSession needs the right one" },
            { 27, "too many wrong passwords for this session lately: try again in a second" },
            { 28, "the session's host locked it: it takes no new players" },
            { 29, "only the session's host may do that" },
            { 30, "kickPlayer names no other member of the session" },
            { 31, "sendMessage names a recipient that is no member of the session; nothing was sent" },
            { 32, "listSessions from a player in a session: sessions are listed from the lobby" },
            { 33, "the server could not read its list of sessions just now; try again" },
            { 34, "this connection is on one session's direct path (/session/…): for another session, -1, listSessions or joinOrCreate, connect again to /session/<id>, /session/new or /" },
        };

        /// <summary>What each WebSocket close code the server sends means.</summary>
        public static readonly IReadOnlyDictionary<int, string> Closes = new Dictionary<int, string>
        {
            { 1000, "closed normally" },
            { 1001, "the server is shutting down" },
            { 1002, "a frame the WebSocket protocol does not allow from a client" },
            { 1005, "closed without a close code" },
            { 1006, "the connection was lost" },
            { 1007, "a text frame that is not valid UTF-8" },
            { 1008, "the client kept sending commands over its rate limit" },
            { 1009, "a message larger than the maximum" },
            { 1011, "the server lost the session (its task or object failed, or could not be reached)" },
            { 1012, "edge host: the link to the session broke (its object restarted); the seat is kept: resume" },
            { 1013, "edge host: a player ID collision; connect again" },
            { 4000, "heartbeat timeout: nothing heard from the client, not even a pong" },
            { 4001, "the client stopped reading and its send queue filled up" },
            { 4002, "the server neared its memory budget and this connection held one of the largest send backlogs" },
            { 4003, "replaced: this player's seat was resumed on another connection" },
        };

        /// <summary>The close codes after which a client in a session reconnects and resumes its
        /// seat: the connection was lost (1006), or the server closed it for a reason a new
        /// connection does not repeat (1011-1014, 4000-4002). Every other close is final: 1000 and
        /// 1005 (deliberate), 1001 (the server is going away), 1002, 1007-1009 (this client broke a
        /// rule and would again), 4003 (the seat was resumed elsewhere) and codes not listed.</summary>
        public static readonly IReadOnlyList<int> ReconnectCloseCodes = new[] { 1006, 1011, 1012, 1013, 1014, 4000, 4001, 4002 };

        /// <summary>The meaning of an error code, in the reply command it came in.</summary>
        public static string OfError(int code, string command)
        {
            if (code == 4 && command == "sessionJoin") return "createSession while in a session; nothing is created";
            if (code == 4 && command == "playerUpdate") return "playerData's key structure differs from the session's default; nothing changes";
            string meaning;
            return Errors.TryGetValue(code, out meaning) ? meaning : "unknown error " + code;
        }

        /// <summary>The meaning of a close code ("closed" for one not listed).</summary>
        public static string OfClose(int code)
        {
            string meaning;
            return Closes.TryGetValue(code, out meaning) ? meaning : "closed";
        }

        internal static bool Reconnects(int closeCode)
        {
            foreach (var code in ReconnectCloseCodes) if (code == closeCode) return true;
            return false;
        }
    }

    /// <summary>An error reply of the server: <see cref="Code"/> is the protocol's error code.</summary>
    public class SessionException : Exception
    {
        public SessionException(int code, string command, string serverMessage)
            : base("error " + code + ": " + (serverMessage ?? Meanings.OfError(code, command)))
        {
            Code = code;
            Command = command;
            Meaning = Meanings.OfError(code, command);
            ServerMessage = serverMessage;
        }

        /// <summary>The error code (2-33).</summary>
        public int Code { get; private set; }
        /// <summary>The reply command the error came in (sessionJoin, playerUpdate, …, or error).</summary>
        public string Command { get; private set; }
        /// <summary>What the code means (<see cref="Meanings.Errors"/>, the table of PROTOCOL.md).</summary>
        public string Meaning { get; private set; }
        /// <summary>The server's own message, for codes 9 and up; null for 2-7.</summary>
        public string ServerMessage { get; private set; }
    }

    /// <summary>A request that could not be answered because the connection closed.</summary>
    public class ConnectionClosedException : Exception
    {
        public ConnectionClosedException(int code, string reason)
            : base("connection closed (" + code + (string.IsNullOrEmpty(reason) ? "" : ": " + reason) + "): " + Meanings.OfClose(code))
        {
            Code = code;
            Reason = reason ?? "";
            Meaning = Meanings.OfClose(code);
        }

        /// <summary>The WebSocket close code (1006: no close frame, the connection was lost).</summary>
        public int Code { get; private set; }
        public string Reason { get; private set; }
        public string Meaning { get; private set; }
    }

    /// <summary>Why a seat could not be taken back after a drop.</summary>
    public enum LostReason
    {
        /// <summary>The server refused the resume (error 22: the grace period ended, the session is
        /// gone); the client is connected, in the lobby.</summary>
        Rejected,
        /// <summary>No resume within MaxAttempts / MaxTimeMs; the client is closed.</summary>
        Timeout,
        /// <summary>An attempt was closed with a final close code; the client is closed.</summary>
        Closed,
    }

    /// <summary>The seat could not be taken back after a drop: requests made while reconnecting
    /// fail with this, and the Lost event carries the same reason.</summary>
    public class SessionLostException : Exception
    {
        public SessionLostException(LostReason reason, long? sessionID, Exception cause)
            : base("session " + (sessionID.HasValue ? sessionID.Value.ToString() : "?") + " lost: " + Describe(reason)
                   + (cause != null ? " (" + cause.Message + ")" : ""), cause)
        {
            Reason = reason;
            SessionID = sessionID;
        }

        public LostReason Reason { get; private set; }
        public long? SessionID { get; private set; }

        static string Describe(LostReason reason)
        {
            switch (reason)
            {
                case LostReason.Rejected: return "the server refused the resume";
                case LostReason.Timeout: return "no resume within the attempts and time allowed";
                default: return "a reconnection attempt was closed for good";
            }
        }
    }
}
