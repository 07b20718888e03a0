// SessionClient: one player's connection to a session server (PROTOCOL.md), the C# twin of the
// JavaScript client (clients/js/sessionserver.js): the same requests, events, kept state,
// errors and reconnection.
//
// Threading: the transport reports from its own threads into a queue; everything else happens
// in Poll(), on the thread that calls it (a game's main thread, once per frame): frames are
// applied to Session, events are raised, request tasks complete, reconnection timers run. So
// a Unity game reads client.Session and handles events on its main thread without locks.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Diagnostics;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Newtonsoft.Json.Linq;

namespace SessionServer
{
    /// <summary>A connection to a session server: one player. Keeps the current session and its
    /// players, and takes its seat back after a dropped connection. Call <see cref="Poll"/> often
    /// (every frame): nothing happens between calls.</summary>
    public sealed class SessionClient : IDisposable
    {
        // The frames counted in resumeSession's `received` (with error 0).
        static readonly HashSet<string> SessionEvents = new HashSet<string> { "playerJoin", "playerUpdate", "playerLeave", "sessionUpdate" };

        readonly object gate = new object();
        readonly ConcurrentQueue<Incoming> inbox = new ConcurrentQueue<Incoming>();
        readonly Stopwatch clock = Stopwatch.StartNew();
        readonly Random random = new Random();
        readonly string url;
        readonly Func<ITransport> makeTransport;
        readonly ReconnectOptions reconnect;
        readonly List<string> features = new List<string>();

        ITransport socket;
        bool socketOpen;
        TaskCompletionSource<bool> opened;
        // Requests sent and not yet answered, oldest first: replies to one client come in the
        // order of its commands, so the oldest is the one the next reply answers.
        readonly List<Request> pending = new List<Request>();
        // Requests made while reconnecting: sent once the seat is back and the replay applied.
        readonly List<Request> queue = new List<Request>();
        readonly List<TaskCompletionSource<CloseInfo>> closeWaiters = new List<TaskCompletionSource<CloseInfo>>();
        bool queueing;
        // The resume token of the seat (each good once; the newest is kept) and the session
        // events received on it since the sessionJoin / sessionResume that gave it.
        string token;
        long received;
        bool userClosed;
        // Between a drop and the resume: no open connection (`down`), when it dropped, the
        // attempts so far, the next attempt's time and the attempt's connection.
        bool down;
        long dropSince;
        DateTime dropSinceUtc;
        int dropAttempt;
        long nextAttemptAt = -1;
        ITransport attempt;
        long attemptDeadline;
        bool attemptWithReceived;
        // While a resume's replay is applied: the frames left, the members a snapshot listed,
        // what Resumed will say.
        long replayLeft;
        HashSet<long> snapshotSeen;
        ResumedEventArgs resuming;
        bool inPoll;
        Exception handlerFailure;
        Thread poller;
        volatile bool polling;

        /// <summary>A client for the server at <paramref name="url"/> (ws:// or wss://). Nothing is
        /// sent before <see cref="Connect"/>.</summary>
        public SessionClient(string url, SessionClientOptions options = null)
        {
            if (url == null) throw new ArgumentNullException("url");
            options = options ?? new SessionClientOptions();
            this.url = url;
            Spelling = options.Spelling;
            reconnect = options.Reconnect != null ? options.Reconnect.Checked() : null;
            makeTransport = options.Transport ?? (() => new WebSocketTransport());
            // The extensions asked for: `resume` when reconnecting, `host` if asked to.
            if (reconnect != null) features.Add("resume");
            if (options.Host) features.Add("host");
            if (options.Messages) features.Add("messages");
        }

        // --- state ---

        /// <summary>The server's URL.</summary>
        public string Url { get { return url; } }
        /// <summary>The field spelling this client sends.</summary>
        public Spelling Spelling { get; set; }
        /// <summary>This connection's player ID, known from the hello answer or the first
        /// sessionJoin on; null before.</summary>
        public long? PlayerID { get; private set; }
        /// <summary>The session this player is in, or null. It stays while the client reconnects.</summary>
        public Session Session { get; private set; }
        /// <summary>The extensions the server granted to hello (resume, host); empty if none or
        /// hello was ignored; null while not known (or when no hello is sent).</summary>
        public IReadOnlyList<string> Features { get; private set; }
        /// <summary>The close code and reason once the connection is closed for good, else null
        /// (also while reconnecting). JS: <c>closed</c>.</summary>
        public CloseInfo CloseStatus { get; private set; }
        /// <summary>While the client takes its seat back after a drop; else null. Requests made
        /// meanwhile wait and are sent after the resume. JS: <c>reconnecting</c>.</summary>
        public ReconnectState ReconnectState { get; private set; }

        // --- events (raised inside Poll) ---

