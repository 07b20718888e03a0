// Messages and ping (the messages extension): to all, to some, to members without the feature
// (who get nothing), data verbatim, errors; ping's round trip and the server's clock.
using System;
using System.Collections.Generic;
using System.Linq;
using Newtonsoft.Json.Linq;
using SessionServer;

namespace SessionServer.Tests
{
    static class MessageTests
    {
        static SessionClientOptions Messages()
        {
            return new SessionClientOptions { Messages = true };
        }

        [Test]
        static void MessagesToAllAndToSome()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url, Messages());
            var b = Clients.Connect(server.Url, Messages());
            var legacy = Clients.Connect(server.Url);
            var s = Wait.On(a.CreateSession(), a);
            Wait.On(b.JoinSession(s.ID), a, b);
            Wait.On(legacy.JoinSession(s.ID), a, b, legacy);
            var toA = new List<MessageEventArgs>();
            var toB = new List<MessageEventArgs>();
            var legacyFrames = new List<string>();
            a.Message += (x, e) => toA.Add(e);
            b.Message += (x, e) => toB.Add(e);
            legacy.FrameReceived += (x, e) => legacyFrames.Add(e.Frame.Command);

            Assert.Equal(1, Wait.On(a.SendMessage(new { text = "gg" }), a, b, legacy), "to all: b only (legacy did not ask, the sender is left out)");
            Wait.For(() => toB.Count == 1, "b to get it", a, b, legacy);
            Assert.Equal(a.PlayerID.Value, toB[0].PlayerID, "from a");
            Assert.Equal("{\"text\":\"gg\"}", toB[0].Raw, "its text");

            const string exact = "[1e400, \"x\", {\"n\" : 1.0}]";
            Assert.Equal(2, Wait.On(b.SendMessage(new JRaw(exact), new[] { a.PlayerID.Value, b.PlayerID.Value, legacy.PlayerID.Value }), a, b, legacy), "to a list: a and b, the sender listed");
            Wait.For(() => toA.Count == 1 && toB.Count == 2, "a and b to get it", a, b, legacy);
            Assert.Equal(exact, toA[0].Raw, "data verbatim");
            Assert.Equal(JTokenType.Raw, toA[0].Data.Type, "kept as text when Newtonsoft cannot hold it");

            Assert.Equal(1, Wait.On(a.SendMessage("ready!", new[] { b.PlayerID.Value }), a, b), "a string");
            Wait.For(() => toB.Count == 3, "b to get it", a, b);
            Assert.Equal("ready!", (string)toB[2].Data, "a JSON string");

            var e31 = Assert.Fails<SessionException>(a.SendMessage(1, new[] { 123456L }), a);
            Assert.Equal(31, e31.Code, "no such member");
            Assert.Equal("messageSent", e31.Command, "in messageSent");

            // The legacy member answers a ping after all that: it never got a message.
            Wait.On(legacy.Ping(), legacy);
            Assert.True(!legacyFrames.Contains("message"), "an original client gets nothing: " + string.Join(",", legacyFrames));
            Assert.Equal(0, toA.Count(m => m.PlayerID == a.PlayerID), "the sender does not get its own unless listed");
        }

        [Test]
        static void MessagesFromTheLobby()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url, Messages());
            var e = Assert.Fails<SessionException>(a.SendMessage(new { text = "hi" }), a);
            Assert.Equal(2, e.Code, "not in a session");
        }

        [Test]
        static void PingMeasuresTheRoundTripAndTheClock()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url);
            var lobby = Wait.On(a.Ping(), a);
            Wait.On(a.CreateSession(), a);
            var inSession = Wait.On(a.Ping(), a);
            foreach (var p in new[] { lobby, inSession })
            {
                Assert.True(p.Rtt >= 0, "a round trip: " + p.Rtt);
                // Same machine, same clock: the offset is within the round trip (plus the
                // millisecond both clocks are rounded to).
                Assert.True(Math.Abs(p.Offset) <= p.Rtt + 2, "offset " + p.Offset + " within rtt " + p.Rtt);
                var now = (DateTime.UtcNow - new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc)).TotalMilliseconds;
                Assert.True(p.ServerTime > now - 60000 && p.ServerTime <= now + 5, "the server's clock in ms since 1970: " + p.ServerTime);
            }
        }
    }
}
