// The JavaScript reference for the edge host (bench/edge-reference/README.md): the same shape
// as the Rust worker (a relay in the Worker per client socket, one socket of its own to a
// Durable Object per session, the object accepting it with the Hibernation API and fanning
// out; and the direct path, /session/new and /session/<id>, where the client's own socket ends
// in the object), doing only what `sessionserver-bench fanout` needs: createSession, joinSession by ID,
// updatePlayer. No validation, no limits, no storage, no resume: the least work per delivery
// on this platform, to judge the Rust worker's CPU per delivery against.
import { DurableObject } from 'cloudflare:workers';

const sessionJoin = (session, player) =>
  `{"command":"sessionJoin","error":0,"sessionID":${session},"playerID":${player},"session":{},"player":{}}`;
const playerJoin = (player) => `{"command":"playerJoin","playerID":${player},"player":{}}`;

export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname === '/healthz') return new Response('ok');
    if (request.headers.get('Upgrade') !== 'websocket') return new Response('WebSocket only', { status: 426 });
    // The direct path, as the Rust worker's: the client's socket ends in the session's object.
    const path = new URL(request.url).pathname;
    if (path.startsWith('/session/')) {
      const rest = path.slice('/session/'.length);
      const id = rest === 'new' ? Math.floor(Math.random() * 2 ** 53) : Number(rest);
      const stub = env.SESSIONS.get(env.SESSIONS.idFromName(String(id)));
      return stub.fetch(`http://session/${id}`, { headers: { Upgrade: 'websocket' } });
    }
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    relay(server, env);
    return new Response(null, { status: 101, webSocket: client });
  },
};

// One client: its first command names the session; from then on frames go both ways as they are.
function relay(client, env) {
  let link = null;
  const waiting = [];
  client.addEventListener('message', async (event) => {
    if (link) return link.send(event.data);
    waiting.push(event.data);
    if (waiting.length > 1) return;
    const command = JSON.parse(event.data);
    const id = command.command === 'createSession'
      ? Math.floor(Math.random() * 2 ** 53)
      : command.sessionID;
    const stub = env.SESSIONS.get(env.SESSIONS.idFromName(String(id)));
    const response = await stub.fetch(`http://session/${id}`, { headers: { Upgrade: 'websocket' } });
    const socket = response.webSocket;
    socket.accept();
    socket.addEventListener('message', (e) => client.send(e.data));
    socket.addEventListener('close', () => client.close(1011, 'session closed'));
    client.addEventListener('close', () => socket.close(1000, 'client left'));
    for (const text of waiting) socket.send(text);
    waiting.length = 0;
    link = socket;
  });
}

export class ReferenceSession extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.members = null; // [socket, playerID] in join order, rebuilt after a wake
  }

  fetch(request) {
    this.session = Number(new URL(request.url).pathname.slice(1));
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  membersNow() {
    if (!this.members) {
      this.members = this.ctx.getWebSockets().flatMap((s) => {
        const a = s.deserializeAttachment();
        return a ? [[s, a.player]] : [];
      });
    }
    return this.members;
  }

  webSocketMessage(socket, text) {
    const command = JSON.parse(text);
    const members = this.membersNow();
    if (command.command === 'updatePlayer') {
      const me = members.find(([s]) => s === socket);
      const frame = `{"command":"playerUpdate","error":0,"playerID":${me[1]},"player":${JSON.stringify(command.player)}}`;
      for (const [s] of members) s.send(frame);
      return;
    }
    // createSession or joinSession: a new member. Player IDs are unique across sessions, as
    // the Rust worker's (random below 2^53); the generator keys its counts by them.
    const player = Math.floor(Math.random() * 2 ** 53);
    socket.serializeAttachment({ player });
    socket.send(sessionJoin(this.session, player));
    for (const [s, p] of members) {
      s.send(playerJoin(player));
      socket.send(playerJoin(p));
    }
    members.push([socket, player]);
  }

  webSocketClose(socket) {
    this.members = this.membersNow().filter(([s]) => s !== socket);
  }
}
