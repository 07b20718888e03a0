// Shared test helpers: a WebSocket for Node, and waiting for client events.
import { SessionClient } from '../sessionserver.js';

// Node 22 has a global WebSocket; Node 20 takes the `ws` package's.
export const WebSocket = globalThis.WebSocket ?? (await import('ws')).WebSocket;

/** Connects a client to `url`; `options` go to SessionClient.connect. */
export function connect(url, options = {}) {
  return SessionClient.connect(url, { WebSocket, ...options });
}

/** Resolves with the next `event` of `client` for which `pred` holds; rejects after `ms`. */
export function next(client, event, pred = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const off = client.on(event, (arg) => {
      if (!pred(arg)) return;
      clearTimeout(timer);
      off();
      resolve(arg);
    });
  });
}

/** Collects every `event` of `client` into an array. */
export function collect(client, event) {
  const seen = [];
  client.on(event, (arg) => seen.push(arg));
  return seen;
}

/** Waits until `cond()` holds, polling. */
export async function until(cond, ms = 5000, what = 'condition') {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The players of a client's session as a plain object, for deepEqual. */
export function playersOf(client) {
  return Object.fromEntries(client.session?.players ?? []);
}
