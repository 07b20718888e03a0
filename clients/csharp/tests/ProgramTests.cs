// A plain .NET program without a game loop: StartPolling() and async/await.
using System;
using System.Threading.Tasks;
using SessionServer;

namespace SessionServer.Tests
{
    static class ProgramTests
    {
        [Test]
        static void AsyncAwaitWithStartPolling()
        {
            var server = Server.Start();
            Assert.Equal(7, Play(server.Url).GetAwaiter().GetResult(), "b saw a's update");
        }

        static async Task<int> Play(string url)
        {
            using (var a = new SessionClient(url))
            using (var b = new SessionClient(url))
            {
                a.StartPolling();
                b.StartPolling();
                await a.Connect();
                await b.Connect();
                var seen = new TaskCompletionSource<int>();
                b.PlayerUpdate += (s, e) => { if (!e.Self) seen.TrySetResult((int)e.Data["x"]); };
                var session = await a.CreateSession(new { title = "dots" }, new { x = 0 });
                await b.JoinSession(session.ID);
                await a.UpdatePlayer(new { x = 7 });
                var done = await Task.WhenAny(seen.Task, Task.Delay(20000));
                if (done != seen.Task) throw new TimeoutException("b saw no update");
                await b.LeaveSession();
                var closed = await a.Close();
                Assert.Equal(1000, closed.Code, "closed");
                return seen.Task.Result;
            }
        }
    }
}