        public event EventHandler<SessionJoinEventArgs> SessionJoin;
        public event EventHandler<SessionLeaveEventArgs> SessionLeave;
        public event EventHandler<PlayerJoinEventArgs> PlayerJoin;
        public event EventHandler<PlayerUpdateEventArgs> PlayerUpdate;
        public event EventHandler<PlayerLeaveEventArgs> PlayerLeave;
        public event EventHandler<SessionUpdateEventArgs> SessionUpdate;
        /// <summary>The host changed (the host left); needs the host feature.</summary>
        public event EventHandler<HostChangeEventArgs> HostChange;
        /// <summary>The host locked or unlocked the session (to the host, and members with the host feature).</summary>
        public event EventHandler<SessionLockEventArgs> SessionLock;
        /// <summary>The connection dropped in a session (or an attempt failed): an attempt to resume
        /// follows after Delay.</summary>
        public event EventHandler<ReconnectingEventArgs> Reconnecting;
        /// <summary>The seat is back, with the same player ID, and what was missed has been applied.</summary>
        public event EventHandler<ResumedEventArgs> Resumed;
        /// <summary>The seat could not be taken back; Session is null. After Timeout and Closed, Closed follows.</summary>
        public event EventHandler<LostEventArgs> Lost;
        /// <summary>A member's sendMessage (needs the Messages option).</summary>
        public event EventHandler<MessageEventArgs> Message;
        /// <summary>Every frame from the server, before the client acts on it (JS: <c>frame</c>;
        /// a C# event cannot share its name with the class Frame it carries).</summary>
        public event EventHandler<FrameEventArgs> FrameReceived;
        /// <summary>The connection is closed for good (JS: <c>close</c>).</summary>
        public event EventHandler<CloseEventArgs> Closed;
        /// <summary>Errors not tied to a request: an unexpected frame, a transport error, a handler that threw.</summary>
        public event EventHandler<ErrorEventArgs> Error;

        // --- driving ---

        /// <summary>Opens the connection (and sends hello); completes, in Poll(), once it is open.
        /// Calling it again returns the same task.</summary>
        public Task Connect()
        {
            lock (gate)
            {
                if (opened != null) return opened.Task;
                opened = new TaskCompletionSource<bool>();
                if (CloseStatus != null)
                {
                    opened.SetException(new ConnectionClosedException(CloseStatus.Code, CloseStatus.Reason));
                    return opened.Task;
                }
                try
                {
                    socket = Open();
                }
                catch (Exception e)
                {
                    opened.SetException(e);
                    return opened.Task;
                }
                SendHello();
                return opened.Task;
            }
        }

        /// <summary>Acts on everything the connection reported since the last call: applies frames,
        /// raises events, completes requests, runs the reconnection timers. Call it once per frame
        /// from the game's main thread (Unity: Update()). Returns the number of reports handled.
        /// A call from inside an event handler does nothing.</summary>
        public int Poll()
        {
            Exception failure;
            int handled = 0;
            lock (gate)
            {
                if (inPoll) return 0;
                inPoll = true;
                try
                {
                    if (socket != null) socket.Poll();
                    if (attempt != null) attempt.Poll();
                    // Only what was there at the start: a flood cannot keep one call going.
                    int count = inbox.Count;
                    Incoming item;
                    while (handled < count && inbox.TryDequeue(out item))
                    {
                        handled++;
                        Handle(item);
                    }
                    RunTimers();
                }
                finally
                {
                    inPoll = false;
                    failure = handlerFailure;
                    handlerFailure = null;
                }
            }
            // A handler of Error threw: nothing is left to report it to but the caller.
            if (failure != null) throw new AggregateException("an Error event handler threw", failure);
            return handled;
        }

        /// <summary>For programs without a game loop (.NET console apps, bots, servers): calls
        /// Poll() every <paramref name="intervalMs"/> on a background thread until the client is
        /// closed or StopPolling() is called. Events and task continuations then run on that
        /// thread. Not for Unity WebGL (no threads): call Poll() from Update() there.</summary>
        public void StartPolling(int intervalMs = 5)
        {
            lock (gate)
            {
                if (polling) return;
                polling = true;
                poller = new Thread(() =>
                {
                    while (polling)
                    {
                        try
                        {
                            Poll();
                        }
                        catch (AggregateException)
                        {
                            // An Error handler threw; the loop goes on.
                        }
                        if (CloseStatus != null && inbox.IsEmpty) break;
                        Thread.Sleep(intervalMs);
                    }
                    polling = false;
                });
                poller.IsBackground = true;
                poller.Name = "SessionClient.Poll";
                poller.Start();
            }
        }

        /// <summary>Stops the thread StartPolling() started.</summary>
        public void StopPolling()
        {
            polling = false;
        }

        // --- requests ---

        /// <summary>Creates a session and joins it as its first member. <paramref name="playerData"/>
        /// is the default every member starts with; it fixes the key structure of every updatePlayer.
        /// Data: a JToken (a JRaw goes out verbatim), any object (JToken.FromObject) or null ({}).
        /// Completes with the session once the server confirms.</summary>
        public Task<Session> CreateSession(object sessionData = null, object playerData = null, SessionOptions options = null)
        {
            var fields = DataFields(sessionData ?? new JObject(), playerData ?? new JObject());
            if (options != null) fields += ",\"options\":" + options.ToJson().ToString(Newtonsoft.Json.Formatting.None);
            return Start<Session>(new Request("createSession", "sessionJoin", fields));
        }

        /// <summary>Joins a session; -1 (the default) joins the latest public one. Completes on the
        /// server's sessionJoin; the members already there follow as PlayerJoin events (and in
        /// Session.Players). <paramref name="password"/>: for a session created with one.</summary>
        public Task<Session> JoinSession(long sessionID = -1, string password = null)
        {
            var fields = ",\"sessionID\":" + sessionID;
            if (password != null) fields += ",\"password\":" + Json.Quote(password);
            return Start<Session>(new Request("joinSession", "sessionJoin", fields));
        }

        /// <summary>Replaces this player's playerData; it must keep the key structure of the
        /// session's default (else SessionException code 4). Completes with the data as broadcast.</summary>
        public Task<JToken> UpdatePlayer(object playerData)
        {
            if (playerData == null) throw new ArgumentNullException("playerData");
            return Start<JToken>(new Request("updatePlayer", "playerUpdate", DataFields(null, playerData)));
        }

