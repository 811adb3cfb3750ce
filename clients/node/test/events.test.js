'use strict';
// The per-connection event rules and the backoff (no server).

const test = require('node:test');
const assert = require('node:assert/strict');
const { ConnectionState, Backoff } = require('../src/events');

const id = (type) => type;
const msg = (type, sequence, extra = {}) => ({ type: `EVENT_TYPE_${type}`, sequence, ...extra });
const names = (events) => events.map((e) => e.type);

test('clientReady once per connection, again after a reconnect; old replays dropped', () => {
  const state = new ConnectionState();
  state.connected();
  assert.deepEqual(names(state.onMessage(msg('STATE', 2, { ready: true }), id)), ['state', 'clientReady']);
  assert.deepEqual(names(state.onMessage(msg('CLIENT_READY', 1), id)), []);
  assert.deepEqual(names(state.onMessage(msg('ARTIFACT_DOWNLOAD_SUCCEEDED', 2), id)), ['artifactDownloadSucceeded']);
  state.connected();
  assert.deepEqual(names(state.onMessage(msg('STATE', 2, { ready: true }), id)), ['state', 'clientReady']);
  assert.deepEqual(names(state.onMessage(msg('ARTIFACT_DOWNLOAD_SUCCEEDED', 2), id)), []);
});

test('a restarted server (sequence went back) has its replays passed on', () => {
  const state = new ConnectionState();
  state.connected();
  state.onMessage(msg('STATE', 3, { ready: true }), id);
  state.onMessage(msg('ARTIFACT_DOWNLOAD_SUCCEEDED', 3), id);
  state.connected();
  state.onMessage(msg('STATE', 1, { ready: true }), id);
  assert.deepEqual(names(state.onMessage(msg('ARTIFACT_DOWNLOAD_SUCCEEDED', 1), id)), ['artifactDownloadSucceeded']);
});

test('backoff is capped, exponential, jittered into [base/2, base]', () => {
  const backoff = new Backoff(100, 800);
  const bases = [100, 200, 400, 800, 800];
  for (const base of bases) {
    const delay = backoff.next();
    assert.ok(delay >= base / 2 && delay <= base, `${delay} not in [${base / 2}, ${base}]`);
  }
  backoff.reset();
  assert.ok(backoff.next() <= 100);
});
