// The JS client against a real native server (started on 127.0.0.1, port 0, for this file).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  SessionClient,
  SessionError,
  ConnectionClosedError,
  ERROR_MEANINGS,
  CLOSE_MEANINGS,
  errorMeaning,
} from '../sessionserver.js';
import { startServer } from './server.mjs';
import { WebSocket, connect, next, collect, until, playersOf } from './helpers.mjs';

const external = Boolean(process.env.SESSIONSERVER_URL);
let server;
const open = [];

async function client(options) {
  const c = await connect(server.url, options);
  open.push(c);
  return c;
}

const DEFAULT = { name: '', x: 0, y: 0, color: '' };

before(async () => {
  server = await startServer();
});

after(async () => {
  await Promise.all(open.map((c) => c.close()));
  await server?.stop();
});

// First, while the server has no session at all.
test('joinSession(-1) with no session rejects with SessionError 6', { skip: external && 'external server' }, async () => {
  const a = await client();
  const err = await a.joinSession(-1).then(
    () => assert.fail('resolved'),
    (e) => e,
  );
  assert.ok(err instanceof SessionError);
  assert.ok(err instanceof Error);
  assert.equal(err.name, 'SessionError');
  assert.equal(err.code, 6);
  assert.equal(err.command, 'sessionJoin');
  assert.equal(err.meaning, 'joinSession -1 while no session exists');
  assert.match(err.message, /^error 6: /);
  assert.equal(a.session, null);
  assert.equal(a.playerID, null);
});

test('createSession resolves with the session; the client keeps it', async () => {
  const a = await client();
  const joins = collect(a, 'sessionJoin');
  const session = await a.createSession({ title: 'dots', endTimeInMS: 1262304000 }, DEFAULT);
  assert.equal(typeof session.id, 'number');
  assert.equal(typeof a.playerID, 'number');
  assert.equal(session, a.session);
  assert.deepEqual(session.data, { title: 'dots', endTimeInMS: 1262304000 });
  assert.deepEqual(session.playerData, DEFAULT);
  assert.ok(session.players instanceof Map);
  assert.deepEqual(playersOf(a), { [a.playerID]: DEFAULT });
  assert.deepEqual(joins, [
    { sessionID: session.id, playerID: a.playerID, data: session.data, playerData: DEFAULT, created: true },
  ]);
});

test('joinSession by ID and by -1: playerJoin events both ways, and the kept player lists', async () => {
  const a = await client();
  const { id } = await a.createSession({ title: 'join' }, DEFAULT);
  await a.updatePlayer({ name: 'A', x: 1, y: 2, color: 'red' });

  const b = await client();
  const aSeesB = next(a, 'playerJoin');
  const bSeesA = next(b, 'playerJoin');
  const sb = await b.joinSession(id);
  assert.equal(sb.id, id);
  assert.deepEqual(sb.data, { title: 'join' });
  assert.notEqual(b.playerID, a.playerID);
  assert.deepEqual(await bSeesA, { playerID: a.playerID, data: { name: 'A', x: 1, y: 2, color: 'red' } });
  assert.deepEqual(await aSeesB, { playerID: b.playerID, data: DEFAULT });

  const expected = { [a.playerID]: { name: 'A', x: 1, y: 2, color: 'red' }, [b.playerID]: DEFAULT };
  assert.deepEqual(playersOf(a), expected);
  assert.deepEqual(playersOf(b), expected);
  // Itself first, then the others as it learned of them.
  assert.deepEqual([...b.session.players.keys()], [b.playerID, a.playerID]);

  // -1: the latest session, which is this one unless another test file runs at the same time.
  const c = await client();
  const cSeesTwo = until(() => c.session?.players.size === 3, 5000, 'c to see a and b');
  const sc = await c.joinSession(-1);
  if (!external) assert.equal(sc.id, id);
  if (sc.id === id) {
    await cSeesTwo;
    await until(() => a.session.players.size === 3 && b.session.players.size === 3);
    assert.deepEqual(playersOf(c), { ...expected, [c.playerID]: DEFAULT });
  }
});