        /// <summary>Replaces the sessionData and the default playerData; every member's playerData
        /// resets to the new default. Completes when the update comes back.</summary>
        public Task<Session> UpdateSession(object sessionData = null, object playerData = null)
        {
            var s = Json.Serialize(sessionData ?? new JObject());
            var p = Json.Serialize(playerData ?? new JObject());
            var req = new Request("updateSession", "sessionUpdate", DataFields(new JRaw(s), new JRaw(p)));
            // The server passes data through as sent, so the texts identify our own update among
            // the sessionUpdates other members cause.
            req.Expect = s + "\u0000" + p;
            return Start<Session>(req);
        }

        /// <summary>Leaves the current session. Completes on the server's sessionLeave.</summary>
        public Task LeaveSession()
        {
            return Start<object>(new Request("leaveSession", "sessionLeave", ""));
        }

        /// <summary>The host removes another member (access extension): it gets sessionLeave and is
        /// back in the lobby; the others get PlayerLeave. Completes on that PlayerLeave; fails with
        /// 29 (not the host) or 30 (no such other member).</summary>
        public Task KickPlayer(long playerID)
        {
            var req = new Request("kickPlayer", "playerLeave", ",\"playerID\":" + playerID);
            req.Target = playerID;
            return Start<object>(req);
        }

        /// <summary>The host locks (or unlocks) the session: joins get error 28 while it is locked.
        /// Completes with the lock state the server confirms.</summary>
        public Task<bool> LockSession(bool locked = true)
        {
            return Start<bool>(new Request("lockSession", "sessionLock", ",\"locked\":" + (locked ? "true" : "false")));
        }

        /// <summary>Sends <paramref name="data"/> (any JSON value; a JRaw verbatim) to the other
        /// members, or only to the player IDs in <paramref name="to"/> (the sender too, if listed):
        /// each that asked for messages gets a Message event; nothing is stored. Completes with how
        /// many got it; fails with 31 if <paramref name="to"/> names a player not in the session
        /// (then nobody gets it), 2 from the lobby.</summary>
        public Task<int> SendMessage(object data, IEnumerable<long> to = null)
        {
            var fields = ",\"data\":" + (data == null ? "null" : Json.Serialize(data));
            if (to != null) fields += ",\"to\":[" + string.Join(",", to) + "]";
            return Start<int>(new Request("sendMessage", "messageSent", fields));
        }

        /// <summary>Lists public sessions, newest first (from the lobby; 32 from a session):
        /// <paramref name="filter"/> (a JObject, or any object) matches metadata keys exactly;
        /// <paramref name="available"/> leaves out full, locked and password sessions;
        /// <paramref name="after"/> is a previous page's Next.</summary>
        public Task<SessionList> ListSessions(object filter = null, bool available = false, long? after = null, int? limit = null)
        {
            var fields = "";
            if (filter != null) fields += ",\"filter\":" + Json.Serialize(filter);
            if (available) fields += ",\"available\":true";
            if (after.HasValue) fields += ",\"after\":" + after.Value;
            if (limit.HasValue) fields += ",\"limit\":" + limit.Value;
            return Start<SessionList>(new Request("listSessions", "sessionList", fields));
        }

        /// <summary>Quick play: joins the fullest public session matching <paramref name="filter"/>
        /// that has room, or creates one with this data and options (its metadata the filter unless
        /// the options set one). Completes with the session, as CreateSession and JoinSession do.</summary>
        public Task<Session> JoinOrCreate(object filter, object sessionData = null, object playerData = null, SessionOptions options = null)
        {
            var fields = ",\"filter\":" + Json.Serialize(filter ?? new JObject());
            fields += DataFields(sessionData ?? new JObject(), playerData ?? new JObject());
            if (options != null) fields += ",\"options\":" + options.ToJson().ToString(Newtonsoft.Json.Formatting.None);
            return Start<Session>(new Request("joinOrCreate", "sessionJoin", fields));
        }

        /// <summary>The host replaces the session's metadata (what ListSessions shows); completes
        /// with it. Fails with 29 if this player is not the host.</summary>
        public Task<JToken> SetMetadata(object metadata)
        {
            if (metadata == null) throw new ArgumentNullException("metadata");
            return Start<JToken>(new Request("setMetadata", "sessionMetadata", ",\"metadata\":" + Json.Serialize(metadata)));
        }

        /// <summary>Measures the round trip to the server and its clock's offset from this one's
        /// (in the lobby too).</summary>
        public Task<PingResult> Ping()
        {
            var watch = Stopwatch.StartNew();
            double sentAt = (DateTime.UtcNow - Epoch).TotalMilliseconds;
            var req = new Request("ping", "pong", ",\"t\":" + Math.Round(sentAt).ToString(System.Globalization.CultureInfo.InvariantCulture));
            var tcs = new TaskCompletionSource<PingResult>();
            req.Resolve = v =>
            {
                double rtt = watch.Elapsed.TotalMilliseconds;
                var frame = (Frame)v;
                var serverTime = frame.Long("serverTime") ?? 0;
                // In doubles: the server's number is never added to in a type that can wrap.
                tcs.TrySetResult(new PingResult { Rtt = rtt, Offset = serverTime - (sentAt + rtt / 2), ServerTime = serverTime });
            };
            req.Reject = e => tcs.TrySetException(e);
            Enqueue(req);
            return tcs.Task;
        }

        static readonly DateTime Epoch = new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc);

