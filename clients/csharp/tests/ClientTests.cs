// The client against a native server: requests, events, the kept session, errors with codes and
// meanings, both spellings, verbatim data, closing.
using System;
using System.Collections.Generic;
using System.Linq;
using Newtonsoft.Json.Linq;
using SessionServer;

namespace SessionServer.Tests
{
    static class ClientTests
    {
        [Test]
        static void CreateJoinUpdateLeave()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url);
            var b = Clients.Connect(server.Url);
            var journalA = new Journal(a);
            var joins = new List<SessionJoinEventArgs>();
            a.SessionJoin += (s, e) => joins.Add(e);

            var created = Wait.On(a.CreateSession(new { title = "dots" }, new { name = "", x = 0 }), a);
            Assert.Equal("dots", (string)created.Data["title"], "sessionData");
            Assert.Equal(a.PlayerID.Value, created.Players.Keys.Single(), "the creator is the only member");
            Assert.True(joins.Single().Created, "SessionJoin says the session was created");

            var joined = Wait.On(b.JoinSession(created.ID), a, b);
            Assert.Equal(created.ID, joined.ID, "joined the same session");
            Wait.For(() => b.Session.Players.Count == 2 && a.Session.Players.Count == 2, "both to see both", a, b);
            Assert.Sequence(new[] { b.PlayerID.Value, a.PlayerID.Value }, b.Session.Players.Keys, "the joiner's list: itself first, then the others");
            Assert.Sequence(new[] { "playerJoin " + b.PlayerID + " {\"name\":\"\",\"x\":0}" }, journalA.Entries, "the creator sees the join with the default");

            var mine = Wait.On(a.UpdatePlayer(new { name = "Ada", x = 10 }), a, b);
            Assert.Equal(10, (int)mine["x"], "the update as broadcast");
            Wait.For(() => (string)b.Session.Players[a.PlayerID.Value]["name"] == "Ada", "b to see a's update", a, b);

            var selfFlags = new List<bool>();
            a.SessionUpdate += (s, e) => selfFlags.Add(e.Self);
            var updated = Wait.On(b.UpdateSession(new { title = "dots", round = 2 }, new { name = "", x = 0, ready = false }), a, b);
            Assert.Equal(2, (int)updated.Data["round"], "b's session after its update");
            Wait.For(() => selfFlags.Count == 1, "a to see the session update", a, b);
            Assert.Equal(false, selfFlags[0], "another member's update is not a's own");
            Assert.Equal(false, (bool)a.Session.Players[a.PlayerID.Value]["ready"], "every playerData reset to the new default");

