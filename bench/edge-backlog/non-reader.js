// What a member that never reads costs the edge runtime, under `wrangler dev --local`.
//   node bench/edge-backlog/non-reader.js PORT PID[,PID...] [SECONDS] [SENDERS]
// (PIDs: the workerd processes; under wrangler dev one runs its proxy, one the worker.)
// SENDERS members create/join a session, B joins it and then stops reading its socket (TCP
// level: its kernel buffers fill, then the runtime's queue). Each sender sends 90
// `updatePlayer`s a second with 4,000 bytes of data (one rate token each: the limit is 100/s)
// for SECONDS and reads every frame; C, in a session of its own, times an `updatePlayer`
// round trip every 50 ms. Each second: the workerd processes' RSS and C's p50/p99. Then B
// reads again and we count what reaches it. With B_READS=1, B keeps reading (the control:
// the same traffic without a backlog).
const WebSocket = require('ws');
const fs = require('fs');
const [port, pidList, secsArg, sendersArg] = process.argv.slice(2);
const SECS = Number(secsArg || 30), SENDERS = Number(sendersArg || 4), BYTES = 4000, RATE = 90;
const url = `ws://127.0.0.1:${port}/`;
const pids = pidList.split(',');
const rssOf = (p) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'))[1]) / 1024;
const rss = () => pids.map((p) => `${p}: ${rssOf(p).toFixed(1)}`).join(', ') + ' MiB';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function client() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const queue = [], waiting = [];
    ws.frames = 0; ws.bytes = 0;
    ws.on('message', (m) => {
      ws.frames++; ws.bytes += m.length;
      if (ws.counting) return;
      const frame = JSON.parse(m.toString());
      if (waiting.length) waiting.shift()(frame); else queue.push(frame);
    });
    ws.recv = () => new Promise((res) => (queue.length ? res(queue.shift()) : waiting.push(res)));
    ws.cmd = (o) => { ws.send(JSON.stringify(o)); return ws.recv(); };
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
    ws.on('close', (code) => { ws.closeCode = code; });
  });
}
const pct = (xs, p) => (xs.length ? xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] : NaN);
(async () => {
  const senders = [];
  for (let i = 0; i < SENDERS; i++) senders.push(await client());
  const [b, c] = [await client(), await client()];
  const sid = (await senders[0].cmd({ command: 'createSession', session: {}, player: { d: '' } })).sessionID;
  for (const s of senders.slice(1)) await s.cmd({ command: 'joinSession', sessionID: sid });
  await b.cmd({ command: 'joinSession', sessionID: sid });
  await c.cmd({ command: 'createSession', session: {}, player: { n: 0 } });
  await sleep(500);
  for (const ws of [...senders, b]) ws.counting = true; // from here on only counted
  console.log(`before: ${rss()}; B ${process.env.B_READS === '1' ? 'keeps reading' : 'stops reading'}; ${SENDERS} senders x ${RATE}/s x ${BYTES} B for ${SECS} s`);
  const bReads = process.env.B_READS === '1';
  if (!bReads) b._socket.pause();
  b.frames = 0; b.bytes = 0;
  let sent = 0;
  const data = 'x'.repeat(BYTES);
  const timers = senders.map((s) => setInterval(() => {
    if (s.readyState === 1) { s.send(JSON.stringify({ command: 'updatePlayer', player: { d: data } })); sent++; }
  }, 1000 / RATE));
  let lat = [], n = 0;
  const prober = setInterval(async () => {
    const t = process.hrtime.bigint();
    await c.cmd({ command: 'updatePlayer', player: { n: ++n } });
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  }, 50);
  for (let s = 1; s <= SECS; s++) {
    await sleep(1000);
    const open = senders.filter((x) => x.readyState === 1).length;
    console.log(`t=${s}s ${sent} updates (${(sent * BYTES / 2 ** 20).toFixed(1)} MiB for B); ${rss()}; C p50 ${pct(lat, 0.5).toFixed(1)} ms p99 ${pct(lat, 0.99).toFixed(1)} ms; senders open ${open}/${SENDERS}, B open ${b.readyState === 1}`);
    lat = [];
  }
  timers.forEach(clearInterval); clearInterval(prober);
  await sleep(3000);
  console.log(`3 s after: ${rss()}; senders' close codes: ${senders.map((s) => s.closeCode ?? '-').join(',')}`);
  b._socket.resume();
  const t0 = Date.now();
  let last = -1;
  while (b.frames < sent && Date.now() - t0 < 120000) {
    await sleep(1000);
    if (b.frames === last) break; // nothing more in a second
    last = b.frames;
  }
  console.log(`B reads again: ${b.frames} of ${sent} updates (${(b.bytes / 2 ** 20).toFixed(1)} MiB) in ${((Date.now() - t0) / 1000).toFixed(1)} s; B closed: ${b.closeCode ?? 'no'}`);
  await sleep(2000);
  console.log(`after B read: ${rss()}`);
  for (const ws of [...senders, b, c]) ws.close();
  await sleep(500);
  process.exit(0);
})().catch((e) => { console.error('FAILED', e); process.exit(1); });
