// The frame scanner (no server): bad input is refused, never thrown; good input keeps its text.
using System;
using System.Collections.Generic;
using Newtonsoft.Json.Linq;
using SessionServer;

namespace SessionServer.Tests
{
    static class JsonTests
    {
        [Test]
        static void BadFramesAreRefused()
        {
            var bad = new[]
            {
                "", " ", "null", "[]", "\"x\"", "{", "}", "{}", "{\"command\":1}", "{\"command\":\"a\"", "{\"command\":\"a\",}",
                "{\"command\":\"a\" \"error\":0}", "{\"command\":\"a\",\"command\":\"b\"}", "{\"command\":\"a\",\"error\":\"0\"}",
                "{\"command\":\"a\",\"error\":1.5}", "{\"command\":\"a\",\"error\":99999999999999999999}", "{\"command\":\"a\",\"x\":01}",
                "{\"command\":\"a\",\"x\":tru}", "{\"command\":\"a\",\"x\":[1,]}", "{\"command\":\"a\",\"x\":\"\\q\"}",
                "{\"command\":\"a\",\"x\":\"\\u12\"}", "{\"command\":\"a\",\"x\":\"a\nb\"}", "{\"command\":\"a\",\"x\":-}", "{\"command\":\"a\",\"x\":1e}",
                "{\"command\":\"a\"} x", "{\"command\":\"a\",\"x\":" + new string('[', 700) + new string(']', 700) + "}",
            };
            foreach (var text in bad)
            {
                Assert.Equal(null, Frame.TryParse(text), "refused: " + (text.Length > 60 ? text.Substring(0, 60) : text));
            }
        }

        [Test]
        static void GoodFramesKeepTheirText()
        {
            var frame = Frame.TryParse(" {\"command\":\"playerUpdate\" , \"error\":0,\"playerID\":99999999999999999999,\"player\":{ \"a\" : [1e400, -0.5E+3, \"\\u00e9\\\"\"] } } ");
            Assert.True(frame != null, "parsed");
            Assert.Equal("playerUpdate", frame.Command, "command");
            Assert.Equal(0, frame.Error, "error");
            Assert.Equal("{ \"a\" : [1e400, -0.5E+3, \"\\u00e9\\\"\"] }", frame.Raw("player"), "the data's text");
            Assert.Equal(JTokenType.Raw, frame.Get("player").Type, "1e400 keeps the whole value as text");
            Assert.Equal(JTokenType.Integer, frame.Get("playerID").Type, "a big integer parses");
            var deep = Frame.TryParse("{\"command\":\"a\",\"x\":" + new string('[', 500) + new string(']', 500) + "}");
            Assert.True(deep != null && deep.Get("x") is JArray, "500 levels (the server allows 512)");
        }

        [Test]
        static void ADirectUrlResumesOnTheTokensSession()
        {
            const string token = "7836885832153556.6285174569832602.8720b9be0230134ccf6c6ea7c214395a";
            Assert.Equal("wss://h.example/session/7836885832153556", SessionClient.ResumeUrl("wss://h.example/session/new", token), "/session/new");
            Assert.Equal("wss://h.example/session/7836885832153556", SessionClient.ResumeUrl("wss://h.example/session/41", token), "/session/<id>");
            Assert.Equal("ws://127.0.0.1:8787/game/session/7836885832153556?k=v", SessionClient.ResumeUrl("ws://127.0.0.1:8787/game/session/new?k=v", token), "query kept");
            foreach (var url in new[] { "wss://h.example/", "wss://h.example/sessions/new", "wss://h.example/session/new/x", "wss://h.example/?session/new", "ws://session/new", "not a url/session/new" })
            {
                Assert.Equal(url, SessionClient.ResumeUrl(url, token), "kept: " + url);
            }
            Assert.Equal("wss://h.example/session/new", SessionClient.ResumeUrl("wss://h.example/session/new", "garbage"), "a token naming no session");
        }

        /// <summary>A transport the test speaks for: what the client sent, and the server's part.</summary>
        sealed class FakeTransport : ITransport
        {
            public ITransportListener Listener;
            public readonly List<string> Sent = new List<string>();
            public void Open(string url, ITransportListener listener) { Listener = listener; }
            public void Send(string text) { Sent.Add(text); }
            public void Close(int code, string reason) { Listener.OnClose(code, reason); }
            public void Poll() { }
        }

        [Test]
        static void BadServerFramesAreErrorEvents()
        {
            var fake = new FakeTransport();
            var c = new SessionClient("ws://fake/", new SessionClientOptions { Transport = () => fake });
            var errors = new List<Exception>();
            c.Error += (s, e) => errors.Add(e.Error);
            var connected = c.Connect();
            fake.Listener.OnOpen();
            Wait.On(connected, c);
            Assert.Sequence(new[] { "{\"command\":\"hello\",\"features\":[\"resume\"]}" }, fake.Sent, "hello first");
            fake.Listener.OnMessage("{\"command\":\"hello\",\"error\":0,\"playerID\":4,\"features\":[\"resume\"]}");
            var created = c.CreateSession();
            fake.Listener.OnMessage("not json");
            fake.Listener.OnMessage("{\"command\":\"whatever\",\"error\":0}");
            fake.Listener.OnError(new Exception("a transport's trouble"));
            fake.Listener.OnMessage("{\"command\":\"sessionJoin\",\"error\":0,\"sessionID\":\"3\",\"playerID\":4}");
            var failure = Assert.Fails<FormatException>(created, c);
            Assert.True(failure.Message.Contains("sessionID"), "the malformed reply fails its request: " + failure.Message);
            Assert.Equal(3, errors.Count, "the frames no request waits for are Error events");
            Assert.True(c.Session == null && c.CloseStatus == null, "nothing was joined, the client is still open");

            fake.Listener.OnMessage("{\"command\":\"sessionJoin\",\"error\":0,\"sessionID\":3,\"playerID\":4,\"session\":{},\"player\":{\"x\":0},\"resumeToken\":\"t\"}");
            fake.Listener.OnMessage("{\"command\":\"playerJoin\",\"error\":0,\"playerID\":99999999999999999999,\"player\":{}}");
            c.Poll();
            Assert.Equal(4, errors.Count, "a playerJoin with an ID beyond long is an Error event");
            Assert.Equal(1, c.Session.Players.Count, "and joins no one");
        }
    }
}