            Wait.On(b.LeaveSession(), a, b);
            Assert.True(b.Session == null, "b is in the lobby");
            Wait.For(() => journalA.Entries.Last() == "playerLeave " + b.PlayerID, "a to see b leave", a, b);
            Assert.Equal(1, a.Session.Players.Count, "a is alone");
            Assert.Equal("playerLeave " + b.PlayerID, journalA.Only("playerLeave").Single(), "one leave");
        }

        [Test]
        static void JoinTheLatest()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url);
            var b = Clients.Connect(server.Url);
            var created = Wait.On(a.CreateSession(new { title = "latest" }, new { x = 0 }), a);
            // On a server of its own, -1 is this session at once. At the edge the session's
            // registration may reach the registry after its sessionJoin (worker/README.md, "IDs,
            // joinSession -1"): until then -1 finds the session before (or error 6), so join again.
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                var latest = b.JoinSession(-1);
                Wait.For(() => latest.IsCompleted, "the -1 join to complete", a, b);
                if (!latest.IsFaulted && latest.Result.ID == created.ID) break;
                Assert.True(!server.Own, "on a server of its own, -1 is the latest session at once");
                if (latest.IsFaulted) Assert.Equal(6, ((SessionException)latest.Exception.InnerException).Code, "no session: 6");
                else Wait.On(b.LeaveSession(), a, b);
                if (watch.Elapsed > Wait.Deadline) throw new TimeoutException("-1 never found the latest session");
                System.Threading.Thread.Sleep(100);
            }
            Assert.Equal("latest", (string)b.Session.Data["title"], "its sessionData");
            // The members already there come as playerJoin frames after the sessionJoin.
            Wait.For(() => a.Session.Players.ContainsKey(b.PlayerID.Value) && b.Session.Players.Count == 2, "a to see b join, b to see a", a, b);
            Assert.Sequence(new[] { b.PlayerID.Value, a.PlayerID.Value }, b.Session.Players.Keys, "b's list");
        }

        [Test]
        static void ErrorsCarryCodeAndMeaning()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url);

            var e = Assert.Fails<SessionException>(a.JoinSession(123456), a);
            Assert.Equal(7, e.Code, "code");
            Assert.Equal("sessionJoin", e.Command, "reply command");
            Assert.Equal("no session with that ID", e.Meaning, "meaning");
            Assert.Equal(null, e.ServerMessage, "codes 2-7 carry no message");

            e = Assert.Fails<SessionException>(a.UpdatePlayer(new { x = 1 }), a);
            Assert.Equal(2, e.Code, "updatePlayer in the lobby");

            Wait.On(a.CreateSession(null, new { name = "", x = 0 }), a);
            e = Assert.Fails<SessionException>(a.UpdatePlayer(new { name = "", y = 0 }), a);
            Assert.Equal(4, e.Code, "another key structure");
            Assert.Equal("playerData's key structure differs from the session's default; nothing changes", e.Meaning, "code 4 in playerUpdate");
            e = Assert.Fails<SessionException>(a.CreateSession(), a);
            Assert.Equal(4, e.Code, "createSession in a session");
            Assert.Equal("createSession while in a session; nothing is created", e.Meaning, "code 4 in sessionJoin");
            e = Assert.Fails<SessionException>(a.UpdatePlayer(JToken.Parse("[1]")), a);
            Assert.Equal(13, e.Code, "data not an object");
            Assert.True(e.ServerMessage != null && e.ServerMessage.Length > 0, "codes 9 and up carry the server's message");

            // An error reply to no request of the client's is an Error event.
            var errors = new List<Exception>();
            a.Error += (s, ev) => errors.Add(ev.Error);
            a.Send(new JObject { { "command", "nonsense" } });
            Wait.For(() => errors.Count == 1, "the error event", a);
            var unknown = (SessionException)errors[0];
            Assert.Equal(12, unknown.Code, "unknown command");
            Assert.Equal("error", unknown.Command, "its reply command");

            // The connection is usable after every error.
            Wait.On(a.UpdatePlayer(new { name = "Ada", x = 3 }), a);
            Assert.Equal(3, (int)a.Session.Players[a.PlayerID.Value]["x"], "the update went through");
        }

        [Test]
        static void BothSpellings()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url, new SessionClientOptions { Spelling = Spelling.Long });
            var b = Clients.Connect(server.Url);
            var framesB = new List<Frame>();
            b.FrameReceived += (s, e) => framesB.Add(e.Frame);

            var created = Wait.On(a.CreateSession(new { level = 1 }, new { hp = 10 }), a);
            Assert.Equal(1, (int)created.Data["level"], "long spelling read");
            Wait.On(b.JoinSession(created.ID), a, b);
            var join = framesB.First(f => f.Command == "sessionJoin");
            Assert.True(join.Has("sessionData") && join.Has("playerData") && !join.Has("session"), "the session answers in its creator's spelling: " + join.Text);
            Assert.Equal(10, (int)b.Session.PlayerData["hp"], "the short client reads the long spelling");

            Wait.On(b.UpdatePlayer(new { hp = 7 }), a, b);
            Wait.For(() => a.Session.Players.ContainsKey(b.PlayerID.Value) && (int)a.Session.Players[b.PlayerID.Value]["hp"] == 7, "a to see b's short-spelled update", a, b);
            Wait.On(a.UpdateSession(new { level = 2 }, new { hp = 10 }), a, b);
            Wait.For(() => b.Session.Data["level"] != null && (int)b.Session.Data["level"] == 2, "b to see the long-spelled session update", a, b);
        }

        [Test]
        static void DataArrivesVerbatim()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url);
            var b = Clients.Connect(server.Url);
            var raws = new List<PlayerUpdateEventArgs>();
            b.PlayerUpdate += (s, e) => raws.Add(e);
            var created = Wait.On(a.CreateSession(null, new { t = 0, x = 0, s = "" }), a);
            Wait.On(b.JoinSession(created.ID), a, b);

            // Numbers as written, a date-like string, an escape, whitespace: the text comes back
            // as sent, and the parsed JToken keeps what Newtonsoft can.
            const string exact = "{\"t\":1543236582000, \"x\":1.000000000001,\"s\":\"2020-01-01T00:00:00Z\\u00e9\"}";
            Wait.On(a.UpdatePlayer(new JRaw(exact)), a, b);
            Wait.For(() => raws.Count == 1, "b to see the update", a, b);
            Assert.Equal(exact, raws[0].Raw, "the text as sent");
            Assert.Equal(1543236582000L, (long)raws[0].Data["t"], "a big integer");
            Assert.Equal(JTokenType.String, raws[0].Data["s"].Type, "a date-like string stays a string");
            Assert.Equal("2020-01-01T00:00:00Z\u00e9", (string)raws[0].Data["s"], "the string");

            // A number Newtonsoft cannot hold: the data is kept as its text (a JRaw).
            const string huge = "{\"t\":1e400,\"x\":-20,\"s\":\"\"}";
            Wait.On(a.UpdatePlayer(new JRaw(huge)), a, b);
            Wait.For(() => raws.Count == 2, "b to see the second update", a, b);
            Assert.Equal(huge, raws[1].Raw, "the text as sent");
            Assert.Equal(JTokenType.Raw, raws[1].Data.Type, "kept as raw text");
            Assert.Equal(huge, raws[1].Data.ToString(), "the raw text");
        }

        [Test]
        static void HelloAndFeatures()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url);
            Wait.For(() => a.Features != null, "the hello answer", a);
            Assert.True(a.Features.Contains("resume"), "resume granted: " + string.Join(",", a.Features));
            Assert.True(a.PlayerID.HasValue, "the player ID from hello");

            var plain = Clients.Connect(server.Url, new SessionClientOptions { Reconnect = null });
            var frames = new List<string>();
            plain.FrameReceived += (s, e) => frames.Add(e.Frame.Text);
            Wait.On(plain.CreateSession(), plain);
            Assert.Equal(null, plain.Features, "no hello sent");
            Assert.True(frames.Count == 1 && !frames[0].Contains("resumeToken"), "the original protocol: " + frames[0]);
        }

        [Test]
        static void CloseLeavesAtOnce()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url);
            var b = Clients.Connect(server.Url);
            var journalB = new Journal(b);
            var created = Wait.On(a.CreateSession(), a);
            Wait.On(b.JoinSession(created.ID), a, b);
            Wait.For(() => a.Session.Players.Count == 2, "a to see b", a, b);

            // a's seat would be kept for a resume: Close() leaves first, so b sees it now.
            var info = Wait.On(a.Close(), a, b);
            Assert.Equal(1000, info.Code, "closed normally");
            Assert.Equal("closed normally", info.Meaning, "its meaning");
            Assert.True(a.Session == null && a.CloseStatus != null, "a is closed");
            Wait.For(() => journalB.Entries.Contains("playerLeave " + a.PlayerID), "b to see a leave", a, b);

            var closed = Assert.Fails<ConnectionClosedException>(a.JoinSession(), a);
            Assert.Equal(1000, closed.Code, "requests after the close fail with its code");
        }
    }
}
