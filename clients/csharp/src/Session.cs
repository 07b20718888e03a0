// The session a client is in, as the client keeps it from the server's frames.
using System.Collections;
using System.Collections.Generic;
using Newtonsoft.Json.Linq;

namespace SessionServer
{
    /// <summary>The session this client is in, kept up to date by the client (in Poll()).</summary>
    public sealed class Session
    {
        internal Session(long id, JToken data, JToken playerData)
        {
            ID = id;
            Data = data;
            PlayerData = playerData;
            Players = new PlayerList();
        }

        /// <summary>The session's ID.</summary>
        public long ID { get; internal set; }
        /// <summary>The sessionData.</summary>
        public JToken Data { get; internal set; }
        /// <summary>The default playerData: what every member starts with, and its key structure.</summary>
        public JToken PlayerData { get; internal set; }
        /// <summary>Every member's playerData by player ID: this client's own first, then the others
        /// in the order the client learned of them.</summary>
        public PlayerList Players { get; private set; }
        /// <summary>The host's player ID, when the server grants the <c>host</c> feature; else null.</summary>
        public long? HostID { get; internal set; }
        /// <summary>Whether the host locked the session, as far as this client was told (its own
        /// lockSession, or with the host feature the host's).</summary>
        public bool Locked { get; internal set; }
    }

    /// <summary>Player IDs and their playerData, in the order they were added.</summary>
    public sealed class PlayerList : IReadOnlyDictionary<long, JToken>
    {
        readonly Dictionary<long, JToken> data = new Dictionary<long, JToken>();
        readonly List<long> order = new List<long>();

        internal void Set(long id, JToken value)
        {
            if (!data.ContainsKey(id)) order.Add(id);
            data[id] = value;
        }

        internal bool Remove(long id)
        {
            if (!data.Remove(id)) return false;
            order.Remove(id);
            return true;
        }

        public JToken this[long id] { get { return data[id]; } }
        public int Count { get { return order.Count; } }
        public IEnumerable<long> Keys { get { return order.ToArray(); } }
        public IEnumerable<JToken> Values { get { foreach (var id in order.ToArray()) yield return data[id]; } }
        public bool ContainsKey(long id) { return data.ContainsKey(id); }
        public bool TryGetValue(long id, out JToken value) { return data.TryGetValue(id, out value); }

        public IEnumerator<KeyValuePair<long, JToken>> GetEnumerator()
        {
            foreach (var id in order.ToArray()) yield return new KeyValuePair<long, JToken>(id, data[id]);
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }
    }

    /// <summary>The options of createSession (the access extension); each is optional.</summary>
    public sealed class SessionOptions
    {
        /// <summary>Players the session may hold; a join beyond gets error 16.</summary>
        public int? MaxPlayers { get; set; }
        /// <summary>Not reachable by joinSession -1; its ID is random below 2^53.</summary>
        public bool? Private { get; set; }
        /// <summary>joinSession must carry it (else error 26; too many wrong ones: 27).</summary>
        public string Password { get; set; }
        /// <summary>Only the host may send updateSession (others get error 29).</summary>
        public bool? HostOnlySessionUpdates { get; set; }
        /// <summary>Public information ListSessions shows (a JSON object of at most 4 KiB): a
        /// JToken, or any object (JToken.FromObject).</summary>
        public object Metadata { get; set; }

        internal JObject ToJson()
        {
            var o = new JObject();
            if (MaxPlayers.HasValue) o["maxPlayers"] = MaxPlayers.Value;
            if (Private.HasValue) o["private"] = Private.Value;
            if (Password != null) o["password"] = Password;
            if (HostOnlySessionUpdates.HasValue) o["hostOnlySessionUpdates"] = HostOnlySessionUpdates.Value;
            if (Metadata != null) o["metadata"] = Metadata as JToken ?? JToken.FromObject(Metadata);
            return o;
        }
    }
}
