// The edge host's direct path as the client sees it: a resume reconnects to the token's
// session's own URL, since a socket on /session/new or another session's URL could not take it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resumeUrl } from '../sessionserver.js';

test('resumeUrl: on the direct path a resume goes to /session/<the token\'s session>; elsewhere the URL is kept', () => {
  const token = '7836885832153556.6285174569832602.8720b9be0230134ccf6c6ea7c214395a';
  assert.equal(resumeUrl('wss://h.example/session/new', token), 'wss://h.example/session/7836885832153556');
  assert.equal(resumeUrl('wss://h.example/session/41', token), 'wss://h.example/session/7836885832153556');
  assert.equal(resumeUrl('ws://127.0.0.1:8787/game/session/new?k=v', token), 'ws://127.0.0.1:8787/game/session/7836885832153556?k=v');
  // The relay's URL, and paths that only look alike, are kept as they are.
  for (const url of ['wss://h.example/', 'wss://h.example/sessions/new', 'wss://h.example/session/new/x', 'wss://h.example/?session/new', 'ws://session/new', 'not a url/session/new']) {
    assert.equal(resumeUrl(url, token), url);
  }
  // A token that names no session changes nothing.
  assert.equal(resumeUrl('wss://h.example/session/new', 'garbage'), 'wss://h.example/session/new');
});
