// Types for sessionserver.js: a client for the sessionserver wire protocol (see PROTOCOL.md).

/** JSON data as sent and received: sessionData and playerData are JSON objects. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** The error codes the server sends (0 is success and never rejects). */
export type ErrorCode = 2 | 4 | 5 | 6 | 7 | 9 | 10 | 11 | 12 | 13 | 14 | 15 | 16 | 17 | 18 | 19 | 20 | 21 | 22 | 23 | 24 | 25 | 26 | 27 | 28 | 29 | 30 | 31 | 32 | 33 | 34;

/** What every error code means (code 4 has two meanings; see errorMeaning). */
export const ERROR_MEANINGS: Readonly<Record<ErrorCode, string>>;
/** What each WebSocket close code the server sends means. */
export const CLOSE_MEANINGS: Readonly<Record<number, string>>;
/** The meaning of an error code in the reply command it came in. */
export function errorMeaning(code: number, command?: string): string;
/**
 * The close codes after which a client in a session reconnects and resumes (1006, 1011-1014,
 * 4000-4002); every other close is final (4003 among them: the seat was resumed elsewhere).
 */
export const RECONNECT_CLOSE_CODES: readonly number[];
/** The defaults of the `reconnect` settings. */
export const RECONNECT_DEFAULTS: Readonly<Required<ReconnectOptions>>;

/** A reply command of the server. */
export type ReplyCommand =
  | 'sessionJoin'
  | 'sessionUpdate'
  | 'sessionLeave'
  | 'playerJoin'
  | 'playerUpdate'
  | 'playerLeave'
  | 'hello'
  | 'sessionResume'
  | 'sessionLock'
  | 'hostChange'
  | 'pong'
  | 'messageSent'
  | 'sessionList'
  | 'sessionMetadata'
  | 'error';

/** An error reply of the server. */
export class SessionError extends Error {
  constructor(code: number, command: ReplyCommand, serverMessage?: string);
  readonly name: 'SessionError';
  /** The protocol's error code (2-34). */
  readonly code: ErrorCode;
  /** The reply command the error came in. */
  readonly command: ReplyCommand;
  /** What the code means. */
  readonly meaning: string;
  /** The server's own message (codes 9 and up); undefined for codes 2-7. */
  readonly serverMessage?: string;
}

/** A request that could not be answered because the connection closed. */
export class ConnectionClosedError extends Error {
  constructor(closeCode: number, reason?: string);
  readonly name: 'ConnectionClosedError';
  /** The WebSocket close code (1000, 1001, 1002, 1006, 1007, 1008, 1009, 4000, 4001, …). */
  readonly code: number;
  readonly reason?: string;
  readonly meaning: string;
}

/** Why a seat could not be taken back after a drop. */
export type LostReason =
  /** The server refused the resume (error 22: the grace period ended, or the session is gone); the client is connected, in the lobby. */
  | 'rejected'
  /** No resume within `maxAttempts` / `maxTimeMs`; the client is closed. */
  | 'timeout'
  /** An attempt was closed with a final close code; the client is closed. */
  | 'closed';

/** Requests made while reconnecting reject with this when the seat is lost. */
export class SessionLostError extends Error {
  constructor(reason: LostReason, sessionID: number | null, cause?: Error);
  readonly name: 'SessionLostError';
  readonly reason: LostReason;
  readonly sessionID: number | null;
  /** The SessionError (rejected) or ConnectionClosedError (timeout, closed) behind it. */
  readonly cause?: Error;
}

/** The session a client is in, kept up to date by the client. */
export interface Session<S extends JsonObject = JsonObject, P extends JsonObject = JsonObject> {
  /** The session's ID. */
  id: number;
  /** The sessionData. */
  data: S;
  /** The default playerData: what every member starts with, and its key structure. */
  playerData: P;
  /** Every member's playerData by player ID: this client's own first, then the others in the order it learned of them. */
  players: Map<number, P>;
  /** The host's player ID, with the `host` extension (option `host: true`); else null. */
  hostID: number | null;
  /** Whether the host locked the session, as far as this client was told (the host's own lockSession, or any with `host`). */
  locked: boolean;
}