        /// <summary>Closes the connection (normally, 1000); completes once closed (in Poll()). In a
        /// session whose seat the server would keep for a resume, leaves it first, so the others
        /// see this player leave now. While reconnecting, stops: no more attempts.</summary>
        public Task<CloseInfo> Close(int code = 1000, string reason = "")
        {
            lock (gate)
            {
                if (CloseStatus != null) return Task.FromResult(CloseStatus);
                userClosed = true;
                var tcs = new TaskCompletionSource<CloseInfo>();
                closeWaiters.Add(tcs);
                if (socket == null || down)
                {
                    // Never connected, or between a drop and a resume: no connection to close.
                    StopAttempts();
                    FinalClose(code, reason);
                }
                else
                {
                    if (token != null && Session != null && socketOpen)
                    {
                        var leave = new Request("leaveSession", "sessionLeave", "") { Internal = "leave" };
                        leave.Resolve = v => { };
                        leave.Reject = e => { };
                        pending.Add(leave);
                        socket.Send(leave.Text);
                    }
                    socket.Close(code, reason);
                }
                return tcs.Task;
            }
        }

        /// <summary>Sends a command this client does not know, as it is (a JObject with a command).</summary>
        public void Send(JObject message)
        {
            if (message == null) throw new ArgumentNullException("message");
            lock (gate)
            {
                if (CloseStatus != null) throw new ConnectionClosedException(CloseStatus.Code, CloseStatus.Reason);
                if (socket == null) throw new InvalidOperationException("call Connect() first");
                var text = message.ToString(Newtonsoft.Json.Formatting.None);
                if (queueing) queue.Add(new Request(null, null, null) { Raw = text });
                else socket.Send(text);
            }
        }

        /// <summary>Closes without waiting and stops polling.</summary>
        public void Dispose()
        {
            StopPolling();
            Close();
        }

        // --- internals: requests ---

        sealed class Request
        {
            public Request(string command, string reply, string fields)
            {
                Command = command;
                Reply = reply;
                if (command != null) Text = "{\"command\":\"" + command + "\"" + fields + "}";
            }

            public readonly string Command;
            public readonly string Reply;
            public readonly string Text;
            public string Raw;
            public string Internal;
            public string Expect;
            public long? Target;
            public Action<object> Resolve;
            public Action<Exception> Reject;
        }

        string DataFields(object sessionData, object playerData)
        {
            bool isLong = Spelling == Spelling.Long;
            var sb = new StringBuilder();
            if (sessionData != null) sb.Append(isLong ? ",\"sessionData\":" : ",\"session\":").Append(Json.Serialize(sessionData));
            if (playerData != null) sb.Append(isLong ? ",\"playerData\":" : ",\"player\":").Append(Json.Serialize(playerData));
            return sb.ToString();
        }

        Task<T> Start<T>(Request req)
        {
            var tcs = new TaskCompletionSource<T>();
            req.Resolve = v => tcs.TrySetResult(v == null ? default(T) : (T)v);
            req.Reject = e => tcs.TrySetException(e);
            Enqueue(req);
            return tcs.Task;
        }

        void Enqueue(Request req)
        {
            lock (gate)
            {
                if (CloseStatus != null) req.Reject(new ConnectionClosedException(CloseStatus.Code, CloseStatus.Reason));
                else if (socket == null) req.Reject(new InvalidOperationException("call Connect() first"));
                else if (queueing) queue.Add(req);
                else SendRequest(req);
            }
        }

        void SendRequest(Request req)
        {
            pending.Add(req);
            socket.Send(req.Text);
        }

        void SendHello()
        {
            if (features.Count == 0) return;
            var req = new Request("hello", "hello", ",\"features\":" + new JArray(features.ToArray()).ToString(Newtonsoft.Json.Formatting.None));
            req.Internal = "hello";
            req.Resolve = v => Features = GrantedFeatures(v as Frame);
            req.Reject = e => Features = new string[0];
            SendRequest(req);
        }

        static IReadOnlyList<string> GrantedFeatures(Frame frame)
        {
            var list = new List<string>();
            var array = frame == null ? null : frame.Get("features") as JArray;
            if (array != null)
            {
                foreach (var f in array) if (f.Type == JTokenType.String) list.Add((string)f);
            }
            return list;
        }

        // The oldest pending request, if the reply `command` may answer it (an error reply
        // answers whatever is oldest).
        Request Head(string command)
        {
            // A server without extensions may ignore hello in silence (the original does): a
            // reply to a later command then comes first, and hello was granted nothing.
            if (pending.Count > 0 && pending[0].Internal == "hello" && command != "hello" && command != "error")
            {
                var skipped = pending[0];
                pending.RemoveAt(0);
                skipped.Resolve(null);
            }
            if (pending.Count == 0) return null;
            return pending[0].Reply == command || command == "error" ? pending[0] : null;
        }

        // Takes the oldest pending request, which the reply `command` must answer.
        Request Take(string command)
        {
            var head = Head(command);
            if (head == null)
            {
                if (pending.Count > 0)
                {
                    Report(new InvalidOperationException("reply " + command + " while waiting for " + pending[0].Reply + " (to " + pending[0].Command + ")"));
                }
                return null;
            }
            pending.RemoveAt(0);
            return head;
        }

        // --- internals: transport reports ---

        sealed class Incoming
        {
            public ITransport From;
            public int Kind; // 0 open, 1 text, 2 error, 3 close
            public string Text;
            public int Code;
            public Exception Error;
        }

        sealed class Listener : ITransportListener
        {
            readonly SessionClient client;
            readonly ITransport transport;

            public Listener(SessionClient client, ITransport transport)
            {
                this.client = client;
                this.transport = transport;
            }

