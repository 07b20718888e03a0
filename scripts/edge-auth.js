// Connect-time auth on the edge host, black-box, against a local worker started with a secret
// (scripts/edge-test.sh runs it after the main suite; it needs the `ws` package from
// package.json). The tokens are made here with node's own HMAC-SHA256, not by the worker's
// code.
//
//   node scripts/edge-auth.js check          PORT, AUTH_SECRET (the worker's)
//       `wrangler dev --var AUTH_SECRET:… --var TEST_HOOKS:1`: every upgrade needs a valid
//       HS256 JWT in ?token= or Authorization: Bearer; refusals are the native host's (status,
//       WWW-Authenticate, plain-text body); plain HTTP is not checked. A good token connects
//       and plays. The token's `sub` stays with the seat: a resume token in another
//       subject's hands (or in none) is refused with 22, the seat's own subject resumes it,
//       and so does a relay taking an original client's seat back itself, also after the
//       session object lost its memory (the subject is read back from storage).
//   node scripts/edge-auth.js off            PORT
//       The worker without AUTH_SECRET (the main suite's): tokens are not looked at; a
//       handshake with a malformed one, in the query or the header, is upgraded.
//   node scripts/edge-auth.js misconfigured  PORT
//       `wrangler dev --var AUTH_SECRET:<too short>`: every upgrade gets 500 saying why (and
//       not the secret); plain HTTP still works.
//
// Every wait has a timeout; any unexpected answer fails the run with exit code 1.
'use strict';
const crypto = require('crypto');
const http = require('http');
const { TIMEOUT_MS, fail, client: open, join, update, hello } = require('./edge-client');

const MODE = process.argv[2];
const PORT = process.env.PORT || '8788';
const SECRET = process.env.AUTH_SECRET || '';

const b64 = (data) => Buffer.from(data).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/// A compact JWT of `header` and `claims` (objects), signed HS256 with `secret`.
function jwt(claims, { header = { alg: 'HS256', typ: 'JWT' }, secret = SECRET } = {}) {
  const signed = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
  const signature = crypto.createHmac('sha256', secret).update(signed).digest('base64url');
  return `${signed}.${signature}`;
}

/// A good token for `sub` (none if undefined), valid for the next hour.
const good = (sub) => jwt(sub === undefined ? { exp: now() + 3600 } : { sub, exp: now() + 3600 });

/// A WebSocket handshake on `path` with these extra headers (an array value: the header
/// repeated). Resolves with { status, headers, body } of a refusal, or { status: 101 }.
function handshake(path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1',
      port: PORT,
      path,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        ...headers,
      },
      timeout: TIMEOUT_MS,
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to the handshake on ${path} within ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}

/// A refusal as the native host answers it: `status`, a plain-text body starting with `why`,
/// and the RFC 6750 challenge (`code` null: the bare `Bearer`), whose error_description is
/// the body's sentence.
function checkRefusal(what, got, status, code, why) {
  const sentence = got.body.replace(/\n$/, '');
  const challenge = code === null ? 'Bearer' : `Bearer error="${code}", error_description="${sentence}"`;
  const ok = got.status === status
    && got.headers['content-type'] === 'text/plain; charset=utf-8'
    && got.headers['www-authenticate'] === challenge
    && got.body.startsWith(why) && got.body.endsWith('\n') && !sentence.includes('\n');
  if (!ok) fail(`${what}: expected ${status} "${why}…" with WWW-Authenticate ${challenge}, got ${JSON.stringify(got)}`);
  console.log(`ok ${what}: ${status} ${sentence}`);
}

/// A WebSocket client with ?token= (`query`) or `Authorization: Bearer` (`bearer`).
function client(name, { query, bearer } = {}) {
  const url = `ws://127.0.0.1:${PORT}/${query === undefined ? '' : `?token=${query}`}`;
  const headers = bearer === undefined ? {} : { Authorization: `Bearer ${bearer}` };
  return open(url, name, headers);
}

