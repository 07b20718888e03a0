// Starts a native sessionserver on 127.0.0.1, port 0, for a test file, and stops it (by PID).
//
// SESSIONSERVER_BIN names a built binary; otherwise `cargo build -p native` builds it and
// reports its path. SESSIONSERVER_URL=ws://host:port/ skips starting one and uses that server.
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function serverBinary() {
  if (process.env.SESSIONSERVER_BIN) return process.env.SESSIONSERVER_BIN;
  const out = execFileSync(
    'cargo',
    ['build', '-p', 'native', '--bin', 'sessionserver', '--message-format=json-render-diagnostics'],
    { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
  );
  for (const line of out.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    const msg = JSON.parse(line);
    if (msg.reason === 'compiler-artifact' && msg.executable && msg.target?.name === 'sessionserver') {
      return msg.executable;
    }
  }
  throw new Error('cargo build did not report the sessionserver binary');
}

/**
 * Starts a server; resolves to { url (ws://), http (http://), port, stop() }.
 * @param {string[]} [args] more command-line options
 */
export async function startServer(args = []) {
  if (process.env.SESSIONSERVER_URL) {
    const url = new URL(process.env.SESSIONSERVER_URL);
    const http = `${url.protocol === 'wss:' ? 'https' : 'http'}://${url.host}/`;
    return { url: url.href, http, port: Number(url.port), stop: async () => {} };
  }
  const bin = serverBinary();
  const child = spawn(bin, ['--port', '0', '--bind', '127.0.0.1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (process.env.SESSIONSERVER_LOG) process.stderr.write(d);
  });
  const port = await new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${stderr}`)), 30_000);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /Listening on port (\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolvePort(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${stderr}`));
    });
  });
  const exited = new Promise((r) => child.on('exit', r));
  return {
    url: `ws://127.0.0.1:${port}/`,
    http: `http://127.0.0.1:${port}/`,
    port,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, 'SIGTERM');
        const t = setTimeout(() => child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
