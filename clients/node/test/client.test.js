'use strict';
// The Node client against a real targetd (on-device, artifact from the local edge stand-in, notifications to
// its Delivery API), started as child processes.

const test = require('node:test');
const assert = require('node:assert/strict');
const { TargetClient, TargetdError, RPC_METHODS, EVENT_NAMES, Status } = require('../src');
const { loadRoot } = require('../src/codec');
const { startEdge, startTargetd, getJson, eventually } = require('./support');

const ORG = '1234567890@AdobeOrg';
let edge;
let server;
let client;

test.before(async () => {
  edge = await startEdge();
  server = await startTargetd(edge.address);
  client = TargetClient.create({ client: 'acmeclient', organizationId: ORG, address: server.address });
  await eventually(async () => (await client.getStatus()).ready);
});

test('getStatus reports the artifact applied', async () => {
  const status = await client.getStatus();
  assert.equal(status.ready, true);
  assert.equal(status.decisioningMethod, 'on-device');
  assert.equal(status.artifact.source, 'remote');
  assert.equal(status.artifact.clientCode, 'acmeclient');
  assert.equal(typeof status.artifact.sizeBytes, 'number');
  assert.ok(status.lastFetchTime instanceof Date);
});

test.after(async () => {
  if (client) client.close();
  if (server) await server.stop();
  if (edge) await edge.stop();
});

test('every RPC of the service has a client method, and every client method an RPC', () => {
  const service = loadRoot().lookupService('targetd.v1.DecisioningService');
  assert.deepEqual(Object.keys(RPC_METHODS).sort(), service.methodsArray.map((m) => m.name).sort());
  const methods = Object.getOwnPropertyNames(TargetClient.prototype).filter(
    (name) => !name.startsWith('_') && !['constructor', 'close'].includes(name),
  );
  assert.deepEqual(methods.sort(), Object.values(RPC_METHODS).sort());
  const eventTypes = loadRoot().lookupEnum('targetd.v1.EventType').values;
  assert.deepEqual(
    Object.keys(EVENT_NAMES).sort(),
    Object.keys(eventTypes).filter((name) => !name.endsWith('UNSPECIFIED')).sort(),
  );
});

test('create validates options with the SDK messages', () => {
  assert.throws(() => TargetClient.create(), /Options map is required/);
  assert.throws(() => TargetClient.create({ organizationId: ORG }), /Client is required/);
  assert.throws(() => TargetClient.create({ client: 'c' }), /Organization Id is required/);
  assert.throws(
    () => TargetClient.create({ client: 'c', organizationId: ORG, decisioningMethod: 'x' }),
    /Invalid Decisioning Method\. {2}Must be set to one of: server-side,on-device,hybrid/,
  );
  assert.throws(() => new TargetClient({}), /Please use TargetClient.create static method instead/);
});

test('getOffers returns the TargetDeliveryResponse as Delivery API JSON', async () => {
  const result = await client.getOffers({
    request: { context: { channel: 'web' }, execute: { mboxes: [{ name: 'home', index: 1 }] } },
    sessionId: 's1',
  });
  const mbox = result.response.execute.mboxes[0];
  assert.equal(mbox.name, 'home');
  assert.equal(mbox.options[0].type, 'json');
  assert.equal(typeof mbox.options[0].content, 'object');
  assert.equal(result.meta.decisioningMethod, 'on-device');
  assert.equal(result.targetCookie.name, 'mbox');
  assert.match(result.targetCookie.value, /session#s1#/);
});

test('getAttributes returns the attributes provider', async () => {
  const attributes = await client.getAttributes(['home']);
  const home = attributes.asObject('home');
  assert.ok(Object.keys(home).length > 0);
  const [key] = Object.keys(home);
  assert.deepEqual(attributes.getValue('home', key), home[key]);
  const missing = attributes.getValue('home', 'nope');
  assert.ok(missing instanceof Error);
  assert.equal(missing.message, "Attribute 'nope' does not exist for mbox 'home'");
  assert.equal(attributes.getResponse().response.execute.mboxes[0].name, 'home');
  assert.deepEqual(attributes.toJSON(), attributes.asObject());
});

test('prefetch, then sendNotifications reaches the Delivery API', async () => {
  const prefetched = await client.getOffers({ request: { prefetch: { mboxes: [{ name: 'product1', index: 1 }] } } });
  const mbox = prefetched.response.prefetch.mboxes[0];
  const token = mbox.options[0].eventToken;
  assert.ok(token);
  const sent = await client.sendNotifications({
    request: {
      notifications: [
        { id: 'node-1', type: 'display', timestamp: Date.now(), mbox: { name: 'product1' }, tokens: [token] },
      ],
    },
  });
  assert.equal(sent.meta.decisioningMethod, 'server-side');
  const received = await eventually(async () =>
    (await getJson(`http://${edge.address}/_edge/notifications`)).find((n) => n.notification.id === 'node-1'),
  );
  assert.equal(received.notification.type, 'display');
  assert.deepEqual(received.notification.tokens, [token]);
});

test('errors carry the gRPC code and the field', async () => {
  await assert.rejects(client.getOffers({ request: { execute: {} } }), (error) => {
    assert.ok(error instanceof TargetdError);
    assert.equal(error.code, Status.INVALID_ARGUMENT);
    assert.equal(error.codeName, 'INVALID_ARGUMENT');
    assert.equal(error.field, 'request.execute');
    return true;
  });
  await assert.rejects(client.getOffers({ request: { context: { channel: 'tv' } } }), /'tv' is not one of: mobile, web/);
});

test('events: clientReady without an argument, artifactDownloadSucceeded with its location', async () => {
  const seen = [];
  const events = TargetClient.create({
    client: 'acmeclient',
    organizationId: ORG,
    address: server.address,
    events: {
      clientReady: () => seen.push('clientReady'),
      artifactDownloadSucceeded: (event) => seen.push(event),
    },
  });
  try {
    await eventually(() => seen.includes('clientReady') && seen.find((e) => e.type === 'artifactDownloadSucceeded'));
    const downloaded = seen.find((e) => e.type === 'artifactDownloadSucceeded');
    assert.equal(downloaded.artifactLocation, `http://${edge.address}/acmeclient/production/v1/rules.json`);
  } finally {
    events.close();
  }
});

test('subscribeEvents streams the raw events, state first', async () => {
  const seen = [];
  const subscription = client.subscribeEvents({ types: ['clientReady'] }, (event) => seen.push(event));
  try {
    await eventually(() => seen.length >= 2);
    assert.equal(seen[0].type, 'state');
    assert.equal(seen[0].ready, true);
    assert.equal(seen[1].type, 'clientReady');
  } finally {
    subscription.cancel();
  }
});

test('a unary call encodes its request once (validation and the wire share the bytes)', async () => {
  const encode = client.codec.encode;
  const encoded = [];
  client.codec.encode = function counted(typeName, data) {
    encoded.push(typeName);
    return encode.call(this, typeName, data);
  };
  try {
    const result = await client.getOffers({ request: { execute: { mboxes: [{ name: 'home', index: 1 }] } } });
    assert.equal(result.response.execute.mboxes[0].name, 'home');
    await client.getStatus();
  } finally {
    client.codec.encode = encode;
  }
  assert.deepEqual(encoded, ['targetd.v1.GetOffersRequest', 'targetd.v1.GetStatusRequest']);
});