/** `createSession`'s options (PROTOCOL.md, "Who may play"); each optional. */
export interface SessionOptions {
  /** Joins beyond this many players get SessionError 16 (1 to the server's players-per-session limit). */
  maxPlayers?: number;
  /** Not found by joinSession(-1); its ID is random below 2^53: share it to invite. */
  private?: boolean;
  /** Every joinSession must carry it (1 to 256 bytes); else SessionError 26 (27 after too many wrong ones). */
  password?: string;
  /** Only the host may updateSession (others get SessionError 29). */
  hostOnlySessionUpdates?: boolean;
  /** Public information for listSessions (a JSON object of at most 4 KiB). */
  metadata?: JsonObject;
}

/** One public session in a listSessions page. */
export interface ListedSession {
  sessionID: number;
  players: number;
  maxPlayers: number | null;
  metadata: JsonObject;
}

export interface ListOptions {
  /** Leave out sessions that are full, locked or have a password. */
  available?: boolean;
  /** A previous page's `next`. */
  after?: number | null;
  /** At most this many (1-50, default 50). */
  limit?: number;
}

export interface JoinOptions {
  /** The session's password, if it has one. */
  password?: string;
}

export interface SessionJoinEvent<S extends JsonObject = JsonObject, P extends JsonObject = JsonObject> {
  sessionID: number;
  playerID: number;
  data: S;
  playerData: P;
  /** True when this client created the session. */
  created: boolean;
}
export interface SessionLeaveEvent {
  sessionID: number | null;
  /** True when the host removed this player (kickPlayer) rather than a leaveSession of its own. */
  kicked?: true;
}
export interface MessageEvent {
  /** The sender. */
  playerID: number;
  /** Its data, as it sent it. */
  data: JsonValue;
}
export interface HostChangeEvent {
  /** The new host (with the `host` extension only). */
  playerID: number;
}
export interface SessionLockEvent {
  locked: boolean;
  /** True for the reply to this client's own lockSession. */
  self: boolean;
}
export interface PlayerJoinEvent<P extends JsonObject = JsonObject> {
  playerID: number;
  data: P;
}
export interface PlayerUpdateEvent<P extends JsonObject = JsonObject> {
  playerID: number;
  data: P;
  /** True for this client's own update. */
  self: boolean;
}
export interface PlayerLeaveEvent<P extends JsonObject = JsonObject> {
  playerID: number;
  /** The leaving player's last playerData. */
  data: P | undefined;
  /** True when this client kicked it (the reply to its kickPlayer). */
  kicked?: true;
}
export interface SessionUpdateEvent<S extends JsonObject = JsonObject, P extends JsonObject = JsonObject> {
  data: S;
  /** The new default playerData; every member's playerData was reset to it. */
  playerData: P;
  /** True for this client's own update. */
  self: boolean;
}
export interface CloseEvent {
  code: number;
  reason: string;
  meaning: string;
}
export interface ReconnectingEvent {
  /** 1 for the first attempt after a drop, then 2, 3, … */
  attempt: number;
  /** Milliseconds before this attempt starts (full jitter: drawn from [0, min(maxDelayMs, baseDelayMs × 2^(attempt-1))]). */
  delay: number;
  /** The close code of the connection lost (attempt 1) or of the failed attempt before. */
  code: number;
  reason: string;
  /** The server's refusal of the attempt before, if it was one (error 24: the old connection is not yet found gone). */
  error: SessionError | null;
}
export interface ResumedEvent {
  /** 'frames': the missed frames came as the usual events. 'snapshot': the state was rebuilt (read client.session). */
  replay: 'frames' | 'snapshot';
  /** How many frames were replayed; null for a snapshot. */
  missed: number | null;
  /** The attempts it took. */
  attempts: number;
}
export interface LostEvent {
  reason: LostReason;
  /** The session that was lost. */
  sessionID: number | null;
  /** The SessionError (rejected) or ConnectionClosedError (timeout, closed) behind it. */
  error: Error;
}