            public void OnOpen() { Put(new Incoming { Kind = 0 }); }
            public void OnMessage(string text) { Put(new Incoming { Kind = 1, Text = text }); }
            public void OnError(Exception error) { Put(new Incoming { Kind = 2, Error = error }); }
            public void OnClose(int code, string reason) { Put(new Incoming { Kind = 3, Code = code, Text = reason ?? "" }); }

            void Put(Incoming item)
            {
                item.From = transport;
                client.inbox.Enqueue(item);
            }
        }

        ITransport Open(string to = null)
        {
            var transport = makeTransport();
            if (transport == null) throw new InvalidOperationException("the Transport option made no transport");
            transport.Open(to ?? url, new Listener(this, transport));
            return transport;
        }

        /// <summary>The URL a resume connects to: <paramref name="url"/>, except on the edge host's
        /// direct path (a path ending in <c>/session/new</c> or <c>/session/&lt;id&gt;</c>), where it is
        /// <c>/session/&lt;the token's session ID&gt;</c> (a token is <c>sessionID.playerID.secret</c>);
        /// query and fragment are kept.</summary>
        public static string ResumeUrl(string url, string token)
        {
            var session = token == null ? "" : token.Split('.')[0];
            Uri uri;
            if (!IsDigits(session) || !Uri.TryCreate(url, UriKind.Absolute, out uri)) return url;
            var path = uri.AbsolutePath;
            const string mark = "/session/";
            var cut = path.LastIndexOf(mark, StringComparison.Ordinal);
            if (cut < 0) return url;
            var last = path.Substring(cut + mark.Length);
            if (last != "new" && !IsDigits(last)) return url;
            var builder = new UriBuilder(uri) { Path = path.Substring(0, cut + mark.Length) + session };
            return builder.Uri.AbsoluteUri;
        }

        static bool IsDigits(string s)
        {
            if (string.IsNullOrEmpty(s)) return false;
            foreach (var c in s) if (c < '0' || c > '9') return false;
            return true;
        }

        void Handle(Incoming item)
        {
            if (item.From == socket)
            {
                switch (item.Kind)
                {
                    case 0:
                        socketOpen = true;
                        if (opened != null) opened.TrySetResult(true);
                        break;
                    case 1:
                        OnFrame(item.Text);
                        break;
                    case 2:
                        Report(item.Error);
                        break;
                    default:
                        socketOpen = false;
                        OnClose(item.Code, item.Text);
                        break;
                }
            }
            else if (item.From == attempt)
            {
                switch (item.Kind)
                {
                    case 1:
                        OnAttemptFrame(item.Text);
                        break;
                    case 3:
                        AttemptFailed(item.Code, item.Text, null);
                        break;
                }
            }
            // Anything else comes from a connection let go of.
        }

        Frame Parse(string text)
        {
            var frame = Frame.TryParse(text);
            if (frame == null)
            {
                Report(new FormatException("unexpected frame from the server: " + (text.Length > 200 ? text.Substring(0, 200) : text)));
                return null;
            }
            Emit(FrameReceived, new FrameEventArgs { Frame = frame });
            return frame;
        }

        void OnFrame(string text)
        {
            var frame = Parse(text);
            if (frame == null) return;
            bool sessionEvent = frame.Error == 0 && SessionEvents.Contains(frame.Command);
            if (sessionEvent) received++;
            if (frame.Error != 0) OnErrorReply(frame);
            else Dispatch(frame);
            // The frames a resume replays (session events only: hostChange and sessionLock are
            // neither counted nor replayed): once the last is applied, the client is back.
            if (sessionEvent && replayLeft > 0 && --replayLeft == 0) FinishResume();
        }

        void Dispatch(Frame frame)
        {
            switch (frame.Command)
            {
                case "sessionJoin": OnSessionJoin(frame); break;
                case "sessionLeave": OnSessionLeave(frame); break;
                case "playerJoin": OnPlayerJoin(frame); break;
                case "playerUpdate": OnPlayerUpdate(frame); break;
                case "playerLeave": OnPlayerLeave(frame); break;
                case "sessionUpdate": OnSessionUpdate(frame); break;
                case "hostChange": OnHostChange(frame); break;
                case "sessionLock": OnSessionLock(frame); break;
                case "message": OnMessage(frame); break;
                case "messageSent":
                    var sent = Take("messageSent");
                    if (sent != null) sent.Resolve((int)Math.Min(Math.Max(frame.Long("recipients") ?? 0, 0), int.MaxValue));
                    break;
                case "pong":
                    var pong = Take("pong");
                    if (pong != null) pong.Resolve(frame);
                    break;
                case "sessionList":
                    var list = Take("sessionList");
                    if (list != null) list.Resolve(SessionListOf(frame));
                    break;
                case "sessionMetadata":
                    var metadata = Take("sessionMetadata");
                    if (metadata != null) metadata.Resolve(DataOf(frame, "metadata"));
                    break;
                case "hello":
                    var req = Take("hello");
                    if (req != null) req.Resolve(frame);
                    if (PlayerID == null) PlayerID = frame.Long("playerID");
                    break;
                default:
                    Report(new FormatException("unknown command from the server: " + frame.Command));
                    break;
            }
        }

        void OnErrorReply(Frame frame)
        {
            // Every error reply answers the sender's own oldest command, in order.
            var err = new SessionException(frame.Error, frame.Command, frame.String("message"));
            var req = Take(frame.Command);
            if (req != null) req.Reject(err);
            else Report(err);
        }

