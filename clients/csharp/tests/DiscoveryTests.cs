// Finding a game: metadata, ListSessions with a filter and pages, private sessions absent,
// SetMetadata by the host, JoinOrCreate filling a session to maxPlayers then creating the next.
using System;
using System.Linq;
using Newtonsoft.Json.Linq;
using SessionServer;

namespace SessionServer.Tests
{
    static class DiscoveryTests
    {
        [Test]
        static void ListingWithFiltersAndPages()
        {
            var server = Server.Start();
            var a = Clients.Connect(server.Url);
            var ctf = Wait.On(a.CreateSession(null, null, new SessionOptions { MaxPlayers = 4, Metadata = new { mode = "ctf" } }), a);
            var b = Clients.Connect(server.Url);
            Wait.On(b.CreateSession(null, null, new SessionOptions { Private = true, Metadata = new { mode = "ctf" } }), b);
            var c = Clients.Connect(server.Url);
            var ffa = Wait.On(c.CreateSession(null, null, new SessionOptions { Metadata = new { mode = "ffa" } }), c);

            var browser = Clients.Connect(server.Url);
            var all = Wait.On(browser.ListSessions(), browser);
            Assert.Equal(2, all.Sessions.Count, "public sessions only");
            Assert.Equal(ffa.ID, all.Sessions[0].SessionID, "newest first");
            Assert.Equal(ctf.ID, all.Sessions[1].SessionID, "then the older");
            Assert.Equal(4, all.Sessions[1].MaxPlayers.Value, "maxPlayers");
            Assert.Equal("ctf", (string)all.Sessions[1].Metadata["mode"], "metadata");
            Assert.True(all.Next == null, "one page");

            var filtered = Wait.On(browser.ListSessions(new { mode = "ctf" }), browser);
            Assert.Equal(1, filtered.Sessions.Count, "the filter");
            var page = Wait.On(browser.ListSessions(null, false, null, 1), browser);
            Assert.Equal(1, page.Sessions.Count, "a page of one");
            var next = Wait.On(browser.ListSessions(null, false, page.Next, 1), browser);
            Assert.Equal(ctf.ID, next.Sessions[0].SessionID, "the next page");

            Assert.Equal(2, (int)Wait.On(a.SetMetadata(new { mode = "ctf", round = 2 }), a)["round"], "the host's metadata");
            var round = Wait.On(browser.ListSessions(new { round = 2 }), browser);
            Assert.Equal(ctf.ID, round.Sessions.Single().SessionID, "listed with it");
            var e32 = Assert.Fails<SessionException>(a.ListSessions(), a);
            Assert.Equal(32, e32.Code, "lobby only");
        }

        [Test]
        static void JoinOrCreateFillsThenCreates()
        {
            var server = Server.Start();
            var filter = new { mode = "duel" };
            var options = new SessionOptions { MaxPlayers = 2 };
            var a = Clients.Connect(server.Url);
            var first = Wait.On(a.JoinOrCreate(filter, null, null, options), a);
            var b = Clients.Connect(server.Url);
            var second = Wait.On(b.JoinOrCreate(filter, null, null, options), a, b);
            Assert.Equal(first.ID, second.ID, "joined the match");
            var c = Clients.Connect(server.Url);
            var third = Wait.On(c.JoinOrCreate(filter, null, null, options), a, b, c);
            Assert.True(third.ID != first.ID, "the first was full: a new one");
            var browser = Clients.Connect(server.Url);
            var open = Wait.On(browser.ListSessions(filter, true), browser);
            Assert.Equal(third.ID, open.Sessions.Single().SessionID, "only the new one has room");
            Assert.Equal("duel", (string)open.Sessions[0].Metadata["mode"], "its metadata is the filter");
        }
    }
}