async function play(ws, id, data, all) {
  ws.send(JSON.stringify({ command: 'updatePlayer', player: data }));
  for (const other of all) await other.expect(update(id, data), `${ws.name}'s update`);
}

/// A resume of `token` (with `received`) by a new connection of `auth`; its reply.
async function resumeAs(name, auth, token, received) {
  const ws = await client(name, auth);
  await hello(ws);
  const reply = await ws.cmd({ command: 'resumeSession', resumeToken: token, received });
  return [ws, reply];
}

async function refusedResume(name, auth, token, received) {
  const [ws, reply] = await resumeAs(name, auth, token, received);
  if (reply.command !== 'sessionResume' || reply.error !== 22) fail(`${name}: expected error 22, got ${JSON.stringify(reply)}`);
  ws.close();
  console.log(`ok ${name}: refused (22)`);
}

async function goodResume(name, auth, token, received, session, id) {
  const [ws, reply] = await resumeAs(name, auth, token, received);
  const ok = reply.command === 'sessionResume' && reply.error === 0 && reply.sessionID === session
    && reply.playerID === id && typeof reply.resumeToken === 'string';
  if (!ok) fail(`${name}: expected a sessionResume of player ${id}, got ${JSON.stringify(reply)}`);
  return [ws, reply];
}

/// After a sessionResume, the frames that follow it: for a snapshot a playerJoin of each of
/// `others` ([id, data]), for frames exactly `missed`.
async function checkReplay(ws, reply, others, missed) {
  if (reply.replay === 'snapshot') {
    for (const [id, data] of others) await ws.expect(join(id, data), 'snapshot playerJoin');
  } else if (reply.replay === 'frames') {
    if (reply.missed !== missed.length) fail(`${ws.name}: missed ${reply.missed}, expected ${missed.length}`);
    for (const frame of missed) await ws.expect(frame, 'replayed frame');
  } else {
    fail(`${ws.name}: a replay the protocol does not define: ${JSON.stringify(reply)}`);
  }
}

async function reset(session) {
  // The object first writes the playerData it holds unwritten (at most a second of it, see
  // worker/README.md, "Storage"), so that the reset loses none of what is checked after it.
  for (const hook of [`flush?session=${session}`, `reset?session=${session}`]) {
    const res = await fetch(`http://127.0.0.1:${PORT}/__test/${hook}`, { method: 'POST' });
    const text = await res.text();
    if (!res.ok || text.trim() !== '200') fail(`the hook ${hook} answered ${res.status} ${text} (is TEST_HOOKS=1 set?)`);
  }
}