        static SessionList SessionListOf(Frame frame)
        {
            var sessions = new List<ListedSession>();
            var array = frame.Get("sessions") as JArray;
            if (array != null)
            {
                foreach (var item in array.OfType<JObject>())
                {
                    var id = item["sessionID"];
                    if (id == null || id.Type != JTokenType.Integer) continue;
                    var max = item["maxPlayers"];
                    var players = item["players"];
                    sessions.Add(new ListedSession
                    {
                        SessionID = id.Value<long>(),
                        Players = players != null && players.Type == JTokenType.Integer ? players.Value<int>() : 0,
                        MaxPlayers = max != null && max.Type == JTokenType.Integer ? (int?)max.Value<int>() : null,
                        Metadata = item["metadata"] ?? new JObject(),
                    });
                }
            }
            return new SessionList { Sessions = sessions, Next = frame.Long("next") };
        }

        JToken DataOf(Frame frame, string key)
        {
            var token = key == null ? null : frame.Get(key);
            return token ?? new JObject();
        }

        void OnSessionJoin(Frame frame)
        {
            var sessionID = frame.Long("sessionID");
            var playerID = frame.Long("playerID");
            var req = Take("sessionJoin");
            if (sessionID == null || playerID == null)
            {
                var err = new FormatException("sessionJoin without its sessionID or playerID: " + frame.Text);
                if (req != null) req.Reject(err);
                else Report(err);
                return;
            }
            PlayerID = playerID;
            var playerData = DataOf(frame, frame.PlayerKey);
            var session = new Session(sessionID.Value, DataOf(frame, frame.SessionKey), playerData);
            session.Players.Set(playerID.Value, playerData);
            session.HostID = frame.Long("hostID");
            Session = session;
            token = frame.String("resumeToken");
            received = 0;
            Emit(SessionJoin, new SessionJoinEventArgs
            {
                SessionID = sessionID.Value,
                PlayerID = playerID.Value,
                Data = session.Data,
                PlayerData = playerData,
                Created = req != null && req.Command == "createSession",
            });
            if (req != null) req.Resolve(session);
        }

        void OnSessionLeave(Frame frame)
        {
            long? sessionID = Session != null ? Session.ID : (long?)null;
            Session = null;
            token = null;
            // A sessionLeave no leaveSession asked for: the host kicked this player (`kicked`
            // says so with the host feature; without it, no leave was pending).
            bool kicked = frame.Bool("kicked") == true || Head("sessionLeave") == null;
            var req = kicked ? null : Take("sessionLeave");
            // The leave Close() sends is part of closing: Closed reports it.
            if (req == null || req.Internal != "leave") Emit(SessionLeave, new SessionLeaveEventArgs { SessionID = sessionID, Kicked = kicked });
            if (req != null) req.Resolve(null);
        }

        void OnPlayerJoin(Frame frame)
        {
            var id = frame.Long("playerID");
            if (id == null) { Report(new FormatException("playerJoin without a playerID")); return; }
            var key = frame.PlayerKey;
            var data = DataOf(frame, key);
            if (Session != null) Session.Players.Set(id.Value, data);
            if (snapshotSeen != null) snapshotSeen.Add(id.Value);
            Emit(PlayerJoin, new PlayerJoinEventArgs { PlayerID = id.Value, Data = data, Raw = key == null ? "{}" : frame.Raw(key) });
        }

        void OnPlayerUpdate(Frame frame)
        {
            var id = frame.Long("playerID");
            if (id == null) { Report(new FormatException("playerUpdate without a playerID")); return; }
            var key = frame.PlayerKey;
            var data = DataOf(frame, key);
            if (Session != null) Session.Players.Set(id.Value, data);
            bool self = id == PlayerID;
            // Our own update comes back to us as the reply; those of others are events only.
            Request req = null;
            if (self && Head("playerUpdate") != null)
            {
                req = pending[0];
                pending.RemoveAt(0);
            }
            Emit(PlayerUpdate, new PlayerUpdateEventArgs { PlayerID = id.Value, Data = data, Raw = key == null ? "{}" : frame.Raw(key), Self = self });
            if (req != null) req.Resolve(data);
        }

        void OnPlayerLeave(Frame frame)
        {
            var id = frame.Long("playerID");
            if (id == null) { Report(new FormatException("playerLeave without a playerID")); return; }
            JToken data = null;
            if (Session != null && Session.Players.TryGetValue(id.Value, out data)) Session.Players.Remove(id.Value);
            // A kick by this client is answered by the kicked member's playerLeave.
            Request req = null;
            var head = Head("playerLeave");
            if (head != null && head.Target == id)
            {
                req = head;
                pending.RemoveAt(0);
            }
            Emit(PlayerLeave, new PlayerLeaveEventArgs { PlayerID = id.Value, Data = data, Kicked = req != null });
            if (req != null) req.Resolve(null);
        }

        void OnSessionUpdate(Frame frame)
        {
            var sKey = frame.SessionKey;
            var pKey = frame.PlayerKey;
            var data = DataOf(frame, sKey);
            var playerData = DataOf(frame, pKey);
            if (Session != null)
            {
                Session.Data = data;
                Session.PlayerData = playerData;
                foreach (var id in Session.Players.Keys) Session.Players.Set(id, playerData);
            }
            var echo = (sKey == null ? "{}" : frame.Raw(sKey)) + "\u0000" + (pKey == null ? "{}" : frame.Raw(pKey));
            var head = Head("sessionUpdate");
            Request req = null;
            if (head != null && head.Expect == echo)
            {
                req = head;
                pending.RemoveAt(0);
            }
            Emit(SessionUpdate, new SessionUpdateEventArgs { Data = data, PlayerData = playerData, Raw = sKey == null ? "{}" : frame.Raw(sKey), Self = req != null });
            if (req != null) req.Resolve(Session);
        }

