// sessionserver.js: a client for the sessionserver wire protocol (see PROTOCOL.md).
//
// One dependency-free ES module for browsers and Node. In a browser, and in Node 22 or later,
// it uses the global WebSocket; on older Node pass one in: `{ WebSocket }` from the `ws`
// package, or an already constructed socket.
//
//   import { SessionClient } from './sessionserver.js';
//   const client = await SessionClient.connect('ws://localhost:7000/');
//   client.on('playerUpdate', ({ playerID, data }) => draw(playerID, data));
//   const session = await client.createSession({ title: 'dots' }, { name: '', x: 0, y: 0 });
//   await client.updatePlayer({ name: 'Ada', x: 10, y: 20 });
//
// Given a URL, the client asks the server for `resume` and, when a connection drops while it is
// in a session, reconnects by itself and takes its seat back (events `reconnecting`, `resumed`,
// `lost`; option `reconnect`). See README.md, "Reconnecting".

/**
 * What every error code of the protocol means. Code 4 has two meanings, told apart by the
 * reply command it comes in (see {@link errorMeaning}).
 */
export const ERROR_MEANINGS = Object.freeze({
  2: 'not in a session',
  4: 'createSession while in a session (sessionJoin), or playerData whose key structure differs from the session default (playerUpdate)',
  5: 'joinSession while in a session',
  6: 'joinSession -1 while no session exists',
  7: 'no session with that ID',
  9: 'the frame is not valid JSON, or repeats a protocol field',
  10: 'the frame is JSON but not an object',
  11: 'no `command` field, or it is not a string',
  12: 'unknown command',
  13: 'a field has the wrong type or is missing',
  14: 'a binary frame: commands are JSON text frames',
  15: 'objects and arrays nested deeper than the depth limit',
  16: 'joinSession to a session that holds its maximum of players',
  17: 'createSession while the server holds its maximum of sessions',
  18: 'more commands per second than allowed; the command was not carried out',
  19: "the session's data would grow larger than its limit; nothing changes",
  20: 'egress budget exceeded: this member broadcast too much too fast; nothing was broadcast',
  21: 'hello is answered in the lobby only: send it before creating or joining',
  22: 'the resume token is not valid: used already, expired, or never issued',
  23: 'resumeSession while in a session: resuming is for a new connection',
  24: 'the player to resume is still connected (sent by older servers; current ones take the seat over); try again in a moment',
  25: 'resumeSession counted more events received than the session sent that seat; nothing changes',
  26: 'the session has a password: joinSession needs the right one',
  27: 'too many wrong passwords for this session lately: try again in a second',
  28: "the session's host locked it: it takes no new players",
  29: "only the session's host may do that",
  30: 'kickPlayer names no other member of the session',
  31: 'sendMessage names a recipient that is no member of the session; nothing was sent',
  32: 'listSessions from a player in a session: sessions are listed from the lobby',
  33: 'the server could not read its list of sessions just now; try again',
  34: "this connection is on one session's direct path (/session/…): for another session, -1, listSessions or joinOrCreate, connect again to /session/<id>, /session/new or /",
});

/** What each WebSocket close code the server sends means. */
export const CLOSE_MEANINGS = Object.freeze({
  1000: 'closed normally',
  1001: 'the server is shutting down',
  1005: 'closed without a close code',
  1006: 'the connection was lost',
  1002: 'a frame the WebSocket protocol does not allow from a client',
  1007: 'a text frame that is not valid UTF-8',
  1008: 'the client kept sending commands over its rate limit',
  1009: 'a message larger than the maximum',
  1011: 'the server lost the session (its task or object failed, or could not be reached)',
  1012: 'edge host: the link to the session broke (its object restarted); the seat is kept: resume',
  1013: 'edge host: a player ID collision; connect again',
  4000: 'heartbeat timeout: nothing heard from the client, not even a pong',
  4001: 'the client stopped reading and its send queue filled up',
  4002: 'the server neared its memory budget and this connection held one of the largest send backlogs',
  4003: "replaced: this player's seat was resumed on another connection",
});

/**
 * The close codes after which a client in a session reconnects and resumes its seat: the
 * connection was lost (1006: no close frame at all), or the server closed it for a reason a new
 * connection does not repeat (1011 its task failed, 1012-1014 restart / try again later /
 * gateway, 4000 heartbeat timeout, 4001 the client fell behind, 4002 the server was short of
 * memory). Any other close is final: 1000 and 1005 (a deliberate close by either side), 1001
 * (the server is shutting down: its sessions go with it), 1002, 1007, 1008, 1009 (this client
 * broke a rule, and would again), 4003 (the seat was resumed on another connection, which used
 * up its token), and codes not listed here.
 */
export const RECONNECT_CLOSE_CODES = Object.freeze([1006, 1011, 1012, 1013, 1014, 4000, 4001, 4002]);

