// Reconnecting and resuming: the JS client against native servers (127.0.0.1, port 0), the
// client under test connected through a TCP proxy (test/proxy.mjs) that cuts its connection
// the way a network does. Every wait is for an event; no test asserts on a duration.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  SessionClient,
  SessionError,
  SessionLostError,
  ConnectionClosedError,
  RECONNECT_CLOSE_CODES,
  CLOSE_MEANINGS,
} from '../sessionserver.js';
import { startServer } from './server.mjs';
import { startProxy } from './proxy.mjs';
import { WebSocket, connect, next, collect, until, playersOf } from './helpers.mjs';

const skip = Boolean(process.env.SESSIONSERVER_URL) && 'needs servers of its own';
// Quick attempts, and enough of them to outlast a proxy that refuses for a while.
const QUICK = { baseDelayMs: 10, maxDelayMs: 100, maxAttempts: 10_000 };

let server;
const cleanup = [];

before(async () => {
  if (skip) return;
  server = await startServer();
});

after(async () => {
  for (const fn of cleanup.reverse()) await fn();
  await server?.stop();
});

async function proxyTo(srv) {
  const proxy = await startProxy(srv.port);
  cleanup.push(() => proxy.close());
  return proxy;
}

async function client(url, options) {
  const c = await connect(url, options);
  cleanup.push(() => c.close());
  return c;
}

