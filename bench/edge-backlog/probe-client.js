// Client of probe.js: opens a socket (path / or /do), stops reading it at the TCP level,
// asks for N frames of 64 KiB, then prints the sender's view and workerd's RSS every second.
//   node bench/edge-backlog/probe-client.js PORT PATH N SECONDS WORKERD_PID
const WebSocket = require('ws');
const fs = require('fs');
const [port, path, n, secs, pid] = process.argv.slice(2);
const base = `127.0.0.1:${port}`;
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const ws = new WebSocket(`ws://${base}${path}`);
ws.on('open', async () => {
  ws._socket.pause(); // never read: the kernel's buffers fill, then the sender's queue
  console.log(`rss before: ${rss().toFixed(1)} MiB`);
  ws.send(`go ${n}`);
  const statsPath = path === '/do' ? '/dostats' : '/stats';
  for (let i = 1; i <= Number(secs); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const stats = await (await fetch(`http://${base}${statsPath}`)).json();
    console.log(`t=${i}s rss ${rss().toFixed(1)} MiB ${JSON.stringify(stats)}`);
  }
  process.exit(0);
});
ws.on('error', (e) => { console.error('error', e.message); process.exit(1); });
