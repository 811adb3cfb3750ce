'use strict';
// Client-side load balancing as docs/operations.md shows it for a headless Service: one client, a target
// that resolves to several replicas, the round_robin policy through `channelOptions` — its calls reach
// every replica. (Loopback stands in for the pods' addresses: the `ipv4:` resolver with two ports, where a
// cluster's DNS would answer with two pod IPs.)

const test = require('node:test');
const assert = require('node:assert/strict');
const { TargetClient } = require('../src');
const { startEdge, startTargetd } = require('./support');

const ROUND_ROBIN = { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) };

test('round_robin over two replicas: one client reaches both', async () => {
  const edge = await startEdge();
  const first = await startTargetd(edge.address, '--client', 'replica-one');
  const second = await startTargetd(edge.address, '--client', 'replica-two');
  const ports = [first, second].map((s) => s.address.split(':').pop());
  const target = `ipv4:${ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
  const balanced = TargetClient.create({ client: 'c', organizationId: 'o', address: target, channelOptions: ROUND_ROBIN });
  const pinned = TargetClient.create({ client: 'c', organizationId: 'o', address: target }); // pick_first
  try {
    const seen = new Set();
    for (let i = 0; i < 20 && seen.size < 2; i += 1) seen.add((await balanced.getStatus()).client);
    assert.deepEqual([...seen].sort(), ['replica-one', 'replica-two']);
    const pinnedSeen = new Set();
    for (let i = 0; i < 10; i += 1) pinnedSeen.add((await pinned.getStatus()).client);
    assert.equal(pinnedSeen.size, 1, 'without round_robin one connection takes every call');
  } finally {
    balanced.close();
    pinned.close();
    await first.stop();
    await second.stop();
    await edge.stop();
  }
});