async function refusals() {
  const health = await fetch(`http://127.0.0.1:${PORT}/healthz`);
  if (health.status !== 200) fail(`GET /healthz without a token: ${health.status}`);
  console.log('ok plain HTTP is not checked: GET /healthz 200 without a token');

  const token = good('ada');
  checkRefusal('no token', await handshake('/'), 401, null, 'no token');
  checkRefusal('another parameter, Authorization: Basic', await handshake('/?tok=1', { Authorization: 'Basic YWxhZGRpbjpvcGVu' }), 401, null, 'no token');
  checkRefusal('expired (exp = now - 60)', await handshake(`/?token=${jwt({ sub: 'ada', exp: now() - 60 })}`), 401, 'invalid_token', 'token expired');
  checkRefusal('not valid yet (nbf in an hour)', await handshake('/', { Authorization: `Bearer ${jwt({ nbf: now() + 3600 })}` }), 401, 'invalid_token', 'token not valid yet');
  const unsigned = `${b64(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64(JSON.stringify({ sub: 'ada' }))}.`;
  checkRefusal('alg none, unsigned', await handshake(`/?token=${unsigned}`), 401, 'invalid_token', 'token refused: its alg is not HS256');
  checkRefusal('alg HS384', await handshake(`/?token=${jwt({ sub: 'ada' }, { header: { alg: 'HS384' } })}`), 401, 'invalid_token', 'token refused: its alg is not HS256');
  checkRefusal('another secret', await handshake('/', { Authorization: `Bearer ${jwt({ sub: 'ada' }, { secret: `${SECRET}x` })}` }), 401, 'invalid_token', 'token refused: wrong signature');
  const [h, c] = token.split('.');
  const altered = `${h}.${b64(JSON.stringify({ sub: 'root', exp: now() + 3600 }))}.${token.split('.')[2]}`;
  checkRefusal('altered claims', await handshake(`/?token=${altered}`), 401, 'invalid_token', 'token refused: wrong signature');
  checkRefusal('not three parts', await handshake(`/?token=${h}.${c}`), 401, 'invalid_token', 'malformed token');
  checkRefusal('a token in the query and in the header', await handshake(`/?token=${token}`, { Authorization: `Bearer ${token}` }), 400, 'invalid_request', 'more than one token');
  checkRefusal('two Authorization: Bearer headers', await handshake('/', { Authorization: [`Bearer ${token}`, `Bearer ${token}`] }), 400, 'invalid_request', 'more than one token');
  const ok = await handshake(`/game?x=1&token=${token}`);
  if (ok.status !== 101) fail(`a good token on /game?x=1&token=: ${JSON.stringify(ok)}`);
  console.log('ok a good token in ?token= (another path, another parameter): 101');
}

async function check() {
  if (SECRET.length < 32) fail('AUTH_SECRET (32 bytes or more) must be the worker\'s');
  await refusals();

  // A good ?token= and a good Bearer header connect and play; the subjects stay with the
  // seats (who resumes them is checked below).
  const auth = {
    ada: { query: good('ada') },
    bob: { bearer: good('bob') },
    carol: { query: good('carol') },
    mallory: { bearer: good('mallory') },
    nobody: { query: good() },
  };
  const zero = { x: 0 };
  let a = await client('ada (?token=, resume)', auth.ada);
  await hello(a);
  const ja = await a.cmd({ command: 'createSession', session: {}, player: zero });
  if (ja.command !== 'sessionJoin' || ja.error !== 0 || typeof ja.resumeToken !== 'string') fail(`ada: createSession: ${JSON.stringify(ja)}`);
  const session = ja.sessionID;
  console.log(`ok ada connected with ?token= and created session ${session}`);
  let b = await client('bob (Bearer, resume)', auth.bob);
  await hello(b);
  const jb = await b.cmd({ command: 'joinSession', sessionID: session });
  if (jb.error !== 0 || typeof jb.resumeToken !== 'string') fail(`bob: joinSession: ${JSON.stringify(jb)}`);
  await b.expect(join(ja.playerID, zero), 'playerJoin of ada');
  await a.expect(join(jb.playerID, zero), 'playerJoin of bob');
  console.log('ok bob connected with Authorization: Bearer and joined');
  const c = await client('carol (original)', auth.carol);
  const jc = await c.cmd({ command: 'joinSession', sessionID: session });
  if (jc.error !== 0 || 'resumeToken' in jc) fail(`carol: joinSession: ${JSON.stringify(jc)}`);
  await c.expect(join(ja.playerID, zero), 'playerJoin of ada');
  await c.expect(join(jb.playerID, zero), 'playerJoin of bob');
  for (const ws of [a, b]) await ws.expect(join(jc.playerID, zero), 'playerJoin of carol');
  const data = { [ja.playerID]: zero, [jb.playerID]: zero, [jc.playerID]: { x: 3 } };
  await play(c, jc.playerID, data[jc.playerID], [a, b, c]);

  // ada's connection drops; her token in other hands is no good, in hers it is (the create
  // carried her subject).
  let tokenA = ja.resumeToken;
  let received = a.received;
  a.terminate();
  await a.closedWithin();
  await refusedResume("ada's token with mallory's subject", auth.mallory, tokenA, received);
  await refusedResume("ada's token with no subject", auth.nobody, tokenA, received);
  let reply;
  [a, reply] = await goodResume("ada's token with hers", auth.ada, tokenA, received, session, ja.playerID);
  await checkReplay(a, reply, [[jb.playerID, data[jb.playerID]], [jc.playerID, data[jc.playerID]]], []);
  tokenA = reply.resumeToken;
  console.log(`ok ada resumed her seat (${reply.replay}); nobody else could`);
  for (const ws of [a, b, c]) await ws.quiet();

  // The session object loses its memory: the seats and their subjects are read back from
  // storage. The clients that asked for resume are closed with 1012; carol's relay takes her
  // seat back itself, as her subject.
  const receivedA = a.received;
  const receivedB = b.received;
  await reset(session);
  for (const ws of [a, b]) {
    const code = await ws.closedWithin();
    if (code !== 1012) fail(`${ws.name} after the reset: closed with ${code}, expected 1012`);
  }
  await refusedResume("bob's token with ada's subject, after the reset", auth.ada, jb.resumeToken, receivedB);
  [b, reply] = await goodResume("bob's token with his", auth.bob, jb.resumeToken, receivedB, session, jb.playerID);
  if (reply.replay !== 'snapshot') fail(`bob: the object lost its memory, expected a snapshot: ${JSON.stringify(reply)}`);
  await checkReplay(b, reply, [[ja.playerID, data[ja.playerID]], [jc.playerID, data[jc.playerID]]], []);
  [a, reply] = await goodResume("ada's new token with hers", auth.ada, tokenA, receivedA, session, ja.playerID);
  await checkReplay(a, reply, [[jb.playerID, data[jb.playerID]], [jc.playerID, data[jc.playerID]]], []);
  console.log('ok after the object lost its memory, ada and bob resumed as themselves (the join carried bob\'s subject; storage kept both)');
  const all = [a, b, c];
  for (const [ws, id, x] of [[a, ja.playerID, 1], [b, jb.playerID, 2], [c, jc.playerID, 4]]) {
    data[id] = { x };
    await play(ws, id, data[id], all);
  }
  for (const ws of all) await ws.quiet();
  console.log("ok carol's relay took her seat back as her subject: she saw nothing, updates flow");
  for (const ws of all) ws.close();
  console.log('ok auth');
}

