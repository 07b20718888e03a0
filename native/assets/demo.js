// The dots demo: every player is a coloured dot, moved with the arrow keys or a click.
// Built on the JavaScript client (clients/js/sessionserver.js, served as /sessionserver.js).
// No build step: the browser loads these ES modules as they are.
import { SessionClient, SessionError, ConnectionClosedError } from './sessionserver.js';

const W = 800;
const H = 500;
const R = 14; // dot radius
const KEY_SPEED = 260; // px/s with the arrow keys
const CLICK_SPEED = 420; // px/s towards a clicked point
const SEND_EVERY_MS = 40; // at most 25 updates/s: well inside the server's rate limit
// Every player's data has this structure (the session's default playerData).
const DEFAULT_PLAYER = { name: '', x: 0, y: 0, color: '' };
const SESSIONS_KEY = 'sessionserver-demo:sessions';
const PALETTE = ['#ff6b6b', '#ffd93d', '#6bcb77', '#4d96ff', '#c77dff', '#ff9f45', '#2ec4b6', '#f15bb5'];

const $ = (id) => document.getElementById(id);
const canvas = $('canvas');
const ctx = canvas.getContext('2d');

// --- local state ---
const me = {
  name: sessionStorage.getItem('dots:name') || `player-${Math.floor(Math.random() * 900 + 100)}`,
  color: sessionStorage.getItem('dots:color') || PALETTE[Math.floor(Math.random() * PALETTE.length)],
  x: W / 2,
  y: H / 2,
  target: null, // {x, y} after a click
};
const keys = new Set();
let client = null;
let dirty = false; // my data changed since the last update sent
let sending = false;
// Where each other player's dot is drawn: eased towards its last known position.
const shown = new Map();

$('name').value = me.name;
$('color').value = me.color;

function status(text, isError = false) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', isError);
}

function describe(err) {
  if (err instanceof SessionError) return `${err.meaning} (error ${err.code})`;
  return err?.message ?? String(err);
}

