// The edge host's resume across failures of its session objects, black-box, against a local
// worker (scripts/edge-test.sh runs it; it needs the `ws` package from package.json).
//
//   node scripts/edge-resume.js relink          PORT, GRACE_MS
//       A session object is reset (the TEST_HOOKS=1 hook) twice: once losing its memory (as
//       when the platform evicts or restarts it), once losing only its sockets (a link
//       failure). The relays of the original clients take their seats back themselves: those
//       clients see nothing at all. The client that asked for resume is closed with 1012 and
//       resumes itself with its token (its old ID, a snapshot or exactly the frames it
//       missed). The game goes on.
//   node scripts/edge-resume.js direct-reset    PORT, GRACE_MS
//       The same on the direct path (/session/new, /session/<id>): a session object is reset
//       twice (memory lost, then only its sockets) under two members whose sockets end in it
//       (they asked for resume) and one original client on the relay. The direct members are
//       closed with 1012 and resume on /session/<id> with their tokens and IDs; the original
//       client sees nothing; the game goes on.
//   node scripts/edge-resume.js rows            PORT
//       Rows written per updatePlayer at steady state, on the session object itself (its
//       storage counts them; the TEST_HOOKS=1 hook `stats` reports them): two members send 100
//       updates each over some 5 s; the object writes at most one row per member per flush, and flushes at
//       most once per FLUSH_MS (worker/README.md, "Storage"); a newcomer then sees the data.
//   node scripts/edge-resume.js registry-stall  PORT
//       The registry off every session's path: while the registry holds every listing a
//       session sends it (the TEST_HOOKS=1 hook `stall-listings`, as a registry far away or
//       overloaded would), a join is answered, and the listing still shows the session as
//       before the join; once the registry lets go, it shows the joiner.
//   node scripts/edge-resume.js before-restart  PORT, STATE (a file to write)
//   node scripts/edge-resume.js after-restart   PORT, STATE, GRACE_MS
//       Around a restart of the local runtime (edge-test.sh kills wrangler dev and starts it
//       again on the same storage): before it, a game of four members (three asked for
//       resume, one original) is set up and written to STATE; the restart drops every
//       connection. After it, two members come back with their tokens and get sessionResume
//       with their old IDs and the data (the snapshot form: the object restarted), the game
//       goes on, a newcomer joins, and the two that never come back (one original, one that
//       asked for resume) leave when the grace period ends, by the session object's alarm.
//
// Every wait has a timeout; any unexpected frame fails the run with exit code 1.
'use strict';
const fs = require('fs');
const { TIMEOUT_MS, fail, same, client: open, join, update, leave, hello } = require('./edge-client');

const MODE = process.argv[2];
const PORT = process.env.PORT || '8787';
const URL = `ws://127.0.0.1:${PORT}/`;
const GRACE_MS = Number(process.env.GRACE_MS || 0);
/// persist::FLUSH_MS in worker/src/persist.rs.
const FLUSH_MS = 1000;

const client = (name) => open(URL, name);

/// Member `ws` sends updatePlayer; every one of `all` must get it next.
async function play(ws, id, data, all) {
  ws.send(JSON.stringify({ command: 'updatePlayer', player: data }));
  for (const other of all) await other.expect(update(id, data), `${ws.name}'s update`);
}

/// A round of the game: each of `members` ([ws, id], in order) sends an update (x = `round`,
/// then the next ones) that every member gets next; then nothing else is pending anywhere.
/// `data` (by ID) is kept up to date.
async function playRound(members, data, round) {
  const all = members.map(([ws]) => ws);
  for (const [i, [ws, id]] of members.entries()) {
    data[id] = { x: round + 2 * i };
    await play(ws, id, data[id], all);
  }
  for (const ws of all) await ws.quiet();
}

/// A sessionResume of `id` in `session`, with a new token; returns it.
function checkResume(reply, session, id, oldToken, who) {
  const ok = reply.command === 'sessionResume' && reply.error === 0 && reply.sessionID === session
    && reply.playerID === id && typeof reply.resumeToken === 'string' && reply.resumeToken !== oldToken;
  if (!ok) fail(`${who}: expected a sessionResume of player ${id} with a new token, got ${JSON.stringify(reply)}`);
  return reply;
}