async function off() {
  for (const [what, path, headers] of [
    ['?token=garbage', '/?token=garbage', {}],
    ['Authorization: Bearer garbage', '/', { Authorization: 'Bearer garbage' }],
    ['both', '/?token=a', { Authorization: 'Bearer b' }],
  ]) {
    const got = await handshake(path, headers);
    if (got.status !== 101) fail(`without AUTH_SECRET, ${what}: expected 101, got ${JSON.stringify(got)}`);
  }
  console.log('ok without AUTH_SECRET tokens are not looked at: malformed ones are upgraded');
}

async function misconfigured() {
  const got = await handshake(`/?token=${good('ada')}`);
  const ok = got.status === 500 && got.body.startsWith('server misconfigured: AUTH_SECRET is ')
    && got.body.includes('HS256 needs at least 32');
  if (!ok) fail(`expected 500 "server misconfigured: AUTH_SECRET is … bytes", got ${JSON.stringify(got)}`);
  if (SECRET && got.body.includes(SECRET)) fail(`the answer shows the secret: ${got.body}`);
  const health = await fetch(`http://127.0.0.1:${PORT}/healthz`);
  if (health.status !== 200) fail(`GET /healthz: ${health.status}`);
  console.log(`ok a short secret: every upgrade 500 (${got.body.trim()}); plain HTTP served`);
}

const modes = { check, off, misconfigured };
if (!modes[MODE]) fail(`usage: node scripts/edge-auth.js ${Object.keys(modes).join('|')}`);
modes[MODE]().catch((e) => fail(e.stack || e));
