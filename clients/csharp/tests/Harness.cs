// The test harness: a runner (no NUnit needed), the native server started per test (or the
// server at SESSIONSERVER_URL, e.g. the edge host under `wrangler dev`), a TCP proxy that cuts
// connections the way a network does, and waits that pump Poll() as a game loop would. Every
// wait is for a condition; the deadline only stops a hung test.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using SessionServer;

namespace SessionServer.Tests
{
    [AttributeUsage(AttributeTargets.Method)]
    sealed class TestAttribute : Attribute
    {
    }

    /// <summary>Thrown by a test that cannot run against this server (it says why).</summary>
    sealed class SkipException : Exception
    {
        public SkipException(string why) : base(why)
        {
        }
    }

    /// <summary>The server the tests run against: a native one of their own per test, or the one
    /// SESSIONSERVER_URL names (`ws://host:port/`, as the Rust client's and the suite's tests),
    /// which the tests share with whatever else talks to it.</summary>
    static class Target
    {
        public const string UrlVar = "SESSIONSERVER_URL";
        /// <summary>That server's resume grace period in ms, for the test that waits for it to end.</summary>
        public const string GraceVar = "SESSIONSERVER_RESUME_GRACE_MS";
        /// <summary>"1": the server is a local worker with TEST_HOOKS=1 (POST /__test/reset, flush).</summary>
        public const string HooksVar = "SESSIONSERVER_TEST_HOOKS";

        public static readonly string ExternalUrl = NonEmpty(Environment.GetEnvironmentVariable(UrlVar));

        public static bool External { get { return ExternalUrl != null; } }

        public static bool TestHooks { get { return Environment.GetEnvironmentVariable(HooksVar) == "1"; } }

        /// <summary>The external server's grace period, if given and short enough for a wait.</summary>
        public static int? GraceMs()
        {
            int ms;
            var text = Environment.GetEnvironmentVariable(GraceVar);
            if (text == null || !int.TryParse(text, out ms) || ms < 0) return null;
            return ms + 2000 < Wait.Deadline.TotalMilliseconds ? (int?)ms : null;
        }

        /// <summary>A run-unique value, for metadata that tells this test's sessions from the
        /// others a shared server lists.</summary>
        public static string RunID(string what)
        {
            return what + "-" + Guid.NewGuid().ToString("N").Substring(0, 12);
        }

        static string NonEmpty(string s)
        {
            return string.IsNullOrEmpty(s) ? null : s;
        }
    }

    static class Runner
    {
        public static string ServerBinary;

        static int Main(string[] args)
        {
            if (args.Length < 1 || (args[0] == "-" && !Target.External))
            {
                Console.Error.WriteLine("usage: mono SessionServer.Tests.exe <sessionserver binary | - with " + Target.UrlVar + "> [name filter]");
                return 2;
            }
            ServerBinary = args[0];
            string filter = args.Length > 1 ? args[1] : null;
            if (Target.External)
            {
                Console.WriteLine("against " + Target.UrlVar + "=" + Target.ExternalUrl + " (" + Target.GraceVar + "=" +
                    (Target.GraceMs().HasValue ? Target.GraceMs().ToString() : "unknown") + ", " + Target.HooksVar + "=" +
                    (Target.TestHooks ? "1" : "unset") + "): tests that need a server of their own skip");
            }
            int passed = 0, failed = 0, skipped = 0;
            var tests = typeof(Runner).Assembly.GetTypes()
                .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
                .Where(m => m.GetCustomAttributes(typeof(TestAttribute), false).Length > 0)
                .OrderBy(m => m.DeclaringType.Name).ThenBy(m => m.MetadataToken);
            foreach (var test in tests)
            {
                var name = test.DeclaringType.Name + "." + test.Name;
                if (filter != null && name.IndexOf(filter, StringComparison.OrdinalIgnoreCase) < 0) continue;
                var watch = Stopwatch.StartNew();
                try
                {
                    test.Invoke(null, null);
                    passed++;
                    Console.WriteLine("ok   " + name + " (" + watch.ElapsedMilliseconds + " ms)");
                }
                catch (TargetInvocationException e) when (e.InnerException is SkipException)
                {
                    skipped++;
                    Console.WriteLine("skip " + name + ": " + e.InnerException.Message);
                }
                catch (TargetInvocationException e)
                {
                    failed++;
                    Console.WriteLine("FAIL " + name + ": " + e.InnerException);
                }
                finally
                {
                    Cleanup.Run();
                }
            }
            Console.WriteLine(passed + " passed, " + failed + " failed, " + skipped + " skipped");
            Console.Out.Flush();
            // Exit now: nothing left running (a socket's task, a pipe's thread) may hold the exit up.
            Environment.Exit(failed == 0 && passed > 0 ? 0 : 1);
            return 1;
        }
    }

