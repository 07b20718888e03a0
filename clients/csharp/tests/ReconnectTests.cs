// Reconnecting and resuming: the client under test connects through a TCP proxy that cuts its
// connection the way a network does; the other member connects directly.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Newtonsoft.Json.Linq;
using SessionServer;

namespace SessionServer.Tests
{
    static class ReconnectTests
    {
        // a (through the proxy) creates a session, b joins; both see both.
        static void Pair(Server server, Proxy proxy, out SessionClient a, out SessionClient b, SessionClientOptions options = null)
        {
            a = Clients.Connect(proxy.Url, options ?? Clients.Quick());
            b = Clients.Connect(server.Url);
            var created = Wait.On(a.CreateSession(new { round = 1 }, new { x = 0 }), a);
            Wait.On(b.JoinSession(created.ID), a, b);
            var ca = a;
            var cb = b;
            Wait.For(() => ca.Session.Players.Count == 2 && cb.Session.Players.Count == 2, "both to see both", a, b);
        }

        [Test]
        static void ResumesAfterACutWithWhatItMissed()
        {
            var server = Server.Start();
            var proxy = Proxy.To(server);
            SessionClient a, b;
            Pair(server, proxy, out a, out b);
            var journalA = new Journal(a);
            var journalB = new Journal(b);
            var id = a.PlayerID.Value;

            proxy.Down();
            proxy.Cut();
            Wait.For(() => a.ReconnectState != null, "a to notice the drop", a, b);
            // While a is away: b's updates, and a request of a's that waits for the resume.
            for (int x = 1; x <= 3; x++) Wait.On(b.UpdatePlayer(new { x = x }), a, b);
            var waiting = a.UpdatePlayer(new { x = 100 });
            Assert.True(!waiting.IsCompleted, "a's request waits while reconnecting");
            proxy.Up();
            Wait.For(() => journalA.Entries.Contains("resumed Frames"), "a to resume", a, b);

            Assert.Equal(id, a.PlayerID.Value, "the same player ID");
            Assert.Sequence(new[] { 1, 2, 3 }.Select(x => "playerUpdate " + b.PlayerID + " {\"x\":" + x + "}"), journalA.Only("playerUpdate " + b.PlayerID), "every missed update once, in order");
            Assert.Equal(3, (int)a.Session.Players[b.PlayerID.Value]["x"], "the kept list is up to date");
            var sent = Wait.On(waiting, a, b);
            Assert.Equal(100, (int)sent["x"], "the waiting request went out after the resume");
            Wait.For(() => b.Session.Players[id]["x"] != null && (int)b.Session.Players[id]["x"] == 100, "b to see a's update as the same player", a, b);
            Assert.Equal(0, journalB.Only("playerLeave").Count(), "b never saw a leave");
            Assert.True(journalA.Only("reconnecting").Count() >= 1, "Reconnecting came first");
        }

        [Test]
        static void NothingInFlightIsLost()
        {
            var server = Server.Start();
            var proxy = Proxy.To(server);
            SessionClient a, b;
            Pair(server, proxy, out a, out b);
            var journalA = new Journal(a);

            // What the server sends a now vanishes on the way, as in a dying link; then the cut.
            // The resume's `received` count makes the server replay exactly those frames.
            proxy.Swallow();
            for (int x = 1; x <= 5; x++) Wait.On(b.UpdatePlayer(new { x = x }), b);
            Wait.On(b.UpdateSession(new { round = 2 }, new { x = 0 }), b);
            a.Poll();
            Assert.Equal(0, journalA.Entries.Count, "a saw none of it before the cut");
            proxy.Cut();
            Wait.For(() => journalA.Entries.Contains("resumed Frames"), "a to resume", a, b);
            var expected = new[] { 1, 2, 3, 4, 5 }.Select(x => "playerUpdate " + b.PlayerID + " {\"x\":" + x + "}").ToList();
            expected.Add("sessionUpdate {\"round\":2}");
            Assert.Sequence(expected, journalA.Entries.Where(e => e.StartsWith("playerUpdate") || e.StartsWith("sessionUpdate")), "every frame once, in order");
            Assert.Equal(2, (int)a.Session.Data["round"], "the kept session is up to date");
        }

        [Test]
        static void SnapshotWhenTooMuchWasMissed()
        {
            var server = Server.Start("--resume-replay-bytes", "1");
            var proxy = Proxy.To(server);
            SessionClient a, b;
            Pair(server, proxy, out a, out b);
            var c = Clients.Connect(server.Url);
            Wait.On(c.JoinSession(a.Session.ID), c);
            Wait.For(() => a.Session.Players.Count == 3, "a to see c", a, b, c);
            var journalA = new Journal(a);
            var resumed = new List<ResumedEventArgs>();
            a.Resumed += (s, e) => resumed.Add(e);

            proxy.Down();
            proxy.Cut();
            Wait.For(() => a.ReconnectState != null, "a to notice the drop", a, b, c);
            Wait.On(b.UpdatePlayer(new { x = 7 }), b);
            Wait.On(c.LeaveSession(), c);
            proxy.Up();
            Wait.For(() => resumed.Count == 1, "a to resume", a, b);
            Assert.Equal(Replay.Snapshot, resumed[0].Replay, "a snapshot");
            Assert.Equal(null, resumed[0].Missed, "no count for a snapshot");
            Assert.Equal(7, (int)a.Session.Players[b.PlayerID.Value]["x"], "b's data now");
            Assert.True(!a.Session.Players.ContainsKey(c.PlayerID.Value), "c, gone meanwhile, is not in the list");
            Assert.True(journalA.Entries.Contains("playerLeave " + c.PlayerID), "c's leave was told");
            Assert.Sequence(new[] { a.PlayerID.Value, b.PlayerID.Value }, a.Session.Players.Keys, "the members");
        }