/** The defaults of the `reconnect` option of {@link SessionClient.connect}. */
export const RECONNECT_DEFAULTS = Object.freeze({
  /** Attempts at most, per drop. */
  maxAttempts: 30,
  /** Milliseconds from the drop after which no attempt starts (the server's default grace). */
  maxTimeMs: 30_000,
  /** The first attempt's delay is drawn from [0, baseDelayMs]; the bound doubles per attempt… */
  baseDelayMs: 250,
  /** …up to maxDelayMs (exponential backoff with full jitter). */
  maxDelayMs: 5_000,
  /** Milliseconds one attempt may take, from opening its socket to the server's answer. */
  attemptTimeoutMs: 5_000,
});

/** The meaning of an error code, in the reply command it came in. */
export function errorMeaning(code, command) {
  if (code === 4 && command === 'sessionJoin') return 'createSession while in a session; nothing is created';
  if (code === 4 && command === 'playerUpdate') {
    return "playerData's key structure differs from the session's default; nothing changes";
  }
  return ERROR_MEANINGS[code] ?? `unknown error ${code}`;
}

/** An error reply of the server: `code` is the protocol's error code. */
export class SessionError extends Error {
  constructor(code, command, serverMessage) {
    const meaning = errorMeaning(code, command);
    super(serverMessage ? `error ${code}: ${serverMessage}` : `error ${code}: ${meaning}`);
    this.name = 'SessionError';
    /** The error code (2-25). */
    this.code = code;
    /** The reply command the error came in (`sessionJoin`, `playerUpdate`, …, or `error`). */
    this.command = command;
    /** What the code means (from {@link ERROR_MEANINGS}). */
    this.meaning = meaning;
    /** The server's own message, for codes 9 and up; undefined for 2-7. */
    this.serverMessage = serverMessage;
  }
}

/** A request that could not be answered because the connection closed. */
export class ConnectionClosedError extends Error {
  constructor(closeCode, reason) {
    const meaning = CLOSE_MEANINGS[closeCode] ?? 'closed';
    super(`connection closed (${closeCode}${reason ? `: ${reason}` : ''}): ${meaning}`);
    this.name = 'ConnectionClosedError';
    this.code = closeCode;
    this.reason = reason;
    this.meaning = meaning;
  }
}

/**
 * The seat in a session could not be taken back after a drop: requests made while the client
 * was reconnecting reject with this, and the `lost` event carries the same `reason`.
 */
export class SessionLostError extends Error {
  constructor(reason, sessionID, cause) {
    super(`session ${sessionID} lost: ${LOST_REASONS[reason] ?? reason}${cause ? ` (${cause.message})` : ''}`);
    this.name = 'SessionLostError';
    /** 'rejected' (the server refused the resume), 'timeout' (gave up) or 'closed' (a final close). */
    this.reason = reason;
    this.sessionID = sessionID;
    /** The SessionError (rejected) or ConnectionClosedError (timeout, closed) behind it. */
    this.cause = cause;
  }
}

const LOST_REASONS = Object.freeze({
  rejected: 'the server refused the resume',
  timeout: 'no resume within the attempts and time allowed',
  closed: 'a reconnection attempt was closed for good',
});

const EVENTS = [
  'sessionJoin',
  'sessionLeave',
  'playerJoin',
  'playerUpdate',
  'playerLeave',
  'sessionUpdate',
  'hostChange',
  'sessionLock',
  'reconnecting',
  'resumed',
  'lost',
  'message',
  'frame',
  'close',
  'error',
];

// The frames counted in resumeSession's `received` (with error 0).
const SESSION_EVENTS = new Set(['playerJoin', 'playerUpdate', 'playerLeave', 'sessionUpdate']);

// Either spelling of a data field in a server frame.
const sessionOf = (msg) => (msg.session !== undefined ? msg.session : msg.sessionData);
const playerOf = (msg) => (msg.player !== undefined ? msg.player : msg.playerData);

const show = (value) => {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
};

// The `reconnect` option, checked: null (off) or every setting with its default filled in.
function reconnectSettings(value) {
  if (value === false) return null;
  if (value === true) return { ...RECONNECT_DEFAULTS };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`reconnect must be true, false or an object of settings, got ${show(value)}`);
  }
  const settings = { ...RECONNECT_DEFAULTS };
  for (const [key, v] of Object.entries(value)) {
    if (!(key in RECONNECT_DEFAULTS)) {
      throw new TypeError(`unknown reconnect setting ${show(key)}; one of ${Object.keys(RECONNECT_DEFAULTS).join(', ')}`);
    }
    const ok = key === 'maxAttempts' ? (Number.isInteger(v) && v >= 1) || v === Infinity : typeof v === 'number' && v >= 0;
    if (!ok) {
      const want = key === 'maxAttempts' ? 'an integer of at least 1 (or Infinity)' : 'a number of milliseconds, 0 or more';
      throw new TypeError(`reconnect.${key} must be ${want}, got ${show(v)}`);
    }
    settings[key] = v;
  }
  return settings;
}

// Event handlers that do nothing, for a socket let go of: `ws` throws on an 'error' nobody hears.
function quiet(socket) {
  const nothing = () => {};
  socket.onopen = nothing;
  socket.onmessage = nothing;
  socket.onerror = nothing;
  socket.onclose = nothing;
}

/**
 * The URL a resume connects to: `url`, except on the edge host's direct path (a URL ending in
 * `/session/new` or `/session/<id>`), where it must reach the token's session: `/session/<its
 * ID>` (the token is `<sessionID>.<playerID>.<secret>`).
 * @param {string} url
 * @param {string} token
 * @returns {string}
 */
