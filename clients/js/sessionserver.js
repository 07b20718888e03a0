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
  24: 'the player to resume is still connected; try again in a moment',
});

/** What each WebSocket close code the server sends means. */
export const CLOSE_MEANINGS = Object.freeze({
  1000: 'closed normally',
  1001: 'the server is shutting down',
  1006: 'the connection was lost',
  1002: 'a frame the WebSocket protocol does not allow from a client',
  1007: 'a text frame that is not valid UTF-8',
  1008: 'the client kept sending commands over its rate limit',
  1009: 'a message larger than the maximum',
  1011: 'the server lost the session (its task or object failed, or could not be reached)',
  1013: 'edge host: a player ID collision; connect again',
  4000: 'heartbeat timeout: nothing heard from the client, not even a pong',
  4001: 'the client stopped reading and its send queue filled up',
  4002: 'the server neared its memory budget and this connection held one of the largest send backlogs',
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
    /** The error code (2-19). */
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

const EVENTS = [
  'sessionJoin',
  'sessionLeave',
  'playerJoin',
  'playerUpdate',
  'playerLeave',
  'sessionUpdate',
  'message',
  'close',
  'error',
];

// Either spelling of a data field in a server frame.
const sessionOf = (msg) => (msg.session !== undefined ? msg.session : msg.sessionData);
const playerOf = (msg) => (msg.player !== undefined ? msg.player : msg.playerData);

/**
 * A connection to a session server: one player. Keeps the current session and its players.
 */
export class SessionClient {
  /**
   * Opens a connection and resolves once it is open.
   * @param {string|URL|object} urlOrSocket a ws:// URL, or a WebSocket (browser or `ws`)
   * @param {{WebSocket?: Function, spelling?: 'short'|'long', protocols?: string|string[]}} [options]
   */
  static connect(urlOrSocket, options = {}) {
    let socket = urlOrSocket;
    if (typeof urlOrSocket === 'string' || urlOrSocket instanceof URL) {
      const WS = options.WebSocket ?? globalThis.WebSocket;
      if (typeof WS !== 'function') {
        return Promise.reject(
          new TypeError('no WebSocket: pass { WebSocket } (e.g. from the `ws` package) on Node before 22'),
        );
      }
      socket = new WS(String(urlOrSocket), options.protocols);
    }
    const client = new SessionClient(socket, options);
    return client.opened.then(() => client);
  }

  /**
   * Wraps a WebSocket (open or connecting). Prefer {@link SessionClient.connect}.
   * @param {object} socket a WebSocket (browser or `ws`)
   * @param {{spelling?: 'short'|'long'}} [options]
   */
  constructor(socket, options = {}) {
    this.socket = socket;
    /** The field spelling this client sends: 'short' (session/player) or 'long' (sessionData/playerData). */
    this.spelling = options.spelling === 'long' ? 'long' : 'short';
    /** This connection's player ID, known from the first sessionJoin on; null before. */
    this.playerID = null;
    /**
     * The session this player is in, or null:
     * `{ id, data, playerData (the default), players: Map<playerID, playerData> }`,
     * the players: this one first, then the others in the order this client learned of them.
     */
    this.session = null;
    /** The close code and reason once the connection is closed, else null. */
    this.closed = null;
    this._listeners = new Map(EVENTS.map((e) => [e, new Set()]));
    // Requests sent and not yet answered, oldest first. Replies to one client come in the
    // order of its commands, so the oldest request is the one the next reply answers.
    this._pending = [];

    this.opened = new Promise((resolve, reject) => {
      const OPEN = 1;
      if (socket.readyState === OPEN) return resolve();
      if (socket.readyState > OPEN) return reject(new ConnectionClosedError(1006, 'socket already closed'));
      this._openWaiters = { resolve, reject };
    });
    // A rejected `opened` nobody awaits must not be reported as unhandled.
    this.opened.catch(() => {});

    socket.onopen = () => {
      this._openWaiters?.resolve();
      this._openWaiters = null;
    };
    socket.onmessage = (event) => this._onFrame(event.data);
    socket.onerror = (event) => {
      const err = event?.error ?? new Error(event?.message ?? 'WebSocket error');
      if (this._openWaiters) {
        // Failing to connect: reported by the close that follows (or here if none does).
        return;
      }
      this._emit('error', err);
    };
    socket.onclose = (event) => this._onClose(event?.code ?? 1006, event?.reason ?? '');
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
  createSession(sessionData = {}, playerData = {}) {
    return this._request('createSession', 'sessionJoin', this._fields(sessionData, playerData));
  }

  /**
   * Joins a session; -1 joins the latest. Resolves on the server's sessionJoin; the members
   * already there follow at once as `playerJoin` events (and in `session.players`).
   * @returns {Promise<Session>}
   */
  joinSession(sessionID = -1) {
    return this._request('joinSession', 'sessionJoin', { sessionID });
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

  /** Closes the connection (normally, code 1000); resolves once it is closed. */
  close(code = 1000, reason = '') {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve) => {
      this.once('close', resolve);
      try {
        this.socket.close(code, reason);
      } catch {
        this._onClose(code, reason);
      }
    });
  }

  /** Sends a raw command object (for commands or fields this client does not know). */
  send(message) {
    if (this.closed) throw new ConnectionClosedError(this.closed.code, this.closed.reason);
    this.socket.send(JSON.stringify(message));
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
      this._pending.push({ command, reply, resolve, reject, expect });
      try {
        this.socket.send(text);
      } catch (err) {
        this._pending.pop();
        reject(err);
      }
    });
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

  _onFrame(data) {
    if (typeof data !== 'string') {
      // The server sends text frames only; `ws` may hand over a Buffer on some setups.
      if (data && typeof data.toString === 'function' && !(data instanceof ArrayBuffer)) data = data.toString();
      else return this._emit('error', new Error('unexpected binary frame from the server'));
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return this._emit('error', new Error(`unparsable frame from the server: ${data.slice(0, 200)}`));
    }
    if (!msg || typeof msg !== 'object' || typeof msg.command !== 'string') {
      return this._emit('error', new Error(`unexpected frame from the server: ${data.slice(0, 200)}`));
    }
    this._emit('message', msg);
    const code = msg.error ?? 0;
    if (code !== 0) return this._onErrorReply(msg, code);

    switch (msg.command) {
      case 'sessionJoin':
        return this._onSessionJoin(msg);
      case 'sessionLeave':
        return this._onSessionLeave();
      case 'playerJoin':
        return this._onPlayerJoin(msg);
      case 'playerUpdate':
        return this._onPlayerUpdate(msg);
      case 'playerLeave':
        return this._onPlayerLeave(msg);
      case 'sessionUpdate':
        return this._onSessionUpdate(msg);
      default:
        return this._emit('error', new Error(`unknown command from the server: ${msg.command}`));
    }
  }

  // Takes the oldest pending request, which the reply `command` must answer.
  _take(command) {
    const head = this._pending[0];
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
    };
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

  _onSessionLeave() {
    const sessionID = this.session?.id ?? null;
    this.session = null;
    const req = this._take('sessionLeave');
    this._emit('sessionLeave', { sessionID });
    req?.resolve();
  }

  _onPlayerJoin(msg) {
    const data = playerOf(msg) ?? {};
    this.session?.players.set(msg.playerID, data);
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
    this._emit('playerLeave', { playerID: msg.playerID, data });
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
    this.closed = { code, reason };
    const err = new ConnectionClosedError(code, reason);
    if (this._openWaiters) {
      this._openWaiters.reject(err);
      this._openWaiters = null;
    }
    for (const req of this._pending.splice(0)) req.reject(err);
    this.session = null;
    this._emit('close', { code, reason, meaning: CLOSE_MEANINGS[code] ?? 'closed' });
  }
}

export default SessionClient;