/// After `reply` (a sessionResume), the frames the protocol says follow it: `missed` frames, or
/// for a snapshot a playerJoin of every other member (`others`, [id, data] in join order).
async function checkReplay(ws, reply, own, others, missed) {
  if (reply.replay === 'snapshot') {
    if (!same(reply.session, {}) || !same(reply.player, own)) fail(`${ws.name}: snapshot data: ${JSON.stringify(reply)}`);
    for (const [id, data] of others) await ws.expect(join(id, data), 'snapshot playerJoin');
  } else if (reply.replay === 'frames') {
    if (reply.missed !== missed.length) fail(`${ws.name}: missed ${reply.missed}, expected ${missed.length}`);
    for (const frame of missed) await ws.expect(frame, 'replayed frame');
  } else {
    fail(`${ws.name}: a replay the protocol does not define: ${JSON.stringify(reply)}`);
  }
}

async function hook(path) {
  const res = await fetch(`http://127.0.0.1:${PORT}/__test/${path}`, { method: 'POST' });
  const text = await res.text();
  if (!res.ok || text.trim() !== '200') fail(`the hook ${path} answered ${res.status} ${text} (is TEST_HOOKS=1 set?)`);
}

/// What session `session`'s object has written since its last load: rowsWritten, timerFlushes.
async function stats(session) {
  const res = await fetch(`http://127.0.0.1:${PORT}/__test/stats?session=${session}`, { method: 'POST' });
  const text = await res.text();
  if (!res.ok) fail(`the hook stats answered ${res.status} ${text} (is TEST_HOOKS=1 set?)`);
  return JSON.parse(text);
}

/// The object writes the playerData it holds unwritten (at most FLUSH_MS of it, see
/// worker/README.md, "Storage"), as its flush timer does: a reset after this loses nothing.
const flushed = (session) => hook(`flush?session=${session}`);

async function reset(session, keep) {
  await hook(`reset?session=${session}${keep ? '&memory=keep' : ''}`);
}

async function relink() {
  const zero = { x: 0 };
  let a = await client('a (resume)');
  await hello(a);
  const ja = await a.cmd({ command: 'createSession', session: {}, player: zero });
  const session = ja.sessionID;
  let token = ja.resumeToken;
  if (typeof token !== 'string') fail(`a: no token: ${JSON.stringify(ja)}`);
  const b = await client('b (original)');
  const jb = await b.cmd({ command: 'joinSession', sessionID: session });
  if ('resumeToken' in jb) fail(`b: an original client got a token: ${JSON.stringify(jb)}`);
  await b.expect(join(ja.playerID, zero), 'playerJoin of a');
  await a.expect(join(jb.playerID, zero), 'playerJoin of b');
  const c = await client('c (original)');
  const jc = await c.cmd({ command: 'joinSession', sessionID: session });
  await c.expect(join(ja.playerID, zero), 'playerJoin of a');
  await c.expect(join(jb.playerID, zero), 'playerJoin of b');
  await a.expect(join(jc.playerID, zero), 'playerJoin of c');
  await b.expect(join(jc.playerID, zero), 'playerJoin of c');
  const data = { [ja.playerID]: zero, [jb.playerID]: { x: 5 }, [jc.playerID]: zero };
  await play(b, jb.playerID, data[jb.playerID], [a, b, c]);

  for (const keep of [false, true]) {
    const what = keep ? 'links broken' : 'object reset';
    const received = a.received;
    await flushed(session);
    await reset(session, keep);
    // The client that asked for resume is closed with 1012 and resumes itself: its token is
    // still good (the edge did not use it).
    const code = await a.closedWithin();
    if (code !== 1012) fail(`a after ${what}: closed with ${code}, expected 1012`);
    a = await client('a (resumed)');
    await hello(a);
    const reply = checkResume(await a.cmd({ command: 'resumeSession', resumeToken: token, received }), session, ja.playerID, token, `a after ${what}`);
    token = reply.resumeToken;
    if (!keep && reply.replay !== 'snapshot') fail(`a after ${what}: the object lost its memory, expected a snapshot: ${JSON.stringify(reply)}`);
    await checkReplay(a, reply, data[ja.playerID], [[jb.playerID, data[jb.playerID]], [jc.playerID, data[jc.playerID]]], []);
    console.log(`ok ${what}: a was closed with 1012 and resumed itself (${reply.replay}) with its ID`);
    // The game goes on; the original clients saw nothing but the game (their next frame is
    // a's update: their relays have their seats back by then).
    await playRound([[a, ja.playerID], [b, jb.playerID], [c, jc.playerID]], data, keep ? 2 : 1);
    console.log(`ok ${what}: the original clients' relays took their seats back; they saw nothing new, updates flow as the same players`);
  }
  // A newcomer sees everyone as they are.
  const d = await client('d (original)');
  const jd = await d.cmd({ command: 'joinSession', sessionID: session });
  for (const id of [ja.playerID, jb.playerID, jc.playerID]) await d.expect(join(id, data[id]), 'playerJoin');
  for (const ws of [a, b, c]) await ws.expect(join(jd.playerID, zero), 'playerJoin of d');
  for (const ws of [a, b, c, d]) ws.close();
  console.log('ok relink');
}

