// The demo game in headless Chromium (Playwright driving the machine's /usr/bin/chromium),
// served by a real native server: two pages join one session, one moves, the other sees it
// move and sees it leave when its page closes; and a page whose connection is cut (through a
// TCP proxy, test/proxy.mjs) reconnects and keeps its dot.
//
// CHROMIUM=/path/to/chromium picks another browser; DEMO_SCREENSHOT=path saves a screenshot
// of the second page with both dots (docs/demo.png is made this way).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

import { startServer } from './server.mjs';
import { startProxy } from './proxy.mjs';

const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const external = Boolean(process.env.SESSIONSERVER_URL);
let server;
let browser;

before(async () => {
  if (!existsSync(executablePath)) return;
  server = await startServer();
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // Playwright gives the browser a new, empty profile (user data dir) of its own.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function openDemo(context, name, query = '') {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && problems.push(`console error: ${msg.text()}`));
  await page.goto(server.http + query);
  await page.waitForFunction(() => window.demo?.client && !window.demo.client.closed);
  await page.locator('#name').fill(name);
  return { page, problems };
}

// What `page`'s demo knows of `playerID`: its data as last received, or null.
const playerOn = (page, playerID) => page.evaluate((id) => window.demo.players[id] ?? null, playerID);

test(
  'two pages: both join one session, one moves (keys and click), the other sees it, then sees it leave',
  { skip: (!existsSync(executablePath) && `no browser at ${executablePath}`) || (external && 'external server'), timeout: 90_000 },
  async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 680 } });
    const a = await openDemo(context, 'Alice');
    const b = await openDemo(context, 'Bob');
    await a.page.locator('#color').fill('#ff6b6b');
    await b.page.locator('#color').fill('#4d96ff');

    // The demo serves its page, its script and the client module from the server itself.
    for (const path of ['demo.js', 'sessionserver.js']) {
      const res = await a.page.request.get(server.http + path);
      assert.equal(res.status(), 200);
      assert.match(res.headers()['content-type'], /javascript/);
    }

    // A creates a session; its ID is on the page.
    await a.page.locator('#create').click();
    await a.page.locator('#session-id').waitFor({ state: 'visible' });
    const sessionID = Number(await a.page.locator('#session-id').textContent());
    assert.equal(sessionID, await a.page.evaluate(() => window.demo.sessionID));
    const aID = await a.page.evaluate(() => window.demo.playerID);

    // B types that ID and joins.
    await b.page.locator('#join-id').fill(String(sessionID));
    await b.page.locator('#join').click();
    await b.page.waitForFunction((id) => window.demo.sessionID === id, sessionID);
    const bID = await b.page.evaluate(() => window.demo.playerID);
    assert.notEqual(aID, bID);

    // Each sees the other, with its name and colour, in its data and in the player list.
    await b.page.waitForFunction((id) => window.demo.players[id]?.name === 'Alice', aID);
    await a.page.waitForFunction((id) => window.demo.players[id]?.name === 'Bob', bID);
    assert.equal((await playerOn(b.page, aID)).color, '#ff6b6b');
    await b.page.locator('#players li', { hasText: 'Alice' }).waitFor();
    await a.page.locator('#players li', { hasText: 'Bob' }).waitFor();
    await a.page.locator('#players li', { hasText: 'Alice (you)' }).waitFor();

    // A moves right and down with the arrow keys; B sees A's dot move, to where A has it.
    const before = await playerOn(b.page, aID);
    await a.page.bringToFront();
    await a.page.locator('#canvas').focus();
    await a.page.keyboard.down('ArrowRight');
    await a.page.keyboard.down('ArrowDown');
    await a.page.waitForTimeout(400);
    await a.page.keyboard.up('ArrowRight');
    await a.page.keyboard.up('ArrowDown');
    const movedTo = await a.page.evaluate(() => ({ x: Math.round(window.demo.me.x), y: Math.round(window.demo.me.y) }));
    assert.ok(movedTo.x > before.x || movedTo.x >= 800 - 14, `A moved right: ${before.x} -> ${movedTo.x}`);
    assert.ok(movedTo.y > before.y || movedTo.y >= 500 - 14, `A moved down: ${before.y} -> ${movedTo.y}`);
    await b.page.waitForFunction(
      ({ id, x, y }) => window.demo.players[id]?.x === x && window.demo.players[id]?.y === y,
      { id: aID, ...movedTo },
    );

    // A clicks a point on the board; its dot goes there, and B sees it arrive.
    const box = await a.page.locator('#canvas').boundingBox();
    const click = (x, y) => ({ x: (x / 800) * box.width, y: (y / 500) * box.height });
    await a.page.locator('#canvas').click({ position: click(280, 250) });
    await b.page.waitForFunction(
      (id) => Math.abs(window.demo.players[id]?.x - 280) <= 1 && Math.abs(window.demo.players[id]?.y - 250) <= 1,
      aID,
      { timeout: 10_000 },
    );
    // B moves too, by a click, so both dots stand apart for the picture.
    await b.page.bringToFront();
    await b.page.locator('#canvas').click({ position: click(540, 260) });
    await a.page.waitForFunction(
      (id) => Math.abs(window.demo.players[id]?.x - 540) <= 1 && Math.abs(window.demo.players[id]?.y - 260) <= 1,
      bID,
      { timeout: 10_000 },
    );
    await b.page.waitForTimeout(300); // let the drawn dots ease into place
    if (process.env.DEMO_SCREENSHOT) {
      mkdirSync(dirname(process.env.DEMO_SCREENSHOT), { recursive: true });
      await b.page.screenshot({ path: process.env.DEMO_SCREENSHOT });
    }

    // A's page closes: B sees A leave, in its data and its player list.
    await a.page.close();
    await b.page.waitForFunction((id) => !(id in window.demo.players), aID);
    await b.page.locator('#players li', { hasText: 'Alice' }).waitFor({ state: 'detached' });
    assert.deepEqual(Object.keys(await b.page.evaluate(() => window.demo.players)), [String(bID)]);

    assert.deepEqual([...a.problems, ...b.problems], []);
    await context.close();
  },
);


