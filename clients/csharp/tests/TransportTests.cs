// The transport's close codes, against a WebSocket server of a few lines in this process that
// closes with a given code: what the client is told is the code the server sent. 1012-1014
// included: Mono's (and .NET's before 8) ClientWebSocket aborts on a close frame with one of
// them (codes IANA registered after RFC 6455; dotnet/runtime#82602), so the client would only
// see 1006; the edge host closes with 1012 when the link to a session breaks and with 1013 when
// it is overloaded. WebSocketTransport makes its own handshake and hides those codes from the
// platform's check (CloseCodeStream); this test fails if that stops working.
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
            public readonly List<string> Messages = new List<string>();
            public void OnOpen() { }
            public void OnMessage(string text) { lock (Messages) Messages.Add(text); }
            public void OnError(Exception error) { }
            public void OnClose(int code, string reason)
            {
                Code = code;
                Reason = reason;
                Done.Set();
            }
        }

        /// <summary>A server frame (unmasked) with the payload's length in the shortest form.</summary>
        static List<byte> ServerFrame(int opcode, byte[] payload)
        {
            var frame = new List<byte> { (byte)(0x80 | opcode) };
            if (payload.Length < 126) frame.Add((byte)payload.Length);
            else if (payload.Length < 65536) frame.AddRange(new byte[] { 126, (byte)(payload.Length >> 8), (byte)payload.Length });
            else
            {
                frame.Add(127);
                for (int shift = 56; shift >= 0; shift -= 8) frame.Add((byte)((long)payload.Length >> shift));
            }
            frame.AddRange(payload);
            return frame;
        }

        /// <summary>Accepts one WebSocket handshake, sends the text frames, and closes the
        /// connection with `code`, all of it in writes of `chunk` bytes.</summary>
        static void Serve(TcpListener listener, int code, string reason, string[] texts, int chunk)
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
                var frames = new List<byte>();
                foreach (var text in texts) frames.AddRange(ServerFrame(0x1, Encoding.UTF8.GetBytes(text)));
                var close = new List<byte> { (byte)(code >> 8), (byte)(code & 0xff) };
                close.AddRange(Encoding.UTF8.GetBytes(reason));
                frames.AddRange(ServerFrame(0x8, close.ToArray()));
                var all = frames.ToArray();
                for (int at = 0; at < all.Length; at += chunk)
                {
                    stream.Write(all, at, Math.Min(chunk, all.Length - at));
                    stream.Flush();
                }
                // The client's answer (its close frame) or the end of the connection.
                try { stream.Read(new byte[256], 0, 256); } catch (IOException) { }
            }
        }

        /// <summary>The code and reason the transport reports for a server's close with `code`.</summary>
        public static KeyValuePair<int, string> CloseSeen(int code, string[] texts = null, int chunk = 1 << 20)
        {
            texts = texts ?? new string[0];
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            try
            {
                var server = Task.Run(() => Serve(listener, code, "closed " + code, texts, chunk));
                var recorder = new Recorder();
                var transport = new WebSocketTransport();
                transport.Open("ws://127.0.0.1:" + ((IPEndPoint)listener.LocalEndpoint).Port + "/", recorder);
                if (!recorder.Done.Wait(Wait.Deadline)) throw new TimeoutException("no close reported for " + code);
                server.Wait(Wait.Deadline);
                Assert.Sequence(texts, recorder.Messages, "the frames before the close");
                return new KeyValuePair<int, string>(recorder.Code, recorder.Reason);
            }
            finally
            {
                listener.Stop();
            }
        }

        [Test]
        static void ServerCloseCodesAreReported()
        {
            foreach (var code in new[] { 1000, 1001, 1008, 1011, 1012, 1013, 1014, 4000, 4001, 4002 })
            {
                var seen = CloseSeen(code);
                Assert.Equal(code, seen.Key, "the code of the server's close");
                Assert.Equal("closed " + code, seen.Value, "its reason");
            }
        }

        [Test]
        static void CloseCodesAfterLongFramesInSmallPieces()
        {
            // Frames with each length form (7 bits, 16, 64) before the close, written 3 bytes at
            // a time: the close frame is found wherever the reads split them, and the frames
            // before it arrive intact.
            var texts = new[] { "short", new string('m', 300), new string('l', 70000), "" };
            foreach (var chunk in new[] { 3, 1 << 20 })
            {
                var seen = CloseSeen(1012, texts, chunk);
                Assert.Equal(1012, seen.Key, "the code after the frames, in writes of " + chunk);
                Assert.Equal("closed 1012", seen.Value, "its reason");
            }
            var normal = CloseSeen(1000, texts, 3);
            Assert.Equal(1000, normal.Key, "a 1000 stays 1000");
        }
    }
}