        [Test]
        static void LostWhenTheGracePeriodEnds()
        {
            var server = Server.WithGrace(300);
            var proxy = Proxy.To(server);
            SessionClient a, b;
            Pair(server, proxy, out a, out b);
            var journalB = new Journal(b);
            var lost = new List<LostEventArgs>();
            a.Lost += (s, e) => lost.Add(e);
            var oldID = a.PlayerID.Value;
            var sessionID = a.Session.ID;

            proxy.Down();
            proxy.Cut();
            Wait.For(() => a.ReconnectState != null, "a to notice the drop", a, b);
            var waiting = a.UpdatePlayer(new { x = 1 });
            // The grace period is over once b is told a left.
            Wait.For(() => journalB.Entries.Contains("playerLeave " + oldID), "b to see a leave after the grace period", a, b);
            proxy.Up();
            Wait.For(() => lost.Count == 1, "a to learn the seat is gone", a, b);
            Assert.Equal(LostReason.Rejected, lost[0].Reason, "the server refused the resume");
            Assert.Equal(sessionID, lost[0].SessionID.Value, "the session lost");
            Assert.Equal(22, ((SessionException)lost[0].Error).Code, "error 22");
            var failed = Assert.Fails<SessionLostException>(waiting, a);
            Assert.Equal(LostReason.Rejected, failed.Reason, "the waiting request failed with the reason");
            Assert.True(a.Session == null && a.CloseStatus == null, "a is in the lobby, connected");

            // The new connection is usable: a new session, as a new player.
            var again = Wait.On(a.CreateSession(), a);
            Assert.True(a.PlayerID.Value != oldID, "a new player ID");
            Assert.True(again.ID != sessionID, "a new session");
        }

        [Test]
        static void GivesUpAfterItsAttempts()
        {
            var server = Server.Start();
            var proxy = Proxy.To(server);
            SessionClient a, b;
            var options = new SessionClientOptions { Reconnect = new ReconnectOptions { BaseDelayMs = 1, MaxDelayMs = 5, MaxAttempts = 3 } };
            Pair(server, proxy, out a, out b, options);
            var journalA = new Journal(a);
            proxy.Down();
            proxy.Cut();
            Wait.For(() => a.CloseStatus != null, "a to give up", a, b);
            Assert.Sequence(new[] { "reconnecting", "reconnecting", "reconnecting", "lost Timeout", "closed 1006" }, journalA.Entries, "three attempts, then lost and closed");
            Assert.True(a.Session == null, "no session");
        }

        [Test]
        static void CloseWhileReconnectingStops()
        {
            var server = Server.Start();
            var proxy = Proxy.To(server);
            SessionClient a, b;
            Pair(server, proxy, out a, out b);
            proxy.Down();
            proxy.Cut();
            Wait.For(() => a.ReconnectState != null, "a to notice the drop", a, b);
            var waiting = a.UpdatePlayer(new { x = 1 });
            var info = Wait.On(a.Close(), a);
            Assert.Equal(1000, info.Code, "closed with the code given");
            var err = Assert.Fails<ConnectionClosedException>(waiting, a);
            Assert.Equal(1000, err.Code, "the waiting request failed");
            int accepted = proxy.Accepted;
            proxy.Up();
            // Poll for a while: a closed client makes no attempt.
            var watch = Stopwatch.StartNew();
            while (watch.ElapsedMilliseconds < 300) { a.Poll(); System.Threading.Thread.Sleep(5); }
            Assert.Equal(accepted, proxy.Accepted, "no attempt after Close()");
        }

        [Test]
        static void AFinalCloseCodeDoesNotReconnect()
        {
            var server = Server.Owned("it shuts the server down: SIGTERM, 1001");
            SessionClient a = Clients.Connect(server.Url, Clients.Quick());
            Wait.On(a.CreateSession(), a);
            var journalA = new Journal(a);
            server.Terminate();
            Wait.For(() => a.CloseStatus != null, "a to be closed", a);
            Assert.Equal(1001, a.CloseStatus.Code, "the server is shutting down");
            Assert.Equal("the server is shutting down", a.CloseStatus.Meaning, "its meaning");
            Assert.Sequence(new[] { "closed 1001" }, journalA.Entries, "no reconnecting");
        }

        [Test]
        static void NoResumeWithoutReconnect()
        {
            var server = Server.Start();
            var proxy = Proxy.To(server);
            var a = Clients.Connect(proxy.Url, new SessionClientOptions { Reconnect = null });
            Wait.On(a.CreateSession(), a);
            var journalA = new Journal(a);
            proxy.Cut();
            Wait.For(() => a.CloseStatus != null, "a to be closed", a);
            Assert.Sequence(new[] { "closed 1006" }, journalA.Entries, "a drop closes it");
            Assert.Equal("the connection was lost", a.CloseStatus.Meaning, "1006's meaning");
        }
    }
}