async function rows() {
  const zero = { x: 0 };
  const a = await client('a');
  const b = await client('b');
  const ja = await a.cmd({ command: 'createSession', session: {}, player: zero });
  const session = ja.sessionID;
  const jb = await b.cmd({ command: 'joinSession', sessionID: session });
  await b.expect(join(ja.playerID, zero), 'playerJoin of a');
  await a.expect(join(jb.playerID, zero), 'playerJoin of b');
  await flushed(session);
  const before = await stats(session);
  const start = Date.now();
  const N = 100;
  // Paced (about 20 updates a second from each, some 5 s in all), so that the timer runs
  // several times meanwhile; nothing below depends on the pace.
  for (let i = 1; i <= N; i++) {
    await play(a, ja.playerID, { x: i }, [a, b]);
    await play(b, jb.playerID, { x: -i }, [a, b]);
    await new Promise((done) => setTimeout(done, 50));
  }
  await flushed(session);
  const after = await stats(session);
  const elapsed = Date.now() - start;
  const written = after.rowsWritten - before.rowsWritten;
  const flushes = after.timerFlushes - before.timerFlushes;
  // The timer runs FLUSH_MS after the first change it has not written: its flushes are at
  // least that far apart, the first that far after the start (one more allowed for the two
  // processes' clocks).
  if (flushes > Math.floor(elapsed / FLUSH_MS) + 1) fail(`${flushes} timer flushes in ${elapsed} ms`);
  // Each flush (the timer's, and the hook's at the end) writes one row for the whole session
  // (the batch of both members' data), whatever the number of members.
  if (written > flushes + 1) fail(`${2 * N} updates wrote ${written} rows in ${flushes} timer flushes and 1 by the hook`);
  if (written === 0) fail(`${2 * N} updates wrote no rows`);
  // A newcomer is told the latest data, read from the session (in memory).
  const c = await client('c');
  const jc = await c.cmd({ command: 'joinSession', sessionID: session });
  if (jc.error !== 0) fail(`c: join: ${JSON.stringify(jc)}`);
  await c.expect(join(ja.playerID, { x: N }), 'playerJoin of a');
  await c.expect(join(jb.playerID, { x: -N }), 'playerJoin of b');
  for (const ws of [a, b, c]) ws.close();
  console.log(`ok rows: ${2 * N} updatePlayers of 2 members in ${elapsed} ms wrote ${written} rows (${flushes} timer flushes, 1 by the hook, one row each for the session; one row per update would be ${2 * N})`);
}

async function beforeRestart() {
  const zero = { x: 0 };
  const a = await client('a'); const b = await client('b'); const c = await client('c'); const d = await client('d');
  for (const ws of [a, b, d]) await hello(ws);
  const ja = await a.cmd({ command: 'createSession', session: {}, player: zero });
  const session = ja.sessionID;
  const members = [[a, ja]];
  for (const ws of [b, c, d]) {
    const j = await ws.cmd({ command: 'joinSession', sessionID: session });
    if (j.error !== 0) fail(`${ws.name}: join: ${JSON.stringify(j)}`);
    for (const [, m] of members) await ws.expect(join(m.playerID, zero), 'playerJoin');
    for (const [other] of members) await other.expect(join(j.playerID, zero), 'playerJoin');
    members.push([ws, j]);
  }
  const all = members.map(([ws]) => ws);
  await play(a, ja.playerID, { x: 7 }, all);
  await play(b, members[1][1].playerID, { x: 3 }, all);
  // The runtime is killed next: nothing may wait in the loss window.
  await flushed(session);
  const state = {
    session,
    members: members.map(([ws, j]) => ({ name: ws.name, id: j.playerID, token: j.resumeToken || null })),
  };
  fs.writeFileSync(process.env.STATE, JSON.stringify(state));
  console.log('READY');
  // The restart closes every connection.
  const closed = Promise.all(all.map((ws) => ws.closed));
  const timer = setTimeout(() => fail('the connections were not dropped within 60 s'), 60000);
  await closed;
  clearTimeout(timer);
}