test('updatePlayer resolves with the data; the others get playerUpdate; every list follows', async () => {
  const a = await client();
  const b = await client();
  const { id } = await a.createSession({}, DEFAULT);
  const bSeesA = next(b, 'playerJoin');
  await b.joinSession(id);
  await bSeesA;

  const aUpdates = collect(a, 'playerUpdate');
  const bSees = next(b, 'playerUpdate');
  const data = await a.updatePlayer({ name: 'A', x: 10, y: 20.5, color: '#f00' });
  assert.deepEqual(data, { name: 'A', x: 10, y: 20.5, color: '#f00' });
  assert.deepEqual(aUpdates, [{ playerID: a.playerID, data, self: true }]);
  assert.deepEqual(await bSees, { playerID: a.playerID, data, self: false });
  assert.deepEqual(a.session.players.get(a.playerID), data);
  assert.deepEqual(b.session.players.get(a.playerID), data);

  // Types of values may change, keys may not.
  const changed = await b.updatePlayer({ color: [1, 2], y: 'top', x: null, name: 'B' });
  assert.deepEqual(changed, { color: [1, 2], y: 'top', x: null, name: 'B' });
  await until(() => a.session.players.get(b.playerID)?.name === 'B');
});

test('updatePlayer with another key structure rejects with SessionError 4; nothing changes', async () => {
  const a = await client();
  const b = await client();
  const { id } = await a.createSession({}, DEFAULT);
  await b.joinSession(id);
  await a.updatePlayer({ ...DEFAULT, name: 'kept' });
  await until(() => b.session.players.get(a.playerID)?.name === 'kept');
  const bUpdates = collect(b, 'playerUpdate');

  const err = await a.updatePlayer({ name: 'x', x: 0, y: 0 }).catch((e) => e);
  assert.ok(err instanceof SessionError);
  assert.equal(err.code, 4);
  assert.equal(err.command, 'playerUpdate');
  assert.equal(err.meaning, "playerData's key structure differs from the session's default; nothing changes");
  assert.equal(err.serverMessage, undefined);
  assert.deepEqual(a.session.players.get(a.playerID), { ...DEFAULT, name: 'kept' });

  // The connection stays usable; b saw only the good update.
  await a.updatePlayer({ ...DEFAULT, name: 'after' });
  await until(() => bUpdates.length === 1);
  assert.equal(bUpdates[0].data.name, 'after');
});

test('the other errors of the original: 7, 5, 4 on create, 2', async () => {
  const a = await client();
  const err7 = await a.joinSession(2 ** 52).catch((e) => e);
  assert.ok(err7 instanceof SessionError);
  assert.deepEqual([err7.code, err7.command, err7.meaning], [7, 'sessionJoin', 'no session with that ID']);

  const notIn = [a.updatePlayer(DEFAULT), a.updateSession({}, {}), a.leaveSession()];
  const errs = await Promise.all(notIn.map((p) => p.catch((e) => e)));
  assert.deepEqual(
    errs.map((e) => [e.code, e.command, e.meaning]),
    [
      [2, 'playerUpdate', 'not in a session'],
      [2, 'sessionUpdate', 'not in a session'],
      [2, 'sessionLeave', 'not in a session'],
    ],
  );

  const { id } = await a.createSession({}, DEFAULT);
  const err5 = await a.joinSession(id).catch((e) => e);
  assert.deepEqual([err5.code, err5.command, err5.meaning], [5, 'sessionJoin', 'joinSession while in a session']);
  const err4 = await a.createSession({}, {}).catch((e) => e);
  assert.deepEqual(
    [err4.code, err4.command, err4.meaning],
    [4, 'sessionJoin', 'createSession while in a session; nothing is created'],
  );
  // Still in the same session.
  assert.equal(a.session.id, id);
});

