// A TCP proxy on 127.0.0.1 (port 0) in front of a server, for cutting connections the way a
// network does: the client side is reset (no WebSocket close frame), and what the server sends
// can be made to vanish on the way, as bytes in flight do when a link dies.
import net from 'node:net';

/**
 * Starts a proxy to 127.0.0.1:`port`; resolves to its controls:
 * - `url`: ws://127.0.0.1:<proxy port>/
 * - `swallow()`: from now on, what the server sends over the open connections is dropped
 *   (and kept in `swallowed()`, the text of those bytes: server frames are not masked)
 * - `cut({ keepUpstream })`: resets every client connection; the server's side is closed
 *   too (it finds the connection gone), unless `keepUpstream` (it then believes the client is
 *   still there until `closeUpstreams()`)
 * - `down()` / `up()`: refuse (reset) new connections / accept them again
 * - `accepted()`: connections accepted so far; `close()`
 */
export async function startProxy(port) {
  const pairs = new Set();
  const kept = new Set(); // server sides kept open by cut({ keepUpstream: true })
  let refusing = false;
  let swallowing = false;
  let swallowed = '';
  let accepted = 0;

  const server = net.createServer((client) => {
    if (refusing) {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    accepted += 1;
    const upstream = net.connect(port, '127.0.0.1');
    const pair = { client, upstream, keepUpstream: false };
    pairs.add(pair);
    client.on('data', (d) => upstream.destroyed || upstream.write(d));
    upstream.on('data', (d) => {
      if (swallowing || pair.keepUpstream) swallowed += d.toString('latin1');
      else if (!client.destroyed) client.write(d);
    });
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.on('close', () => {
      pairs.delete(pair);
      if (pair.keepUpstream) kept.add(upstream);
      else upstream.destroy();
    });
    upstream.on('close', () => {
      kept.delete(upstream);
      client.destroy();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxyPort = server.address().port;

  return {
    url: `ws://127.0.0.1:${proxyPort}/`,
    accepted: () => accepted,
    swallow() {
      swallowing = true;
    },
    swallowed: () => swallowed,
    cut({ keepUpstream = false } = {}) {
      swallowing = false;
      for (const pair of pairs) {
        pair.keepUpstream = keepUpstream;
        pair.client.resetAndDestroy();
      }
    },
    closeUpstreams() {
      for (const upstream of kept) upstream.destroy();
    },
    down() {
      refusing = true;
    },
    up() {
      refusing = false;
    },
    close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      for (const upstream of kept) upstream.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
