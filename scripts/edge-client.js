// The WebSocket client the edge host's node checks share (scripts/edge-resume.js,
// scripts/edge-auth.js): a queue of parsed frames, every wait with a timeout, the count of
// session events received since the last sessionJoin / sessionResume (`received`), and any
// unexpected frame a failure of the run (exit code 1).
'use strict';
const WebSocket = require('ws');

const TIMEOUT_MS = 10000;

function fail(message) {
  console.error(`FAILED ${process.argv[2]}: ${message}`);
  process.exit(1);
}

// Same JSON, keys in the same order.
function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

const SESSION_EVENTS = ['playerJoin', 'playerUpdate', 'playerLeave', 'sessionUpdate'];

/// A client of `url` called `name` (`headers`: sent with the upgrade). Resolves once open;
/// rejects if the upgrade is refused.
function client(url, name, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: TIMEOUT_MS });
    const queue = [];
    const waiting = [];
    ws.name = name;
    ws.received = 0;
    ws.on('message', (m) => {
      const frame = JSON.parse(m.toString());
      if (frame.error === 0 && ['sessionJoin', 'sessionResume'].includes(frame.command)) ws.received = 0;
      if (frame.error === 0 && SESSION_EVENTS.includes(frame.command)) ws.received += 1;
      if (waiting.length) waiting.shift()(frame); else queue.push(frame);
    });
    ws.closed = new Promise((done) => ws.on('close', (code) => done(code)));
    ws.closedWithin = (ms = TIMEOUT_MS) => Promise.race([
      ws.closed,
      new Promise((_, rej) => setTimeout(() => rej(new Error(`${name}: not closed within ${ms} ms`)), ms)),
    ]);
    ws.recv = (ms = TIMEOUT_MS) => new Promise((res, rej) => {
      if (queue.length) return res(queue.shift());
      const timer = setTimeout(() => rej(new Error(`${name}: no frame within ${ms} ms`)), ms);
      waiting.push((f) => { clearTimeout(timer); res(f); });
    });
    ws.cmd = (o) => { ws.send(JSON.stringify(o)); return ws.recv(); };
    // The next frame must be exactly `expected`.
    ws.expect = async (expected, what, ms) => {
      const got = await ws.recv(ms);
      if (!same(got, expected)) fail(`${name}: ${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
      return got;
    };
    // Nothing is waiting: the next frame is the reply to an unknown command (error 12).
    ws.quiet = async () => {
      const got = await ws.cmd({ command: 'sentinel-round-trip' });
      if (got.command !== 'error' || got.error !== 12) fail(`${name}: expected nothing before the sentinel's reply, got ${JSON.stringify(got)}`);
    };
    ws.on('open', () => resolve(ws));
    ws.on('unexpected-response', (_, res) => reject(new Error(`${name}: the upgrade was refused with ${res.statusCode}`)));
    ws.on('error', reject);
  });
}

const join = (id, player) => ({ command: 'playerJoin', error: 0, playerID: id, player });
const update = (id, player) => ({ command: 'playerUpdate', error: 0, playerID: id, player });
const leave = (id) => ({ command: 'playerLeave', error: 0, playerID: id });

async function hello(ws) {
  const reply = await ws.cmd({ command: 'hello', features: ['resume'] });
  if (!same(reply.features, ['resume'])) fail(`${ws.name}: hello: ${JSON.stringify(reply)}`);
}

module.exports = { TIMEOUT_MS, fail, same, client, join, update, leave, hello };