        void OnMessage(Frame frame)
        {
            var id = frame.Long("playerID");
            if (id == null) { Report(new FormatException("message without a playerID")); return; }
            var raw = frame.Raw("data");
            Emit(Message, new MessageEventArgs { PlayerID = id.Value, Data = frame.Get("data") ?? JValue.CreateNull(), Raw = raw ?? "null" });
        }

        void OnHostChange(Frame frame)
        {
            var id = frame.Long("playerID");
            if (id == null) { Report(new FormatException("hostChange without a playerID")); return; }
            if (Session != null) Session.HostID = id;
            Emit(HostChange, new HostChangeEventArgs { PlayerID = id.Value });
        }

        void OnSessionLock(Frame frame)
        {
            bool locked = frame.Bool("locked") == true;
            if (Session != null) Session.Locked = locked;
            // Only the host can lock: a sessionLock answers our lockSession when we are the host
            // (or when we cannot tell, having no host feature; then none but ours come).
            Request req = null;
            var head = Head("sessionLock");
            if (head != null && (Session == null || Session.HostID == null || Session.HostID == PlayerID))
            {
                req = head;
                pending.RemoveAt(0);
            }
            Emit(SessionLock, new SessionLockEventArgs { Locked = locked, Self = req != null });
            if (req != null) req.Resolve(locked);
        }

        void OnClose(int code, string reason)
        {
            if (CloseStatus != null) return;
            bool resumable = reconnect != null && !userClosed && Session != null && token != null && Meanings.Reconnects(code);
            if (resumable) Dropped(code, reason);
            else FinalClose(code, reason);
        }

        // Closed for good: every request waiting fails, and Closed is the last event.
        void FinalClose(int code, string reason)
        {
            if (CloseStatus != null) return;
            CloseStatus = new CloseInfo { Code = code, Reason = reason ?? "" };
            down = false;
            queueing = false;
            ReconnectState = null;
            var err = new ConnectionClosedException(code, reason);
            if (opened != null) opened.TrySetException(err);
            var failed = new List<Request>(pending);
            failed.AddRange(queue);
            pending.Clear();
            queue.Clear();
            foreach (var req in failed) if (req.Reject != null) req.Reject(err);
            Session = null;
            token = null;
            Emit(Closed, new CloseEventArgs { Code = code, Reason = reason ?? "", Meaning = Meanings.OfClose(code) });
            foreach (var waiter in closeWaiters) waiter.TrySetResult(CloseStatus);
            closeWaiters.Clear();
        }

        // --- internals: reconnecting ---

        long Now { get { return clock.ElapsedMilliseconds; } }

        // The connection dropped while in a session: requests in flight fail (whether the server
        // carried them out is unknown; the replay shows it), later ones wait, attempts begin.
        void Dropped(int code, string reason)
        {
            var err = new ConnectionClosedException(code, reason);
            var failed = pending.FindAll(r => r.Internal == null);
            pending.Clear();
            foreach (var req in failed) req.Reject(err);
            replayLeft = 0;
            down = true;
            queueing = true;
            dropSince = Now;
            dropSinceUtc = DateTime.UtcNow;
            dropAttempt = 0;
            ScheduleAttempt(code, reason, null);
        }

        void ScheduleAttempt(int code, string reason, SessionException error)
        {
            int next = dropAttempt + 1;
            long elapsed = Now - dropSince;
            if (next > reconnect.MaxAttempts || elapsed >= reconnect.MaxTimeMs)
            {
                GiveUp(LostReason.Timeout, code, reason, error);
                return;
            }
            // Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(attempt-1))].
            double bound = Math.Min(reconnect.MaxDelayMs, reconnect.BaseDelayMs * Math.Pow(2, Math.Min(next - 1, 30)));
            int delay = (int)Math.Min(Math.Round(random.NextDouble() * bound), reconnect.MaxTimeMs - elapsed);
            dropAttempt = next;
            ReconnectState = new ReconnectState { Attempt = next, Delay = delay, Since = dropSinceUtc };
            nextAttemptAt = Now + delay;
            Emit(Reconnecting, new ReconnectingEventArgs { Attempt = next, Delay = delay, Code = code, Reason = reason ?? "", Error = error });
        }

        void RunTimers()
        {
            if (nextAttemptAt >= 0 && Now >= nextAttemptAt)
            {
                nextAttemptAt = -1;
                AttemptResume();
            }
            if (attempt != null && Now >= attemptDeadline) AttemptFailed(1006, "no answer in time", null);
        }

        void StopAttempts()
        {
            nextAttemptAt = -1;
            if (attempt != null) attempt.Close(1000, "");
            attempt = null;
        }

        // One attempt: a new connection sends hello and resumeSession (pipelined; the transport
        // holds them until it is open) and waits for the answer to the resume.
        void AttemptResume()
        {
            ITransport transport;
            try
            {
                transport = Open(ResumeUrl(url, token));
            }
            catch (Exception e)
            {
                ScheduleAttempt(1006, e.Message, null);
                return;
            }
            attempt = transport;
            attemptWithReceived = true;
            attemptDeadline = Now + reconnect.AttemptTimeoutMs;
            transport.Send("{\"command\":\"hello\",\"features\":" + new JArray(features.ToArray()).ToString(Newtonsoft.Json.Formatting.None) + "}");
            SendResume();
        }

        void SendResume()
        {
            var text = "{\"command\":\"resumeSession\",\"resumeToken\":" + Json.Quote(token);
            if (attemptWithReceived) text += ",\"received\":" + received;
            attempt.Send(text + "}");
        }

