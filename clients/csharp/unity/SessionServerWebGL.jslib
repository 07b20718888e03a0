// The browser side of WebGLTransport (WebGLTransport.cs): Unity WebGL builds have no
// System.Net sockets and no threads, so the browser's WebSocket does the work and its events
// wait here until the game's Poll() takes them (SessionServerWS_Next): no callbacks into C#,
// nothing runs outside the game loop. Put this file in Assets/Plugins/ (WebGL platform).
var SessionServerWebGL = {
  $SessionServerSockets: { next: 1, byId: {} },

  // Opens a socket; returns its handle. Its events: SessionServerWS_Next.
  SessionServerWS_Open__deps: ['$SessionServerSockets'],
  SessionServerWS_Open: function (urlPtr) {
    var url = UTF8ToString(urlPtr);
    var id = SessionServerSockets.next++;
    // events: 'O' open, 'M<text>' message, 'E<text>' error, 'C<code> <reason>' close (last).
    var entry = { socket: null, events: [], outbox: [], opened: false, closed: false };
    function finish(event) {
      if (entry.closed) return;
      entry.closed = true;
      entry.socket = null;
      entry.events.push(event);
    }
    SessionServerSockets.byId[id] = entry;
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      finish('C1006 ' + String((e && e.message) || e));
      return id;
    }
    entry.socket = ws;
    ws.onopen = function () {
      entry.opened = true;
      entry.events.push('O');
      // A browser WebSocket refuses send() while connecting: what was sent waits here.
      for (var i = 0; i < entry.outbox.length; i++) ws.send(entry.outbox[i]);
      entry.outbox = [];
    };
    ws.onmessage = function (event) {
      if (typeof event.data === 'string') entry.events.push('M' + event.data);
      else entry.events.push('Ea binary frame from the server (it sends text frames only)');
    };
    ws.onerror = function () {
      // Once open, the close event that follows says how it ended. A failed connect is a 1006
      // here at once: not every WebSocket follows it with a close event (Node 20's does not).
      if (!entry.opened) finish('C1006 the connection failed');
    };
    ws.onclose = function (event) {
      finish('C' + (event.code || 1005) + ' ' + (event.reason || ''));
    };
    return id;
  },

  SessionServerWS_Send__deps: ['$SessionServerSockets'],
  SessionServerWS_Send: function (id, textPtr) {
    var entry = SessionServerSockets.byId[id];
    if (!entry || !entry.socket) return;
    var text = UTF8ToString(textPtr);
    if (entry.socket.readyState === 0) entry.outbox.push(text);
    else if (entry.socket.readyState === 1) entry.socket.send(text);
  },

  SessionServerWS_Close__deps: ['$SessionServerSockets'],
  SessionServerWS_Close: function (id, code, reasonPtr) {
    var entry = SessionServerSockets.byId[id];
    if (!entry || !entry.socket) return;
    // Sent after what is queued; browsers allow only 1000 and 3000-4999 from a page.
    var flush = entry.socket.readyState === 1 ? entry.outbox.splice(0) : [];
    for (var i = 0; i < flush.length; i++) entry.socket.send(flush[i]);
    try {
      entry.socket.close(code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000, UTF8ToString(reasonPtr));
    } catch (e) {
      entry.socket.close();
    }
  },

  // The socket's oldest event not yet taken, as a string (freed by the runtime), or null.
  // After its close event the handle is forgotten.
  SessionServerWS_Next__deps: ['$SessionServerSockets'],
  SessionServerWS_Next: function (id) {
    var entry = SessionServerSockets.byId[id];
    if (!entry || entry.events.length === 0) return 0;
    var event = entry.events.shift();
    if (event.charAt(0) === 'C') delete SessionServerSockets.byId[id];
    var size = lengthBytesUTF8(event) + 1;
    var buffer = _malloc(size);
    stringToUTF8(event, buffer, size);
    return buffer;
  },
};

mergeInto(LibraryManager.library, SessionServerWebGL);
