// Types for sessionserver.js: a client for the sessionserver wire protocol (see PROTOCOL.md).

/** JSON data as sent and received: sessionData and playerData are JSON objects. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** The error codes the server sends (0 is success and never rejects). */
export type ErrorCode = 2 | 4 | 5 | 6 | 7 | 9 | 10 | 11 | 12 | 13 | 14 | 15 | 16 | 17 | 18 | 19 | 20;

/** What every error code means (code 4 has two meanings; see errorMeaning). */
export const ERROR_MEANINGS: Readonly<Record<ErrorCode, string>>;
/** What each WebSocket close code the server sends means. */
export const CLOSE_MEANINGS: Readonly<Record<number, string>>;
/** The meaning of an error code in the reply command it came in. */
export function errorMeaning(code: number, command?: string): string;

/** A reply command of the server. */
export type ReplyCommand =
  | 'sessionJoin'
  | 'sessionUpdate'
  | 'sessionLeave'
  | 'playerJoin'
  | 'playerUpdate'
  | 'playerLeave'
  | 'error';

/** An error reply of the server. */
export class SessionError extends Error {
  constructor(code: number, command: ReplyCommand, serverMessage?: string);
  readonly name: 'SessionError';
  /** The protocol's error code (2-19). */
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

export interface SessionClientEvents<S extends JsonObject = JsonObject, P extends JsonObject = JsonObject> {
  sessionJoin: SessionJoinEvent<S, P>;
  sessionLeave: SessionLeaveEvent;
  playerJoin: PlayerJoinEvent<P>;
  playerUpdate: PlayerUpdateEvent<P>;
  playerLeave: PlayerLeaveEvent<P>;
  sessionUpdate: SessionUpdateEvent<S, P>;
  /** Every frame from the server, parsed, before the client acts on it. */
  message: { command: string; error: number; [key: string]: unknown };
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

export interface ConnectOptions {
  /** A WebSocket constructor; defaults to globalThis.WebSocket (browsers, Node 22+). */
  WebSocket?: new (url: string, protocols?: string | string[]) => any;
  /** The field spelling to send: 'short' (session/player, the default) or 'long' (sessionData/playerData). */
  spelling?: 'short' | 'long';
  protocols?: string | string[];
}

/** A connection to a session server: one player. */
export class SessionClient<S extends JsonObject = JsonObject, P extends JsonObject = JsonObject> {
  /** Opens a connection (a ws:// URL, or a WebSocket already made) and resolves once it is open. */
  static connect<S extends JsonObject = JsonObject, P extends JsonObject = JsonObject>(
    urlOrSocket: string | URL | WebSocketLike,
    options?: ConnectOptions,
  ): Promise<SessionClient<S, P>>;

  constructor(socket: WebSocketLike, options?: Pick<ConnectOptions, 'spelling'>);

  readonly socket: WebSocketLike;
  /** Resolves when the socket is open. */
  readonly opened: Promise<void>;
  spelling: 'short' | 'long';
  /** This connection's player ID, known from the first sessionJoin on; null before. */
  readonly playerID: number | null;
  /** The session this player is in, or null. */
  readonly session: Session<S, P> | null;
  /** The close code and reason once closed, else null. */
  readonly closed: { code: number; reason: string } | null;

  /** Adds a listener; returns a function that removes it. */
  on<E extends keyof SessionClientEvents<S, P>>(event: E, fn: (arg: SessionClientEvents<S, P>[E]) => void): () => void;
  /** Adds a listener called at most once; returns a function that removes it. */
  once<E extends keyof SessionClientEvents<S, P>>(event: E, fn: (arg: SessionClientEvents<S, P>[E]) => void): () => void;
  off<E extends keyof SessionClientEvents<S, P>>(event: E, fn: (arg: SessionClientEvents<S, P>[E]) => void): void;

  /** Creates a session and joins it; playerData is the default every member starts with. */
  createSession(sessionData?: S, playerData?: P): Promise<Session<S, P>>;
  /** Joins a session by ID, or the latest with -1 (the default). */
  joinSession(sessionID?: number): Promise<Session<S, P>>;
  /** Replaces this player's playerData (same key structure as the default, else error 4). */
  updatePlayer(playerData: P): Promise<P>;
  /** Replaces the sessionData and default playerData; every member's playerData resets. */
  updateSession(sessionData?: S, playerData?: P): Promise<Session<S, P>>;
  /** Leaves the current session. */
  leaveSession(): Promise<void>;
  /** Closes the connection; resolves once closed. */
  close(code?: number, reason?: string): Promise<{ code: number; reason: string }>;
  /** Sends a raw command object. */
  send(message: { command: string; [key: string]: unknown }): void;
}

export default SessionClient;