test(
  'a private game with a password: a wrong password is refused, the right one joins, the host kicks',
  { skip: (!existsSync(executablePath) && `no browser at ${executablePath}`) || (external && 'external server'), timeout: 90_000 },
  async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 680 } });
    const a = await openDemo(context, 'Host');
    const b = await openDemo(context, 'Guest');

    // A creates a private game with a password.
    await a.page.locator('#password').fill('tiger');
    await a.page.locator('#private').check();
    await a.page.locator('#create').click();
    await a.page.locator('#session-id').waitFor({ state: 'visible' });
    const sessionID = Number(await a.page.locator('#session-id').textContent());
    assert.ok(sessionID > 1e6, `a private game has a random ID, got ${sessionID}`);
    const aID = await a.page.evaluate(() => window.demo.playerID);
    await a.page.locator('#players li', { hasText: 'Host (you) ★' }).waitFor();

    // "Join latest" does not find it.
    await b.page.locator('#join-latest').click();
    await b.page.locator('#status.error', { hasText: 'error 6' }).waitFor();
    // A wrong password is refused, and the page says so.
    await b.page.locator('#join-id').fill(String(sessionID));
    await b.page.locator('#password').fill('lion');
    await b.page.locator('#join').click();
    await b.page.locator('#status.error', { hasText: 'error 26' }).waitFor();
    assert.equal(await b.page.evaluate(() => window.demo.sessionID), null);
    // The right one joins.
    await b.page.locator('#password').fill('tiger');
    await b.page.locator('#join').click();
    await b.page.waitForFunction((id) => window.demo.sessionID === id, sessionID);
    const bID = await b.page.evaluate(() => window.demo.playerID);
    await b.page.locator('#players li', { hasText: 'Host ★' }).waitFor();
    await a.page.locator('#players li', { hasText: 'Guest' }).waitFor();
    // Only the host has the Kick buttons and the lock.
    assert.equal(await b.page.locator('#players button.kick').count(), 0);
    assert.equal(await b.page.locator('#lock').isVisible(), false);

    // The host kicks the guest: the guest is back in the lobby and told why.
    await a.page.locator('#players li', { hasText: 'Guest' }).locator('button.kick').click();
    await b.page.waitForFunction(() => window.demo.sessionID === null);
    await b.page.locator('#status.error', { hasText: 'removed you' }).waitFor();
    await a.page.waitForFunction((id) => !(id in window.demo.players), bID);
    assert.deepEqual(Object.keys(await a.page.evaluate(() => window.demo.players)), [String(aID)]);

    const others = [...a.problems, ...b.problems].filter((p) => !/SessionError|error 2[0-9]|error 6/.test(p));
    assert.deepEqual(others, []);
    await context.close();
  },
);


