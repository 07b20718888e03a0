// The access extension ("who may play") through the client: maxPlayers, passwords, private
// sessions, the host, kick, lock, hostOnlySessionUpdates.
using System;
using System.Collections.Generic;
using System.Linq;
using SessionServer;

namespace SessionServer.Tests
{
    static class AccessTests
    {
        [Test]
        static void MaxPlayers()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url, Clients.Host());
            var b = Clients.Connect(server.Url, Clients.Host());
            var c = Clients.Connect(server.Url, Clients.Host());
            var s = Wait.On(a.CreateSession(null, null, new SessionOptions { MaxPlayers = 2 }), a);
            Wait.On(b.JoinSession(s.ID), a, b);
            var e = Assert.Fails<SessionException>(c.JoinSession(s.ID), a, b, c);
            Assert.Equal(16, e.Code, "the session is full");
            Assert.Equal("joinSession to a session that holds its maximum of players", e.Meaning, "its meaning");
            Wait.On(b.LeaveSession(), a, b);
            Wait.On(c.JoinSession(s.ID), a, c);
            Assert.Equal(s.ID, c.Session.ID, "a seat came free");
        }

        [Test]
        static void Passwords()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url, Clients.Host());
            var b = Clients.Connect(server.Url, Clients.Host());
            var s = Wait.On(a.CreateSession(null, null, new SessionOptions { Password = "open sesame" }), a);

            var e = Assert.Fails<SessionException>(b.JoinSession(s.ID), a, b);
            Assert.Equal(26, e.Code, "no password");
            Assert.Equal("the session has a password: joinSession needs the right one", e.Meaning, "its meaning");
            e = Assert.Fails<SessionException>(b.JoinSession(s.ID, "sesame"), a, b);
            Assert.Equal(26, e.Code, "a wrong password");
            Wait.On(b.JoinSession(s.ID, "open sesame"), a, b);
            Assert.Equal(s.ID, b.Session.ID, "the right one lets b in");
            Wait.On(b.LeaveSession(), a, b);

            // Guessing is rate limited: wrong guesses run out, and then even the right one waits.
            var codes = new List<int>();
            for (int i = 0; i < 30 && !codes.Contains(27); i++)
            {
                codes.Add(Assert.Fails<SessionException>(b.JoinSession(s.ID, "guess " + i), a, b).Code);
            }
            Assert.True(codes.Distinct().SequenceEqual(new[] { 26, 27 }), "26 for each wrong guess, then 27: " + string.Join(",", codes));
            e = Assert.Fails<SessionException>(b.JoinSession(s.ID, "open sesame"), a, b);
            Assert.Equal(27, e.Code, "none is checked until the allowance refills");
            Assert.Equal("too many wrong passwords for this session lately: try again in a second", e.Meaning, "its meaning");
        }

        [Test]
        static void PrivateSessions()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url, Clients.Host());
            var b = Clients.Connect(server.Url, Clients.Host());
            var s = Wait.On(a.CreateSession(null, null, new SessionOptions { Private = true }), a);
            // -1 never finds it: on a server of our own that is error 6 (no other session); on
            // a shared one it may find another session, never this one.
            var latest = b.JoinSession(-1);
            Wait.For(() => latest.IsCompleted, "the -1 join to complete", a, b);
            if (latest.IsFaulted)
            {
                var e = Assert.Fails<SessionException>(latest, a, b);
                Assert.Equal(6, e.Code, "-1 does not find a private session");
            }
            else
            {
                Assert.True(!server.Own, "-1 found a session on a server where no other exists");
                Assert.True(latest.Result.ID != s.ID, "-1 found another session, not the private one");
                Wait.On(b.LeaveSession(), a, b);
            }
            Wait.On(b.JoinSession(s.ID), a, b);
            Assert.Equal(s.ID, b.Session.ID, "its ID does");
            Assert.True(s.ID < (1L << 53), "an ID below 2^53");
        }

        [Test]
        static void TheHostKicks()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url, Clients.Host());
            var b = Clients.Connect(server.Url, Clients.Host());
            var c = Clients.Connect(server.Url, Clients.Host());
            var s = Wait.On(a.CreateSession(), a);
            Wait.On(b.JoinSession(s.ID), a, b);
            Wait.On(c.JoinSession(s.ID), a, b, c);
            Wait.For(() => a.Session.Players.Count == 3, "a to see everyone", a, b, c);
            Assert.Equal(a.PlayerID, a.Session.HostID, "the creator is the host");
            Assert.Equal(a.PlayerID, c.Session.HostID, "c knows the host");
            var journalC = new Journal(c);
            var leaves = new List<SessionLeaveEventArgs>();
            b.SessionLeave += (x, e) => leaves.Add(e);
            var bID = b.PlayerID.Value;

            var err = Assert.Fails<SessionException>(c.KickPlayer(a.PlayerID.Value), a, b, c);
            Assert.Equal(29, err.Code, "only the host kicks");
            Assert.Equal("playerLeave", err.Command, "in playerLeave");
            err = Assert.Fails<SessionException>(a.KickPlayer(a.PlayerID.Value), a, b, c);
            Assert.Equal(30, err.Code, "no such other member");

            var kicks = new List<PlayerLeaveEventArgs>();
            a.PlayerLeave += (x, e) => kicks.Add(e);
            Wait.On(a.KickPlayer(bID), a, b, c);
            Assert.True(kicks.Single().Kicked && kicks[0].PlayerID == bID, "the host's PlayerLeave says it kicked b");
            Assert.True(!a.Session.Players.ContainsKey(bID), "b is gone from the host's list");
            Wait.For(() => leaves.Count == 1, "b to be told", a, b, c);
            Assert.True(leaves[0].Kicked, "b was kicked");
            Assert.True(b.Session == null, "b is in the lobby");
            Wait.For(() => journalC.Entries.Contains("playerLeave " + bID), "c to see b leave", a, b, c);
            Wait.On(b.CreateSession(), b);
            Assert.True(b.Session.ID != s.ID, "b can play elsewhere");
        }

        [Test]
        static void AKickWithoutTheHostFeature()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url);
            var b = Clients.Connect(server.Url);
            var s = Wait.On(a.CreateSession(), a);
            Wait.On(b.JoinSession(s.ID), a, b);
            var leaves = new List<SessionLeaveEventArgs>();
            b.SessionLeave += (x, e) => leaves.Add(e);
            Wait.On(a.KickPlayer(b.PlayerID.Value), a, b);
            Wait.For(() => leaves.Count == 1, "b to be told", a, b);
            Assert.True(leaves[0].Kicked, "a sessionLeave b did not ask for is a kick");
            Assert.True(b.Session == null && a.Session.HostID == null, "b in the lobby; no host feature, no host ID");
        }

        [Test]
        static void TheHostLocks()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url, Clients.Host());
            var b = Clients.Connect(server.Url, Clients.Host());
            var c = Clients.Connect(server.Url, Clients.Host());
            var s = Wait.On(a.CreateSession(), a);
            Wait.On(b.JoinSession(s.ID), a, b);
            var locks = new List<bool>();
            b.SessionLock += (x, e) => locks.Add(e.Locked);
            var own = new List<bool>();
            a.SessionLock += (x, e) => own.Add(e.Self);

            var err = Assert.Fails<SessionException>(b.LockSession(true), a, b);
            Assert.Equal(29, err.Code, "only the host locks");
            Assert.Equal(true, Wait.On(a.LockSession(true), a, b), "locked");
            Wait.For(() => locks.Count == 1, "b to be told", a, b);
            Assert.Equal(true, b.Session.Locked, "b's session knows");
            err = Assert.Fails<SessionException>(c.JoinSession(s.ID), a, b, c);
            Assert.Equal(28, err.Code, "a locked session");
            Assert.Equal("the session's host locked it: it takes no new players", err.Meaning, "its meaning");
            Assert.Equal(false, Wait.On(a.LockSession(false), a, b), "unlocked");
            Wait.On(c.JoinSession(s.ID), a, b, c);
            Assert.Sequence(new[] { true, false }, locks, "b saw both");
            Assert.Sequence(new[] { true, true }, own, "the host's were its own");
        }

        [Test]
        static void TheHostChanges()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url, Clients.Host());
            var b = Clients.Connect(server.Url, Clients.Host());
            var c = Clients.Connect(server.Url, Clients.Host());
            var s = Wait.On(a.CreateSession(null, null, new SessionOptions { HostOnlySessionUpdates = true }), a);
            Wait.On(b.JoinSession(s.ID), a, b);
            Wait.On(c.JoinSession(s.ID), a, b, c);
            var changes = new List<long>();
            c.HostChange += (x, e) => changes.Add(e.PlayerID);

            var err = Assert.Fails<SessionException>(b.UpdateSession(new { round = 2 }), a, b, c);
            Assert.Equal(29, err.Code, "hostOnlySessionUpdates");
            Assert.Equal("sessionUpdate", err.Command, "in sessionUpdate");
            Wait.On(a.UpdateSession(new { round = 2 }), a, b, c);

            Wait.On(a.LeaveSession(), a, b, c);
            Wait.For(() => changes.Count == 1, "c to learn of the new host", a, b, c);
            Assert.Equal(b.PlayerID.Value, changes[0], "the earliest remaining member");
            Assert.Equal(b.PlayerID, c.Session.HostID, "c's session knows");
            Wait.For(() => b.Session.HostID == b.PlayerID, "b to know it is the host", a, b, c);
            Wait.On(b.UpdateSession(new { round = 3 }), a, b, c);
            Assert.Equal(3, (int)b.Session.Data["round"], "the new host may update the session");
        }

        [Test]
        static void TheHostIsKnownAfterAResume()
        {
            var server = Server.Start();
            var proxy = Proxy.To(server);
            var a = Clients.Connect(server.Url, Clients.Host());
            var b = Clients.Connect(server.Url, Clients.Host());
            var quick = Clients.Quick();
            quick.Host = true;
            var c = Clients.Connect(proxy.Url, quick);
            var s = Wait.On(a.CreateSession(), a);
            Wait.On(b.JoinSession(s.ID), a, b);
            Wait.On(c.JoinSession(s.ID), a, b, c);
            var resumed = 0;
            c.Resumed += (x, e) => resumed++;

            // The host leaves while c is away: hostChange is not replayed, the resume names the host.
            proxy.Down();
            proxy.Cut();
            Wait.For(() => c.ReconnectState != null, "c to notice the drop", a, b, c);
            Wait.On(a.LeaveSession(), a, b);
            proxy.Up();
            Wait.For(() => resumed == 1, "c to resume", b, c);
            Assert.Equal(b.PlayerID, c.Session.HostID, "the host now");
            Assert.True(!c.Session.Players.ContainsKey(a.PlayerID.Value), "a's leave was replayed");
        }
    }
}
