'use strict';
// examples/node_client.js runs against a real targetd and the local edge stand-in.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { REPO, startEdge, startTargetd } = require('./support');

test('examples/node_client.js', async () => {
  const edge = await startEdge();
  const server = await startTargetd(edge.address);
  try {
    const { stdout } = await new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        [path.join(REPO, 'examples', 'node_client.js')],
        { env: { ...process.env, TARGETD_ADDRESS: server.address }, timeout: 60000 },
        (error, out, err) => (error ? reject(new Error(`${error.message}\n${out}\n${err}`)) : resolve({ stdout: out })),
      );
    });
    const lines = stdout.trim().split('\n');
    assert.equal(lines[0], 'client ready');
    assert.match(lines[1], /^product1: .* via on-device$/);
    assert.equal(lines[2], 'display notification sent');
    assert.match(lines[3], /^home attributes: \{/);
  } finally {
    await server.stop();
    await edge.stop();
  }
});
