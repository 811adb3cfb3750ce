// TypeScript declarations of @targetd/client (src/index.js). The message shapes are generated from the
// protos (types/messages.d.ts, scripts/types.js); this file declares the client around them by hand.

import type {
  ArtifactInfo as ArtifactInfoMessage,
  CustomerId,
  DecisioningMethod,
  DeliveryRequest,
  GetStatusResponse,
  JsonObject,
  JsonValue,
  TargetDeliveryResponse as TargetDeliveryResponseMessage,
} from './types/messages';

export * from './types/messages';

/** The gRPC status codes (numbers), as @grpc/grpc-js's `status`. */
export declare const Status: {
  readonly OK: 0;
  readonly CANCELLED: 1;
  readonly UNKNOWN: 2;
  readonly INVALID_ARGUMENT: 3;
  readonly DEADLINE_EXCEEDED: 4;
  readonly NOT_FOUND: 5;
  readonly ALREADY_EXISTS: 6;
  readonly PERMISSION_DENIED: 7;
  readonly RESOURCE_EXHAUSTED: 8;
  readonly FAILED_PRECONDITION: 9;
  readonly ABORTED: 10;
  readonly OUT_OF_RANGE: 11;
  readonly UNIMPLEMENTED: 12;
  readonly INTERNAL: 13;
  readonly UNAVAILABLE: 14;
  readonly DATA_LOSS: 15;
  readonly UNAUTHENTICATED: 16;
};

/** Every error a call rejects with: the gRPC status of targetd's answer. */
export declare class TargetdError extends Error {
  readonly name: 'TargetdError';
  /** The numeric gRPC status code (see `Status`). */
  readonly code: number;
  /** The code's name, e.g. "INVALID_ARGUMENT". */
  readonly codeName: string;
  readonly details: string;
  /** The offending request field (INVALID_ARGUMENT). */
  readonly field?: string;
  /** Target's HTTP status when targetd's upstream call failed. */
  readonly upstreamStatus?: number;
}

/** ArtifactInfo with `source` as the Python client spells it. */
export type ArtifactInfo = Omit<ArtifactInfoMessage, 'source'> & {
  source?: 'remote' | 'file' | 'payload' | 'disk_cache';
};

export type EventName =
  | 'clientReady'
  | 'artifactDownloadSucceeded'
  | 'artifactDownloadFailed'
  | 'geoLocationUpdated'
  | 'state'
  | 'heartbeat'
  | 'shutdown';

export interface TargetEvent {
  type: EventName | 'unknown';
  sequence: number;
  time?: Date;
  artifactLocation?: string;
  artifact?: ArtifactInfo;
  /** The artifact JSON (artifactDownloadSucceeded with `includeArtifactPayload`). */
  artifactPayload?: JsonValue;
  /** artifactDownloadFailed: the failure, with `kind` and `httpStatus`. */
  error?: Error & { kind?: string; httpStatus?: number };
  geoContext?: JsonObject;
  /** state: whether targetd can serve decisions. */
  ready?: boolean;
}

export type EventHandlers = { [name in EventName]?: (event: TargetEvent) => void };

export interface TargetClientOptions {
  client: string;
  organizationId: string;
  decisioningMethod?: DecisioningMethod;
  /** Deadline of every call, ms (default 3000). */
  timeout?: number;
  targetLocationHint?: string;
  events?: EventHandlers;
  /** host:port of targetd (default TARGETD_ADDRESS, else 127.0.0.1:50051). */
  address?: string;
  tls?: boolean;
  /** PEM text, a path to a PEM file, or the bytes. */
  tlsRootCertificates?: string | Uint8Array;
  tlsClientCertificate?: string | Uint8Array;
  tlsClientKey?: string | Uint8Array;
  tlsServerName?: string;
  authToken?: string;
  includeArtifactPayload?: boolean;
  reconnectInitialDelay?: number;
  reconnectMaxDelay?: number;
  /** grpc-js channel options, e.g. `{ 'grpc.service_config': '{"loadBalancingConfig":[{"round_robin":{}}]}' }`. */
  channelOptions?: { [name: string]: string | number };
  /** Directory holding targetd/v1/*.proto (default: the package's own copy). */
  protosDir?: string;
  logger?: { warn(message: string): void; error(message: string): void };
}

/** The options of one call (the SDK's names). */
export interface CallOptions {
  request: DeliveryRequest;
  targetCookie?: string;
  targetLocationHint?: string;
  consumerId?: string;
  customerIds?: CustomerId[];
  sessionId?: string;
  decisioningMethod?: DecisioningMethod;
  /** This call's deadline, ms. */
  timeout?: number;
}

/** The SDK's TargetDeliveryResponse; the lists and `meta` are always there. */
export type TargetDeliveryResponse = TargetDeliveryResponseMessage &
  Required<Pick<TargetDeliveryResponseMessage, 'analyticsDetails' | 'trace' | 'responseTokens'>> & {
    meta: { decisioningMethod?: DecisioningMethod; remoteMboxes: string[]; remoteViews: string[] };
  };

/** Node's AttributesProvider. */
export interface AttributesProvider {
  /** The attribute's value, or an Error (returned, not thrown) when the mbox or key is missing. */
  getValue(mboxName: string, key: string): JsonValue | Error;
  asObject(): { [mbox: string]: JsonObject };
  asObject(mboxName: string): JsonObject;
  toJSON(): { [mbox: string]: JsonObject };
  getResponse(): TargetDeliveryResponse;
}

export type Status = Omit<GetStatusResponse, 'artifact'> & { artifact?: ArtifactInfo };

export declare class TargetClient {
  private constructor();
  /** Validates the options (the SDK's messages; throws Error) and returns a client at once. */
  static create(options: TargetClientOptions): TargetClient;
  getOffers(options: CallOptions): Promise<TargetDeliveryResponse>;
  getAttributes(mboxNames: string[], options?: Partial<CallOptions>): Promise<AttributesProvider>;
  sendNotifications(options: Omit<CallOptions, 'decisioningMethod'>): Promise<TargetDeliveryResponse>;
  getStatus(options?: { timeout?: number }): Promise<Status>;
  /** The raw SubscribeEvents stream, no reconnect; `onEnd(null)` on a normal end. */
  subscribeEvents(
    filter: { types?: EventName[]; includeArtifactPayload?: boolean },
    onEvent: (event: TargetEvent) => void,
    onEnd?: (error: TargetdError | null) => void,
  ): { cancel(): void };
  /** Stops the event subscription and closes the channel. */
  close(): void;
}

export declare const RPC_METHODS: {
  readonly GetOffers: 'getOffers';
  readonly GetAttributes: 'getAttributes';
  readonly SendNotifications: 'sendNotifications';
  readonly SubscribeEvents: 'subscribeEvents';
  readonly GetStatus: 'getStatus';
};

export declare const EVENT_NAMES: { readonly [type: string]: EventName };
