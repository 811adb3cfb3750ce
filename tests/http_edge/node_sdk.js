// Adobe's Target Node SDK (@adobe/target-nodejs-sdk 2.4.3) in server-side mode, pointed at targetd's HTTP
// edge: serverDomain = targetd's HTTP address, secure: false. One getOffers (execute "home", prefetch
// "product1"), then sendNotifications of a display of the prefetched "product1".
//
//   NODE_PATH=<node_modules holding the SDK> node node_sdk.js HOST:PORT ORGANIZATION_ID CLIENT
//
// Prints one JSON object: {"offers": {response, meta}, "notified": {response}}.
"use strict";

const TargetClient = require("@adobe/target-nodejs-sdk");

const [serverDomain, organizationId, client] = process.argv.slice(2);
const logger = { debug() {}, error: (...args) => console.error(...args) };

async function main() {
  const target = TargetClient.create({
    client,
    organizationId,
    serverDomain,
    secure: false,
    decisioningMethod: "server-side",
    timeout: 5000,
    logger,
  });
  const sessionId = "node-sdk-session";
  const offers = await target.getOffers({
    sessionId,
    request: {
      context: { channel: "web", address: { url: "http://acme.example/home" } },
      execute: { mboxes: [{ name: "home", index: 1 }] },
      prefetch: { mboxes: [{ name: "product1", index: 1 }] },
    },
  });
  const token = offers.response.prefetch.mboxes[0].options[0].eventToken;
  const notified = await target.sendNotifications({
    sessionId,
    request: {
      context: { channel: "web", address: { url: "http://acme.example/home" } },
      notifications: [
        {
          id: "node-display-1",
          type: "display",
          timestamp: Date.now(),
          mbox: { name: "product1" },
          tokens: [token],
        },
      ],
    },
  });
  process.stdout.write(
    JSON.stringify({
      offers: { response: offers.response, meta: offers.meta },
      notified: { response: notified.response },
    }),
  );
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