test("this server's errors carry its message: 13 for bad fields, 12 for an unknown command", async () => {
  const a = await client();
  const err13 = await a.joinSession('3').catch((e) => e);
  assert.ok(err13 instanceof SessionError);
  assert.equal(err13.code, 13);
  assert.equal(err13.command, 'sessionJoin');
  assert.equal(err13.meaning, ERROR_MEANINGS[13]);
  assert.match(err13.serverMessage, /sessionID/);
  assert.equal(err13.message, `error 13: ${err13.serverMessage}`);

  await a.createSession({}, DEFAULT);
  const bad = await a.updatePlayer(5).catch((e) => e);
  assert.equal(bad.code, 13);
  assert.equal(bad.command, 'playerUpdate');

  // A frame naming no known command is answered by `error`: with no request waiting, it
  // arrives as an 'error' event.
  const errors = next(a, 'error');
  a.send({ command: 'dance' });
  const err12 = await errors;
  assert.ok(err12 instanceof SessionError);
  assert.deepEqual([err12.code, err12.command, err12.meaning], [12, 'error', 'unknown command']);

  // Nesting past the limit is answered by `error` too; it rejects the request it answers.
  let deep = {};
  for (let i = 0; i < 70; i++) deep = { d: deep };
  const err15 = await a.updatePlayer(deep).catch((e) => e);
  assert.deepEqual([err15.code, err15.command], [15, 'error']);
  // And the next request still gets its own reply.
  assert.deepEqual(await a.updatePlayer({ ...DEFAULT, name: 'ok' }), { ...DEFAULT, name: 'ok' });
});

test('many requests in flight each settle with their own reply, in order', async () => {
  const a = await client();
  const b = await client();
  const { id } = await a.createSession({}, DEFAULT);
  await b.joinSession(id);
  // b's updates interleave with a's replies; a must not take them for its own.
  const bMoves = Array.from({ length: 20 }, (_, i) => b.updatePlayer({ ...DEFAULT, x: i }));
  const results = await Promise.allSettled([
    a.updatePlayer({ ...DEFAULT, x: 1 }),
    a.updatePlayer({ bad: 1 }),
    a.updatePlayer({ ...DEFAULT, x: 2 }),
    a.joinSession(id),
    a.updatePlayer({ ...DEFAULT, x: 3 }),
  ]);
  assert.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value.x : r.reason.code)),
    [1, 4, 2, 5, 3],
  );
  assert.deepEqual(
    (await Promise.all(bMoves)).map((d) => d.x),
    Array.from({ length: 20 }, (_, i) => i),
  );
  await until(() => a.session.players.get(b.playerID).x === 19);
  await until(() => b.session.players.get(a.playerID).x === 3);
});

test('updateSession resolves for its sender; every member resets to the new default', async () => {
  const a = await client();
  const b = await client();
  const { id } = await a.createSession({ round: 1 }, DEFAULT);
  await b.joinSession(id);
  await a.updatePlayer({ ...DEFAULT, name: 'A' });
  await b.updatePlayer({ ...DEFAULT, name: 'B' });
  await until(() => a.session.players.get(b.playerID).name === 'B');

  const bSees = next(b, 'sessionUpdate');
  const session = await a.updateSession({ round: 2 }, { name: '', score: 0 });
  assert.equal(session, a.session);
  assert.deepEqual(session.data, { round: 2 });
  assert.deepEqual(session.playerData, { name: '', score: 0 });
  assert.deepEqual(await bSees, { data: { round: 2 }, playerData: { name: '', score: 0 }, self: false });
  for (const c of [a, b]) {
    assert.deepEqual(playersOf(c), { [a.playerID]: { name: '', score: 0 }, [b.playerID]: { name: '', score: 0 } });
  }
  // The new structure applies.
  assert.equal((await a.updatePlayer(DEFAULT).catch((e) => e)).code, 4);
  await a.updatePlayer({ name: 'A', score: 3 });

  // Two members updating at once: each promise settles with its own update.
  const [ra, rb] = await Promise.all([
    a.updateSession({ round: 'a' }, { p: 1 }),
    b.updateSession({ round: 'b' }, { p: 2 }),
  ]);
  assert.ok(ra === a.session && rb === b.session);
  // Both members end with the same state: the update the session applied last.
  await until(() => JSON.stringify(a.session.data) === JSON.stringify(b.session.data));
  assert.ok(['a', 'b'].includes(a.session.data.round));
});