// --- the server ---
function serverURL() {
  const given = new URLSearchParams(location.search).get('server');
  if (given) return given;
  const url = new URL('.', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  return url.href;
}

async function connect() {
  status('connecting…');
  try {
    // The client reconnects by itself when the connection drops in a session (the server keeps
    // the seat for 30 s): the dots stay, and what was missed is replayed.
    // `host`: the client learns who the host is (the creator, then the earliest player left).
    client = await SessionClient.connect(serverURL(), { reconnect: true, host: true, messages: true });
  } catch (err) {
    status(`cannot connect: ${describe(err)}`, true);
    setTimeout(connect, 2000);
    return;
  }
  window.demo.client = client;
  status('connected: create a session or join one');
  refreshOpenGames();
  client.on('sessionJoin', ({ sessionID }) => {
    remember(sessionID);
    render();
  });
  client.on('sessionLeave', ({ kicked }) => {
    if (kicked) {
      shown.clear();
      status('the host removed you from the session', true);
    }
    render();
  });
  client.on('hostChange', () => render());
  client.on('message', ({ playerID, data }) => {
    const from = client.session?.players.get(playerID)?.name || `player ${playerID}`;
    if (typeof data?.text === 'string') chatLine(`${from}: ${data.text}`);
  });
  client.on('sessionLock', () => render());
  client.on('playerJoin', () => render());
  client.on('playerLeave', ({ playerID }) => {
    shown.delete(playerID);
    render();
  });
  client.on('playerUpdate', ({ self }) => {
    if (!self) renderPlayers();
  });
  client.on('sessionUpdate', ({ self }) => {
    // A session update resets every player's data to the default: put mine back.
    if (!self) dirty = true;
    render();
  });
  client.on('error', (err) => {
    if (!client?.reconnecting) status(describe(err), true);
  });
  client.on('reconnecting', ({ attempt, code }) => {
    $('reconnecting').hidden = false;
    $('reconnecting').textContent = `connection lost: reconnecting (attempt ${attempt})…`;
    status(`connection lost (${code}); reconnecting, attempt ${attempt}…`, true);
  });
  client.on('resumed', ({ replay }) => {
    $('reconnecting').hidden = true;
    status(`reconnected: back in session ${client.session.id}${replay === 'snapshot' ? ' (redrawn from a snapshot)' : ''}`);
    dirty = true; // send my position, which may have moved meanwhile
    render();
  });
  client.on('lost', ({ reason, sessionID }) => {
    $('reconnecting').hidden = true;
    status(`lost session ${sessionID} (${reason === 'rejected' ? 'it did not keep my seat' : 'could not reconnect in time'})`, true);
    shown.clear();
    render();
  });
  client.on('close', ({ code, meaning }) => {
    status(`disconnected (${code}: ${meaning}); reconnecting…`, true);
    client = null;
    shown.clear();
    render();
    setTimeout(connect, 2000);
  });
  render();
}

async function afterJoin(session) {
  // Start somewhere free-ish, and tell the others who I am.
  me.x = R + Math.random() * (W - 2 * R);
  me.y = R + Math.random() * (H - 2 * R);
  me.target = null;
  dirty = true;
  $('join-id').value = '';
  status(`in session ${session.id}: move with the arrow keys or a click`);
  canvas.focus();
  render();
}

async function act(what) {
  if (!client) return;
  try {
    const session = await what();
    if (session) await afterJoin(session);
  } catch (err) {
    status(describe(err), true);
    if (err instanceof SessionError && err.code === 7) forget(Number($('join-id').value));
  }
}

// The lobby's password field: a new session's password, or the one to join with.
const password = () => $('password').value || undefined;

// Every dots game the server lists carries this metadata: "Open games" and "Quick play" find it.
const GAME = { game: 'dots' };
const gameData = () => ({ game: 'dots', title: `${me.name}'s game`, width: W, height: H });

$('quick-play').onclick = () =>
  act(() => client.joinOrCreate(GAME, gameData(), DEFAULT_PLAYER, { maxPlayers: 8, metadata: { ...GAME, title: `${me.name}'s game` } }));

$('create').onclick = () => {
  const options = { metadata: { ...GAME, title: `${me.name}'s game` } };
  if ($('private').checked) options.private = true;
  if (password()) options.password = password();
  act(() => client.createSession(gameData(), DEFAULT_PLAYER, options));
};
$('join-latest').onclick = () => act(() => client.joinSession(-1));
$('join').onclick = () => {
  const id = Number.parseInt($('join-id').value, 10);
  if (!Number.isInteger(id) || id < 0) return status('type a session ID to join', true);
  act(() => client.joinSession(id, { password: password() }));
};
$('lock').onclick = () => act(async () => {
  const locked = await client.lockSession(!client.session.locked);
  status(locked ? 'locked: nobody new can join' : 'unlocked: others can join again');
  render();
});
$('join-id').onkeydown = (e) => {
  if (e.key === 'Enter') $('join').click();
};
$('leave').onclick = () =>
  act(async () => {
    await client.leaveSession();
    shown.clear();
    status('left the session');
    render();
  });

$('name').oninput = () => {
  me.name = $('name').value.slice(0, 24);
  sessionStorage.setItem('dots:name', me.name);
  dirty = true;
};
$('color').oninput = () => {
  me.color = $('color').value;
  sessionStorage.setItem('dots:color', me.color);
  dirty = true;
};

// --- chat (sendMessage; nothing is stored: a player who joins later sees only what follows) ---
function chatLine(text) {
  const li = document.createElement('li');
  li.textContent = text;
  $('chat-log').append(li);
  while ($('chat-log').children.length > 50) $('chat-log').firstChild.remove();
  $('chat-log').scrollTop = $('chat-log').scrollHeight;
}
$('chat-send').onclick = () => {
  const text = $('chat-input').value.trim();
  if (!text || !client?.session) return;
  $('chat-input').value = '';
  chatLine(`${me.name} (you): ${text}`);
  client.sendMessage({ text }).catch((err) => status(describe(err), true));
};
$('chat-input').onkeydown = (e) => {
  if (e.key === 'Enter') $('chat-send').click();
};

// --- open games: the server's public dots games with room, refreshed in the lobby ---
async function refreshOpenGames() {
  if (!client || client.session || client.reconnecting) return;
  const ul = $('open-games');
  let list;
  try {
    list = (await client.listSessions(GAME, { available: true, limit: 10 })).sessions;
  } catch (err) {
    ul.innerHTML = `<li class="dim">no listing here (${describe(err)})</li>`;
    return;
  }
  ul.replaceChildren();
  if (list.length === 0) ul.innerHTML = '<li class="dim">none yet: quick play starts one</li>';
  for (const s of list) {
    const li = document.createElement('li');
    li.dataset.sessionId = String(s.sessionID);
    const label = document.createElement('span');
    const max = s.maxPlayers === null ? '' : `/${s.maxPlayers}`;
    label.textContent = `#${s.sessionID} ${s.metadata.title ?? ''} (${s.players}${max})`;
    const btn = document.createElement('button');
    btn.textContent = 'Join';
    btn.onclick = () => act(() => client.joinSession(s.sessionID));
    li.append(label, btn);
    ul.append(li);
  }
}
setInterval(refreshOpenGames, 2000);

// Sends my data when it changed, at most every SEND_EVERY_MS, one request at a time.
setInterval(async () => {
  if (!dirty || sending || !client?.session) return;
  dirty = false;
  sending = true;
  try {
    // While the client reconnects, this waits and is sent once the seat is back.
    await client.updatePlayer({ name: me.name, x: Math.round(me.x), y: Math.round(me.y), color: me.color });
  } catch (err) {
    if (err instanceof SessionError && err.code === 18) dirty = true; // try again later
    else if (err instanceof ConnectionClosedError) dirty = true; // in flight when the connection dropped
    else if (client?.session) status(describe(err), true);
  } finally {
    sending = false;
  }
}, SEND_EVERY_MS);

// --- sessions this browser has seen (the protocol has no list command) ---
function knownSessions() {
  try {
    return JSON.parse(localStorage.getItem(SESSIONS_KEY)) || [];
  } catch {
    return [];
  }
}
function remember(id) {
  const title = client?.session?.data?.title;
  const list = knownSessions().filter((s) => s.id !== id);
  list.unshift({ id, title: typeof title === 'string' ? title : '' });
  localStorage.setItem(SESSIONS_KEY, JSON.stringify(list.slice(0, 8)));
  renderSessions();
}
function forget(id) {
  localStorage.setItem(SESSIONS_KEY, JSON.stringify(knownSessions().filter((s) => s.id !== id)));
  renderSessions();
}
window.addEventListener('storage', (e) => e.key === SESSIONS_KEY && renderSessions());
// Leaving the page leaves the session at once (close() sends leaveSession first); otherwise the
// server would keep this player's seat, and the others its dot, for the resume grace period.
window.addEventListener('pagehide', () => client?.close());

function renderSessions() {
  const ul = $('sessions');
  ul.replaceChildren();
  const list = knownSessions();
  if (list.length === 0) {
    ul.innerHTML = '<li class="dim">none yet</li>';
    return;
  }
  for (const s of list) {
    const li = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = `#${s.id} ${s.title}`;
    const btn = document.createElement('button');
    btn.textContent = 'Join';
    btn.onclick = () => {
      $('join-id').value = s.id;
      $('join').click();
    };
    li.append(label, btn);
    ul.append(li);
  }
}

// --- input ---
const KEYS = { ArrowLeft: 'l', ArrowRight: 'r', ArrowUp: 'u', ArrowDown: 'd', a: 'l', d: 'r', w: 'u', s: 'd' };
window.addEventListener('keydown', (e) => {
  if (e.target instanceof HTMLInputElement) return;
  const k = KEYS[e.key];
  if (!k) return;
  e.preventDefault();
  keys.add(k);
  me.target = null;
});
window.addEventListener('keyup', (e) => keys.delete(KEYS[e.key]));
window.addEventListener('blur', () => keys.clear());
canvas.addEventListener('pointerdown', (e) => {
  canvas.focus();
  const rect = canvas.getBoundingClientRect();
  me.target = { x: ((e.clientX - rect.left) / rect.width) * W, y: ((e.clientY - rect.top) / rect.height) * H };
});

// --- the game loop: movement on a timer, drawing on animation frames ---
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  const dt = Math.min((now - last) / 1000, 0.1);
  last = now;
  if (!client?.session) return;
  let dx = (keys.has('r') ? 1 : 0) - (keys.has('l') ? 1 : 0);
  let dy = (keys.has('d') ? 1 : 0) - (keys.has('u') ? 1 : 0);
  const x0 = me.x;
  const y0 = me.y;
  if (dx || dy) {
    const n = Math.hypot(dx, dy);
    me.x += (dx / n) * KEY_SPEED * dt;
    me.y += (dy / n) * KEY_SPEED * dt;
  } else if (me.target) {
    dx = me.target.x - me.x;
    dy = me.target.y - me.y;
    const dist = Math.hypot(dx, dy);
    const step = CLICK_SPEED * dt;
    if (dist <= step) {
      me.x = me.target.x;
      me.y = me.target.y;
      me.target = null;
    } else {
      me.x += (dx / dist) * step;
      me.y += (dy / dist) * step;
    }
  }
  me.x = Math.min(W - R, Math.max(R, me.x));
  me.y = Math.min(H - R, Math.max(R, me.y));
  if (Math.round(me.x) !== Math.round(x0) || Math.round(me.y) !== Math.round(y0)) dirty = true;
}, 16);