// Everything `c` tells its app about the session, in order, as [event, detail].
function journal(c) {
  const log = [];
  c.on('playerJoin', (e) => log.push(['playerJoin', e.playerID, e.data]));
  c.on('playerUpdate', (e) => log.push(['playerUpdate', e.playerID, e.data]));
  c.on('playerLeave', (e) => log.push(['playerLeave', e.playerID]));
  c.on('sessionUpdate', (e) => log.push(['sessionUpdate', e.data]));
  c.on('reconnecting', (e) => log.push(['reconnecting', e.attempt]));
  c.on('resumed', (e) => log.push(['resumed', e.replay]));
  c.on('lost', (e) => log.push(['lost', e.reason]));
  c.on('close', (e) => log.push(['close', e.code]));
  return log;
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// A (through `proxy`, reconnecting) and B (direct) in one session; A has seen B join.
async function pair(srv, proxy, reconnect = QUICK) {
  const a = await client(proxy.url, { reconnect });
  const b = await client(srv.url);
  const { id } = await a.createSession({ game: 'resume' }, { x: 0 });
  await b.joinSession(id);
  await until(() => a.session.players.size === 2, 5000, 'A to see B join');
  return { a, b, id };
}

test('a dropped client reconnects, keeps its player ID and sees every update B sent, in order', { skip }, async () => {
  const proxy = await proxyTo(server);
  const { a, b } = await pair(server, proxy);
  assert.deepEqual(a.features, ['resume']);
  const aID = a.playerID;
  const bID = b.playerID;
  const fromB = [];
  a.on('playerUpdate', (e) => e.playerID === bID && fromB.push(e.data.x));
  const log = journal(a);
  const bLeaves = collect(b, 'playerLeave');
  const fromA = [];
  b.on('playerUpdate', (e) => e.playerID !== bID && fromA.push([e.playerID, e.data.x]));

  for (const x of range(1, 5)) await b.updatePlayer({ x });
  await until(() => fromB.length === 5, 5000, 'A to see 1-5');

  // The link dies: what the server sends A now is lost on the way (the server counts it as
  // sent), then the connection is reset and new ones are refused for a while.
  proxy.swallow();
  for (const x of range(6, 10)) await b.updatePlayer({ x });
  await until(() => proxy.swallowed().includes('"x":10'), 5000, 'update 10 to be lost on the way');
  const reconnecting = next(a, 'reconnecting');
  proxy.down();
  proxy.cut();
  const first = await reconnecting;
  assert.equal(first.attempt, 1);
  assert.equal(first.code, 1006);
  assert.ok(RECONNECT_CLOSE_CODES.includes(first.code));
  // Meanwhile the session carries on; A's own update waits for the resume.
  assert.ok(a.reconnecting, 'a.reconnecting while away');
  assert.equal(a.session.players.size, 2, 'A keeps its view of the session while away');
  const queued = a.updatePlayer({ x: 50 });
  for (const x of range(11, 15)) await b.updatePlayer({ x });

  const resumed = next(a, 'resumed', () => true, 15_000);
  proxy.up();
  const more = (async () => {
    for (const x of range(16, 25)) await b.updatePlayer({ x });
  })();
  const r = await resumed;
  await more;
  assert.equal(r.replay, 'frames');
  assert.ok(r.missed >= 10, `missed ${r.missed}: at least 6-15`);
  assert.ok(r.attempts >= 1);
  assert.deepEqual(await queued, { x: 50 });

  await until(() => fromB.length >= 25, 5000, 'A to see 16-25');
  assert.deepEqual(fromB, range(1, 25), 'every update of B, once each, in order');
  assert.equal(a.playerID, aID);
  assert.equal(a.reconnecting, null);
  assert.equal(a.closed, null);
  assert.deepEqual(playersOf(a), { [aID]: { x: 50 }, [bID]: { x: 25 } });

  // Later updates of A reach B as the same player.
  await a.updatePlayer({ x: 100 });
  await until(() => fromA.length === 2, 5000, 'B to see both of A\'s updates');
  assert.deepEqual(fromA, [[aID, 50], [aID, 100]]);
  assert.deepEqual(bLeaves, [], 'B never saw A leave');
  assert.deepEqual(b.session.players.get(aID), { x: 100 });

  // reconnecting (one per attempt) came first, then one resumed; nothing was lost or closed.
  const states = log.filter(([e]) => ['reconnecting', 'resumed', 'lost', 'close'].includes(e));
  assert.equal(states.at(-1)[0], 'resumed');
  assert.deepEqual(
    states.slice(0, -1).map(([e, n]) => [e, n]),
    range(1, states.length - 1).map((n) => ['reconnecting', n]),
  );
});

test('a second drop resumes too: the token of the first resume replaced the first one', { skip }, async () => {
  const proxy = await proxyTo(server);
  const { a, b } = await pair(server, proxy);
  const aID = a.playerID;
  const fromB = [];
  a.on('playerUpdate', (e) => e.playerID === b.playerID && fromB.push(e.data.x));
  const log = journal(a);
  for (const round of [1, 2]) {
    const resumed = next(a, 'resumed', () => true, 15_000);
    proxy.cut();
    await b.updatePlayer({ x: round });
    assert.equal((await resumed).replay, 'frames');
  }
  assert.deepEqual(log.filter(([e]) => e === 'resumed' || e === 'lost'), [['resumed', 'frames'], ['resumed', 'frames']]);
  assert.equal(a.playerID, aID);
  // Each update was sent while the server may not yet have found the connection gone: it is
  // replayed from what A says it received.
  await until(() => fromB.length === 2, 5000, 'A to see both updates');
  assert.deepEqual(fromB, [1, 2]);
});

test('half-open: the server still holds the old connection; the resume takes it over (or error 24, retried)', { skip }, async () => {
  const proxy = await proxyTo(server);
  const { a, b } = await pair(server, proxy);
  const aID = a.playerID;
  const fromB = [];
  a.on('playerUpdate', (e) => e.playerID === b.playerID && fromB.push(e.data.x));
  const bLeaves = collect(b, 'playerLeave');
  // Half-open: A's side is reset, the server's side stays open, so the server still holds A
  // as connected. This server takes the seat over at once (closing the old connection, 4003);
  // one that answers error 24 instead gets another attempt once the old connection is gone.
  const refused = next(a, 'reconnecting', (e) => e.error?.code === 24, 15_000);
  const resumed = next(a, 'resumed', () => true, 15_000);
  proxy.cut({ keepUpstream: true });
  await b.updatePlayer({ x: 1 }); // written to the half-open connection: lost on the way
  const first = await Promise.race([refused.then((e) => ['refused', e]), resumed.then((e) => ['resumed', e])]);
  if (first[0] === 'refused') {
    assert.ok(first[1].error instanceof SessionError);
    assert.equal(first[1].error.command, 'sessionResume');
    await b.updatePlayer({ x: 2 });
    proxy.closeUpstreams(); // now the server finds the old connection gone
  } else {
    await b.updatePlayer({ x: 2 });
  }
  await resumed;
  await until(() => fromB.length === 2, 5000, 'A to see both updates');
  assert.deepEqual(fromB, [1, 2]);
  assert.equal(a.playerID, aID);
  assert.deepEqual(bLeaves, []);
});

test('snapshot: more missed than the server keeps; the client rebuilds the session from it', { skip }, async () => {
  const small = await startServer(['--resume-replay-bytes', '1']);
  cleanup.push(() => small.stop());
  const proxy = await proxyTo(small);
  const { a, b, id } = await pair(small, proxy);
  const c = await client(small.url);
  await c.joinSession(id);
  await until(() => a.session.players.size === 3, 5000, 'A to see C join');
  const [aID, bID, cID] = [a.playerID, b.playerID, c.playerID];
  const bLeaves = collect(b, 'playerLeave');

  const reconnecting = next(a, 'reconnecting');
  proxy.down();
  proxy.cut();
  await reconnecting;
  const log = journal(a);
  // While A is away: the session changes, B moves, C leaves, D joins and moves.
  await b.updateSession({ round: 2 }, { x: 0 });
  await b.updatePlayer({ x: 7 });
  const cGone = next(b, 'playerLeave', (e) => e.playerID === cID);
  await c.close();
  await cGone;
  const d = await client(small.url);
  await d.joinSession(id);
  await d.updatePlayer({ x: 9 });
  const dID = d.playerID;
  // D sees A as a member (away, its seat kept).
  await until(() => d.session.players.has(aID), 5000, 'D to see A');

  const resumed = next(a, 'resumed', () => true, 15_000);
  proxy.up();
  const r = await resumed;
  assert.equal(r.replay, 'snapshot');
  assert.equal(r.missed, null);
  // The members now arrive as playerJoin, in join order; C, not among them, leaves; then resumed.
  assert.deepEqual(
    log.filter(([e]) => e !== 'reconnecting'),
    [
      ['playerJoin', bID, { x: 7 }],
      ['playerJoin', dID, { x: 9 }],
      ['playerLeave', cID],
      ['resumed', 'snapshot'],
    ],
  );
  assert.equal(a.playerID, aID);
  assert.deepEqual(a.session.data, { round: 2 });
  assert.deepEqual(playersOf(a), { [aID]: { x: 0 }, [bID]: { x: 7 }, [dID]: { x: 9 } });
  assert.equal([...a.session.players.keys()][0], aID, 'itself first');

  // A carries on as the same player; B and D see it.
  const dSees = next(d, 'playerUpdate', (e) => e.playerID === aID);
  await a.updatePlayer({ x: 3 });
  assert.deepEqual((await dSees).data, { x: 3 });
  await until(() => b.session.players.get(aID)?.x === 3, 5000, 'B to see A move');
  assert.deepEqual(bLeaves.map((e) => e.playerID), [cID], 'B saw C leave, never A');
});

test('lost: the grace period ends before the client gets through; it is left in the lobby', { skip }, async () => {
  const short = await startServer(['--resume-grace-ms', '300']);
  cleanup.push(() => short.stop());
  const proxy = await proxyTo(short);
  const { a, b, id } = await pair(short, proxy);
  const aID = a.playerID;
  const log = journal(a);

  const reconnecting = next(a, 'reconnecting');
  proxy.down();
  proxy.cut();
  await reconnecting;
  const queued = a.updatePlayer({ x: 1 }).catch((e) => e);
  // The server gives A's seat up once its grace period is over: B sees A leave.
  await next(b, 'playerLeave', (e) => e.playerID === aID, 15_000);
  const lost = next(a, 'lost', () => true, 15_000);
  proxy.up();
  const e = await lost;
  assert.equal(e.reason, 'rejected');
  assert.equal(e.sessionID, id);
  assert.ok(e.error instanceof SessionError);
  assert.equal(e.error.code, 22);
  const err = await queued;
  assert.ok(err instanceof SessionLostError, String(err));
  assert.equal(err.reason, 'rejected');

  // Connected, in the lobby, as a new player.
  assert.equal(a.session, null);
  assert.equal(a.closed, null);
  assert.equal(a.reconnecting, null);
  assert.equal(a.playerID, null);
  assert.deepEqual(a.features, ['resume']);
  assert.deepEqual(log.filter(([e]) => e !== 'reconnecting'), [['lost', 'rejected']]);
  await a.joinSession(id);
  assert.notEqual(a.playerID, aID);
  await until(() => b.session.players.has(a.playerID), 5000, 'B to see A join again');
});

test('lost: the client gives up after reconnect.maxTimeMs; then it closes', { skip }, async () => {
  const proxy = await proxyTo(server);
  const { a, id } = await pair(server, proxy, { baseDelayMs: 10, maxDelayMs: 50, maxTimeMs: 300 });
  const log = journal(a);
  const closed = next(a, 'close', () => true, 15_000);
  proxy.down();
  proxy.cut();
  await next(a, 'reconnecting');
  const queued = a.updatePlayer({ x: 1 }).catch((e) => e);
  const lost = await next(a, 'lost', () => true, 15_000);
  assert.equal(lost.reason, 'timeout');
  assert.equal(lost.sessionID, id);
  assert.ok(lost.error instanceof ConnectionClosedError);
  assert.equal((await closed).code, 1006);
  const err = await queued;
  assert.ok(err instanceof SessionLostError);
  assert.equal(err.reason, 'timeout');
  assert.deepEqual(a.closed, { code: 1006, reason: (await closed).reason });
  assert.equal(a.session, null);
  assert.equal(a.reconnecting, null);
  assert.deepEqual(log.filter(([e]) => e !== 'reconnecting'), [['lost', 'timeout'], ['close', 1006]]);
  assert.ok(log.length >= 3, 'at least one attempt');
});

test('backoff: full jitter under a doubling bound; maxAttempts attempts, then lost', { skip }, async () => {
  const proxy = await proxyTo(server);
  const settings = { baseDelayMs: 2, maxDelayMs: 12, maxAttempts: 5, maxTimeMs: 60_000 };
  const { a } = await pair(server, proxy, settings);
  const attempts = collect(a, 'reconnecting');
  const closed = next(a, 'close', () => true, 15_000);
  proxy.down();
  proxy.cut();
  const lost = await next(a, 'lost', () => true, 15_000);
  await closed;
  assert.equal(lost.reason, 'timeout');
  assert.deepEqual(attempts.map((e) => e.attempt), [1, 2, 3, 4, 5]);
  for (const { attempt, delay } of attempts) {
    const bound = Math.min(12, 2 * 2 ** (attempt - 1));
    assert.ok(Number.isInteger(delay) && delay >= 0 && delay <= bound, `attempt ${attempt}: delay ${delay} in [0, ${bound}]`);
  }
  // The first was caused by the drop; each later one by the refused attempt before it.
  assert.ok(attempts.every((e) => e.code === 1006 && e.error === null));
});

test('close() while reconnecting stops it: close, and what waited rejects', { skip }, async () => {
  const proxy = await proxyTo(server);
  const { a, b } = await pair(server, proxy);
  const log = journal(a);
  proxy.down();
  proxy.cut();
  await next(a, 'reconnecting');
  const queued = a.updatePlayer({ x: 1 }).catch((e) => e);
  const closed = await a.close();
  assert.equal(closed.code, 1000);
  assert.ok((await queued) instanceof ConnectionClosedError);
  assert.equal(a.reconnecting, null);
  assert.equal(a.session, null);
  assert.deepEqual(log.filter(([e]) => e !== 'reconnecting'), [['close', 1000]]);
  await assert.rejects(a.updatePlayer({ x: 2 }), ConnectionClosedError);
  void b;
});

test('a server that grants no resume: a drop closes the client as before', { skip }, async () => {
  const plain = await startServer(['--resume-grace-ms', '0']);
  cleanup.push(() => plain.stop());
  const proxy = await proxyTo(plain);
  const { a, b } = await pair(plain, proxy);
  const aID = a.playerID;
  assert.deepEqual(a.features, []);
  const log = journal(a);
  const bSees = next(b, 'playerLeave', (e) => e.playerID === aID);
  const closed = next(a, 'close');
  proxy.cut();
  assert.equal((await closed).code, 1006);
  await bSees;
  assert.deepEqual(log, [['close', 1006]]);
  assert.equal(a.session, null);
});

test('4003: a client whose seat another connection resumed (with its token) does not come back', { skip }, async () => {
  const a = await client(server.url);
  const frames = collect(a, 'frame');
  const { id } = await a.createSession({}, { x: 0 });
  const token = frames.find((f) => f.command === 'sessionJoin').resumeToken;
  assert.equal(typeof token, 'string');
  const aID = a.playerID;
  const log = journal(a);
  const closed = next(a, 'close');
  // Someone else resumes A's seat while A's connection is open: the server hands it over.
  const thief = new WebSocket(server.url);
  cleanup.push(() => thief.close());
  await new Promise((resolve) => thief.on('open', resolve));
  const answer = new Promise((resolve) => thief.on('message', (d) => resolve(JSON.parse(String(d)))));
  thief.send(JSON.stringify({ command: 'resumeSession', resumeToken: token, received: 0 }));
  const resumed = await answer;
  assert.deepEqual([resumed.command, resumed.error, resumed.sessionID, resumed.playerID], ['sessionResume', 0, id, aID]);
  const e = await closed;
  assert.equal(e.code, 4003);
  assert.equal(e.meaning, CLOSE_MEANINGS[4003]);
  assert.ok(!RECONNECT_CLOSE_CODES.includes(4003));
  assert.deepEqual(log, [['close', 4003]], 'no reconnecting: the seat is not this client\'s any more');
  assert.equal(a.session, null);
});

test('a final close code (1001, the server shutting down) is not retried', { skip }, async () => {
  const doomed = await startServer();
  const a = await client(doomed.url);
  await a.createSession({}, { x: 0 });
  await until(() => a.features !== null);
  assert.deepEqual(a.features, ['resume']);
  const log = journal(a);
  const closed = next(a, 'close', () => true, 15_000);
  await doomed.stop();
  assert.equal((await closed).code, 1001);
  assert.deepEqual(log, [['close', 1001]]);
  assert.ok(!RECONNECT_CLOSE_CODES.includes(1001));
});

test('reconnect: false sends no hello; bad reconnect settings are refused clearly', { skip }, async () => {
  const a = await client(server.url, { reconnect: false });
  const frames = collect(a, 'frame');
  await a.createSession({}, {});
  assert.equal(a.features, null);
  assert.deepEqual(frames.map((f) => f.command), ['sessionJoin']);
  assert.equal('resumeToken' in frames[0], false, 'no token without hello');

  // With it (the default given a URL), hello is the first exchange and the token comes.
  const b = await client(server.url);
  const bFrames = collect(b, 'frame');
  await b.createSession({}, {});
  assert.deepEqual(bFrames.map((f) => f.command), ['hello', 'sessionJoin']);
  assert.equal(typeof bFrames[1].resumeToken, 'string');

  await assert.rejects(connect(server.url, { reconnect: 'yes' }), /reconnect must be true, false or an object/);
  await assert.rejects(connect(server.url, { reconnect: { maxAttempts: 0 } }), /reconnect\.maxAttempts must be an integer of at least 1/);
  await assert.rejects(connect(server.url, { reconnect: { baseDelayMs: -1 } }), /reconnect\.baseDelayMs must be a number/);
  await assert.rejects(connect(server.url, { reconnect: { retries: 3 } }), /unknown reconnect setting "retries"/);
  // A socket passed in does not reconnect unless asked to; asked, it needs a constructor.
  const socket = new WebSocket(server.url);
  const c = await SessionClient.connect(socket);
  cleanup.push(() => c.close());
  assert.equal(c.features, null);
  assert.throws(() => new SessionClient({ readyState: 0 }, { reconnect: true, WebSocket }), /socket\.url/);
});
