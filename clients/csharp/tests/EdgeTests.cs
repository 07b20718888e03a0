// What differs at the edge host: when the link between a client's connection and its session's
// object breaks (the object reset, losing its memory or only its sockets), a client that asked
// for `resume` is closed with 1012 and takes its seat back itself: the same player, a snapshot
// when the object lost its memory, and the game goes on. The twin of clients/rust/tests/edge.rs.
//
// Runs against a local worker started with TEST_HOOKS=1 (scripts/edge-test.sh), given by
// SESSIONSERVER_URL and SESSIONSERVER_TEST_HOOKS=1; skipped otherwise.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using SessionServer;

namespace SessionServer.Tests
{
    static class EdgeTests
    {
        /// <summary>POSTs to the worker's test hook /__test/{path}; the HTTP status.</summary>
        static int Hook(Server server, string path)
        {
            var request = (HttpWebRequest)WebRequest.Create("http://" + server.Host + ":" + server.Port + "/__test/" + path);
            request.Method = "POST";
            request.ContentLength = 0;
            request.Timeout = (int)Wait.Deadline.TotalMilliseconds;
            request.Proxy = null;
            try
            {
                using (var response = (HttpWebResponse)request.GetResponse()) return (int)response.StatusCode;
            }
            catch (WebException e)
            {
                var response = e.Response as HttpWebResponse;
                if (response == null) throw;
                using (response) return (int)response.StatusCode;
            }
        }

        /// <summary>Resets the session's object (`keep`: its memory survives, only its sockets go).
        /// It first has the object write the playerData it holds unwritten (the edge writes it at
        /// most once a second, worker/README.md, "Storage"): what a reset of the platform's can
        /// lose is not what this test is about.</summary>
        static void Reset(Server server, long session, bool keep)
        {
            Assert.Equal(200, Hook(server, "flush?session=" + session), "the flush hook");
            Assert.Equal(200, Hook(server, "reset?session=" + session + (keep ? "&memory=keep" : "")), "the reset hook");
        }

        [Test]
        static void ABrokenLinkClosesWith1012AndTheClientResumesItself()
        {
            if (!Target.External || !Target.TestHooks)
            {
                throw new SkipException("it needs " + Target.UrlVar + " of a local worker with TEST_HOOKS=1 and " + Target.HooksVar + "=1");
            }
            var server = Server.Start();
            var a = Clients.Connect(server.Url, Clients.Quick());
            var b = Clients.Connect(server.Url, Clients.Quick());
            var s = Wait.On(a.CreateSession(null, new { x = 0 }), a);
            Wait.On(b.JoinSession(s.ID), a, b);
            long aID = a.PlayerID.Value, bID = b.PlayerID.Value;
            Wait.On(b.UpdatePlayer(new { x = 5 }), a, b);
            Wait.For(() => a.Session.Players.ContainsKey(bID) && (int)a.Session.Players[bID]["x"] == 5, "a to see b's update", a, b);
            var reconnectsA = new List<ReconnectingEventArgs>();
            var resumedA = new List<ResumedEventArgs>();
            var resumedB = new List<ResumedEventArgs>();
            var lost = new List<LostEventArgs>();
            a.Reconnecting += (x, e) => reconnectsA.Add(e);
            a.Resumed += (x, e) => resumedA.Add(e);
            b.Resumed += (x, e) => resumedB.Add(e);
            a.Lost += (x, e) => lost.Add(e);
            b.Lost += (x, e) => lost.Add(e);
            var seenByB = new List<string>();
            b.PlayerUpdate += (x, e) => { if (e.PlayerID == aID) seenByB.Add(e.Raw); };

            var rounds = new[] { false, true };
            for (int round = 1; round <= rounds.Length; round++)
            {
                bool keep = rounds[round - 1];
                int before = reconnectsA.Count;
                Reset(server, s.ID, keep);
                Wait.For(() => resumedA.Count == round && resumedB.Count == round, "both to resume (round " + round + ")", a, b);
                Assert.True(reconnectsA.Count > before, "a reconnected");
                Assert.Equal(1, reconnectsA[before].Attempt, "the first attempt after the drop");
                // (Mono's ClientWebSocket would have made it 1006: see TransportTests.)
                Assert.Equal(1012, reconnectsA[before].Code, "closed with 1012, the link to the session broke (reason: \"" + reconnectsA[before].Reason + "\")");
                if (!keep) Assert.Equal(Replay.Snapshot, resumedA.Last().Replay, "the object lost its memory: a snapshot");
                Assert.Equal(0, lost.Count, "no seat lost");
                Assert.Equal(aID, a.PlayerID.Value, "a is the same player");
                Assert.Equal(bID, b.PlayerID.Value, "b is the same player");
                Assert.Equal(s.ID, a.Session.ID, "still in the session");
                Assert.Equal("{\"x\":5}", a.Session.Players[bID].ToString(Newtonsoft.Json.Formatting.None), "b as it was");

                // The game goes on, both ways, as the same players.
                Wait.On(a.UpdatePlayer(new { x = round }), a, b);
                Wait.For(() => seenByB.Contains("{\"x\":" + round + "}"), "b to see a's update (round " + round + ")", a, b);
                Wait.On(b.UpdatePlayer(new { x = 5 }), a, b);
                Assert.Equal(5, (int)b.Session.Players[bID]["x"], "b's own update");
            }
            Assert.Sequence(new[] { 2, 2 }, new[] { a.Session.Players.Count, b.Session.Players.Count }, "both still see both");
        }
    }
}
