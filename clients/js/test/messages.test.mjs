// Messages and ping through the JS client, against a real native server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { SessionError } from '../sessionserver.js';
import { startServer } from './server.mjs';
import { connect, next, collect } from './helpers.mjs';

let server;
const open = [];

async function client(options) {
  const c = await connect(server.url, options);
  open.push(c);
  return c;
}

before(async () => {
  server = await startServer();
});

after(async () => {
  await Promise.all(open.map((c) => c.close()));
  await server?.stop();
});

test('messages reach the members that asked for them, verbatim; legacy members get nothing', async () => {
  const a = await client({ messages: true });
  const session = await a.createSession({}, {});
  const b = await client({ messages: true });
  await b.joinSession(session.id);
  const legacy = await client();
  await legacy.joinSession(session.id);
  const legacyFrames = collect(legacy, 'frame');

  const got = next(b, 'message');
  const data = { text: 'ready!', n: 1.5e3, list: [1, 'two', null] };
  assert.equal(await a.sendMessage(data), 1);
  assert.deepEqual(await got, { playerID: a.playerID, data });

  // To some: only those, the sender too when named.
  const mine = next(a, 'message');
  assert.equal(await a.sendMessage('to me', [a.playerID]), 1);
  assert.deepEqual(await mine, { playerID: a.playerID, data: 'to me' });
  const err = await a.sendMessage('x', [123456789]).catch((e) => e);
  assert.ok(err instanceof SessionError && err.code === 31, String(err));

  await legacy.ping();
  assert.deepEqual(legacyFrames.filter((f) => f.command === 'message'), []);
});

test('ping gives the round trip and the server clock, in the lobby and in a session', async () => {
  const c = await client();
  const lobby = await c.ping();
  assert.ok(lobby.rtt >= 0 && Math.abs(lobby.offset) < 60_000, JSON.stringify(lobby));
  await c.createSession({}, {});
  const inSession = await c.ping();
  assert.ok(Math.abs(inSession.serverTime - Date.now()) < 60_000, JSON.stringify(inSession));
});

test('listSessions: public sessions with their metadata, filtered; setMetadata by the host', async () => {
  const host = await client();
  const game = await host.createSession({}, {}, { maxPlayers: 4, metadata: { mode: 'ctf' } });
  const hidden = await client();
  await hidden.createSession({}, {}, { private: true, metadata: { mode: 'ctf' } });
  const browser = await client();
  const { sessions, next } = await browser.listSessions({ mode: 'ctf' });
  assert.deepEqual(sessions, [{ sessionID: game.id, players: 1, maxPlayers: 4, metadata: { mode: 'ctf' } }]);
  assert.equal(next, null);
  assert.deepEqual(await host.setMetadata({ mode: 'ctf', round: 2 }), { mode: 'ctf', round: 2 });
  const after = await browser.listSessions({ round: 2 }, { available: true });
  assert.deepEqual(after.sessions.map((s) => s.sessionID), [game.id]);
  const err = await host.listSessions().catch((e) => e);
  assert.ok(err instanceof SessionError && err.code === 32, String(err));
});

test('joinOrCreate fills a session to maxPlayers, then creates the next', async () => {
  const filter = { mode: 'js-duel' };
  const a = await client();
  const first = await a.joinOrCreate(filter, { round: 1 }, { hp: 3 }, { maxPlayers: 2 });
  const b = await client();
  const second = await b.joinOrCreate(filter, { round: 1 }, { hp: 3 }, { maxPlayers: 2 });
  assert.equal(second.id, first.id);
  const c = await client();
  const third = await c.joinOrCreate(filter, { round: 1 }, { hp: 3 }, { maxPlayers: 2 });
  assert.notEqual(third.id, first.id);
  const browser = await client();
  const { sessions } = await browser.listSessions(filter);
  assert.deepEqual(sessions.map((s) => [s.sessionID, s.players, s.metadata]), [
    [third.id, 1, filter],
    [first.id, 2, filter],
  ]);
});
