// JSON through Newtonsoft.Json (Unity ships it as com.unity.nuget.newtonsoft-json; Debian as
// libnewtonsoft-json-cil-dev): only APIs present from its version 6 (Debian's) to 13 (Unity's).
//
// The server passes data through as the exact text a client sent (PROTOCOL.md, "Data
// fidelity"), and Newtonsoft, like any parser into doubles, does not: `1e3` comes back `1000.0`,
// `1e400` does not parse at all. So a frame is split into its top-level fields by a scanner that
// keeps each value's text, and only then are values parsed. The raw text is what the client
// compares (its own updateSession's echo) and what events hand out next to the parsed JToken.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SessionServer
{
    /// <summary>A frame from the server: its command, error code and each top-level field's text.</summary>
    public sealed class Frame
    {
        readonly Dictionary<string, string> raw;
        readonly Dictionary<string, JToken> parsed = new Dictionary<string, JToken>();

        Frame(string text, Dictionary<string, string> raw)
        {
            Text = text;
            this.raw = raw;
        }

        /// <summary>The frame's text as received.</summary>
        public string Text { get; private set; }
        /// <summary>The frame's <c>command</c>.</summary>
        public string Command { get; private set; }
        /// <summary>The frame's <c>error</c>: 0 on success (also when the field is missing).</summary>
        public int Error { get; private set; }

        /// <summary>Whether the frame has the top-level field <paramref name="key"/>.</summary>
        public bool Has(string key) { return raw.ContainsKey(key); }

        /// <summary>The exact text of a top-level field's value, or null.</summary>
        public string Raw(string key)
        {
            string text;
            return raw.TryGetValue(key, out text) ? text : null;
        }

        /// <summary>A top-level field parsed (see <see cref="Json.Parse"/>), or null when missing.</summary>
        public JToken Get(string key)
        {
            JToken token;
            if (parsed.TryGetValue(key, out token)) return token;
            var text = Raw(key);
            token = text == null ? null : Json.Parse(text);
            parsed[key] = token;
            return token;
        }

        /// <summary>The whole frame as a JObject (each field as <see cref="Get"/> gives it).</summary>
        public JObject ToJObject()
        {
            var obj = new JObject();
            foreach (var key in raw.Keys) obj[key] = Get(key);
            return obj;
        }

        internal long? Long(string key)
        {
            var token = Get(key);
            if (token == null || token.Type != JTokenType.Integer) return null;
            // A peer's number beyond long (a BigInteger) is no ID.
            try { return token.Value<long>(); } catch (Exception) { return null; }
        }

        internal string String(string key)
        {
            var token = Get(key);
            return token != null && token.Type == JTokenType.String ? token.Value<string>() : null;
        }

        internal bool? Bool(string key)
        {
            var token = Get(key);
            return token != null && token.Type == JTokenType.Boolean ? token.Value<bool>() : (bool?)null;
        }

        /// <summary>Either spelling of a data field: <c>session</c> / <c>sessionData</c>.</summary>
        internal string SessionKey { get { return Has("session") ? "session" : Has("sessionData") ? "sessionData" : null; } }
        internal string PlayerKey { get { return Has("player") ? "player" : Has("playerData") ? "playerData" : null; } }

        /// <summary>Splits a frame; null when it is not a JSON object with a string <c>command</c>.</summary>
        public static Frame TryParse(string text)
        {
            var fields = Json.SplitObject(text);
            if (fields == null) return null;
            var frame = new Frame(text, fields);
            frame.Command = frame.String("command");
            if (frame.Command == null) return null;
            var error = frame.Get("error");
            if (error != null)
            {
                if (error.Type != JTokenType.Integer) return null;
                try { frame.Error = error.Value<int>(); } catch (Exception) { return null; }
            }
            return frame;
        }
    }

    /// <summary>JSON helpers: parsing that changes nothing it need not, and serialising data to send.</summary>
    public static class Json
    {
        /// <summary>Nesting the parser accepts; the server allows up to 512.</summary>
        const int MaxDepth = 600;

        /// <summary>Parses one JSON value. Strings stay strings (no dates), numbers parse as
        /// Newtonsoft's usual long / BigInteger / double. A value Newtonsoft cannot hold (a number
        /// such as <c>1e400</c>) comes back as a JRaw of its text, so nothing is lost; malformed
        /// JSON throws <see cref="JsonReaderException"/>.</summary>
        public static JToken Parse(string text)
        {
            try
            {
                return Read(text);
            }
            catch (Exception)
            {
                // Valid JSON to the scanner but not to Newtonsoft (a number it cannot hold):
                // keep the text.
                if (SplitValue(text, 0) == text.Length) return new JRaw(text);
                throw;
            }
        }

        static JToken Read(string text)
        {
            using (var reader = new JsonTextReader(new StringReader(text)))
            {
                reader.DateParseHandling = DateParseHandling.None;
                reader.FloatParseHandling = FloatParseHandling.Double;
                reader.MaxDepth = MaxDepth;
                var token = JToken.ReadFrom(reader);
                if (reader.Read()) throw new JsonReaderException("text after the JSON value");
                return token;
            }
        }

        /// <summary>The JSON text of a value to send: a JToken as it is (a JRaw verbatim: the way
        /// to send text of your own), null as <c>{}</c> (data fields default to an empty object),
        /// anything else through JToken.FromObject (a string is a JSON string).</summary>
        public static string Serialize(object data)
        {
            if (data == null) return "{}";
            var token = data as JToken ?? JToken.FromObject(data);
            return token.ToString(Formatting.None);
        }

        internal static string Quote(string s)
        {
            return JsonConvert.ToString(s);
        }

        /// <summary>The top-level fields of a JSON object and each value's exact text; null when
        /// the text is not one object (or a key repeats). Values are checked by parsing them.</summary>
        internal static Dictionary<string, string> SplitObject(string s)
        {
            if (s == null) return null;
            int i = SkipSpace(s, 0);
            if (i >= s.Length || s[i] != '{') return null;
            var fields = new Dictionary<string, string>();
            i = SkipSpace(s, i + 1);
            if (i < s.Length && s[i] == '}') return SkipSpace(s, i + 1) == s.Length ? fields : null;
            while (true)
            {
                if (i >= s.Length || s[i] != '"') return null;
                int keyEnd = SkipString(s, i);
                if (keyEnd < 0) return null;
                string key;
                try { key = (string)Read(s.Substring(i, keyEnd - i)); } catch (JsonReaderException) { return null; }
                i = SkipSpace(s, keyEnd);
                if (i >= s.Length || s[i] != ':') return null;
                int start = SkipSpace(s, i + 1);
                int end = SplitValue(s, start);
                if (end < 0 || fields.ContainsKey(key)) return null;
                fields[key] = s.Substring(start, end - start);
                i = SkipSpace(s, end);
                if (i >= s.Length) return null;
                if (s[i] == '}') return SkipSpace(s, i + 1) == s.Length ? fields : null;
                if (s[i] != ',') return null;
                i = SkipSpace(s, i + 1);
            }
        }

        // The end of the JSON value starting at `i`, or -1 unless it is one valid JSON value
        // (RFC 8259: objects, arrays, strings with their escapes, numbers, literals) nested at
        // most MaxDepth deep. Recursive, bounded by the depth.
        static int SplitValue(string s, int i)
        {
            return Value(s, i, 0);
        }

        static int Value(string s, int i, int depth)
        {
            if (i >= s.Length) return -1;
            char c = s[i];
            if (c == '"') return SkipString(s, i);
            if (c == '{' || c == '[')
            {
                if (depth >= MaxDepth) return -1;
                char close = c == '{' ? '}' : ']';
                i = SkipSpace(s, i + 1);
                if (i < s.Length && s[i] == close) return i + 1;
                while (true)
                {
                    if (c == '{')
                    {
                        if (i >= s.Length || s[i] != '"') return -1;
                        i = SkipString(s, i);
                        if (i < 0) return -1;
                        i = SkipSpace(s, i);
                        if (i >= s.Length || s[i] != ':') return -1;
                        i = SkipSpace(s, i + 1);
                    }
                    i = Value(s, i, depth + 1);
                    if (i < 0) return -1;
                    i = SkipSpace(s, i);
                    if (i >= s.Length) return -1;
                    if (s[i] == close) return i + 1;
                    if (s[i] != ',') return -1;
                    i = SkipSpace(s, i + 1);
                }
            }
            foreach (var literal in Literals)
            {
                if (string.CompareOrdinal(s, i, literal, 0, literal.Length) == 0) return i + literal.Length;
            }
            return SkipNumber(s, i);
        }

        static readonly string[] Literals = { "true", "false", "null" };

        // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        static int SkipNumber(string s, int i)
        {
            if (i < s.Length && s[i] == '-') i++;
            if (i >= s.Length || !IsDigit(s[i])) return -1;
            if (s[i] == '0') i++;
            else while (i < s.Length && IsDigit(s[i])) i++;
            if (i < s.Length && s[i] == '.')
            {
                i++;
                if (i >= s.Length || !IsDigit(s[i])) return -1;
                while (i < s.Length && IsDigit(s[i])) i++;
            }
            if (i < s.Length && (s[i] == 'e' || s[i] == 'E'))
            {
                i++;
                if (i < s.Length && (s[i] == '+' || s[i] == '-')) i++;
                if (i >= s.Length || !IsDigit(s[i])) return -1;
                while (i < s.Length && IsDigit(s[i])) i++;
            }
            return i;
        }

        static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

        // The index after the string starting at `i` (a quote), or -1 unless it is a valid JSON
        // string: no raw control characters, only the escapes JSON has.
        static int SkipString(string s, int i)
        {
            for (i++; i < s.Length; i++)
            {
                char c = s[i];
                if (c == '"') return i + 1;
                if (c < ' ') return -1;
                if (c != '\\') continue;
                if (++i >= s.Length) return -1;
                c = s[i];
                if (c == 'u')
                {
                    if (i + 4 >= s.Length) return -1;
                    for (int k = 1; k <= 4; k++)
                    {
                        if (Uri.IsHexDigit(s[i + k])) continue;
                        return -1;
                    }
                    i += 4;
                }
                else if ("\"\\/bfnrt".IndexOf(c) < 0) return -1;
            }
            return -1;
        }

        static int SkipSpace(string s, int i)
        {
            while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
            return i;
        }
    }
}