function draw() {
  ctx.clearRect(0, 0, W, H);
  ctx.strokeStyle = '#1b2538';
  ctx.lineWidth = 1;
  for (let x = 40; x < W; x += 40) {
    ctx.beginPath();
    ctx.moveTo(x + 0.5, 0);
    ctx.lineTo(x + 0.5, H);
    ctx.stroke();
  }
  for (let y = 40; y < H; y += 40) {
    ctx.beginPath();
    ctx.moveTo(0, y + 0.5);
    ctx.lineTo(W, y + 0.5);
    ctx.stroke();
  }
  const session = client?.session;
  if (session) {
    for (const [id, p] of session.players) {
      if (id === client.playerID) continue;
      const x = Number(p.x);
      const y = Number(p.y);
      if (!Number.isFinite(x) || !Number.isFinite(y) || (x === 0 && y === 0 && !p.color)) continue; // not placed yet
      const s = shown.get(id) ?? { x, y };
      s.x += (x - s.x) * 0.35;
      s.y += (y - s.y) * 0.35;
      shown.set(id, s);
      dot(s.x, s.y, p.color || '#999', String(p.name ?? `player ${id}`), false);
    }
    dot(me.x, me.y, me.color, `${me.name} (you)`, true);
  }
  requestAnimationFrame(draw);
}