test('leaveSession resolves; the others get playerLeave with the last data; so does a close', async () => {
  const a = await client();
  const b = await client();
  const c = await client();
  const { id } = await a.createSession({}, DEFAULT);
  await b.joinSession(id);
  await c.joinSession(id);
  await b.updatePlayer({ ...DEFAULT, name: 'B' });
  // joinSession resolves on sessionJoin; the members already there follow as playerJoin, so
  // wait for every member to see all three before anyone leaves.
  await until(() => [a, b, c].every((x) => x.session.players.size === 3));
  await until(() => a.session.players.get(b.playerID).name === 'B');

  const leaves = collect(a, 'sessionLeave');
  const bLeft = next(b, 'playerLeave');
  await a.leaveSession();
  assert.equal(a.session, null);
  assert.deepEqual(leaves, [{ sessionID: id }]);
  assert.deepEqual(await bLeft, { playerID: a.playerID, data: DEFAULT });
  assert.deepEqual([...b.session.players.keys()], [b.playerID, c.playerID]);

  await until(() => !c.session.players.has(a.playerID), 5000, 'c to see a leave');
  const cSeesClose = next(c, 'playerLeave');
  const closed = await b.close();
  assert.equal(closed.code, 1000);
  assert.deepEqual(await cSeesClose, { playerID: b.playerID, data: { ...DEFAULT, name: 'B' } });
  assert.deepEqual([...c.session.players.keys()], [c.playerID]);

  // a can join again; it keeps its player ID.
  const before = a.playerID;
  await a.joinSession(id);
  assert.equal(a.playerID, before);
  await until(() => a.session.players.size === 2);
});

test('both spellings: a long-spelled session answers long, and every client reads it', async () => {
  const a = await client({ spelling: 'long' });
  const b = await client(); // sends the short spelling
  const aFrames = collect(a, 'frame');
  const bFrames = collect(b, 'frame');

  const { id } = await a.createSession({ mode: 'long' }, DEFAULT);
  // (The first frame is the answer to the client's hello.)
  const aJoin = aFrames.find((f) => f.command === 'sessionJoin');
  assert.ok('sessionData' in aJoin && 'playerData' in aJoin);
  assert.ok(!('session' in aJoin));
  await b.joinSession(id);
  assert.deepEqual(b.session.data, { mode: 'long' });
  assert.deepEqual(b.session.playerData, DEFAULT);

  await b.updatePlayer({ ...DEFAULT, name: 'short' });
  await a.updatePlayer({ ...DEFAULT, name: 'long' });
  await until(() => b.session.players.get(a.playerID).name === 'long');
  assert.equal(a.session.players.get(b.playerID).name, 'short');
  // The session answered b in the long spelling too.
  const bUpdate = bFrames.find((f) => f.command === 'playerUpdate');
  assert.ok('playerData' in bUpdate && !('player' in bUpdate));

  await b.updateSession({ mode: 'still long' }, { name: '' });
  await until(() => a.session.data.mode === 'still long');
  assert.deepEqual(playersOf(a), { [a.playerID]: { name: '' }, [b.playerID]: { name: '' } });

  // And a short-spelled session answers short.
  const c = await client();
  const cFrames = collect(c, 'frame');
  await c.createSession({ mode: 'short' }, {});
  const cJoin = cFrames.find((f) => f.command === 'sessionJoin');
  assert.ok('session' in cJoin && !('sessionData' in cJoin));
});

test('close: pending requests reject with ConnectionClosedError; later ones too', async () => {
  const a = await client();
  const closes = collect(a, 'close');
  const pending = a.createSession({}, {});
  a.socket.close(); // close before the reply arrives
  const err = await pending.catch((e) => e);
  // The reply may beat the close; if it did, the request resolved.
  if (err instanceof Error) {
    assert.ok(err instanceof ConnectionClosedError);
  }
  await until(() => closes.length === 1);
  assert.ok([1000, 1005].includes(closes[0].code), String(closes[0].code));
  assert.equal(a.session, null);
  const later = await a.updatePlayer({}).catch((e) => e);
  assert.ok(later instanceof ConnectionClosedError);
  assert.deepEqual(await a.close(), a.closed);
});

