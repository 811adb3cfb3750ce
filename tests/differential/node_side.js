// The differential test's Node side: Adobe's Target Node SDK (@adobe/target-nodejs-sdk, pinned in
// package-lock.json) on-device with artifactPayload, answering the requests of a cases file.
//
//   node node_side.js CASES.json OUT.json [CASES2.json OUT2.json ...]
//
// CASES.json: {"client", "organizationId", "nowMs", "artifact": {...}, "cases": [{"request", "sessionId"}]}
// OUT.json:   [{"result": {response, meta, ...} | null, "error": string | null, "notifications": [body...]}]
//
// The clock is fixed at nowMs (Date.now and a Date built without arguments); every HTTP call the SDK makes
// goes through the fetchApi option and never leaves the process: Delivery API calls (the display
// notifications and telemetry) are recorded and answered with an empty 200, anything else gets a 404.
"use strict";

const fs = require("fs");

const paths = process.argv.slice(2);
const specs = [];
for (let i = 0; i + 1 < paths.length; i += 2) {
  specs.push({ spec: JSON.parse(fs.readFileSync(paths[i], "utf8")), outPath: paths[i + 1] });
}

const RealDate = Date;
const NOW = specs[0].spec.nowMs; // one fixed clock for the whole run
class FixedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(NOW);
    else super(...args);
  }
  static now() {
    return NOW;
  }
}
global.Date = FixedDate;

const TargetClient = require("@adobe/target-nodejs-sdk");

let captured = [];
let spec = null;

function fakeResponse(status, body) {
  const text = JSON.stringify(body);
  return Promise.resolve({
    ok: status >= 200 && status < 300,
    status,
    statusText: status === 200 ? "OK" : "Not Found",
    headers: { get: () => null, has: () => false, forEach: () => {} },
    json: () => Promise.resolve(JSON.parse(text)),
    text: () => Promise.resolve(text),
  });
}

function fetchApi(url, init) {
  const address = String(url);
  if (address.includes("/rest/v1/delivery")) {
    const body = JSON.parse(init.body);
    captured.push(body);
    return fakeResponse(200, { status: 200, requestId: body.requestId, client: spec.client, id: body.id || {} });
  }
  return fakeResponse(404, { message: "not found" });
}

function nextTurn() {
  // The engine sends its notification request from a setTimeout(0); its fetch follows within the
  // promise jobs of that timer, which run before this timer's callback.
  return new Promise((resolve) => setTimeout(() => setImmediate(resolve), 1));
}

async function runOne(outPath) {
  // A payload the SDK refuses (an unsupported version) never makes it ready: after 5 s the cases run
  // anyway and each getOffers gets the SDK's not-ready error.
  let created = null;
  const ready = new Promise((resolve) => {
    const client = TargetClient.create({
      client: spec.client,
      organizationId: spec.organizationId,
      decisioningMethod: "on-device",
      artifactPayload: spec.artifact,
      pollingInterval: 0,
      telemetryEnabled: false,
      fetchApi,
      logger: { debug() {}, error() {} },
      events: { clientReady: () => resolve(client) },
    });
    created = client;
    setTimeout(() => resolve(created), 5000).unref();
  });
  const client = await ready;
  await nextTurn();
  captured = [];
  const out = [];
  for (const item of spec.cases) {
    let result = null;
    let error = null;
    try {
      const options = { request: item.request };
      if (item.sessionId) options.sessionId = item.sessionId;
      const answer = await client.getOffers(options);
      result = {
        response: answer.response,
        meta: answer.meta,
        targetCookie: answer.targetCookie,
        targetLocationHintCookie: answer.targetLocationHintCookie,
      };
    } catch (e) {
      error = String((e && e.message) || e);
    }
    await nextTurn();
    out.push({ result, error, notifications: captured });
    captured = [];
  }
  fs.writeFileSync(outPath, JSON.stringify(out));
}

async function main() {
  for (const item of specs) {
    spec = item.spec;
    await runOne(item.outPath);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  },
);
