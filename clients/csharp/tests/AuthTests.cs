// Connect-time auth: a JWT in the URL or in a header (WebSocketTransport.Headers).
using System;
using System.Collections.Generic;
using System.Security.Cryptography;
using System.Text;
using SessionServer;

namespace SessionServer.Tests
{
    static class AuthTests
    {
        const string Secret = "a secret of at least thirty-two bytes, for tests";

        static string Base64Url(byte[] bytes)
        {
            return Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        }

        // An HS256 JWT for `sub`, valid for ten minutes.
        static string Token(string sub)
        {
            long exp = DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 600;
            var head = Base64Url(Encoding.UTF8.GetBytes("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"));
            var claims = Base64Url(Encoding.UTF8.GetBytes("{\"sub\":\"" + sub + "\",\"exp\":" + exp + "}"));
            using (var hmac = new HMACSHA256(Encoding.UTF8.GetBytes(Secret)))
            {
                var signature = hmac.ComputeHash(Encoding.ASCII.GetBytes(head + "." + claims));
                return head + "." + claims + "." + Base64Url(signature);
            }
        }

        [Test]
        static void ATokenInTheUrlOrAHeader()
        {
            var server = Server.StartWith(new Dictionary<string, string> { { "AUTH_SECRET", Secret } });

            var byUrl = Clients.Connect(server.Url + "?token=" + Token("ada"));
            var session = Wait.On(byUrl.CreateSession(), byUrl);

            var options = new SessionClientOptions
            {
                Transport = () =>
                {
                    var t = new WebSocketTransport();
                    t.Headers["Authorization"] = "Bearer " + Token("bob");
                    return t;
                },
            };
            var byHeader = Clients.Connect(server.Url, options);
            Wait.On(byHeader.JoinSession(session.ID), byUrl, byHeader);
            Assert.Equal(session.ID, byHeader.Session.ID, "both got in");

            // Without a token the handshake is refused (401): no connection, a 1006 whose reason
            // names the answer.
            var refused = new SessionClient(server.Url);
            Cleanup.Add(refused, c => c.Dispose());
            var e = Assert.Fails<ConnectionClosedException>(refused.Connect(), refused);
            Assert.Equal(1006, e.Code, "no connection");
            Assert.True(e.Reason.Contains("HTTP/1.1 401"), "the reason names the status: " + e.Reason);
            Assert.True(refused.CloseStatus != null, "closed for good");
        }
    }
}