test('connect rejects when nothing listens', async () => {
  const err = await connect('ws://127.0.0.1:1/').catch((e) => e);
  assert.ok(err instanceof ConnectionClosedError, String(err));
});

test('connect takes a WebSocket already made (here a `ws` one), open or not', async () => {
  const socket = new WebSocket(server.url);
  const a = await SessionClient.connect(socket);
  open.push(a);
  await a.createSession({}, {});
  const b = new SessionClient(new WebSocket(server.url));
  open.push(b);
  await b.opened;
  await b.joinSession(a.session.id);
  await until(() => a.session.players.size === 2);
});

test('connect uses globalThis.WebSocket when none is passed (browsers, Node 22)', async () => {
  const had = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
  if (!had) globalThis.WebSocket = WebSocket;
  try {
    const a = await SessionClient.connect(new URL(server.url));
    open.push(a);
    const s = await a.createSession({ via: 'global' }, {});
    assert.deepEqual(s.data, { via: 'global' });
  } finally {
    if (!had) delete globalThis.WebSocket;
  }
});

test('connect without a WebSocket says what to pass', { skip: Boolean(globalThis.WebSocket) && 'global WebSocket exists' }, async () => {
  await assert.rejects(SessionClient.connect(server.url), /pass \{ WebSocket \}/);
});

test('ERROR_MEANINGS has every code the server can send', () => {
  const source = readFileSync(new URL('../../../core/src/error.rs', import.meta.url), 'utf8');
  const codes = [...source.matchAll(/ErrorCode::\w+ => (\d+),/g)].map((m) => Number(m[1]));
  assert.ok(codes.length >= 16, 'codes read from core/src/error.rs');
  for (const code of codes) {
    assert.equal(typeof ERROR_MEANINGS[code], 'string', `meaning of ${code}`);
    assert.doesNotMatch(errorMeaning(code, "x"), /^unknown error/);
  }
  assert.equal(errorMeaning(99), 'unknown error 99');

  // And every code in PROTOCOL.md's tables of error codes and close codes.
  const protocol = readFileSync(new URL('../../../PROTOCOL.md', import.meta.url), 'utf8');
  const section = (title) => protocol.split(`## ${title}`)[1].split('\n## ')[0];
  const rows = (text) => [...text.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
  const errorRows = rows(section('Error codes'));
  const closeRows = rows(section('Close codes'));
  assert.ok(errorRows.length >= 16 && closeRows.length >= 7);
  for (const code of errorRows) assert.equal(typeof ERROR_MEANINGS[code], 'string', `error ${code}`);
  for (const code of closeRows) assert.equal(typeof CLOSE_MEANINGS[code], 'string', `close ${code}`);
});

test('rate limit: commands past the burst reject with SessionError 18, in order', { skip: external && 'external server' }, async () => {
  const limited = await startServer(['--commands-per-second', '1', '--command-burst', '5']);
  try {
    const a = await connect(limited.url);
    await a.createSession({}, { x: 0 });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => a.updatePlayer({ x: i })));
    const codes = results.map((r) => (r.status === 'fulfilled' ? 0 : r.reason.code));
    // The burst of 5 includes the client's hello and createSession: 3 updates pass, the rest
    // are refused.
    assert.deepEqual(codes.slice(0, 3), [0, 0, 0]);
    assert.ok(codes.slice(3).every((c) => c === 18 || c === 0), String(codes));
    assert.ok(codes.includes(18), String(codes));
    const refused = results.find((r) => r.status === 'rejected').reason;
    assert.equal(refused.command, 'playerUpdate');
    assert.match(refused.meaning, /more commands per second than allowed/);
    await a.close();
  } finally {
    await limited.stop();
  }
});
