// A probe of the Workers runtime (workerd): what a WebSocket's sender sees when the peer never
// reads. Two sockets: the server end of a WebSocketPair accepted by the Worker (as the relay's
// client socket), and one accepted by a Durable Object with the Hibernation API (as a session
// object's member socket). On "go N" each sends N frames of 64 KiB and records what `send`
// and the socket's properties showed; GET /stats and /dostats report it.
const FRAME = 'x'.repeat(64 * 1024);
function flood(ws, n, stats) {
  stats.has_bufferedAmount = 'bufferedAmount' in ws;
  stats.bufferedAmount_before = String(ws.bufferedAmount);
  stats.sent = 0;
  stats.threw = null;
  const t0 = Date.now();
  try {
    for (let i = 0; i < n; i++) { ws.send(FRAME); stats.sent++; }
  } catch (e) { stats.threw = String(e); }
  stats.send_ms = Date.now() - t0;
  stats.bufferedAmount_after = String(ws.bufferedAmount);
  stats.readyState_after = ws.readyState;
}
const workerStats = {};
export class Obj {
  constructor(state) { this.state = state; this.stats = {}; }
  async fetch(req) {
    if (new URL(req.url).pathname === '/dostats') {
      const ws = this.state.getWebSockets()[0];
      if (ws) { this.stats.readyState_now = ws.readyState; this.stats.bufferedAmount_now = String(ws.bufferedAmount); }
      return Response.json(this.stats);
    }
    const [client, server] = Object.values(new WebSocketPair());
    this.state.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketMessage(ws, msg) { flood(ws, Number(String(msg).split(' ')[1]), this.stats); }
  webSocketClose(ws, code) { this.stats.closed = code; }
  webSocketError(ws, e) { this.stats.error = String(e); }
}
export default {
  async fetch(req, env) {
    const path = new URL(req.url).pathname;
    if (path === '/stats') return Response.json(workerStats);
    if (path === '/do' || path === '/dostats') return env.OBJ.get(env.OBJ.idFromName('probe')).fetch(req);
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    server.addEventListener('message', (e) => flood(server, Number(String(e.data).split(' ')[1]), workerStats));
    server.addEventListener('close', (e) => { workerStats.closed = e.code; });
    server.addEventListener('error', (e) => { workerStats.error = String(e.message); });
    return new Response(null, { status: 101, webSocket: client });
  },
};
