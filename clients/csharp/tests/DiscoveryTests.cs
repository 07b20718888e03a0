// Finding a game: metadata, ListSessions with a filter and pages, private sessions absent,
// SetMetadata by the host, JoinOrCreate filling a session to maxPlayers then creating the next.
// Each test's sessions carry a run-unique `run` in their metadata and every listing filters on
// it, so the tests also run against a shared server; and since a listing at the edge is
// eventually consistent (its registry is a request behind each session), they list again until
// it shows what they wait for (at once natively).
using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Newtonsoft.Json.Linq;
using SessionServer;

namespace SessionServer.Tests
{
    static class DiscoveryTests
    {
        /// <summary>Lists (pumping the browser) until `done` holds; fails after the wait's deadline
        /// with the last listing.</summary>
        static SessionList ListUntil(SessionClient browser, Func<Task<SessionList>> list, Func<SessionList, bool> done, string what)
        {
            var watch = Stopwatch.StartNew();
            while (true)
            {
                var listing = Wait.On(list(), browser);
                if (done(listing)) return listing;
                if (watch.Elapsed > Wait.Deadline)
                {
                    throw new TimeoutException("the listing never showed " + what + "; last: [" +
                        string.Join(", ", listing.Sessions.Select(s => s.SessionID + " (" + s.Players + " players)")) + "]");
                }
                Thread.Sleep(100);
            }
        }

        static bool Lists(SessionList listing, long id)
        {
            return listing.Sessions.Any(s => s.SessionID == id);
        }

        [Test]
        static void ListingWithFiltersAndPages()
        {
            var server = Server.Start();
            var run = Target.RunID("listing");
            var a = Clients.Connect(server.Url);
            var ctf = Wait.On(a.CreateSession(null, null, new SessionOptions { MaxPlayers = 4, Metadata = new { run, mode = "ctf" } }), a);
            var b = Clients.Connect(server.Url);
            var hidden = Wait.On(b.CreateSession(null, null, new SessionOptions { Private = true, Metadata = new { run, mode = "ctf" } }), b);
            var c = Clients.Connect(server.Url);
            var ffa = Wait.On(c.CreateSession(null, null, new SessionOptions { Metadata = new { run, mode = "ffa" } }), c);

            var browser = Clients.Connect(server.Url);
            var all = ListUntil(browser, () => browser.ListSessions(new { run }), l => Lists(l, ctf.ID) && Lists(l, ffa.ID), "both public sessions");
            Assert.Equal(2, all.Sessions.Count, "public sessions only");
            Assert.True(!Lists(all, hidden.ID), "the private session is not listed");
            Assert.Equal(ffa.ID, all.Sessions[0].SessionID, "newest first");
            Assert.Equal(ctf.ID, all.Sessions[1].SessionID, "then the older");
            Assert.Equal(4, all.Sessions[1].MaxPlayers.Value, "maxPlayers");
            Assert.Equal(1, all.Sessions[1].Players, "its one player");
            Assert.Equal("ctf", (string)all.Sessions[1].Metadata["mode"], "metadata");
            Assert.Equal(run, (string)all.Sessions[1].Metadata["run"], "metadata as given");
            Assert.True(all.Next == null, "one page");

            var filtered = Wait.On(browser.ListSessions(new { run, mode = "ctf" }), browser);
            Assert.Equal(ctf.ID, filtered.Sessions.Single().SessionID, "the filter");
            var page = Wait.On(browser.ListSessions(new { run }, false, null, 1), browser);
            Assert.Equal(ffa.ID, page.Sessions.Single().SessionID, "a page of one");
            Assert.True(page.Next != null, "a next page");
            var next = Wait.On(browser.ListSessions(new { run }, false, page.Next, 1), browser);
            Assert.Equal(ctf.ID, next.Sessions.Single().SessionID, "the next page");

            Assert.Equal(2, (int)Wait.On(a.SetMetadata(new { run, mode = "ctf", round = 2 }), a)["round"], "the host's metadata");
            var round = ListUntil(browser, () => browser.ListSessions(new { run, round = 2 }), l => l.Sessions.Count > 0, "the new metadata");
            Assert.Equal(ctf.ID, round.Sessions.Single().SessionID, "listed with it");
            var e32 = Assert.Fails<SessionException>(a.ListSessions(), a);
            Assert.Equal(32, e32.Code, "lobby only");
        }

        [Test]
        static void JoinOrCreateFillsThenCreates()
        {
            var server = Server.Start();
            var run = Target.RunID("duel");
            var filter = new { mode = "duel", run };
            var options = new SessionOptions { MaxPlayers = 2 };
            var a = Clients.Connect(server.Url);
            var first = Wait.On(a.JoinOrCreate(filter, null, null, options), a);
            Assert.Equal(a.PlayerID.Value, first.Players.Keys.Single(), "nothing matched: a created it");
            var browser = Clients.Connect(server.Url);
            // Until the listing shows it (the edge's registry), a joinOrCreate would create another.
            ListUntil(browser, () => browser.ListSessions(filter), l => Lists(l, first.ID), "the first session");
            var b = Clients.Connect(server.Url);
            var second = Wait.On(b.JoinOrCreate(filter, null, null, options), a, b);
            Assert.Equal(first.ID, second.ID, "joined the match");
            ListUntil(browser, () => browser.ListSessions(filter), l => l.Sessions.Any(s => s.SessionID == first.ID && s.Players == 2), "the first session full");
            var c = Clients.Connect(server.Url);
            var third = Wait.On(c.JoinOrCreate(filter, null, null, options), a, b, c);
            Assert.True(third.ID != first.ID, "the first was full: a new one");
            var open = ListUntil(browser, () => browser.ListSessions(filter, true), l => Lists(l, third.ID), "the new session");
            Assert.Equal(third.ID, open.Sessions.Single().SessionID, "only the new one has room");
            Assert.Equal("duel", (string)open.Sessions[0].Metadata["mode"], "its metadata is the filter");
            Assert.Equal(run, (string)open.Sessions[0].Metadata["run"], "all of it");
        }
    }
}
