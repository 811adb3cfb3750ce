// The client from TypeScript (checked by `npm run typecheck`, and from the packed package by
// test/package.test.js): the example of the README's Node section, typed.
import { TargetClient, TargetdError, Status, type DeliveryRequest, type TargetEvent } from '@targetd/client';

export async function main(address: string): Promise<string> {
  const client = TargetClient.create({
    client: 'acmeclient',
    organizationId: '1234567890@AdobeOrg',
    address,
    decisioningMethod: 'on-device',
    events: { clientReady: (event: TargetEvent) => void event.sequence },
  });
  try {
    const request: DeliveryRequest = {
      context: { channel: 'web' },
      execute: { mboxes: [{ name: 'home', index: 1 }] },
    };
    const result = await client.getOffers({ request, sessionId: 'session-1' });
    const options = result.response?.execute?.mboxes?.[0]?.options ?? [];
    const attributes = await client.getAttributes(['home']);
    const flag = attributes.getValue('home', 'flag');
    const status = await client.getStatus();
    return `${options.length} ${result.meta.decisioningMethod} ${String(flag)} ${status.artifact?.source}`;
  } catch (error) {
    if (error instanceof TargetdError && error.code === Status.UNAVAILABLE) return 'not ready';
    throw error;
  } finally {
    client.close();
  }
}
