// SessionServerWebGL.jslib outside Unity: the file is evaluated with the few Emscripten
// helpers it uses (UTF8ToString, stringToUTF8, lengthBytesUTF8, _malloc, mergeInto) shimmed
// over a pretend heap, and its functions are driven as WebGLTransport.cs drives them, against
// a native server (SESSIONSERVER_BIN) on 127.0.0.1. Node 20: run with --experimental-websocket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import vm from 'node:vm';
import net from 'node:net';

let server;
let port;

before(async () => {
  server = spawn(process.env.SESSIONSERVER_BIN, ['--bind', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const banner = await new Promise((resolve) => createInterface({ input: server.stdout }).once('line', resolve));
  port = Number(/Listening on port (\d+)/.exec(banner)[1]);
});

after(() => server.kill());

// The jslib's functions, with pointers into a pretend heap: a pointer names a stored string.
function loadLibrary() {
  const heap = new Map();
  let nextPointer = 8;
  const library = {};
  const context = vm.createContext({
    WebSocket,
    LibraryManager: { library },
    mergeInto: (target, source) => Object.assign(target, source),
    UTF8ToString: (pointer) => heap.get(pointer),
    lengthBytesUTF8: (s) => Buffer.byteLength(s),
    _malloc: () => nextPointer++,
    stringToUTF8: (s, pointer) => heap.set(pointer, s),
  });
  vm.runInContext(readFileSync(new URL('../SessionServerWebGL.jslib', import.meta.url), 'utf8'), context);
  // Emscripten binds `$`-prefixed entries as globals for the functions that depend on them.
  context.SessionServerSockets = library.$SessionServerSockets;
  const fn = (name) => (...args) => library[name].apply(null, args);
  const put = (s) => {
    const pointer = nextPointer++;
    heap.set(pointer, s);
    return pointer;
  };
  for (const name of Object.keys(library)) if (!name.startsWith('$')) vm.runInContext(`var ${name} = LibraryManager.library.${name};`, context);
  return {
    open: (url) => fn('SessionServerWS_Open')(put(url)),
    send: (id, text) => fn('SessionServerWS_Send')(id, put(text)),
    close: (id, code, reason) => fn('SessionServerWS_Close')(id, code, put(reason)),
    next: (id) => {
      const pointer = fn('SessionServerWS_Next')(id);
      return pointer === 0 ? null : heap.get(pointer);
    },
  };
}

// Polls as the game loop does until an event matches; returns the events seen.
async function until(lib, id, match) {
  const seen = [];
  for (let i = 0; i < 5000; i++) {
    let e;
    while ((e = lib.next(id)) !== null) {
      seen.push(e);
      if (match(e)) return seen;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`no matching event; saw ${JSON.stringify(seen)}`);
}

test('two sockets through the jslib create, join, update and close', async () => {
  const lib = loadLibrary();
  const url = `ws://127.0.0.1:${port}/`;
  const a = lib.open(url);
  // Sent while connecting: held until the open.
  lib.send(a, '{"command":"hello","features":["resume"]}');
  lib.send(a, '{"command":"createSession","session":{"t":1e400},"player":{"x":0}}');
  let events = await until(lib, a, (e) => e.includes('"sessionJoin"'));
  assert.equal(events[0], 'O');
  assert.match(events[1], /^M\{"command":"hello","error":0/);
  const join = JSON.parse(events[2].slice(1).replace('1e400', '0'));
  assert.ok(events[2].includes('"session":{"t":1e400}'), 'data verbatim through the page');

  const b = lib.open(url);
  lib.send(b, JSON.stringify({ command: 'joinSession', sessionID: join.sessionID }));
  await until(lib, b, (e) => e.includes('"playerJoin"'));
  lib.send(b, '{"command":"updatePlayer","player":{"x":5}}');
  events = await until(lib, a, (e) => e.includes('"playerUpdate"'));
  assert.ok(events.some((e) => e.includes('"player":{"x":5}')), 'a sees b move');

  lib.close(b, 1000, 'bye');
  events = await until(lib, b, (e) => e.startsWith('C'));
  assert.equal(events.at(-1), 'C1000 ');
  assert.equal(lib.next(b), null, 'nothing after the close; the handle is forgotten');
  await until(lib, a, (e) => e.includes('"playerLeave"'));

  // A server that is not there (a port just freed): the close says 1006.
  const free = net.createServer();
  await new Promise((r) => free.listen(0, '127.0.0.1', r));
  const freePort = free.address().port;
  await new Promise((r) => free.close(r));
  const c = lib.open(`ws://127.0.0.1:${freePort}/`);
  events = await until(lib, c, (e) => e.startsWith('C'));
  assert.match(events.at(-1), /^C1006/);
  lib.close(a, 1000, '');
});