test(
  'the lobby lists open games, quick play joins one, and the chat line reaches the other page',
  { skip: (!existsSync(executablePath) && `no browser at ${executablePath}`) || (external && 'external server'), timeout: 90_000 },
  async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 680 } });
    const a = await openDemo(context, 'Ann');
    const b = await openDemo(context, 'Ben');
    await a.page.locator('#quick-play').click();
    await a.page.locator('#session-id').waitFor({ state: 'visible' });
    const sessionID = Number(await a.page.locator('#session-id').textContent());
    // B's lobby lists it (refreshed every 2 s), with its title and player count.
    const row = b.page.locator(`#open-games li[data-session-id="${sessionID}"]`);
    await row.waitFor({ timeout: 10_000 });
    assert.match(await row.textContent(), /Ann's game \(1\/8\)/);
    // Quick play joins it rather than starting another.
    await b.page.locator('#quick-play').click();
    await b.page.waitForFunction((id) => window.demo.sessionID === id, sessionID);
    // A says something; B reads it.
    await a.page.locator('#players li', { hasText: 'Ben' }).waitFor();
    await a.page.locator('#chat-input').fill('hello Ben');
    await a.page.locator('#chat-send').click();
    await b.page.locator('#chat-log li', { hasText: 'Ann: hello Ben' }).waitFor();
    await a.page.locator('#chat-log li', { hasText: 'Ann (you): hello Ben' }).waitFor();
    assert.deepEqual([...a.problems, ...b.problems], []);
    await context.close();
  },
);

test(
  'the demo reports errors in words: joining a session that does not exist',
  { skip: (!existsSync(executablePath) && `no browser at ${executablePath}`) || (external && 'external server'), timeout: 60_000 },
  async () => {
    const context = await browser.newContext();
    const { page, problems } = await openDemo(context, 'Carol');
    await page.locator('#join-id').fill('9007199254740000');
    await page.locator('#join').click();
    await page.locator('#status.error', { hasText: 'no session with that ID (error 7)' }).waitFor();
    assert.equal(await page.evaluate(() => window.demo.sessionID), null);
    // Join latest still works once a session exists.
    const other = await openDemo(context, 'Dan');
    await other.page.locator('#create').click();
    const id = await other.page.waitForFunction(() => window.demo.sessionID).then((h) => h.jsonValue());
    await page.locator('#join-latest').click();
    await page.waitForFunction((id) => window.demo.sessionID === id, id);
    assert.deepEqual([...problems, ...other.problems], []);
    await context.close();
  },
);

