'use strict';
// Token auth and TLS against a real targetd (certificates made with trustme from the project's virtualenv).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { TargetClient, Status } = require('../src');
const { startEdge, startTargetd } = require('./support');

const PYTHON_BIN = process.env.PYTHON_BIN || path.resolve(__dirname, '..', '..', '..', '.venv', 'bin');
const BASE = { client: 'acmeclient', organizationId: '1234567890@AdobeOrg' };
let edge;

test.before(async () => {
  edge = await startEdge();
});

test.after(async () => {
  if (edge) await edge.stop();
});

test('authToken is sent as a bearer token', async () => {
  const server = await startTargetd(edge.address, '--auth-token', 's3cret');
  const anonymous = TargetClient.create({ ...BASE, address: server.address });
  const authorized = TargetClient.create({ ...BASE, address: server.address, authToken: 's3cret' });
  try {
    await assert.rejects(anonymous.getStatus(), (error) => error.code === Status.UNAUTHENTICATED);
    assert.equal((await authorized.getStatus()).client, 'acmeclient');
  } finally {
    anonymous.close();
    authorized.close();
    await server.stop();
  }
});

test('TLS with tlsRootCertificates', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'targetd-node-tls-'));
  const script = [
    'import sys, trustme',
    'ca = trustme.CA()',
    'cert = ca.issue_cert("127.0.0.1", "localhost")',
    'd = sys.argv[1]',
    'ca.cert_pem.write_to_path(d + "/ca.pem")',
    'cert.private_key_pem.write_to_path(d + "/key.pem")',
    'cert.cert_chain_pems[0].write_to_path(d + "/cert.pem")',
  ].join('\n');
  execFileSync(path.join(PYTHON_BIN, 'python'), ['-c', script, dir]);
  const server = await startTargetd(
    edge.address, '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem'),
  );
  const secure = TargetClient.create({ ...BASE, address: server.address, tlsRootCertificates: path.join(dir, 'ca.pem') });
  const plaintext = TargetClient.create({ ...BASE, address: server.address, timeout: 2000 });
  try {
    assert.equal((await secure.getStatus()).client, 'acmeclient');
    await assert.rejects(plaintext.getStatus());
  } finally {
    secure.close();
    plaintext.close();
    await server.stop();
  }
});