export function resumeUrl(url, token) {
  const session = typeof token === 'string' ? token.split('.')[0] : '';
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  const direct = /^(.*\/session\/)(new|\d+)$/.exec(parsed.pathname);
  if (!direct || !/^\d+$/.test(session)) return url;
  parsed.pathname = direct[1] + session;
  return parsed.toString();
}

function closeQuietly(socket) {
  quiet(socket);
  try {
    socket.close(1000);
  } catch {
    // Closing a socket that never opened may throw; it is gone either way.
  }
}

/**
 * A connection to a session server: one player. Keeps the current session and its players,
 * and (when it can) takes its seat back after a dropped connection.
 */
export class SessionClient {
  /**
   * Opens a connection and resolves once it is open.
   * @param {string|URL|object} urlOrSocket a ws:// URL, or a WebSocket (browser or `ws`)
   * @param {{WebSocket?: Function, spelling?: 'short'|'long', protocols?: string|string[],
   *   reconnect?: boolean|object}} [options] `reconnect` defaults to true given a URL, false
   *   given a socket (see README.md, "Reconnecting")
   */
  static connect(urlOrSocket, options = {}) {
    let socket = urlOrSocket;
    let reconnect = options.reconnect;
    if (typeof urlOrSocket === 'string' || urlOrSocket instanceof URL) {
      const WS = options.WebSocket ?? globalThis.WebSocket;
      if (typeof WS !== 'function') {
        return Promise.reject(
          new TypeError('no WebSocket: pass { WebSocket } (e.g. from the `ws` package) on Node before 22'),
        );
      }
      reconnect ??= true;
      try {
        reconnectSettings(reconnect);
      } catch (err) {
        return Promise.reject(err);
      }
      socket = new WS(String(urlOrSocket), options.protocols);
    }
    let client;
    try {
      client = new SessionClient(socket, { ...options, reconnect });
    } catch (err) {
      if (socket !== urlOrSocket) closeQuietly(socket);
      return Promise.reject(err);
    }
    return client.opened.then(() => client);
  }

  /**
   * Wraps a WebSocket (open or connecting). Prefer {@link SessionClient.connect}.
   * @param {object} socket a WebSocket (browser or `ws`)
   * @param {{spelling?: 'short'|'long', reconnect?: boolean|object, WebSocket?: Function,
   *   protocols?: string|string[]}} [options] `reconnect` defaults to false here; to turn it on,
   *   the client needs `socket.url` and a WebSocket constructor (`WebSocket`, or the global one)
   */
  constructor(socket, options = {}) {
    const reconnect = reconnectSettings(options.reconnect ?? false);
    if (reconnect) {
      const WS = options.WebSocket ?? globalThis.WebSocket;
      if (typeof WS !== 'function') {
        throw new TypeError('reconnect needs a WebSocket constructor: pass { WebSocket } (e.g. from the `ws` package)');
      }
      if (typeof socket?.url !== 'string' || socket.url === '') {
        throw new TypeError('reconnect needs the socket\'s URL (socket.url) to connect again');
      }
      this._WebSocket = WS;
      this._url = socket.url;
      this._protocols = options.protocols;
    }
    this._reconnect = reconnect;
    this.socket = socket;
    /** The field spelling this client sends: 'short' (session/player) or 'long' (sessionData/playerData). */
    this.spelling = options.spelling === 'long' ? 'long' : 'short';
    /** This connection's player ID, known from the first sessionJoin on; null before. */
    this.playerID = null;
    /**
     * The session this player is in, or null:
     * `{ id, data, playerData (the default), players: Map<playerID, playerData> }`,
     * the players: this one first, then the others in the order this client learned of them.
     * It stays while the client reconnects.
     */
    this.session = null;
    /** The close code and reason once the connection is closed for good, else null. */
    this.closed = null;
    /**
     * The extensions the server granted to this connection's hello (`['resume']`), `[]` if it
     * granted none or ignored hello, null while not known (or when no hello is sent).
     */
    this.features = null;
    // Whether to ask for the `host` extension (hostID, hostChange, sessionLock, kicked).
    this._wantHost = options.host === true;
    // Whether to ask for the `messages` extension (other members' sendMessage).
    this._wantMessages = options.messages === true;
    /** While the client takes its seat back after a drop: `{ attempt, delay, since }`; else null. */
    this.reconnecting = null;
    this._listeners = new Map(EVENTS.map((e) => [e, new Set()]));
    // Requests sent and not yet answered, oldest first. Replies to one client come in the
    // order of its commands, so the oldest request is the one the next reply answers.
    this._pending = [];
    // Requests made while reconnecting: sent once the seat is back and the replay applied.
    this._queue = [];
    this._queueing = false;
    // The resume token of the seat (each good once; the newest is kept) and the session events
    // received on it since the sessionJoin / sessionResume that gave it (`received`).
    this._token = null;
    this._received = 0;
    this._userClosed = false;
    // Between a drop and the resume: no open socket (`_down`), the drop's start and attempts
    // (`_drop`), the timer of the next attempt and the attempt's socket.
    this._down = false;
    this._drop = null;
    this._timer = null;
    this._attempt = null;
    this._attemptTimer = null;
    // While a resume's replay is applied: the frames left (`_replay`), the members a snapshot
    // listed (`_snapshot`), and what `resumed` will say (`_resuming`).
    this._replay = null;
    this._snapshot = null;
    this._resuming = null;

    this.opened = new Promise((resolve, reject) => {
      const OPEN = 1;
      if (socket.readyState === OPEN) return resolve();
      if (socket.readyState > OPEN) return reject(new ConnectionClosedError(1006, 'socket already closed'));
      this._openWaiters = { resolve, reject };
    });
    // A rejected `opened` nobody awaits must not be reported as unhandled.
    this.opened.catch(() => {});
    this._attach(socket);
    if (socket.readyState === 1) this._hello();
  }

