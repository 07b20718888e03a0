// The transport: one WebSocket connection. The client needs only text frames in and out, the
// open and the close code, so a transport is small: ClientWebSocket (below) for .NET and Unity's
// native players, a .jslib one for Unity WebGL (unity/), or one of the game's own.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
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

    /// <summary>The default transport: the platform's WebSocket (System.Net.WebSockets,
    /// <c>WebSocket.CreateFromStream</c>, .NET Standard 2.1; Unity's native players, .NET 6+, Mono)
    /// over a TCP (or TLS, for wss) connection whose HTTP upgrade it makes itself. Not
    /// ClientWebSocket: before .NET 8 (and in Mono, and so Unity) it aborts on a close frame with
    /// 1012, 1013 or 1014 (dotnet/runtime#82602), which the edge host sends; this transport hides
    /// those codes from the platform's check (<see cref="CloseCodeStream"/>) and reports them.
    /// No HTTP proxy is used. Not for Unity WebGL: see unity/WebGLTransport.cs.</summary>
    public sealed class WebSocketTransport : ITransport
    {
        static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        readonly object gate = new object();
        readonly Queue<object> outgoing = new Queue<object>();
        readonly CancellationTokenSource cancel = new CancellationTokenSource();
        WebSocket socket;
        CloseCodeStream stream;
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
                stream = await Handshake(uri, cancel.Token).ConfigureAwait(false);
                socket = WebSocket.CreateFromStream(stream, false, null, TimeSpan.FromSeconds(30));
            }
            catch (Exception e)
            {
                bool closed;
                lock (gate) closed = closing;
                if (closed) Report(closeCode, closeReason);
                else Report(1006, Describe(e));
                if (stream != null) stream.Dispose();
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
                    if (stream.HiddenCode != 0 && code == 1000) code = stream.HiddenCode;
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

        /// <summary>Opens the connection and makes the HTTP/1.1 upgrade (RFC 6455, 4.1) with
        /// <see cref="Headers"/>; the stream, ready for WebSocket frames.</summary>
        async Task<CloseCodeStream> Handshake(Uri uri, CancellationToken token)
        {
            bool tls;
            if (uri.Scheme == "ws") tls = false;
            else if (uri.Scheme == "wss") tls = true;
            else throw new ArgumentException("not a ws:// or wss:// URL: " + uri);
            var tcp = new TcpClient();
            var result = new CloseCodeStream(tcp);
            try
            {
                using (token.Register(() => tcp.Close()))
                {
                    await tcp.ConnectAsync(uri.DnsSafeHost, uri.Port).ConfigureAwait(false);
                    tcp.NoDelay = true;
                    Stream inner = tcp.GetStream();
                    if (tls)
                    {
                        var ssl = new SslStream(inner, false);
                        await ssl.AuthenticateAsClientAsync(uri.DnsSafeHost).ConfigureAwait(false);
                        inner = ssl;
                    }
                    result.Inner = inner;
                    var nonce = new byte[16];
                    using (var random = RandomNumberGenerator.Create()) random.GetBytes(nonce);
                    var key = Convert.ToBase64String(nonce);
                    var request = new StringBuilder();
                    request.Append("GET ").Append(uri.PathAndQuery).Append(" HTTP/1.1\r\n");
                    request.Append("Host: ").Append(uri.IsDefaultPort ? uri.Host : uri.Host + ":" + uri.Port).Append("\r\n");
                    request.Append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
                    request.Append("Sec-WebSocket-Key: ").Append(key).Append("\r\nSec-WebSocket-Version: 13\r\n");
                    foreach (var header in Headers)
                    {
                        if (header.Key.IndexOfAny(new[] { '\r', '\n', ':' }) >= 0 || header.Value.IndexOfAny(new[] { '\r', '\n' }) >= 0)
                        {
                            throw new ArgumentException("a header name or value with a line break: " + header.Key);
                        }
                        request.Append(header.Key).Append(": ").Append(header.Value).Append("\r\n");
                    }
                    request.Append("\r\n");
                    var bytes = Encoding.UTF8.GetBytes(request.ToString());
                    await inner.WriteAsync(bytes, 0, bytes.Length, token).ConfigureAwait(false);
                    await inner.FlushAsync(token).ConfigureAwait(false);

                    // The answer's head, byte by byte: what follows it is the server's first frames.
                    var head = new List<byte>();
                    var one = new byte[1];
                    while (head.Count < 4 || head[head.Count - 4] != '\r' || head[head.Count - 3] != '\n' || head[head.Count - 2] != '\r' || head[head.Count - 1] != '\n')
                    {
                        if (head.Count > 16 * 1024) throw new WebSocketException("the server's handshake answer is over 16 KiB");
                        if (await inner.ReadAsync(one, 0, 1, token).ConfigureAwait(false) == 0)
                        {
                            throw new WebSocketException("the server closed the connection during the handshake");
                        }
                        head.Add(one[0]);
                    }
                    var lines = Encoding.UTF8.GetString(head.ToArray()).Split(new[] { "\r\n" }, StringSplitOptions.None);
                    var status = lines[0].Split(new[] { ' ' }, 3);
                    if (status.Length < 2 || !status[0].StartsWith("HTTP/1.") || status[1] != "101")
                    {
                        throw new WebSocketException("the server refused the WebSocket handshake: " + lines[0]);
                    }
                    string accept = null, upgrade = null;
                    foreach (var line in lines)
                    {
                        int colon = line.IndexOf(':');
                        if (colon <= 0) continue;
                        var name = line.Substring(0, colon).Trim();
                        var value = line.Substring(colon + 1).Trim();
                        if (string.Equals(name, "Sec-WebSocket-Accept", StringComparison.OrdinalIgnoreCase)) accept = value;
                        if (string.Equals(name, "Upgrade", StringComparison.OrdinalIgnoreCase)) upgrade = value;
                    }
                    string expected;
                    using (var sha1 = SHA1.Create())
                    {
                        expected = Convert.ToBase64String(sha1.ComputeHash(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
                    }
                    if (accept != expected || !string.Equals(upgrade, "websocket", StringComparison.OrdinalIgnoreCase))
                    {
                        throw new WebSocketException("the server's handshake answer is not a WebSocket upgrade: " + lines[0]);
                    }
                }
                token.ThrowIfCancellationRequested();
                return result;
            }
            catch (Exception)
            {
                result.Dispose();
                throw;
            }
        }

        static string Describe(Exception e)
        {
            var inner = e;
            while (inner.InnerException != null) inner = inner.InnerException;
            return inner == e ? e.Message : e.Message + ": " + inner.Message;
        }
    }

    /// <summary>The connection under the platform's WebSocket. It passes everything through and
    /// reads the server's frame headers as they go by: in a close frame with 1012, 1013 or 1014
    /// (registered after RFC 6455) it turns the code into 1000, which every platform accepts,
    /// and keeps the real one in <see cref="HiddenCode"/> for the transport to report.</summary>
    public sealed class CloseCodeStream : Stream
    {
        readonly TcpClient tcp;
        internal Stream Inner;
        // The frame being read: its header so far, then how much payload is left.
        readonly byte[] header = new byte[14];
        int headerLength, headerNeeded = 2;
        long payloadLeft, payloadAt;
        bool inPayload, closeFrame;
        byte codeHigh;

        internal CloseCodeStream(TcpClient tcp)
        {
            this.tcp = tcp;
        }

        /// <summary>The close code the server sent, when it was one the stream hid (else 0).</summary>
        public int HiddenCode { get; private set; }

        public override bool CanRead { get { return true; } }
        public override bool CanSeek { get { return false; } }
        public override bool CanWrite { get { return true; } }
        public override long Length { get { throw new NotSupportedException(); } }
        public override long Position { get { throw new NotSupportedException(); } set { throw new NotSupportedException(); } }
        public override long Seek(long offset, SeekOrigin origin) { throw new NotSupportedException(); }
        public override void SetLength(long value) { throw new NotSupportedException(); }
        public override void Flush() { Inner.Flush(); }
        public override Task FlushAsync(CancellationToken token) { return Inner.FlushAsync(token); }
        public override void Write(byte[] buffer, int offset, int count) { Inner.Write(buffer, offset, count); }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken token)
        {
            return Inner.WriteAsync(buffer, offset, count, token);
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Inner.Read(buffer, offset, count);
            Scan(buffer, offset, n);
            return n;
        }

        public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken token)
        {
            int n = await Inner.ReadAsync(buffer, offset, count, token).ConfigureAwait(false);
            Scan(buffer, offset, n);
            return n;
        }

        void Scan(byte[] buffer, int offset, int count)
        {
            int i = offset, end = offset + count;
            while (i < end)
            {
                if (!inPayload)
                {
                    header[headerLength++] = buffer[i++];
                    if (headerLength == 2)
                    {
                        int length = header[1] & 0x7f;
                        headerNeeded = 2 + (length == 126 ? 2 : length == 127 ? 8 : 0) + ((header[1] & 0x80) != 0 ? 4 : 0);
                    }
                    if (headerLength < headerNeeded) continue;
                    long payload = header[1] & 0x7f;
                    if (payload == 126) payload = (header[2] << 8) | header[3];
                    else if (payload == 127)
                    {
                        payload = 0;
                        for (int k = 2; k < 10; k++) payload = (payload << 8) | header[k];
                    }
                    // Server frames are never masked; a masked one is left to the platform to refuse.
                    closeFrame = (header[0] & 0x0f) == 0x8 && (header[1] & 0x80) == 0;
                    headerLength = 0;
                    headerNeeded = 2;
                    payloadLeft = payload;
                    payloadAt = 0;
                    inPayload = payload > 0;
                    continue;
                }
                if (closeFrame && payloadAt < 2)
                {
                    if (payloadAt == 0) codeHigh = buffer[i];
                    else
                    {
                        int code = (codeHigh << 8) | buffer[i];
                        if (code >= 1012 && code <= 1014)
                        {
                            HiddenCode = code;
                            buffer[i] = 1000 & 0xff; // 1000 and 1012-1014 share their high byte (3)
                        }
                    }
                    payloadAt++;
                    payloadLeft--;
                    i++;
                }
                else
                {
                    long skip = Math.Min(payloadLeft, end - i);
                    i += (int)skip;
                    payloadAt += skip;
                    payloadLeft -= skip;
                }
                if (payloadLeft == 0) inPayload = false;
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                if (Inner != null) Inner.Dispose();
                tcp.Close();
            }
            base.Dispose(disposing);
        }
    }
}