    /// <summary>What a test started, stopped after it whatever happened.</summary>
    static class Cleanup
    {
        static readonly List<Action> actions = new List<Action>();

        public static T Add<T>(T thing, Action<T> stop)
        {
            actions.Add(() => stop(thing));
            return thing;
        }

        public static void Run()
        {
            for (int i = actions.Count - 1; i >= 0; i--)
            {
                try { actions[i](); } catch (Exception) { /* best effort */ }
            }
            actions.Clear();
        }
    }

    static class Assert
    {
        public static void Equal<T>(T expected, T actual, string what = "")
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
            {
                throw new Exception((what == "" ? "" : what + ": ") + "expected " + Show(expected) + ", got " + Show(actual));
            }
        }

        public static void True(bool condition, string what)
        {
            if (!condition) throw new Exception("expected: " + what);
        }

        public static void Sequence<T>(IEnumerable<T> expected, IEnumerable<T> actual, string what = "")
        {
            var e = expected.ToList();
            var a = actual.ToList();
            if (!e.SequenceEqual(a))
            {
                throw new Exception((what == "" ? "" : what + ": ") + "expected [" + string.Join(", ", e.Select(x => Show(x))) + "], got [" + string.Join(", ", a.Select(x => Show(x))) + "]");
            }
        }

        /// <summary>The exception a task failed with (pumping the clients until it completes).</summary>
        public static TException Fails<TException>(Task task, params SessionClient[] clients) where TException : Exception
        {
            Wait.For(() => task.IsCompleted, "the task to complete", clients);
            if (!task.IsFaulted) throw new Exception("expected " + typeof(TException).Name + ", the task " + (task.IsCanceled ? "was cancelled" : "succeeded"));
            var inner = task.Exception.InnerException;
            var typed = inner as TException;
            if (typed == null) throw new Exception("expected " + typeof(TException).Name + ", got " + inner);
            return typed;
        }