  /** Adds a listener; returns a function that removes it. */
  on(event, fn) {
    const set = this._listeners.get(event);
    if (!set) throw new TypeError(`unknown event ${event}; one of ${EVENTS.join(', ')}`);
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Removes a listener. */
  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
  }

  /** Adds a listener called once. */
  once(event, fn) {
    const off = this.on(event, (arg) => {
      off();
      fn(arg);
    });
    return off;
  }

  /**
   * Creates a session and joins it as its first member. `playerData` is the default every
   * member starts with; it fixes the key structure of every updatePlayer.
   * @returns {Promise<Session>} the session, once the server confirms
   */
  createSession(sessionData = {}, playerData = {}, options = undefined) {
    const fields = this._fields(sessionData, playerData);
    if (options !== undefined) fields.options = options;
    return this._request('createSession', 'sessionJoin', fields);
  }

  /**
   * Joins a session; -1 joins the latest. Resolves on the server's sessionJoin; the members
   * already there follow at once as `playerJoin` events (and in `session.players`).
   * @returns {Promise<Session>}
   */
  joinSession(sessionID = -1, { password } = {}) {
    const fields = password === undefined ? { sessionID } : { sessionID, password };
    return this._request('joinSession', 'sessionJoin', fields);
  }

  /**
   * The host removes a member: it is told with a `sessionLeave` (its `sessionLeave` event has
   * `kicked: true`), everyone else with a `playerLeave`. Resolves on that `playerLeave`; rejects
   * with SessionError 29 if this player is not the host, 30 if `playerID` is no other member.
   * @returns {Promise<void>}
   */
  kickPlayer(playerID) {
    return this._request('kickPlayer', 'playerLeave', { playerID }, playerID);
  }

  /**
   * The host locks (`true`) or unlocks the session: while locked, joins fail with
   * SessionError 28. Resolves with the state; rejects with 29 if this player is not the host.
   * @returns {Promise<boolean>}
   */
  lockSession(locked = true) {
    return this._request('lockSession', 'sessionLock', { locked: Boolean(locked) });
  }

  /**
   * Sends `data` (any JSON value) to the other members, or only to the player IDs in `to`:
   * each that asked for `messages` (option `messages: true`) gets a `message` event; nothing
   * is stored. Resolves with how many got it; rejects with SessionError 31 if `to` names a
   * player not in the session (then nobody gets it).
   * @returns {Promise<number>}
   */
  sendMessage(data, to = undefined) {
    const fields = to === undefined ? { data } : { data, to };
    return this._request('sendMessage', 'messageSent', fields);
  }

  /**
   * Lists public sessions, newest first (from the lobby): `filter` matches metadata keys
   * exactly; `available: true` leaves out full, locked and password sessions; `after` is a
   * previous page's `next`. Resolves with `{ sessions: [{sessionID, players, maxPlayers,
   * metadata}], next }` (`next` null on the last page).
   * @returns {Promise<{sessions: object[], next: number|null}>}
   */
  listSessions(filter = undefined, { available, after, limit } = {}) {
    const fields = {};
    if (filter !== undefined) fields.filter = filter;
    if (available !== undefined) fields.available = available;
    if (after !== undefined && after !== null) fields.after = after;
    if (limit !== undefined) fields.limit = limit;
    return this._request('listSessions', 'sessionList', fields).then((msg) => ({ sessions: msg.sessions, next: msg.next }));
  }

  /**
   * Quick play: joins the public session matching `filter` that has room (the fullest), or
   * creates one with this data and `options` (its metadata the filter, unless `options.metadata`
   * says otherwise). Resolves with the session, as createSession and joinSession do.
   * @returns {Promise<Session>}
   */
  joinOrCreate(filter = {}, sessionData = {}, playerData = {}, options = undefined) {
    const fields = { filter, ...this._fields(sessionData, playerData) };
    if (options !== undefined) fields.options = options;
    return this._request('joinOrCreate', 'sessionJoin', fields);
  }

  /**
   * The host replaces the session's metadata (what listSessions shows). Resolves with it;
   * rejects with SessionError 29 if this player is not the host.
   * @returns {Promise<object>}
   */
  setMetadata(metadata) {
    return this._request('setMetadata', 'sessionMetadata', { metadata }).then((msg) => msg.metadata);
  }