function dot(x, y, color, label, mine) {
  ctx.beginPath();
  ctx.arc(x, y, R, 0, Math.PI * 2);
  ctx.fillStyle = color;
  ctx.shadowColor = color;
  ctx.shadowBlur = 18;
  ctx.fill();
  ctx.shadowBlur = 0;
  if (mine) {
    ctx.lineWidth = 3;
    ctx.strokeStyle = '#ffffff';
    ctx.stroke();
  }
  ctx.font = '13px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.fillStyle = '#e6ebf5';
  ctx.fillText(label, x, y - R - 7);
}

// --- the side panel ---
function render() {
  const session = client?.session;
  $('session-info').hidden = !session;
  $('lobby').hidden = Boolean(session);
  $('overlay').hidden = Boolean(session);
  for (const id of ['quick-play', 'create', 'join-latest', 'join']) $(id).disabled = !client;
  if (!session) $('chat-log').replaceChildren();
  if (session) $('session-id').textContent = String(session.id);
  const host = Boolean(session) && session.hostID === client.playerID;
  $('lock').hidden = !host;
  $('lock').textContent = session?.locked ? 'Unlock' : 'Lock';
  $('session-note').textContent = session?.locked ? 'Locked by the host: nobody new can join.' : 'Others join it with this ID.';
  renderPlayers();
}

function renderPlayers() {
  const ul = $('players');
  ul.replaceChildren();
  const session = client?.session;
  if (!session) {
    ul.innerHTML = '<li class="dim">not in a session</li>';
    return;
  }
  for (const [id, p] of session.players) {
    const mine = id === client.playerID;
    const li = document.createElement('li');
    li.dataset.playerId = String(id);
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = (mine ? me.color : p.color) || '#999';
    const name = document.createElement('span');
    const star = id === session.hostID ? ' ★' : '';
    name.textContent = `${(mine ? me.name : p.name) || `player ${id}`}${mine ? ' (you)' : ''}${star}`;
    li.append(sw, name);
    // The host may remove the others.
    if (!mine && session.hostID === client.playerID) {
      const kick = document.createElement('button');
      kick.textContent = 'Kick';
      kick.className = 'kick';
      kick.onclick = () => act(() => client.kickPlayer(id));
      li.append(kick);
    }
    ul.append(li);
  }
}

// What tests (and the curious, from the console) can read.
window.demo = {
  client: null,
  me,
  /** The session's ID, or null. */
  get sessionID() {
    return client?.session?.id ?? null;
  },
  /** This player's ID, or null. */
  get playerID() {
    return client?.playerID ?? null;
  },
  /** True while the client is taking its seat back after a dropped connection. */
  get reconnecting() {
    return Boolean(client?.reconnecting);
  },
  /** Every player's data as the server last sent it: { [playerID]: {name, x, y, color} }. */
  get players() {
    return Object.fromEntries(client?.session?.players ?? []);
  },
};

renderSessions();
render();
requestAnimationFrame(draw);
connect();
