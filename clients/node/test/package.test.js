'use strict';
// The package as users get it: `npm pack` (prepack copies the protos in), installed into an empty directory
// outside the repository, required by name and called against a real targetd; its TypeScript declarations
// checked there with tsc on examples/typed.ts; the generated message types fresh.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { startEdge, startTargetd } = require('./support');

const run = promisify(execFile);
const PACKAGE = path.resolve(__dirname, '..');
const TSC = path.join(PACKAGE, 'node_modules', '.bin', 'tsc');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let work; // the temporary directory of the tarball and of `app`, removed at the end
let app; // the empty directory the packed client is installed into
let tarball;

test.after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test.before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'targetd-node-pack-'));
  const { stdout } = await run(NPM, ['pack', '--json', '--pack-destination', work], { cwd: PACKAGE });
  const [packed] = JSON.parse(stdout);
  tarball = { path: path.join(work, packed.filename), files: packed.files.map((f) => f.path) };
  app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball.path], {
    cwd: app,
    timeout: 300000,
  });
});

test('the tarball holds the code, the protos and the declarations, and nothing of the tests', () => {
  for (const file of ['src/index.js', 'src/codec.js', 'index.d.ts', 'types/messages.d.ts', 'package.json']) {
    assert.ok(tarball.files.includes(file), `${file} not packed`);
  }
  for (const proto of ['decisioning_service.proto', 'delivery.proto', 'json_options.proto']) {
    assert.ok(tarball.files.includes(`protos/targetd/v1/${proto}`), `${proto} not packed`);
  }
  assert.deepEqual(tarball.files.filter((f) => f.startsWith('test/') || f.startsWith('scripts/')), []);
  assert.equal(fs.existsSync(path.join(PACKAGE, 'protos')), false, 'postpack left the protos copy behind');
});

test('the installed package calls a real targetd from outside the repository', async () => {
  const edge = await startEdge();
  const server = await startTargetd(edge.address);
  const script = [
    "const { TargetClient } = require('@targetd/client');",
    'const client = TargetClient.create({ client: "acmeclient", organizationId: "1234567890@AdobeOrg", address: process.argv[1] });',
    'client.getOffers({ request: { execute: { mboxes: [{ name: "home", index: 1 }] } }, decisioningMethod: "server-side" })',
    '  .then((r) => console.log(JSON.stringify({ name: r.response.execute.mboxes[0].name, method: r.meta.decisioningMethod })))',
    '  .finally(() => client.close());',
  ].join('\n');
  try {
    const { stdout } = await run(process.execPath, ['-e', script, server.address], { cwd: app, timeout: 60000 });
    assert.deepEqual(JSON.parse(stdout), { name: 'home', method: 'server-side' });
    const resolved = require.resolve('@targetd/client', { paths: [app] });
    assert.ok(resolved.startsWith(path.join(app, 'node_modules')), resolved);
  } finally {
    await server.stop();
    await edge.stop();
  }
});

async function tsc(files) {
  const dir = fs.mkdtempSync(path.join(app, 'ts-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const config = { compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', types: [], lib: ['es2022'] }, files: Object.keys(files) };
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(config));
  try {
    await run(TSC, ['--noEmit', '-p', dir], { cwd: dir });
    return '';
  } catch (error) {
    return `${error.stdout}${error.stderr}`;
  }
}

test('tsc --noEmit accepts examples/typed.ts against the installed declarations', async () => {
  const example = fs.readFileSync(path.join(PACKAGE, 'examples', 'typed.ts'), 'utf8');
  assert.equal(await tsc({ 'typed.ts': example }), '');
});

test('tsc rejects a call the declarations do not allow', async () => {
  const wrong = [
    "import { TargetClient } from '@targetd/client';",
    "const client = TargetClient.create({ client: 'c', organizationId: 'o' });",
    "void client.getOffers({ request: { context: { channel: 'tv' } } });",
  ].join('\n');
  assert.match(await tsc({ 'wrong.ts': wrong }), /'"tv"' is not assignable/);
});

test('types/messages.d.ts is what the protos generate', async () => {
  await run(process.execPath, [path.join(PACKAGE, 'scripts', 'types.js'), '--check']);
});