  /**
   * Measures the round trip to the server and its clock: resolves with `{ rtt, offset,
   * serverTime }` in milliseconds, where `offset` is the server's clock minus this one's
   * (estimated at the middle of the round trip).
   * @returns {Promise<{rtt: number, offset: number, serverTime: number}>}
   */
  ping() {
    const sent = Date.now();
    return this._request('ping', 'pong', { t: sent }).then((msg) => {
      const now = Date.now();
      const rtt = now - sent;
      return { rtt, offset: msg.serverTime - (sent + rtt / 2), serverTime: msg.serverTime };
    });
  }

  /**
   * Replaces this player's playerData; it must keep the key structure of the session's
   * default playerData (else SessionError code 4). Resolves when the update is broadcast.
   * @returns {Promise<object>} the playerData as the server sent it back
   */
  updatePlayer(playerData) {
    return this._request('updatePlayer', 'playerUpdate', this._fields(undefined, playerData));
  }

  /**
   * Replaces the sessionData and the default playerData; every member's playerData resets to
   * the new default. Resolves when the update comes back.
   * @returns {Promise<Session>}
   */
  updateSession(sessionData = {}, playerData = {}) {
    const fields = this._fields(sessionData, playerData);
    // The server passes data through as sent, so this identifies our own update among the
    // sessionUpdates other members cause.
    const expect = JSON.stringify([JSON.parse(JSON.stringify(sessionData)), JSON.parse(JSON.stringify(playerData))]);
    return this._request('updateSession', 'sessionUpdate', fields, expect);
  }

  /** Leaves the current session. Resolves on the server's sessionLeave. */
  leaveSession() {
    return this._request('leaveSession', 'sessionLeave', {});
  }

  /**
   * Closes the connection (normally, code 1000); resolves once it is closed. In a session whose
   * seat the server would keep for a resume, leaves it first, so the others see this player
   * leave now rather than after the grace period. While reconnecting, stops: no more attempts,
   * and the requests waiting reject.
   */
  close(code = 1000, reason = '') {
    if (this.closed) return Promise.resolve(this.closed);
    this._userClosed = true;
    return new Promise((resolve) => {
      this.once('close', resolve);
      if (this._down) {
        // Between a drop and a resume there is no open socket to close.
        this._stopAttempts();
        return this._finalClose(code, reason);
      }
      try {
        if (this._token && this.session && this.socket.readyState === 1) {
          const left = () => {};
          this._pending.push({ command: 'leaveSession', reply: 'sessionLeave', internal: 'leave', resolve: left, reject: left });
          this.socket.send('{"command":"leaveSession"}');
        }
        this.socket.close(code, reason);
      } catch {
        this._finalClose(code, reason);
      }
    });
  }

  /** Sends a raw command object (for commands or fields this client does not know). */
  send(message) {
    if (this.closed) throw new ConnectionClosedError(this.closed.code, this.closed.reason);
    const text = JSON.stringify(message);
    if (this._queueing) this._queue.push({ raw: text });
    else this.socket.send(text);
  }

  // --- internals ---

  _fields(sessionData, playerData) {
    const long = this.spelling === 'long';
    const out = {};
    if (sessionData !== undefined) out[long ? 'sessionData' : 'session'] = sessionData;
    if (playerData !== undefined) out[long ? 'playerData' : 'player'] = playerData;
    return out;
  }

  _request(command, reply, fields, expect) {
    if (this.closed) {
      return Promise.reject(new ConnectionClosedError(this.closed.code, this.closed.reason));
    }
    return new Promise((resolve, reject) => {
      const text = JSON.stringify({ command, ...fields });
      const req = { command, reply, resolve, reject, expect, text };
      if (this._queueing) return this._queue.push(req);
      this._sendRequest(req);
    });
  }

  _sendRequest(req) {
    this._pending.push(req);
    try {
      this.socket.send(req.text);
    } catch (err) {
      this._pending.splice(this._pending.indexOf(req), 1);
      req.reject(err);
    }
  }

  _emit(event, arg) {
    for (const fn of [...this._listeners.get(event)]) {
      try {
        fn(arg);
      } catch (err) {
        if (event === 'error') setTimeout(() => { throw err; });
        else this._emit('error', err);
      }
    }
  }