export interface SessionClientEvents<S extends JsonObject = JsonObject, P extends JsonObject = JsonObject> {
  sessionJoin: SessionJoinEvent<S, P>;
  sessionLeave: SessionLeaveEvent;
  playerJoin: PlayerJoinEvent<P>;
  playerUpdate: PlayerUpdateEvent<P>;
  playerLeave: PlayerLeaveEvent<P>;
  sessionUpdate: SessionUpdateEvent<S, P>;
  /** The session's host changed (with option `host: true`). */
  hostChange: HostChangeEvent;
  /** The session was locked or unlocked (this client's own lockSession, or with option `host: true` the host's). */
  sessionLock: SessionLockEvent;
  /** The connection dropped in a session (or an attempt failed): an attempt to resume follows after `delay`. */
  reconnecting: ReconnectingEvent;
  /** The seat is back, with the same player ID, and what was missed has been applied. */
  resumed: ResumedEvent;
  /** The seat could not be taken back; client.session is null. After 'timeout' and 'closed', `close` follows. */
  lost: LostEvent;
  /** A member's sendMessage (with option `messages: true`). */
  message: MessageEvent;
  /** Every frame from the server, parsed, before the client acts on it. */
  frame: { command: string; error: number; [key: string]: unknown };
  close: CloseEvent;
  /** Errors not tied to a request: an unexpected frame, a socket error, a listener that threw. */
  error: Error;
}

/** The part of a WebSocket the client uses: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
}

/** Settings of reconnecting; every one has a default (RECONNECT_DEFAULTS). */
export interface ReconnectOptions {
  /** Attempts at most per drop (default 30). */
  maxAttempts?: number;
  /** Milliseconds from the drop after which no attempt starts, and the client gives up (default 30,000: the server's default grace). */
  maxTimeMs?: number;
  /** Bound of the first attempt's random delay; it doubles per attempt (default 250). */
  baseDelayMs?: number;
  /** Largest bound of an attempt's random delay (default 5,000). */
  maxDelayMs?: number;
  /** Milliseconds one attempt may take, from opening its socket to the server's answer (default 5,000). */
  attemptTimeoutMs?: number;
}

export interface ConnectOptions {
  /** A WebSocket constructor; defaults to globalThis.WebSocket (browsers, Node 22+). */
  WebSocket?: new (url: string, protocols?: string | string[]) => any;
  /** The field spelling to send: 'short' (session/player, the default) or 'long' (sessionData/playerData). */
  spelling?: 'short' | 'long';
  protocols?: string | string[];
  /**
   * Ask the server for `resume` and, when the connection drops in a session, reconnect and take
   * the seat back: true (the defaults), false, or settings. Default: true given a URL, false
   * given a socket.
   */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Ask for the `host` extension: session.hostID, `hostChange` and `sessionLock` events, and
   * `kicked` in the sessionLeave event of a kick. Default false.
   */
  host?: boolean;
  /** Ask for the `messages` extension: `message` events of other members' sendMessage. Default false. */
  messages?: boolean;
}

/** A connection to a session server: one player. */
export class SessionClient<S extends JsonObject = JsonObject, P extends JsonObject = JsonObject> {
  /** Opens a connection (a ws:// URL, or a WebSocket already made) and resolves once it is open. */
  static connect<S extends JsonObject = JsonObject, P extends JsonObject = JsonObject>(
    urlOrSocket: string | URL | WebSocketLike,
    options?: ConnectOptions,
  ): Promise<SessionClient<S, P>>;

  constructor(socket: WebSocketLike & { readonly url?: string }, options?: ConnectOptions);

