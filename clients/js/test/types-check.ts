// Compiled (not run) by types.test.mjs with `tsc --strict --noEmit`: the declarations in
// sessionserver.d.ts must accept this usage and reject the lines marked @ts-expect-error.
import { SessionClient, SessionError, ConnectionClosedError, SessionLostError, ERROR_MEANINGS, errorMeaning, RECONNECT_CLOSE_CODES, RECONNECT_DEFAULTS } from '../sessionserver.js';
import type { Session, PlayerUpdateEvent, LostReason } from '../sessionserver.js';
// A WebSocket constructor, as from the `ws` package (whose types are not installed here).
declare const WebSocket: new (url: string, protocols?: string | string[]) => unknown;

type Dot = { name: string; x: number; y: number; color: string };
type Game = { title: string };

export async function example(): Promise<void> {
  const client = await SessionClient.connect<Game, Dot>('ws://127.0.0.1:7000/', { WebSocket, spelling: 'long' });
  const session: Session<Game, Dot> = await client.createSession({ title: 'dots' }, { name: '', x: 0, y: 0, color: '' });
  const id: number = session.id;
  const players: Map<number, Dot> = session.players;
  const me: number | null = client.playerID;
  void [id, players, me];

  const off = client.on('playerUpdate', (e: PlayerUpdateEvent<Dot>) => {
    const x: number = e.data.x;
    const self: boolean = e.self;
    void [x, self];
  });
  off();
  client.on('playerLeave', ({ playerID, data }) => void [playerID, data?.name]);
  client.on('sessionUpdate', ({ data, playerData, self }) => void [data.title, playerData.color, self]);
  client.on('close', ({ code, meaning }) => void [code, meaning]);
  // @ts-expect-error: no such event
  client.on('playerMove', () => {});

  const locked: Session<Game, Dot> = await client.createSession({ title: 'duel' }, { name: '', x: 0, y: 0, color: '' }, { maxPlayers: 2, private: true, password: 'pw', hostOnlySessionUpdates: true });
  const host: number | null = locked.hostID;
  await client.joinSession(locked.id, { password: 'pw' });
  await client.kickPlayer(3);
  const isLocked: boolean = await client.lockSession(true);
  client.on('hostChange', ({ playerID }) => void playerID);
  client.on('sessionLeave', ({ kicked }) => void kicked);
  void [host, isLocked];
  // @ts-expect-error: no such option
  await client.createSession({ title: 'x' }, { name: '', x: 0, y: 0, color: '' }, { maxPlayer: 2 });

  const page = await client.listSessions({ mode: 'ctf' }, { available: true, limit: 10 });
  const first: number | undefined = page.sessions[0]?.sessionID;
  const more: number | null = page.next;
  await client.setMetadata({ mode: 'ffa' });
  void [first, more];
  const delivered: number = await client.sendMessage({ text: 'hi' }, [2]);
  const { rtt, offset }: { rtt: number; offset: number } = await client.ping();
  client.on('message', ({ playerID, data }) => void [playerID, data]);
  client.on('frame', ({ command }) => void command);
  void [delivered, rtt, offset];

  const dot: Dot = await client.updatePlayer({ name: 'A', x: 1, y: 2, color: 'red' });
  void dot;
  // @ts-expect-error: playerData must have the session's player type
  await client.updatePlayer({ name: 'A' });

  try {
    await client.joinSession(-1);
  } catch (err) {
    if (err instanceof SessionError) {
      const code: number = err.code;
      const meaning: string = err.meaning;
      void [code, meaning, err.command, err.serverMessage];
    } else if (err instanceof ConnectionClosedError) {
      void err.code;
    }
  }
  await client.updateSession({ title: 'b' }, { name: '', x: 0, y: 0, color: '' });
  await client.leaveSession();
  const text: string = ERROR_MEANINGS[7] + errorMeaning(4, 'playerUpdate');
  void text;
  const closed = await client.close();
  void closed.code;

  // An untyped client takes any JSON objects.
  const loose = await SessionClient.connect('ws://127.0.0.1:7000/');
  await loose.createSession({ anything: [1, 'two', { three: null }] }, {});
}

// Reconnecting: the option, the three events, the state.
export async function reconnecting(): Promise<void> {
  const client = await SessionClient.connect<Game, Dot>('ws://127.0.0.1:7000/', {
    WebSocket,
    reconnect: { maxTimeMs: 30_000, baseDelayMs: 250, maxDelayMs: 5_000, maxAttempts: 30, attemptTimeoutMs: 5_000 },
  });
  await SessionClient.connect('ws://127.0.0.1:7000/', { reconnect: false });
  // @ts-expect-error: no such setting
  await SessionClient.connect('ws://127.0.0.1:7000/', { reconnect: { retries: 3 } });
  client.on('reconnecting', ({ attempt, delay, code, error }) => void [attempt + delay + code, error?.code]);
  client.on('resumed', ({ replay, missed, attempts }) => {
    const snapshot: boolean = replay === 'snapshot';
    const count: number | null = missed;
    void [snapshot, count, attempts];
  });
  client.on('lost', ({ reason, sessionID, error }) => {
    const why: LostReason = reason;
    void [why, sessionID, error.message];
  });
  const features: string[] | null = client.features;
  const state = client.reconnecting;
  void [features, state?.attempt, RECONNECT_CLOSE_CODES.includes(1006), RECONNECT_DEFAULTS.maxTimeMs];
  try {
    await client.updatePlayer({ name: 'A', x: 1, y: 2, color: 'red' });
  } catch (err) {
    if (err instanceof SessionLostError) void [err.reason, err.sessionID];
  }
}