  // Points `socket`'s events at this client; events of a socket let go of are ignored.
  _attach(socket) {
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this._openWaiters?.resolve();
      this._openWaiters = null;
      this._hello();
    };
    socket.onmessage = (event) => socket === this.socket && this._onFrame(event.data);
    socket.onerror = (event) => {
      if (socket !== this.socket) return;
      const err = event?.error ?? new Error(event?.message ?? 'WebSocket error');
      if (this._openWaiters) {
        // Failing to connect: reported by the close that follows (or here if none does).
        return;
      }
      this._emit('error', err);
    };
    socket.onclose = (event) => socket === this.socket && this._onClose(event?.code ?? 1006, event?.reason ?? '');
  }

  // Asks for `resume` (first, before any command of the app) when this client reconnects.
  _hello() {
    const features = this._features();
    if (features.length === 0) return;
    const answered = (msg) => {
      this.features = Array.isArray(msg?.features) ? msg.features : [];
    };
    this._pending.push({ command: 'hello', reply: 'hello', internal: 'hello', resolve: answered, reject: answered });
    this.socket.send(JSON.stringify({ command: 'hello', features }));
  }

  // The extensions this client asks for: `resume` when it reconnects, `host` if asked to.
  _features() {
    const features = [];
    if (this._reconnect) features.push('resume');
    if (this._wantHost) features.push('host');
    if (this._wantMessages) features.push('messages');
    return features;
  }

  // A frame's data as a server message, or null (reported as an 'error' event).
  _parse(data) {
    if (typeof data !== 'string') {
      // The server sends text frames only; `ws` may hand over a Buffer on some setups.
      if (data && typeof data.toString === 'function' && !(data instanceof ArrayBuffer)) data = data.toString();
      else return this._emit('error', new Error('unexpected binary frame from the server')), null;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return this._emit('error', new Error(`unparsable frame from the server: ${data.slice(0, 200)}`)), null;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.command !== 'string') {
      return this._emit('error', new Error(`unexpected frame from the server: ${data.slice(0, 200)}`)), null;
    }
    this._emit('frame', msg);
    return msg;
  }

  _onFrame(data) {
    const msg = this._parse(data);
    if (!msg) return;
    const code = msg.error ?? 0;
    if (code === 0 && SESSION_EVENTS.has(msg.command)) this._received += 1;
    if (code !== 0) this._onErrorReply(msg, code);
    else this._dispatch(msg);
    // The frames a resume replays: once the last is applied, the client is back.
    if (this._replay && --this._replay.left <= 0) this._finishResume();
  }

  _dispatch(msg) {
    switch (msg.command) {
      case 'sessionJoin':
        return this._onSessionJoin(msg);
      case 'sessionLeave':
        return this._onSessionLeave(msg);
      case 'playerJoin':
        return this._onPlayerJoin(msg);
      case 'playerUpdate':
        return this._onPlayerUpdate(msg);
      case 'playerLeave':
        return this._onPlayerLeave(msg);
      case 'sessionUpdate':
        return this._onSessionUpdate(msg);
      case 'hello':
        return this._take('hello')?.resolve(msg);
      case 'sessionLock':
        return this._onSessionLock(msg);
      case 'hostChange':
        if (this.session) this.session.hostID = msg.playerID;
        return this._emit('hostChange', { playerID: msg.playerID });
      case 'message':
        return this._emit('message', { playerID: msg.playerID, data: msg.data });
      case 'messageSent':
        return this._take('messageSent')?.resolve(msg.recipients);
      case 'pong':
        return this._take('pong')?.resolve(msg);
      case 'sessionList':
        return this._take('sessionList')?.resolve(msg);
      case 'sessionMetadata':
        return this._take('sessionMetadata')?.resolve(msg);
      default:
        return this._emit('error', new Error(`unknown command from the server: ${msg.command}`));
    }
  }

  // Takes the oldest pending request, which the reply `command` must answer.
  _take(command) {
    let head = this._pending[0];
    // A server without extensions may ignore hello in silence (the original does): a reply to
    // a later command then comes first, and hello was granted nothing.
    if (head?.internal === 'hello' && command !== 'hello' && command !== 'error') {
      this._pending.shift().resolve(null);
      head = this._pending[0];
    }
    if (!head) return null;
    if (head.reply !== command && command !== 'error') {
      this._emit('error', new Error(`reply ${command} while waiting for ${head.reply} (to ${head.command})`));
      return null;
    }
    return this._pending.shift();
  }

  _onErrorReply(msg, code) {
    // Every error reply answers the sender's own oldest command, in order.
    const err = new SessionError(code, msg.command, msg.message);
    const req = this._take(msg.command);
    if (req) req.reject(err);
    else this._emit('error', err);
  }

  _onSessionJoin(msg) {
    this.playerID = msg.playerID;
    const playerData = playerOf(msg) ?? {};
    this.session = {
      id: msg.sessionID,
      data: sessionOf(msg) ?? {},
      playerData,
      players: new Map([[msg.playerID, playerData]]),
      // Known with the `host` extension (option `host: true`), else null.
      hostID: typeof msg.hostID === 'number' ? msg.hostID : null,
      locked: false,
    };
    this._token = typeof msg.resumeToken === 'string' ? msg.resumeToken : null;
    this._received = 0;
    const req = this._take('sessionJoin');
    this._emit('sessionJoin', {
      sessionID: msg.sessionID,
      playerID: msg.playerID,
      data: this.session.data,
      playerData,
      created: req?.command === 'createSession',
    });
    req?.resolve(this.session);
  }

  _onSessionLeave(msg) {
    const sessionID = this.session?.id ?? null;
    this.session = null;
    this._token = null;
    // A sessionLeave no leaveSession asked for: the host kicked this player (`kicked: true`
    // says so with the `host` extension; without it, no leave was pending).
    const kicked = msg?.kicked === true || this._pending[0]?.reply !== 'sessionLeave';
    const req = kicked ? null : this._take('sessionLeave');
    // The leave close() sends is part of closing: `close` reports it.
    if (req?.internal !== 'leave') this._emit('sessionLeave', kicked ? { sessionID, kicked } : { sessionID });
    req?.resolve();
  }

  _onSessionLock(msg) {
    if (this.session) this.session.locked = msg.locked === true;
    // Our own lockSession's reply, or (with `host`) the host's lock reported to us.
    const head = this._pending[0];
    const req = head?.reply === 'sessionLock' ? this._pending.shift() : null;
    this._emit('sessionLock', { locked: msg.locked === true, self: req !== null });
    req?.resolve(msg.locked === true);
  }

  _onPlayerJoin(msg) {
    const data = playerOf(msg) ?? {};
    this.session?.players.set(msg.playerID, data);
    this._snapshot?.seen.add(msg.playerID);
    this._emit('playerJoin', { playerID: msg.playerID, data });
  }

  _onPlayerUpdate(msg) {
    const data = playerOf(msg) ?? {};
    this.session?.players.set(msg.playerID, data);
    const self = msg.playerID === this.playerID;
    // Our own update comes back to us as the reply; those of others are events only.
    const req = self && this._pending[0]?.reply === 'playerUpdate' ? this._pending.shift() : null;
    this._emit('playerUpdate', { playerID: msg.playerID, data, self });
    req?.resolve(data);
  }

  _onPlayerLeave(msg) {
    const data = this.session?.players.get(msg.playerID);
    this.session?.players.delete(msg.playerID);
    // Our kickPlayer's reply is the playerLeave of the player we kicked.
    const head = this._pending[0];
    const req = head?.command === 'kickPlayer' && head.expect === msg.playerID ? this._pending.shift() : null;
    this._emit('playerLeave', { playerID: msg.playerID, data, ...(req ? { kicked: true } : {}) });
    req?.resolve();
  }

  _onSessionUpdate(msg) {
    const data = sessionOf(msg) ?? {};
    const playerData = playerOf(msg) ?? {};
    if (this.session) {
      this.session.data = data;
      this.session.playerData = playerData;
      for (const id of this.session.players.keys()) this.session.players.set(id, playerData);
    }
    const head = this._pending[0];
    const self = head?.reply === 'sessionUpdate' && head.expect === JSON.stringify([data, playerData]);
    const req = self ? this._pending.shift() : null;
    this._emit('sessionUpdate', { data, playerData, self });
    req?.resolve(this.session);
  }

  _onClose(code, reason) {
    if (this.closed) return;
    const resumable =
      this._reconnect && !this._userClosed && this.session && this._token && RECONNECT_CLOSE_CODES.includes(code);
    if (resumable) this._dropped(code, reason);
    else this._finalClose(code, reason);
  }

  // Closed for good: every request waiting rejects, and `close` is the last event.
  _finalClose(code, reason) {
    if (this.closed) return;
    this.closed = { code, reason };
    this._down = false;
    this._queueing = false;
    this.reconnecting = null;
    const err = new ConnectionClosedError(code, reason);
    if (this._openWaiters) {
      this._openWaiters.reject(err);
      this._openWaiters = null;
    }
    for (const req of [...this._pending.splice(0), ...this._queue.splice(0)]) req.reject?.(err);
    this.session = null;
    this._token = null;
    this._emit('close', { code, reason, meaning: CLOSE_MEANINGS[code] ?? 'closed' });
  }

  // --- reconnecting ---

  // The connection dropped while in a session: requests in flight reject (whether the server
  // carried them out is unknown; the replay shows it), later ones wait, and attempts begin.
  _dropped(code, reason) {
    const err = new ConnectionClosedError(code, reason);
    for (const req of this._pending.splice(0)) if (!req.internal) req.reject(err);
    this._replay = null;
    this._down = true;
    this._queueing = true;
    this._drop = { since: Date.now(), attempt: 0 };
    this._scheduleAttempt(code, reason, null);
  }

  _scheduleAttempt(code, reason, error) {
    const settings = this._reconnect;
    const drop = this._drop;
    const attempt = drop.attempt + 1;
    const elapsed = Date.now() - drop.since;
    if (attempt > settings.maxAttempts || elapsed >= settings.maxTimeMs) {
      return this._giveUp('timeout', code, reason, error);
    }
    // Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(attempt-1))].
    const bound = Math.min(settings.maxDelayMs, settings.baseDelayMs * 2 ** (attempt - 1));
    const delay = Math.min(Math.round(Math.random() * bound), settings.maxTimeMs - elapsed);
    drop.attempt = attempt;
    this.reconnecting = { attempt, delay, since: drop.since };
    this._timer = setTimeout(() => this._attemptResume(), delay);
    this._emit('reconnecting', { attempt, delay, code, reason, error });
  }

  _stopAttempts() {
    clearTimeout(this._timer);
    this._timer = null;
    clearTimeout(this._attemptTimer);
    if (this._attempt) closeQuietly(this._attempt);
    this._attempt = null;
  }

  // One attempt: a new connection sends hello and resumeSession (pipelined) and waits for the
  // answer to the resume.
  _attemptResume() {
    this._timer = null;
    let socket;
    try {
      socket = new this._WebSocket(resumeUrl(this._url, this._token), this._protocols);
    } catch (err) {
      return this._scheduleAttempt(1006, err.message, err);
    }
    this._attempt = socket;
    let withReceived = true;
    const resume = () => {
      const msg = { command: 'resumeSession', resumeToken: this._token };
      if (withReceived) msg.received = this._received;
      socket.send(JSON.stringify(msg));
    };
    // A failed attempt: the next one, unless the close is final.
    const failed = (code, reason, error) => {
      if (this._attempt !== socket) return;
      this._attempt = null;
      clearTimeout(this._attemptTimer);
      closeQuietly(socket);
      if (error || RECONNECT_CLOSE_CODES.includes(code)) this._scheduleAttempt(code, reason, error);
      else this._giveUp('closed', code, reason, null);
    };
    this._attemptTimer = setTimeout(() => failed(1006, 'no answer in time'), this._reconnect.attemptTimeoutMs);
    socket.onopen = () => {
      if (this._attempt !== socket) return;
      socket.send(JSON.stringify({ command: 'hello', features: this._features() }));
      resume();
    };
    socket.onerror = () => {}; // the close follows
    socket.onclose = (event) => failed(event?.code ?? 1006, event?.reason ?? '', null);
    socket.onmessage = (event) => {
      if (this._attempt !== socket) return;
      const msg = this._parse(event.data);
      if (!msg) return;
      const code = msg.error ?? 0;
      if (msg.command === 'hello') {
        this.features = code === 0 && Array.isArray(msg.features) ? msg.features : [];
        return;
      }
      if (msg.command !== 'sessionResume') {
        return this._emit('error', new Error(`unexpected ${msg.command} before sessionResume`));
      }
      if (code === 0) {
        this._attempt = null;
        clearTimeout(this._attemptTimer);
        return this._resumed(socket, msg);
      }
      const err = new SessionError(code, 'sessionResume', msg.message);
      if (code === 24) return failed(1006, 'the old connection is not yet found gone', err);
      if (code === 25 && withReceived) {
        // The count disagrees with the server's (a bug on one side): resume without it, from
        // where the server found the connection gone.
        this._emit('error', err);
        withReceived = false;
        return resume();
      }
      // 22 (and anything else): the seat is gone. This connection stays, in the lobby.
      this._attempt = null;
      clearTimeout(this._attemptTimer);
      this.socket = socket;
      this._attach(socket);
      this._down = false;
      this._lose('rejected', err);
    };
  }

  // sessionResume, error 0: `socket` carries the seat now; the replay follows it.
  _resumed(socket, msg) {
    this.socket = socket;
    this._attach(socket);
    this._down = false;
    this.playerID = msg.playerID;
    this._token = typeof msg.resumeToken === 'string' ? msg.resumeToken : null;
    this._received = 0;
    if (typeof msg.hostID === 'number' && this.session) this.session.hostID = msg.hostID;
    const snapshot = msg.replay === 'snapshot';
    this._resuming = { replay: snapshot ? 'snapshot' : 'frames', missed: snapshot ? null : (msg.missed ?? 0) };
    if (snapshot) {
      // The state now, instead of the changes: sessionData and our own playerData here, then a
      // playerJoin of every other member. Who is not among them is gone.
      const session = this.session;
      const data = sessionOf(msg);
      if (data !== undefined) session.data = data;
      const own = playerOf(msg);
      if (own !== undefined) session.players.set(this.playerID, own);
      this._snapshot = { seen: new Set() };
    }
    if (this._snapshot) {
      // `members`: how many playerJoins follow, one per other member.
      this._replay = msg.members > 0 ? { left: msg.members } : null;
      if (!this._replay) this._finishResume();
    } else if (this._resuming.missed > 0) {
      this._replay = { left: this._resuming.missed };
    } else {
      this._finishResume();
    }
  }

  // The replay is applied: the client is back, and what waited is sent.
  _finishResume() {
    this._replay = null;
    if (this._snapshot) {
      const { seen } = this._snapshot;
      this._snapshot = null;
      for (const [playerID, data] of [...this.session.players]) {
        if (playerID === this.playerID || seen.has(playerID)) continue;
        this.session.players.delete(playerID);
        this._emit('playerLeave', { playerID, data });
      }
    }
    const attempts = this._drop.attempt;
    this.reconnecting = null;
    this._queueing = false;
    for (const req of this._queue.splice(0)) {
      if (req.raw !== undefined) this.socket.send(req.raw);
      else this._sendRequest(req);
    }
    this._emit('resumed', { ...this._resuming, attempts });
  }

  // The seat could not be taken back.
  _giveUp(reason, code, closeReason, error) {
    this._stopAttempts();
    this._lose(reason, error ?? new ConnectionClosedError(code, closeReason));
    this._finalClose(code, closeReason);
  }

  _lose(reason, cause) {
    const sessionID = this.session?.id ?? null;
    const err = new SessionLostError(reason, sessionID, cause);
    this.reconnecting = null;
    this._queueing = false;
    this._snapshot = null;
    this._replay = null;
    this.session = null;
    this._token = null;
    // A new connection has a new player ID, known from its first sessionJoin.
    if (reason === 'rejected') this.playerID = null;
    for (const req of this._queue.splice(0)) req.reject?.(err);
    this._emit('lost', { reason, sessionID, error: cause });
  }
}

export default SessionClient;