  /** The current socket (a new one after each resume). */
  readonly socket: WebSocketLike;
  /** Resolves when the socket is open. */
  readonly opened: Promise<void>;
  spelling: 'short' | 'long';
  /** This connection's player ID, known from the first sessionJoin on; null before. */
  readonly playerID: number | null;
  /** The session this player is in, or null. */
  readonly session: Session<S, P> | null;
  /** The close code and reason once closed for good, else null (also while reconnecting). */
  readonly closed: { code: number; reason: string } | null;
  /** The extensions the server granted to hello (['resume']); [] if none; null while unknown or when no hello is sent. */
  readonly features: string[] | null;
  /** While taking the seat back after a drop; else null. Requests made meanwhile wait and are sent after the resume. */
  readonly reconnecting: { attempt: number; delay: number; since: number } | null;

  /** Adds a listener; returns a function that removes it. */
  on<E extends keyof SessionClientEvents<S, P>>(event: E, fn: (arg: SessionClientEvents<S, P>[E]) => void): () => void;
  /** Adds a listener called at most once; returns a function that removes it. */
  once<E extends keyof SessionClientEvents<S, P>>(event: E, fn: (arg: SessionClientEvents<S, P>[E]) => void): () => void;
  off<E extends keyof SessionClientEvents<S, P>>(event: E, fn: (arg: SessionClientEvents<S, P>[E]) => void): void;

  /** Creates a session and joins it; playerData is the default every member starts with. */
  createSession(sessionData?: S, playerData?: P, options?: SessionOptions): Promise<Session<S, P>>;
  /** Joins a session by ID, or the latest public one with -1 (the default); with the password of one that has one. */
  joinSession(sessionID?: number, options?: JoinOptions): Promise<Session<S, P>>;
  /** The host removes a member; resolves on its playerLeave (SessionError 29: not the host; 30: no such other member). */
  kickPlayer(playerID: number): Promise<void>;
  /** The host locks (true) or unlocks the session; resolves with the state (SessionError 29: not the host). */
  lockSession(locked?: boolean): Promise<boolean>;
  /** Sends data to the other members (or those in `to`) that asked for `messages`; resolves with how many got it (SessionError 31: `to` names a non-member). */
  sendMessage(data: JsonValue, to?: number[]): Promise<number>;
  /** Public sessions, newest first, whose metadata has the filter's keys and values (from the lobby; SessionError 32 in a session). */
  listSessions(filter?: JsonObject, options?: ListOptions): Promise<{ sessions: ListedSession[]; next: number | null }>;
  /** Joins the fullest public session matching the filter that has room, or creates one with this data and options (from the lobby). */
  joinOrCreate(filter?: JsonObject, sessionData?: S, playerData?: P, options?: SessionOptions): Promise<Session<S, P>>;
  /** The host replaces the session's metadata; resolves with it (SessionError 29: not the host). */
  setMetadata(metadata: JsonObject): Promise<JsonObject>;
  /** The round trip to the server and its clock's offset from this one, in milliseconds. */
  ping(): Promise<{ rtt: number; offset: number; serverTime: number }>;
  /** Replaces this player's playerData (same key structure as the default, else error 4). */
  updatePlayer(playerData: P): Promise<P>;
  /** Replaces the sessionData and default playerData; every member's playerData resets. */
  updateSession(sessionData?: S, playerData?: P): Promise<Session<S, P>>;
  /** Leaves the current session. */
  leaveSession(): Promise<void>;
  /** Closes the connection (leaving the session first when the server would keep the seat); stops reconnecting; resolves once closed. */
  close(code?: number, reason?: string): Promise<{ code: number; reason: string }>;
  /** Sends a raw command object. */
  send(message: { command: string; [key: string]: unknown }): void;
}

export default SessionClient;

/**
 * The URL a resume connects to: `url`, except on the edge host's direct path (a URL ending in
 * `/session/new` or `/session/<id>`), where it is `/session/<the token's session ID>`.
 */
export function resumeUrl(url: string, token: string): string;
