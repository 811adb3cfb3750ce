'use strict';
// The events subscription reconnects to a targetd restarted on the same port, and says clientReady again.

const test = require('node:test');
const assert = require('node:assert/strict');
const { TargetClient } = require('../src');
const { startEdge, startTargetd, eventually } = require('./support');

test('clientReady again after targetd restarts on the same port', async () => {
  const edge = await startEdge();
  let server = await startTargetd(edge.address);
  const address = server.address;
  let ready = 0;
  const shutdowns = [];
  const client = TargetClient.create({
    client: 'acmeclient',
    organizationId: '1234567890@AdobeOrg',
    address,
    reconnectInitialDelay: 50,
    reconnectMaxDelay: 400,
    logger: { warn() {}, error() {} },
    events: { clientReady: () => (ready += 1), shutdown: (event) => shutdowns.push(event) },
  });
  try {
    await eventually(() => ready === 1);
    await server.stop();
    await eventually(() => shutdowns.length === 1);
    server = await startTargetd(edge.address, '--listen', address);
    assert.equal(server.address, address);
    await eventually(() => ready === 2, 20000);
    const result = await client.getOffers({ request: { execute: { mboxes: [{ name: 'home', index: 1 }] } } });
    assert.equal(result.response.execute.mboxes[0].name, 'home');
  } finally {
    client.close();
    await server.stop();
    await edge.stop();
  }
});
