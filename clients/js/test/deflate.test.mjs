// permessage-deflate (RFC 7692) between the native server and the `ws` package, which speaks it:
// the negotiation, a compressed client message taken, a compressed broadcast inflated by `ws`,
// and the SessionClient working over a compressing socket. (native/tests/deflate.rs checks the
// frames byte by byte; this checks a real, independent implementation against the server.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startServer } from './server.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

/** A `ws` socket that offers permessage-deflate and compresses everything it sends. */
function open(options = { perMessageDeflate: { threshold: 0 } }) {
  const ws = new WebSocket(server.url, options);
  const messages = [];
  const waiters = [];
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    messages.push(msg);
    for (const w of [...waiters]) w();
  });
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const until = (pred, ms = 5000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const i = messages.findIndex(pred);
        if (i >= 0) {
          const [msg] = messages.splice(i, 1);
          waiters.splice(waiters.indexOf(check), 1);
          clearTimeout(timer);
          resolve(msg);
        }
      };
      const timer = setTimeout(() => reject(new Error('no such message in time')), ms);
      waiters.push(check);
      check();
    });
  return { ws, opened, until };
}

const big = (n) => ({ name: `player-${n}`, inventory: Array.from({ length: 12 }, (_, k) => ({ item: 'potion', slot: k, n })) });

test('ws negotiates permessage-deflate and both directions go compressed', async () => {
  const a = open();
  const b = open();
  const plain = open({ perMessageDeflate: false });
  await Promise.all([a.opened, b.opened, plain.opened]);
  assert.equal(a.ws.extensions, 'permessage-deflate');
  assert.equal(plain.ws.extensions, '');
  a.ws.send(JSON.stringify({ command: 'createSession', session: {}, player: big(0) }));
  const joined = await a.until((m) => m.command === 'sessionJoin');
  assert.equal(joined.error, 0);
  for (const c of [b, plain]) {
    c.ws.send(JSON.stringify({ command: 'joinSession', sessionID: joined.sessionID }));
    assert.equal((await c.until((m) => m.command === 'sessionJoin')).error, 0);
  }
  a.ws.send(JSON.stringify({ command: 'updatePlayer', player: big(7) }));
  for (const c of [a, b, plain]) {
    const update = await c.until((m) => m.command === 'playerUpdate' && m.player?.name === 'player-7');
    assert.deepEqual(update.player, big(7));
  }
  for (const c of [a, b, plain]) c.ws.close();
});
