'use strict';
// Real processes for the tests: the local Target edge stand-in (`targetd-edge`) and `targetd serve`, both on
// ephemeral loopback ports, started from PYTHON_BIN (the project's virtualenv bin directory).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');

const REPO = path.resolve(__dirname, '..', '..', '..');
const PYTHON_BIN = process.env.PYTHON_BIN || path.join(REPO, '.venv', 'bin');

function start(program, args, banner) {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(PYTHON_BIN, program), args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${banner} did not start: ${err}`));
    }, 20000);
    child.stderr.on('data', (chunk) => {
      err += chunk;
    });
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = out.match(new RegExp(`${banner} (\\S+)`));
      if (match) {
        clearTimeout(timer);
        resolve({ child, address: match[1], stop: () => stop(child) });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${banner}: exited with ${code}: ${err}`));
    });
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.removeAllListeners('exit');
    child.on('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function startEdge() {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'targetd-node-edge-'));
  const args = ['--listen', '127.0.0.1:0', '--root', path.join(REPO, 'deploy', 'sample'), '--data-dir', data];
  return start('targetd-edge', args, 'targetd edge listening on');
}

async function startTargetd(edgeAddress, ...extra) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'targetd-node-'));
  const port = edgeAddress.split(':').pop();
  const args = [
    'serve', '--listen', '127.0.0.1:0', '--client', 'acmeclient', '--organization-id', '1234567890@AdobeOrg',
    '--decisioning-method', 'on-device', '--cdn-base-path', `http://${edgeAddress}`,
    '--server-domain', edgeAddress, '--edge-host-template', `localhost:${port}`, '--secure', 'false',
    '--polling-interval', '0', '--data-dir', data, '--log-format', 'text', ...extra,
  ];
  return start('targetd', args, 'targetd listening on');
}

function getJson(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => resolve(JSON.parse(body || 'null')));
      })
      .on('error', reject);
  });
}

// Poll `check` until it returns a truthy value (bounded; no bare sleeps in the tests themselves).
async function eventually(check, timeoutMs = 10000, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = new Error('condition still false');
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) throw last;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

module.exports = { REPO, startEdge, startTargetd, getJson, eventually };