        static string Show(object o)
        {
            return o == null ? "null" : o is string ? "\"" + o + "\"" : o.ToString();
        }
    }

    static class Wait
    {
        public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

        /// <summary>Polls the clients, as a game loop would, until the condition holds.</summary>
        public static void For(Func<bool> condition, string what, params SessionClient[] clients)
        {
            var watch = Stopwatch.StartNew();
            while (true)
            {
                foreach (var c in clients) c.Poll();
                if (condition()) return;
                if (watch.Elapsed > Deadline) throw new TimeoutException("waited " + Deadline.TotalSeconds + " s for " + what);
                Thread.Sleep(1);
            }
        }

        /// <summary>Polls the clients until the task completes; its result (or its exception).</summary>
        public static T On<T>(Task<T> task, params SessionClient[] clients)
        {
            For(() => task.IsCompleted, "the task to complete", clients);
            return task.GetAwaiter().GetResult();
        }

        public static void On(Task task, params SessionClient[] clients)
        {
            For(() => task.IsCompleted, "the task to complete", clients);
            task.GetAwaiter().GetResult();
        }
    }

    /// <summary>A native server on 127.0.0.1, port 0, stopped by its PID; or, with SESSIONSERVER_URL,
    /// that server (nothing to start or stop), for the tests that work against any server.</summary>
    sealed class Server
    {
        readonly Process process;
        public readonly string Host;
        public readonly int Port;
        readonly string url;

        Server(Process process, string host, int port, string url)
        {
            this.process = process;
            Host = host;
            Port = port;
            this.url = url;
        }

        public string Url { get { return url; } }

        /// <summary>Whether this is the test's own server (not the one SESSIONSERVER_URL names).</summary>
        public bool Own { get { return process != null; } }

        /// <summary>A server with these options: with none, the external one if there is one;
        /// with some, the test needs a server of its own and skips against SESSIONSERVER_URL.</summary>
        public static Server Start(params string[] args)
        {
            if (args.Length == 0 && Target.External) return External();
            return StartWith(null, args);
        }

        /// <summary>A server of the test's own; against SESSIONSERVER_URL the test skips, saying why.</summary>
        public static Server Owned(string why)
        {
            if (Target.External) throw new SkipException("it needs a server of its own (" + why + ")");
            return StartWith(null);
        }

        /// <summary>A server whose resume grace period is short and known: a native one with
        /// `ms`, or the external one with SESSIONSERVER_RESUME_GRACE_MS given (else skipped).</summary>
        public static Server WithGrace(int ms)
        {
            if (!Target.External) return StartWith(null, "--resume-grace-ms", ms.ToString());
            if (Target.GraceMs() == null)
            {
                throw new SkipException("waiting for the grace period to end needs " + Target.GraceVar + " (under " + (Wait.Deadline.TotalMilliseconds - 2000) + ")");
            }
            return External();
        }

        static Server External()
        {
            Uri uri;
            if (!Uri.TryCreate(Target.ExternalUrl, UriKind.Absolute, out uri) || uri.Scheme != "ws")
            {
                throw new Exception(Target.UrlVar + "=" + Target.ExternalUrl + ": want ws://host:port/");
            }
            return new Server(null, uri.Host, uri.Port, Target.ExternalUrl);
        }

        /// <summary>With environment variables (secrets belong there, not in flags).</summary>
        public static Server StartWith(IDictionary<string, string> env, params string[] args)
        {
            if (Target.External)
            {
                var what = args.Length > 0 ? string.Join(" ", args) : "";
                if (env != null) what = (string.Join(", ", env.Keys) + " " + what).Trim();
                throw new SkipException("it needs a server of its own, started with " + what);
            }
            var info = new ProcessStartInfo(Runner.ServerBinary, "--bind 127.0.0.1 --port 0 " + string.Join(" ", args))
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            // Logs are not needed; reading them keeps the pipe from filling.
            info.EnvironmentVariables["RUST_LOG"] = "warn";
            if (env != null) foreach (var v in env) info.EnvironmentVariables[v.Key] = v.Value;
            var process = Process.Start(info);
            process.ErrorDataReceived += (s, e) => { };
            process.BeginErrorReadLine();
            var banner = process.StandardOutput.ReadLine() ?? "";
            const string prefix = "[SessionServer] Listening on port ";
            int port;
            if (!banner.StartsWith(prefix) || !int.TryParse(banner.Substring(prefix.Length).Trim(), out port))
            {
                try { process.Kill(); } catch (Exception) { }
                throw new Exception("not the banner: " + banner);
            }
            // Nothing more is read from stdout; drain it so the server never blocks on it.
            Task.Run(() => process.StandardOutput.ReadToEnd());
            return Cleanup.Add(new Server(process, "127.0.0.1", port, "ws://127.0.0.1:" + port + "/"), s => s.Stop());
        }

        /// <summary>SIGTERM: the server closes every socket with 1001 and exits.</summary>
        public void Terminate()
        {
            if (process == null) throw new InvalidOperationException("not this test's own server");
            Process.Start("kill", "-TERM " + process.Id).WaitForExit();
        }

        public void Stop()
        {
            if (process == null) return;
            try
            {
                if (!process.HasExited) process.Kill();
                process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }
    }

    /// <summary>A TCP proxy on 127.0.0.1 in front of a server. Cut() resets every client
    /// connection (no close frame: the client sees 1006) and closes the server side (the server
    /// finds the connection gone); Swallow() makes what the server sends vanish on the way, as
    /// bytes in flight do when a link dies; Down()/Up() refuse new connections and accept again.</summary>
    sealed class Proxy
    {
        readonly TcpListener listener;
        readonly string targetHost;
        readonly int target;
        readonly object gate = new object();
        readonly List<TcpClient[]> pairs = new List<TcpClient[]>();
        volatile bool swallowing, refusing, stopped;
        int accepted;

        Proxy(string targetHost, int target)
        {
            this.targetHost = targetHost;
            this.target = target;
            listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            new Thread(AcceptLoop) { IsBackground = true }.Start();
        }

        public static Proxy To(Server server)
        {
            return Cleanup.Add(new Proxy(server.Host, server.Port), p => p.Stop());
        }

        public string Url { get { return "ws://127.0.0.1:" + ((IPEndPoint)listener.LocalEndpoint).Port + "/"; } }
        public int Accepted { get { lock (gate) return accepted; } }

        public void Swallow() { swallowing = true; }
        public void Down() { refusing = true; }
        public void Up() { refusing = false; }

        public void Cut()
        {
            List<TcpClient[]> now;
            lock (gate)
            {
                now = new List<TcpClient[]>(pairs);
                pairs.Clear();
            }
            foreach (var pair in now)
            {
                Reset(pair[0]);
                pair[1].Close();
            }
            swallowing = false;
        }

        public void Stop()
        {
            stopped = true;
            listener.Stop();
            Cut();
        }

        static void Reset(TcpClient client)
        {
            try
            {
                // Linger 0: the close is a reset, as when a network path dies under a connection.
                client.LingerState = new LingerOption(true, 0);
                client.Close();
            }
            catch (Exception)
            {
                // Gone already.
            }
        }

        void AcceptLoop()
        {
            while (!stopped)
            {
                TcpClient client;
                try { client = listener.AcceptTcpClient(); } catch (Exception) { return; }
                if (refusing)
                {
                    Reset(client);
                    continue;
                }
                TcpClient upstream;
                try
                {
                    upstream = new TcpClient();
                    upstream.Connect(targetHost, target);
                }
                catch (Exception)
                {
                    Reset(client);
                    continue;
                }
                var pair = new[] { client, upstream };
                lock (gate)
                {
                    accepted++;
                    pairs.Add(pair);
                }
                new Thread(() => Pipe(client, upstream, false)) { IsBackground = true }.Start();
                new Thread(() => Pipe(upstream, client, true)) { IsBackground = true }.Start();
            }
        }

        void Pipe(TcpClient from, TcpClient to, bool fromServer)
        {
            var buffer = new byte[16384];
            try
            {
                var input = from.GetStream();
                var output = to.GetStream();
                while (true)
                {
                    int n = input.Read(buffer, 0, buffer.Length);
                    if (n <= 0) break;
                    if (fromServer && swallowing) continue;
                    output.Write(buffer, 0, n);
                }
            }
            catch (Exception)
            {
                // One side went away.
            }
            if (fromServer) Reset(to);
            else to.Close();
        }
    }

    /// <summary>Everything a client tells its game about the session, in order.</summary>
    sealed class Journal
    {
        public readonly List<string> Entries = new List<string>();

        public Journal(SessionClient c)
        {
            c.PlayerJoin += (s, e) => Entries.Add("playerJoin " + e.PlayerID + " " + e.Raw);
            c.PlayerUpdate += (s, e) => Entries.Add("playerUpdate " + e.PlayerID + " " + e.Raw);
            c.PlayerLeave += (s, e) => Entries.Add("playerLeave " + e.PlayerID);
            c.SessionUpdate += (s, e) => Entries.Add("sessionUpdate " + e.Raw);
            c.Reconnecting += (s, e) => Entries.Add("reconnecting");
            c.Resumed += (s, e) => Entries.Add("resumed " + e.Replay);
            c.Lost += (s, e) => Entries.Add("lost " + e.Reason);
            c.Closed += (s, e) => Entries.Add("closed " + e.Code);
        }

        public IEnumerable<string> Only(string prefix)
        {
            return Entries.Where(e => e.StartsWith(prefix)).ToList();
        }
    }

    static class Clients
    {
        /// <summary>A connected client, closed after the test.</summary>
        public static SessionClient Connect(string url, SessionClientOptions options = null)
        {
            var c = new SessionClient(url, options);
            Cleanup.Add(c, x => x.Dispose());
            Wait.On(c.Connect(), c);
            return c;
        }

        /// <summary>With the host feature.</summary>
        public static SessionClientOptions Host()
        {
            return new SessionClientOptions { Host = true };
        }

        /// <summary>Quick attempts, and enough of them to outlast a proxy that refuses for a while.</summary>
        public static SessionClientOptions Quick()
        {
            return new SessionClientOptions
            {
                Reconnect = new ReconnectOptions { BaseDelayMs = 10, MaxDelayMs = 100, MaxAttempts = 10000 },
            };
        }
    }
}
