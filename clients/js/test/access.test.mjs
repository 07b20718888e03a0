// Who may play, through the JS client, against a real native server: session options,
// passwords, private sessions, the host's kickPlayer and lockSession, the `host` extension.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { SessionError, ERROR_MEANINGS } from '../sessionserver.js';
import { startServer } from './server.mjs';
import { connect, next, until } from './helpers.mjs';

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

/** The SessionError code a promise rejects with. */
async function codeOf(promise) {
  const err = await promise.then(
    () => assert.fail('expected a SessionError'),
    (e) => e,
  );
  assert.ok(err instanceof SessionError, String(err));
  return err.code;
}

test('every new error code has a meaning', () => {
  for (const code of [26, 27, 28, 29, 30]) assert.equal(typeof ERROR_MEANINGS[code], 'string', String(code));
});

test('maxPlayers, a password and a private ID', async () => {
  const host = await client({ host: true });
  const session = await host.createSession({ game: 'duel' }, { hp: 100 }, { maxPlayers: 2, password: 'pw', private: true });
  assert.ok(session.id > 1e6 && session.id < 2 ** 53, `random private ID, got ${session.id}`);
  assert.equal(session.hostID, host.playerID);
  assert.deepEqual(host.features, ['resume', 'host']);

  const guest = await client();
  assert.equal(await codeOf(guest.joinSession(session.id)), 26);
  assert.equal(await codeOf(guest.joinSession(session.id, { password: 'nope' })), 26);
  // A private session is not the latest.
  assert.equal(await codeOf(guest.joinSession(-1)), 6);
  const joined = await guest.joinSession(session.id, { password: 'pw' });
  assert.equal(joined.id, session.id);
  assert.equal(joined.hostID, null, 'no host extension asked for');

  const third = await client();
  assert.equal(await codeOf(third.joinSession(session.id, { password: 'pw' })), 16);
});

test('the host kicks and locks; others may not; hostChange when the host leaves', async () => {
  const host = await client({ host: true });
  const session = await host.createSession({}, {});
  const aware = await client({ host: true });
  await aware.joinSession(session.id);
  assert.equal(aware.session.hostID, host.playerID);
  const plain = await client();
  await plain.joinSession(session.id);
  await until(() => host.session.players.size === 3 && aware.session.players.size === 3);

  assert.equal(await codeOf(aware.kickPlayer(plain.playerID)), 29);
  assert.equal(await codeOf(aware.lockSession(true)), 29);
  assert.equal(await codeOf(host.kickPlayer(host.playerID)), 30);

  const told = next(aware, 'sessionLock');
  assert.equal(await host.lockSession(true), true);
  assert.deepEqual(await told, { locked: true, self: false });
  assert.equal(host.session.locked, true);
  const late = await client();
  assert.equal(await codeOf(late.joinSession(session.id)), 28);
  await host.lockSession(false);
  await late.joinSession(session.id);
  await until(() => host.session.players.size === 4);

  const leaving = next(plain, 'sessionLeave');
  const seen = next(aware, 'playerLeave', (e) => e.playerID === plain.playerID);
  await host.kickPlayer(plain.playerID);
  assert.deepEqual(await leaving, { sessionID: session.id, kicked: true });
  await seen;
  assert.equal(plain.session, null);
  // Back in the lobby: it can create a session at once.
  const own = await plain.createSession({}, {});
  assert.notEqual(own.id, session.id);

  const change = next(aware, 'hostChange');
  await host.leaveSession();
  assert.deepEqual(await change, { playerID: aware.playerID });
  assert.equal(aware.session.hostID, aware.playerID);
});

test('hostOnlySessionUpdates', async () => {
  const host = await client();
  const session = await host.createSession({ round: 1 }, {}, { hostOnlySessionUpdates: true });
  const guest = await client();
  await guest.joinSession(session.id);
  assert.equal(await codeOf(guest.updateSession({ round: 2 }, {})), 29);
  await host.updateSession({ round: 2 }, {});
  await until(() => guest.session.data.round === 2);
});
