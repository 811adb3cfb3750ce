'use strict';
// `npm pack` / `npm publish` hooks: `node scripts/protos.js copy` (prepack) puts the repository's
// protos/targetd/**/*.proto into the package's protos/ so the packed client needs nothing outside itself;
// `node scripts/protos.js clean` (postpack) removes the copy again, and the client in the repository goes
// back to ../../protos (src/codec.js). The copy is never committed (.gitignore).

const fs = require('node:fs');
const path = require('node:path');

const PACKAGE = path.resolve(__dirname, '..');
const SOURCE = path.resolve(PACKAGE, '..', '..', 'protos', 'targetd');
const TARGET = path.join(PACKAGE, 'protos');

function copy() {
  if (!fs.existsSync(SOURCE)) throw new Error(`no protos at ${SOURCE}: pack from the targetd repository`);
  fs.rmSync(TARGET, { recursive: true, force: true });
  fs.cpSync(SOURCE, path.join(TARGET, 'targetd'), {
    recursive: true,
    filter: (source) => fs.statSync(source).isDirectory() || source.endsWith('.proto'),
  });
}

function clean() {
  fs.rmSync(TARGET, { recursive: true, force: true });
}

const command = process.argv[2];
if (command === 'copy') copy();
else if (command === 'clean') clean();
else {
  console.error('usage: node scripts/protos.js copy|clean');
  process.exitCode = 2;
}