test(
  'a page whose connection is cut reconnects: both players keep their dots and IDs, nobody leaves',
  { skip: (!existsSync(executablePath) && `no browser at ${executablePath}`) || (external && 'external server'), timeout: 90_000 },
  async () => {
    const proxy = await startProxy(server.port);
    const context = await browser.newContext({ viewport: { width: 1200, height: 680 } });
    try {
      // A's page talks to the server through the proxy; B's directly.
      const a = await openDemo(context, 'Ann', `?server=${encodeURIComponent(proxy.url)}`);
      const b = await openDemo(context, 'Ben');
      await a.page.locator('#create').click();
      await a.page.waitForFunction(() => window.demo.sessionID !== null); // (0 is a session ID)
      const sessionID = await a.page.evaluate(() => window.demo.sessionID);
      await b.page.locator('#join-id').fill(String(sessionID));
      await b.page.locator('#join').click();
      await b.page.waitForFunction((id) => window.demo.sessionID === id, sessionID);
      const aID = await a.page.evaluate(() => window.demo.playerID);
      const bID = await b.page.evaluate(() => window.demo.playerID);
      await a.page.waitForFunction((id) => window.demo.players[id]?.name === 'Ben', bID);
      await b.page.waitForFunction((id) => window.demo.players[id]?.name === 'Ann', aID);
      // Every playerLeave either page's client reports, from now on.
      for (const { page } of [a, b]) {
        await page.evaluate(() => {
          window.leaves = [];
          window.demo.client.on('playerLeave', ({ playerID }) => window.leaves.push(playerID));
        });
      }

      // The network goes: A's connection is reset and new ones are refused.
      proxy.down();
      proxy.cut();
      await a.page.locator('#reconnecting', { hasText: 'reconnecting' }).waitFor({ state: 'visible' });
      await a.page.locator('#status', { hasText: 'reconnecting' }).waitFor();
      assert.equal(await a.page.evaluate(() => window.demo.reconnecting), true);
      // A still shows B (its dot and its row), and B still shows A: the server keeps A's seat.
      assert.equal((await playerOn(a.page, bID))?.name, 'Ben');
      await a.page.locator('#players li', { hasText: 'Ben' }).waitFor();
      await b.page.locator('#players li', { hasText: 'Ann' }).waitFor();

      // B moves while A is away.
      const box = await b.page.locator('#canvas').boundingBox();
      const click = (x, y) => ({ x: (x / 800) * box.width, y: (y / 500) * box.height });
      await b.page.bringToFront();
      await b.page.locator('#canvas').click({ position: click(600, 120) });
      // B's dot arrives, and the server has B's last position (B's own update came back).
      await b.page.waitForFunction(
        (id) => {
          const { me, players } = window.demo;
          const p = players[id];
          return !me.target && p && p.x === Math.round(me.x) && p.y === Math.round(me.y) && Math.abs(p.x - 600) <= 1;
        },
        bID,
        { timeout: 10_000 },
      );
      const bAt = await playerOn(b.page, bID);

      // The network comes back: A reconnects as the same player and sees where B went.
      proxy.up();
      await a.page.locator('#reconnecting').waitFor({ state: 'hidden', timeout: 20_000 });
      await a.page.locator('#status', { hasText: 'reconnected' }).waitFor();
      assert.equal(await a.page.evaluate(() => window.demo.playerID), aID);
      assert.equal(await a.page.evaluate(() => window.demo.sessionID), sessionID);
      await a.page.waitForFunction(
        ({ id, x, y }) => window.demo.players[id]?.x === x && window.demo.players[id]?.y === y,
        { id: bID, x: bAt.x, y: bAt.y },
        { timeout: 10_000 },
      );
      // And A moves: B sees it as the same player.
      await a.page.bringToFront();
      await a.page.locator('#canvas').click({ position: click(200, 380) });
      await b.page.waitForFunction(
        (id) => Math.abs(window.demo.players[id]?.x - 200) <= 1 && Math.abs(window.demo.players[id]?.y - 380) <= 1,
        aID,
        { timeout: 10_000 },
      );
      assert.deepEqual(Object.keys(await a.page.evaluate(() => window.demo.players)).sort(), [String(aID), String(bID)].sort());
      assert.deepEqual(Object.keys(await b.page.evaluate(() => window.demo.players)).sort(), [String(aID), String(bID)].sort());
      assert.deepEqual(await a.page.evaluate(() => window.leaves), []);
      assert.deepEqual(await b.page.evaluate(() => window.leaves), []);
      // The only console error allowed is the browser's own report of the cut connection.
      const others = a.problems.filter((p) => !/WebSocket connection to .* failed/.test(p));
      assert.deepEqual([...others, ...b.problems], []);
    } finally {
      await context.close();
      await proxy.close();
    }
  },
);