async function afterRestart() {
  const state = JSON.parse(fs.readFileSync(process.env.STATE));
  const [ma, mb, mc, md] = state.members;
  const data = { [ma.id]: { x: 7 }, [mb.id]: { x: 3 }, [mc.id]: { x: 0 }, [md.id]: { x: 0 } };
  const back = [];
  for (const m of [ma, mb]) {
    const ws = await client(`${m.name} again`);
    await hello(ws);
    // received: what it had counted (its own joins' playerJoins and the two updates): the
    // restored session cannot check it, and answers with the snapshot form.
    const reply = checkResume(await ws.cmd({ command: 'resumeSession', resumeToken: m.token, received: 5 }), state.session, m.id, m.token, m.name);
    if (reply.replay !== 'snapshot') fail(`${m.name}: after a restart the replay is a snapshot: ${JSON.stringify(reply)}`);
    const others = state.members.filter((o) => o.id !== m.id).map((o) => [o.id, data[o.id]]);
    await checkReplay(ws, reply, data[m.id], others, []);
    back.push(ws);
  }
  console.log('ok after the restart: two members resumed with their IDs and the data (snapshot)');
  const [a, b] = back;
  data[ma.id] = { x: 8 };
  await play(a, ma.id, data[ma.id], back);
  data[mb.id] = { x: 9 };
  await play(b, mb.id, data[mb.id], back);
  // A newcomer still sees the two that have not come back: their seats are kept.
  const e = await client('e');
  const je = await e.cmd({ command: 'joinSession', sessionID: state.session });
  if (je.error !== 0) fail(`e: join: ${JSON.stringify(je)}`);
  for (const m of state.members) await e.expect(join(m.id, data[m.id]), 'playerJoin');
  for (const ws of back) await ws.expect(join(je.playerID, { x: 0 }), 'playerJoin of e');
  console.log('ok the game goes on after the restart');
  // c (an original client) and d never come back: they leave when the grace ends.
  const everyone = [a, b, e];
  for (const ws of everyone) {
    const left = new Set();
    for (let i = 0; i < 2; i++) {
      const f = await ws.recv(GRACE_MS + TIMEOUT_MS);
      if (f.command !== 'playerLeave' || f.error !== 0) fail(`${ws.name}: expected playerLeave, got ${JSON.stringify(f)}`);
      left.add(f.playerID);
    }
    if (!(left.has(mc.id) && left.has(md.id))) fail(`${ws.name}: expected c and d to leave, got ${[...left]}`);
  }
  // d's seat is gone, and its token with it.
  const late = await client('d again, too late');
  const refused = await late.cmd({ command: 'resumeSession', resumeToken: md.token });
  if (refused.command !== 'sessionResume' || refused.error !== 22) fail(`late: expected 22, got ${JSON.stringify(refused)}`);
  await play(a, ma.id, { x: 10 }, everyone);
  for (const ws of everyone) await ws.quiet();
  for (const ws of [...everyone, late]) ws.close();
  console.log('ok the members that did not come back left when the grace ended (the alarm)');
}

/// The listing of the one session whose metadata has `run`, as a lobby client `l` sees it,
/// once `ok(listing)` holds (the registry is eventually consistent).
async function listedUntil(l, run, ok, what) {
  for (let i = 0; i < 100; i++) {
    const page = await l.cmd({ command: 'listSessions', filter: { run } });
    if (page.command !== 'sessionList' || page.error !== 0) fail(`listSessions: ${JSON.stringify(page)}`);
    const found = page.sessions.find((s) => s.metadata && s.metadata.run === run);
    if (found && ok(found)) return found;
    await new Promise((done) => setTimeout(done, 100));
  }
  fail(`the listing never showed ${what}`);
}

