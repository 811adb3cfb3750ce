'use strict';
// targetd from Node: getOffers, sendNotifications, getAttributes and the clientReady event.
// Run targetd first (`make run`), then: node examples/node_client.js   (TARGETD_ADDRESS=host:port to point elsewhere)
// Needs the client's npm packages: make -C clients/node install

const { TargetClient } = require('../clients/node/src');

async function main() {
  let onReady;
  const ready = new Promise((resolve) => {
    onReady = resolve;
  });
  const client = TargetClient.create({
    client: 'acmeclient',
    organizationId: '1234567890@AdobeOrg',
    address: process.env.TARGETD_ADDRESS || '127.0.0.1:50051',
    events: { clientReady: () => onReady() },
  });
  try {
    await ready;
    console.log('client ready');
    const result = await client.getOffers({ request: { prefetch: { mboxes: [{ name: 'product1', index: 1 }] } } });
    const mbox = result.response.prefetch.mboxes[0];
    const option = mbox.options[0];
    console.log(`${mbox.name}: ${JSON.stringify(option.content)} via ${result.meta.decisioningMethod}`);

    await client.sendNotifications({
      request: {
        notifications: [
          { id: 'example-1', type: 'display', timestamp: Date.now(), mbox: { name: mbox.name }, tokens: [option.eventToken] },
        ],
      },
    });
    console.log('display notification sent');

    const attributes = await client.getAttributes(['home']);
    console.log(`home attributes: ${JSON.stringify(attributes.asObject('home'))}`);
  } finally {
    client.close();
  }
}

main().catch((error) => {
  console.error(`targetd call failed: ${error.message}`);
  process.exitCode = 1;
});
