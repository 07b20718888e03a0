// The transport for Unity WebGL builds, where System.Net.WebSockets cannot open a socket (no
// sockets, no threads in the browser): the browser's WebSocket through SessionServerWebGL.jslib.
// Its events wait in the page until SessionClient.Poll() calls Poll() here, on the main thread.
//
//   var options = new SessionClientOptions();
//   #if UNITY_WEBGL && !UNITY_EDITOR
//   options.Transport = () => new SessionServer.Unity.WebGLTransport();
//   #endif
//
// It needs no UnityEngine: only DllImport("__Internal"), which IL2CPP binds to the .jslib.
#if UNITY_WEBGL
using System;
using System.Runtime.InteropServices;

namespace SessionServer.Unity
{
    /// <summary>A browser WebSocket, for Unity WebGL builds (needs SessionServerWebGL.jslib).</summary>
    public sealed class WebGLTransport : ITransport
    {
        [DllImport("__Internal")] static extern int SessionServerWS_Open(string url);
        [DllImport("__Internal")] static extern void SessionServerWS_Send(int id, string text);
        [DllImport("__Internal")] static extern void SessionServerWS_Close(int id, int code, string reason);
        [DllImport("__Internal")] static extern string SessionServerWS_Next(int id);

        int id;
        ITransportListener listener;
        bool closed;

        public void Open(string url, ITransportListener listener)
        {
            if (listener == null) throw new ArgumentNullException("listener");
            if (this.listener != null) throw new InvalidOperationException("a transport opens once");
            this.listener = listener;
            id = SessionServerWS_Open(url);
        }

        public void Send(string text)
        {
            if (!closed && listener != null) SessionServerWS_Send(id, text);
        }

        public void Close(int code, string reason)
        {
            if (!closed && listener != null) SessionServerWS_Close(id, code, reason ?? "");
        }

        // Moves the page's events for this socket to the listener: 'O' open, 'M' a message,
        // 'E' an error, 'C<code> <reason>' the close (the last one).
        public void Poll()
        {
            if (listener == null) return;
            string e;
            while (!closed && (e = SessionServerWS_Next(id)) != null)
            {
                if (e.Length == 0) continue;
                switch (e[0])
                {
                    case 'O':
                        listener.OnOpen();
                        break;
                    case 'M':
                        listener.OnMessage(e.Substring(1));
                        break;
                    case 'E':
                        listener.OnError(new InvalidOperationException(e.Substring(1)));
                        break;
                    case 'C':
                        closed = true;
                        int space = e.IndexOf(' ');
                        int code;
                        if (space < 0 || !int.TryParse(e.Substring(1, space - 1), out code)) code = 1006;
                        listener.OnClose(code, space < 0 ? "" : e.Substring(space + 1));
                        break;
                }
            }
        }
    }
}
#endif