async function registryStall() {
  const run = `stall-${process.pid}-${Date.now()}`;
  const a = await client('a');
  const ja = await a.cmd({ command: 'createSession', session: {}, player: {}, options: { metadata: { run } } });
  if (ja.error !== 0) fail(`a: create: ${JSON.stringify(ja)}`);
  const l = await client('l (lobby)');
  await listedUntil(l, run, (s) => s.players === 1, 'the session with its creator');
  await hook('stall-listings?on=1');
  try {
    const b = await client('b');
    const jb = await b.cmd({ command: 'joinSession', sessionID: ja.sessionID });
    if (jb.command !== 'sessionJoin' || jb.error !== 0) fail(`b: join while the registry holds listings: ${JSON.stringify(jb)}`);
    await a.expect(join(jb.playerID, {}), 'playerJoin of b');
    // The join's listing has not reached the registry: its answer did not wait for it.
    const page = await l.cmd({ command: 'listSessions', filter: { run } });
    const seen = page.sessions && page.sessions.find((s) => s.metadata.run === run);
    if (!seen || seen.players !== 1) fail(`while the registry holds listings, it shows ${JSON.stringify(seen)}: expected the session as before the join (1 player)`);
    console.log('ok registry-stall: a join was answered while the registry held its listing');
    await hook('stall-listings?on=0');
    await listedUntil(l, run, (s) => s.players === 2, 'the joiner');
    for (const ws of [a, b, l]) ws.close();
  } finally {
    await hook('stall-listings?on=0');
  }
  console.log('ok registry-stall: once the registry let go, the listing shows the joiner');
}

async function directReset() {
  const zero = { x: 0 };
  const direct = (path, name) => open(`ws://127.0.0.1:${PORT}/session/${path}`, name);
  let a = await direct('new', 'a (direct, resume)');
  await hello(a);
  const ja = await a.cmd({ command: 'createSession', session: {}, player: zero });
  const session = ja.sessionID;
  let b = await direct(session, 'b (direct, resume)');
  await hello(b);
  const jb = await b.cmd({ command: 'joinSession', sessionID: session });
  await b.expect(join(ja.playerID, zero), 'playerJoin of a');
  await a.expect(join(jb.playerID, zero), 'playerJoin of b');
  const c = await client('c (relay, original)');
  const jc = await c.cmd({ command: 'joinSession', sessionID: session });
  await c.expect(join(ja.playerID, zero), 'playerJoin of a');
  await c.expect(join(jb.playerID, zero), 'playerJoin of b');
  for (const ws of [a, b]) await ws.expect(join(jc.playerID, zero), 'playerJoin of c');
  const tokens = { a: ja.resumeToken, b: jb.resumeToken };
  if (typeof tokens.a !== 'string' || typeof tokens.b !== 'string') fail(`no tokens: ${JSON.stringify([ja, jb])}`);
  const data = { [ja.playerID]: zero, [jb.playerID]: zero, [jc.playerID]: zero };
  for (const keep of [false, true]) {
    const what = keep ? 'sockets broken' : 'object reset';
    await flushed(session);
    const received = { a: a.received, b: b.received };
    await reset(session, keep);
    const members = [];
    for (const [name, ws, j] of [['a', a, ja], ['b', b, jb]]) {
      const code = await ws.closedWithin();
      if (code !== 1012) fail(`${name} after ${what}: closed with ${code}, expected 1012`);
      const again = await direct(session, `${name} (direct, resumed)`);
      await hello(again);
      const reply = checkResume(await again.cmd({ command: 'resumeSession', resumeToken: tokens[name], received: received[name] }), session, j.playerID, tokens[name], `${name} after ${what}`);
      tokens[name] = reply.resumeToken;
      if (!keep && reply.replay !== 'snapshot') fail(`${name} after ${what}: the object lost its memory, expected a snapshot: ${JSON.stringify(reply)}`);
      members.push([again, reply, j.playerID]);
    }
    [a, b] = members.map(([ws]) => ws);
    // What each missed: a snapshot of the others, or (memory kept) the other's resume is no
    // event, so nothing.
    for (const [ws, reply, id] of members) {
      const others = [ja.playerID, jb.playerID, jc.playerID].filter((p) => p !== id).map((p) => [p, data[p]]);
      await checkReplay(ws, reply, data[id], others, []);
    }
    console.log(`ok direct ${what}: both direct members were closed with 1012 and resumed on /session/${session} with their IDs`);
    await playRound([[a, ja.playerID], [b, jb.playerID], [c, jc.playerID]], data, keep ? 2 : 1);
    console.log(`ok direct ${what}: the relay's original client saw nothing; updates flow as the same players`);
  }
  for (const ws of [a, b, c]) ws.close();
  console.log('ok direct-reset');
}

const modes = { relink, 'direct-reset': directReset, rows, 'registry-stall': registryStall, 'before-restart': beforeRestart, 'after-restart': afterRestart };
if (!modes[MODE]) fail(`unknown mode; one of ${Object.keys(modes).join(', ')}`);
const guard = setTimeout(() => fail('did not finish within 120 s'), 120000);
modes[MODE]().then(() => { clearTimeout(guard); process.exit(0); }, (e) => fail(e.stack || e));
