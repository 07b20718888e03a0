// The transport's close codes, against a WebSocket server of a few lines in this process that
// closes with a given code: what the client is told is the code the server sent. Mono's (and
// .NET before 8's) ClientWebSocket rejects a close frame with 1012, 1013 or 1014 (codes IANA
// registered after RFC 6455; dotnet/runtime#82602, fixed in .NET 8): it aborts the connection,
// and the client can only report 1006. The edge host closes with 1012 when the link to a
// session breaks and with 1013 when it is overloaded; the client reconnects after 1006 as after
// those, but it cannot tell them apart. This test pins which way this platform behaves.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using SessionServer;

namespace SessionServer.Tests
{
    static class TransportTests
    {
        sealed class Recorder : ITransportListener
        {
            public readonly ManualResetEventSlim Done = new ManualResetEventSlim();
            public int Code;
            public string Reason;
            public void OnOpen() { }
            public void OnMessage(string text) { }
            public void OnError(Exception error) { }
            public void OnClose(int code, string reason)
            {
                Code = code;
                Reason = reason;
                Done.Set();
            }
        }

        /// <summary>Accepts one WebSocket handshake and closes the connection with `code`.</summary>
        static void Serve(TcpListener listener, int code, string reason)
        {
            using (var tcp = listener.AcceptTcpClient())
            {
                var stream = tcp.GetStream();
                stream.ReadTimeout = 10000;
                var head = new StringBuilder();
                while (!head.ToString().EndsWith("\r\n\r\n"))
                {
                    int b = stream.ReadByte();
                    if (b < 0) return;
                    head.Append((char)b);
                }
                string key = null;
                foreach (var line in head.ToString().Split(new[] { "\r\n" }, StringSplitOptions.None))
                {
                    if (line.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase)) key = line.Substring(18).Trim();
                }
                string accept;
                using (var sha1 = SHA1.Create())
                {
                    accept = Convert.ToBase64String(sha1.ComputeHash(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
                }
                var answer = Encoding.ASCII.GetBytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n");
                stream.Write(answer, 0, answer.Length);
                var why = Encoding.UTF8.GetBytes(reason);
                var frame = new List<byte> { 0x88, (byte)(2 + why.Length), (byte)(code >> 8), (byte)(code & 0xff) };
                frame.AddRange(why);
                stream.Write(frame.ToArray(), 0, frame.Count);
                // The client's answer (its close frame) or the end of the connection.
                try { stream.Read(new byte[256], 0, 256); } catch (IOException) { }
            }
        }

        /// <summary>The code and reason the transport reports for a server's close with `code`.</summary>
        public static KeyValuePair<int, string> CloseSeen(int code)
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            try
            {
                var server = Task.Run(() => Serve(listener, code, "closed " + code));
                var recorder = new Recorder();
                var transport = new WebSocketTransport();
                transport.Open("ws://127.0.0.1:" + ((IPEndPoint)listener.LocalEndpoint).Port + "/", recorder);
                if (!recorder.Done.Wait(Wait.Deadline)) throw new TimeoutException("no close reported for " + code);
                server.Wait(Wait.Deadline);
                return new KeyValuePair<int, string>(recorder.Code, recorder.Reason);
            }
            finally
            {
                listener.Stop();
            }
        }

        static bool? keeps1012;

        /// <summary>Whether this platform's ClientWebSocket reports a server's 1012 as 1012.</summary>
        public static bool Keeps1012()
        {
            if (!keeps1012.HasValue) keeps1012 = CloseSeen(1012).Key == 1012;
            return keeps1012.Value;
        }

        [Test]
        static void ServerCloseCodesAreReported()
        {
            foreach (var code in new[] { 1000, 1001, 1008, 1011, 4000, 4001, 4002 })
            {
                var seen = CloseSeen(code);
                Assert.Equal(code, seen.Key, "the code of the server's close");
                Assert.Equal("closed " + code, seen.Value, "its reason");
            }
            // 1012-1014: the code itself, or (Mono, .NET before 8) 1006 from the aborted socket.
            var codes = new List<string>();
            foreach (var code in new[] { 1012, 1013, 1014 })
            {
                var seen = CloseSeen(code);
                Assert.True(seen.Key == code || seen.Key == 1006, code + " is reported as itself or as 1006, not " + seen.Key);
                codes.Add(code + "→" + seen.Key);
            }
            Console.WriteLine("     this platform's ClientWebSocket: " + string.Join(", ", codes));
            Assert.Equal(Keeps1012(), codes[0] == "1012→1012", "the probe agrees");
        }
    }
}
