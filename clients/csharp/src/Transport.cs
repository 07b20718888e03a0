// The transport: one WebSocket connection. The client needs only text frames in and out, the
// open and the close code, so a transport is small: ClientWebSocket (below) for .NET and Unity's
// native players, a .jslib one for Unity WebGL (unity/), or one of the game's own.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace SessionServer
{
    /// <summary>What a transport reports. The calls may come from any thread (the client only
    /// queues them; Poll() acts on them): OnOpen at most once and first, OnMessage per text frame,
    /// OnError for trouble that does not end the connection, and OnClose exactly once, last.</summary>
    public interface ITransportListener
    {
        void OnOpen();
        void OnMessage(string text);
        void OnError(Exception error);
        /// <summary>The connection ended: the close code the server sent (1005 if its close frame
        /// had none), or 1006 when there was no close frame (a failed connect, a lost connection).</summary>
        void OnClose(int code, string reason);
    }

    /// <summary>One WebSocket connection. <see cref="SessionClient"/> makes a new one per connect
    /// and per reconnection attempt (SessionClientOptions.Transport).</summary>
    public interface ITransport
    {
        /// <summary>Starts connecting to <paramref name="url"/>; returns at once.</summary>
        void Open(string url, ITransportListener listener);
        /// <summary>Sends a text frame, after those sent before; frames sent before the open wait for it.
        /// Returns at once; never throws for a closed connection (OnClose says it).</summary>
        void Send(string text);
        /// <summary>Sends a close frame with the code after the frames queued, and ends the
        /// connection (OnClose follows).</summary>
        void Close(int code, string reason);
        /// <summary>Called by SessionClient.Poll() before it reads what was reported: a transport
        /// that must be driven from the game loop (Unity WebGL has no threads) reports here; others
        /// do nothing.</summary>
        void Poll();
    }

    /// <summary>The default transport: System.Net.WebSockets.ClientWebSocket (.NET Standard 2.1;
    /// Unity's native players, .NET 6+, Mono). Not for Unity WebGL: see unity/WebGLTransport.cs.</summary>
    public sealed class WebSocketTransport : ITransport
    {
        static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        readonly object gate = new object();
        readonly Queue<object> outgoing = new Queue<object>();
        readonly CancellationTokenSource cancel = new CancellationTokenSource();
        ClientWebSocket socket;
        ITransportListener listener;
        bool open, sending, closing;
        int closeCode = 1000;
        string closeReason = "";
        int reported;

        public WebSocketTransport()
        {
            Headers = new Dictionary<string, string>();
            MaxMessageBytes = 64 * 1024 * 1024;
            CloseTimeout = TimeSpan.FromSeconds(5);
        }

        /// <summary>Request headers of the handshake, e.g. <c>Authorization: Bearer &lt;JWT&gt;</c>.</summary>
        public IDictionary<string, string> Headers { get; private set; }
        /// <summary>The largest message taken from the server; a larger one closes with 1009.</summary>
        public int MaxMessageBytes { get; set; }
        /// <summary>How long to wait for the server's close frame after ours before dropping the connection.</summary>
        public TimeSpan CloseTimeout { get; set; }

        sealed class CloseFrame
        {
            public int Code;
            public string Reason;
        }

        public void Open(string url, ITransportListener listener)
        {
            if (listener == null) throw new ArgumentNullException("listener");
            var uri = new Uri(url);
            lock (gate)
            {
                if (this.listener != null) throw new InvalidOperationException("a transport opens once");
                this.listener = listener;
                socket = new ClientWebSocket();
                foreach (var header in Headers) socket.Options.SetRequestHeader(header.Key, header.Value);
            }
            Task.Run(() => Run(uri));
        }

        public void Send(string text)
        {
            Enqueue(text);
        }

        public void Close(int code, string reason)
        {
            lock (gate)
            {
                if (closing) return;
                closing = true;
                closeCode = code;
                closeReason = reason ?? "";
                if (!open)
                {
                    // Still connecting: there is no connection to send a close frame on.
                    cancel.Cancel();
                    return;
                }
            }
            Enqueue(new CloseFrame { Code = code, Reason = reason ?? "" });
        }

        public void Poll()
        {
        }

        void Enqueue(object item)
        {
            lock (gate)
            {
                if (reported != 0 || (closing && !(item is CloseFrame))) return;
                outgoing.Enqueue(item);
                if (!open || sending) return;
                sending = true;
            }
            Task.Run(() => SendLoop());
        }

        async Task Run(Uri uri)
        {
            try
            {
                await socket.ConnectAsync(uri, cancel.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                bool closed;
                lock (gate) closed = closing;
                if (closed) Report(closeCode, closeReason);
                else Report(1006, Describe(e));
                socket.Dispose();
                return;
            }
            listener.OnOpen();
            bool send;
            lock (gate)
            {
                open = true;
                send = outgoing.Count > 0 && !sending;
                if (send) sending = true;
            }
            if (send) _ = Task.Run(() => SendLoop());
            await ReceiveLoop().ConfigureAwait(false);
        }

        async Task SendLoop()
        {
            while (true)
            {
                object item;
                lock (gate)
                {
                    if (outgoing.Count == 0 || reported != 0)
                    {
                        sending = false;
                        return;
                    }
                    item = outgoing.Dequeue();
                }
                try
                {
                    var close = item as CloseFrame;
                    if (close != null)
                    {
                        // The server answers with its own close frame, which ends ReceiveLoop; a
                        // server that never does is dropped after CloseTimeout.
                        cancel.CancelAfter(CloseTimeout);
                        await socket.CloseOutputAsync((WebSocketCloseStatus)close.Code, close.Reason, CancellationToken.None).ConfigureAwait(false);
                    }
                    else
                    {
                        var bytes = StrictUtf8.GetBytes((string)item);
                        await socket.SendAsync(new ArraySegment<byte>(bytes), WebSocketMessageType.Text, true, CancellationToken.None).ConfigureAwait(false);
                    }
                }
                catch (Exception e)
                {
                    // A failed send means a failed connection: ReceiveLoop reports it as well;
                    // the first report wins.
                    socket.Abort();
                    Report(1006, Describe(e));
                    lock (gate) sending = false;
                    return;
                }
            }
        }

        async Task ReceiveLoop()
        {
            var buffer = new byte[16 * 1024];
            var message = new MemoryStream();
            while (true)
            {
                WebSocketReceiveResult result;
                try
                {
                    result = await socket.ReceiveAsync(new ArraySegment<byte>(buffer), cancel.Token).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    socket.Abort();
                    Report(1006, Describe(e));
                    return;
                }
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    int code = socket.CloseStatus.HasValue ? (int)socket.CloseStatus.Value : 1005;
                    string reason = socket.CloseStatusDescription ?? "";
                    if (socket.State == WebSocketState.CloseReceived)
                    {
                        // The server began the close: complete the handshake.
                        try
                        {
                            await socket.CloseOutputAsync(socket.CloseStatus ?? WebSocketCloseStatus.Empty, "", CancellationToken.None).ConfigureAwait(false);
                        }
                        catch (Exception)
                        {
                            // The connection is over either way.
                        }
                    }
                    Report(code, reason);
                    socket.Dispose();
                    return;
                }
                if (result.Count > MaxMessageBytes - message.Length)
                {
                    Fail(1009, "message larger than " + MaxMessageBytes + " bytes");
                    return;
                }
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage) continue;
                if (result.MessageType == WebSocketMessageType.Binary)
                {
                    listener.OnError(new InvalidDataException("a binary frame from the server (it sends text frames only)"));
                }
                else
                {
                    string text;
                    try
                    {
                        text = StrictUtf8.GetString(message.GetBuffer(), 0, (int)message.Length);
                    }
                    catch (DecoderFallbackException)
                    {
                        Fail(1007, "a text frame that is not valid UTF-8");
                        return;
                    }
                    listener.OnMessage(text);
                }
                message.SetLength(0);
            }
        }

        // The server broke the protocol: close with `code` and report the connection gone.
        void Fail(int code, string reason)
        {
            try
            {
                socket.CloseOutputAsync((WebSocketCloseStatus)code, reason, CancellationToken.None).Wait(CloseTimeout);
            }
            catch (Exception)
            {
                // Reported below either way.
            }
            socket.Abort();
            Report(code, reason);
        }

        void Report(int code, string reason)
        {
            if (Interlocked.Exchange(ref reported, 1) != 0) return;
            listener.OnClose(code, reason ?? "");
        }

        static string Describe(Exception e)
        {
            var inner = e;
            while (inner.InnerException != null) inner = inner.InnerException;
            return inner == e ? e.Message : e.Message + ": " + inner.Message;
        }
    }
}