        // A failed attempt: the next one, unless the close is final.
        void AttemptFailed(int code, string reason, SessionException error)
        {
            if (attempt == null) return;
            var transport = attempt;
            attempt = null;
            transport.Close(1000, "");
            if (error != null || Meanings.Reconnects(code)) ScheduleAttempt(code, reason, error);
            else GiveUp(LostReason.Closed, code, reason, null);
        }

        void OnAttemptFrame(string text)
        {
            var frame = Parse(text);
            if (frame == null) return;
            if (frame.Command == "hello")
            {
                Features = frame.Error == 0 ? GrantedFeatures(frame) : new string[0];
                return;
            }
            if (frame.Command != "sessionResume")
            {
                Report(new FormatException("unexpected " + frame.Command + " before sessionResume"));
                return;
            }
            var transport = attempt;
            if (frame.Error == 0)
            {
                attempt = null;
                OnResumed(transport, frame);
                return;
            }
            var err = new SessionException(frame.Error, "sessionResume", frame.String("message"));
            if (frame.Error == 24)
            {
                AttemptFailed(1006, "the old connection is not yet found gone", err);
                return;
            }
            if (frame.Error == 25 && attemptWithReceived)
            {
                // The count disagrees with the server's (a bug on one side): resume without it,
                // from where the server found the connection gone.
                Report(err);
                attemptWithReceived = false;
                SendResume();
                return;
            }
            // 22 (and anything else): the seat is gone. This connection stays, in the lobby.
            attempt = null;
            socket = transport;
            socketOpen = true;
            down = false;
            Lose(LostReason.Rejected, err);
        }

        // sessionResume, error 0: `transport` carries the seat now; the replay follows it.
        void OnResumed(ITransport transport, Frame frame)
        {
            socket = transport;
            socketOpen = true;
            down = false;
            var playerID = frame.Long("playerID");
            if (playerID != null) PlayerID = playerID;
            token = frame.String("resumeToken");
            received = 0;
            bool snapshot = frame.String("replay") == "snapshot";
            var missed = frame.Long("missed");
            resuming = new ResumedEventArgs
            {
                Replay = snapshot ? Replay.Snapshot : Replay.Frames,
                Missed = snapshot ? (int?)null : (int)Math.Min(missed ?? 0, int.MaxValue),
            };
            var hostID = frame.Long("hostID");
            if (hostID != null) Session.HostID = hostID;
            if (snapshot)
            {
                // The state now, instead of the changes: sessionData and our own playerData here,
                // then a playerJoin of every other member. Who is not among them is gone.
                var sKey = frame.SessionKey;
                if (sKey != null) Session.Data = frame.Get(sKey);
                var pKey = frame.PlayerKey;
                if (pKey != null && PlayerID != null) Session.Players.Set(PlayerID.Value, frame.Get(pKey));
                snapshotSeen = new HashSet<long>();
                var members = frame.Long("members") ?? 0;
                replayLeft = Math.Max(members, 0);
            }
            else
            {
                replayLeft = Math.Max(missed ?? 0, 0);
            }
            if (replayLeft == 0) FinishResume();
        }

        // The replay is applied: the client is back, and what waited is sent.
        void FinishResume()
        {
            replayLeft = 0;
            if (snapshotSeen != null)
            {
                var seen = snapshotSeen;
                snapshotSeen = null;
                foreach (var member in Session.Players)
                {
                    if (member.Key == PlayerID || seen.Contains(member.Key)) continue;
                    Session.Players.Remove(member.Key);
                    Emit(PlayerLeave, new PlayerLeaveEventArgs { PlayerID = member.Key, Data = member.Value });
                }
            }
            resuming.Attempts = dropAttempt;
            ReconnectState = null;
            queueing = false;
            var waiting = new List<Request>(queue);
            queue.Clear();
            foreach (var req in waiting)
            {
                if (req.Raw != null) socket.Send(req.Raw);
                else SendRequest(req);
            }
            var args = resuming;
            resuming = null;
            Emit(Resumed, args);
        }

        // The seat could not be taken back.
        void GiveUp(LostReason reason, int code, string closeReason, Exception error)
        {
            StopAttempts();
            Lose(reason, error ?? new ConnectionClosedException(code, closeReason));
            FinalClose(code, closeReason);
        }

        void Lose(LostReason reason, Exception cause)
        {
            long? sessionID = Session != null ? Session.ID : (long?)null;
            var err = new SessionLostException(reason, sessionID, cause);
            ReconnectState = null;
            queueing = false;
            snapshotSeen = null;
            replayLeft = 0;
            Session = null;
            token = null;
            // A new connection has a new player ID, known from its hello or first sessionJoin.
            if (reason == LostReason.Rejected) PlayerID = null;
            var waiting = new List<Request>(queue);
            queue.Clear();
            foreach (var req in waiting)
            {
                if (req.Reject != null) req.Reject(err);
            }
            Emit(Lost, new LostEventArgs { Reason = reason, SessionID = sessionID, Error = cause });
        }

        // --- internals: events ---

        void Emit<T>(EventHandler<T> handlers, T args) where T : EventArgs
        {
            if (handlers == null) return;
            foreach (EventHandler<T> handler in handlers.GetInvocationList())
            {
                try
                {
                    handler(this, args);
                }
                catch (Exception e)
                {
                    Report(e);
                }
            }
        }

        void Report(Exception error)
        {
            var handlers = Error;
            if (handlers == null) return;
            foreach (EventHandler<ErrorEventArgs> handler in handlers.GetInvocationList())
            {
                try
                {
                    handler(this, new ErrorEventArgs { Error = error });
                }
                catch (Exception e)
                {
                    if (handlerFailure == null) handlerFailure = e;
                }
            }
        }
    }
}
