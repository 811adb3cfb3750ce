'use strict';
// @targetd/client: Adobe Target's Node SDK operations served by targetd over gRPC.
//
//   const { TargetClient } = require('@targetd/client');
//   const client = TargetClient.create({ client: 'acmeclient', organizationId: '1234567890@AdobeOrg',
//                                        address: '127.0.0.1:50051', events: { clientReady: () => {} } });
//   const { response } = await client.getOffers({ request: { execute: { mboxes: [{ name: 'home', index: 1 }] } } });
//
// Requests and responses are Delivery API JSON (camelCase, enum strings such as "web" / "display").
// The protos are loaded at runtime (the package's protos/, or ../../protos in the repository; option
// `protosDir`) with protobufjs and called with @grpc/grpc-js; see README.md for why.

const grpc = require('@grpc/grpc-js');
const fs = require('node:fs');
const { Codec, loadRoot } = require('./codec');
const { TargetdError, fromServiceError, Status } = require('./errors');
const { EVENT_NAMES, EventSubscription, toEvent, artifactInfo } = require('./events');

const SERVICE = 'targetd.v1.DecisioningService';
const DEFAULT_ADDRESS = '127.0.0.1:50051';
const DEFAULT_TIMEOUT_MS = 3000;
const METHODS = ['server-side', 'on-device', 'hybrid'];

// The client method of every RPC of targetd.v1.DecisioningService.
const RPC_METHODS = {
  GetOffers: 'getOffers',
  GetAttributes: 'getAttributes',
  SendNotifications: 'sendNotifications',
  SubscribeEvents: 'subscribeEvents',
  GetStatus: 'getStatus',
};

const CALL_OPTIONS = ['targetCookie', 'targetLocationHint', 'consumerId', 'customerIds', 'sessionId'];

let shared = null; // one Codec per process for the default protos

function codecFor(protosDir) {
  if (protosDir) return new Codec(loadRoot(protosDir));
  if (!shared) shared = new Codec(loadRoot());
  return shared;
}

// A request already encoded by TargetClient._unary (validated there, so it is encoded once per call).
class Encoded {
  constructor(bytes) {
    this.bytes = bytes;
  }
}

// A grpc-js client constructor built from the service's reflection; (de)serialisation through the codec.
function serviceClient(codec) {
  const service = codec.root.lookupService(SERVICE);
  const definition = {};
  for (const method of service.methodsArray) {
    const requestType = method.resolvedRequestType.fullName.slice(1);
    const responseType = method.resolvedResponseType.fullName.slice(1);
    definition[method.name] = {
      path: `/${SERVICE}/${method.name}`,
      requestStream: Boolean(method.requestStream),
      responseStream: Boolean(method.responseStream),
      requestSerialize: (request) => (request instanceof Encoded ? request.bytes : codec.encode(requestType, request)),
      responseDeserialize: (buffer) => codec.decode(responseType, buffer),
    };
  }
  return grpc.makeGenericClientConstructor(definition, SERVICE);
}

function readPem(value) {
  if (value === undefined || value === null) return null;
  if (Buffer.isBuffer(value)) return value;
  const text = String(value);
  return text.trimStart().startsWith('-----BEGIN') ? Buffer.from(text) : fs.readFileSync(text);
}

function validateOptions(options) {
  if (!options) throw new Error('Options map is required');
  if (!options.client) throw new Error('Client is required');
  if (!options.organizationId) throw new Error('Organization Id is required');
  if (options.decisioningMethod !== undefined && !METHODS.includes(options.decisioningMethod)) {
    throw new Error(`Invalid Decisioning Method.  Must be set to one of: ${METHODS.join(',')}`);
  }
  for (const name of Object.keys(options.events || {})) {
    if (!Object.values(EVENT_NAMES).includes(name)) {
      throw new Error(`Unknown event name '${name}'; use one of: ${Object.values(EVENT_NAMES).join(', ')}`);
    }
  }
}

class TargetClient {
  // Use TargetClient.create(options).
  constructor(options, internal) {
    if (internal !== TargetClient) throw new Error('Please use TargetClient.create static method instead');
    this.options = options;
    this.codec = codecFor(options.protosDir);
    const Client = serviceClient(this.codec);
    const root = readPem(options.tlsRootCertificates);
    const key = readPem(options.tlsClientKey);
    const cert = readPem(options.tlsClientCertificate);
    const credentials =
      options.tls || root || cert ? grpc.credentials.createSsl(root, key, cert) : grpc.credentials.createInsecure();
    const channelOptions = {
      'grpc.initial_reconnect_backoff_ms': options.reconnectInitialDelay || 250,
      'grpc.max_reconnect_backoff_ms': options.reconnectMaxDelay || 15000,
      ...(options.tlsServerName ? { 'grpc.ssl_target_name_override': options.tlsServerName } : {}),
      ...(options.channelOptions || {}), // e.g. round_robin over a headless Service (docs/operations.md)
    };
    this.stub = new Client(options.address || process.env.TARGETD_ADDRESS || DEFAULT_ADDRESS, credentials, channelOptions);
    this.timeoutMs = options.timeout === undefined ? DEFAULT_TIMEOUT_MS : options.timeout;
    this.subscription = null;
    if (options.events && Object.keys(options.events).length) {
      this.subscription = new EventSubscription(
        () => this.stub.SubscribeEvents({ includeArtifactPayload: Boolean(options.includeArtifactPayload) }, this._metadata()),
        (type) => type,
        options.events,
        { initialDelayMs: options.reconnectInitialDelay, maxDelayMs: options.reconnectMaxDelay, logger: options.logger },
      );
    }
  }

  // Validate the options (the SDK's messages) and return a client at once; `events.clientReady` fires when
  // targetd can serve decisions. Options: client, organizationId (required), decisioningMethod, timeout (ms,
  // the deadline of every call), targetLocationHint, events, plus address, tls / tlsRootCertificates /
  // tlsClientCertificate / tlsClientKey / tlsServerName, authToken, includeArtifactPayload,
  // reconnectInitialDelay / reconnectMaxDelay (ms), channelOptions (grpc-js channel options), protosDir.
  // Throws Error on invalid options.
  static create(options) {
    validateOptions(options);
    return new TargetClient(options, TargetClient);
  }

  _metadata() {
    const metadata = new grpc.Metadata();
    if (this.options.authToken) metadata.set('authorization', `Bearer ${this.options.authToken}`);
    return metadata;
  }

  _unary(method, request, timeoutMs) {
    const deadline = new Date(Date.now() + (timeoutMs === undefined ? this.timeoutMs : timeoutMs));
    return new Promise((resolve, reject) => {
      let payload;
      try {
        // Encoded (and so validated) here, once: requestSerialize passes the bytes through.
        payload = new Encoded(this.codec.encode(`targetd.v1.${method}Request`, request));
      } catch (error) {
        reject(new TargetdError(error.message, { code: Status.INVALID_ARGUMENT }));
        return;
      }
      this.stub[method](payload, this._metadata(), { deadline }, (error, reply) => {
        if (error) reject(fromServiceError(error));
        else resolve(reply);
      });
    });
  }

  _callRequest(options, { withMethod = true } = {}) {
    const request = {};
    for (const name of CALL_OPTIONS) if (options[name] !== undefined) request[name] = options[name];
    if (request.targetLocationHint === undefined && this.options.targetLocationHint) {
      request.targetLocationHint = this.options.targetLocationHint;
    }
    const method = options.decisioningMethod || this.options.decisioningMethod;
    if (withMethod && method) request.decisioningMethod = method;
    if (options.request) request.request = options.request;
    return request;
  }

  // The SDK's getOffers: resolves to the TargetDeliveryResponse ({ request, response, targetCookie,
  // targetLocationHintCookie, analyticsDetails, trace, responseTokens, meta }); rejects with TargetdError.
  async getOffers(options) {
    if (!options) throw new Error('Options map is required');
    if (!options.request) throw new Error('Request object is required');
    const reply = await this._unary('GetOffers', this._callRequest(options), options.timeout);
    return envelope(reply.envelope);
  }

  // The SDK's getAttributes: resolves to { getValue(mbox, key), asObject(mbox?), toJSON(), getResponse() }.
  async getAttributes(mboxNames, options = {}) {
    if (!Array.isArray(mboxNames)) throw new Error('mboxNames must be an array of mbox names');
    const request = { mboxNames: [...mboxNames], ...this._callRequest(options) };
    const reply = await this._unary('GetAttributes', request, options.timeout);
    return attributesProvider(reply.attributes || {}, envelope(reply.envelope));
  }

  // The SDK's sendNotifications (always server-side): options.request.notifications is required.
  async sendNotifications(options) {
    if (!options) throw new Error('Options map is required');
    if (!options.request) throw new Error('Request object is required');
    const reply = await this._unary('SendNotifications', this._callRequest(options, { withMethod: false }), options.timeout);
    return envelope(reply.envelope);
  }

  // targetd's status (GetStatus): { ready, decisioningMethod, artifact, lastError, version, client, ... }.
  async getStatus(options = {}) {
    const status = await this._unary('GetStatus', {}, options.timeout);
    if (status.artifact) status.artifact = artifactInfo(status.artifact);
    return status;
  }

  // The raw SubscribeEvents stream, no reconnect: onEvent(event) for each event (state first); returns
  // { cancel() }. `types` are event names (e.g. ['clientReady']); onEnd(error|null) when the stream ends.
  subscribeEvents({ types = [], includeArtifactPayload = false } = {}, onEvent, onEnd = () => {}) {
    const byName = Object.fromEntries(Object.entries(EVENT_NAMES).map(([type, name]) => [name, type]));
    const call = this.stub.SubscribeEvents(
      { types: types.map((name) => byName[name] || name), includeArtifactPayload },
      this._metadata(),
    );
    call.on('data', (response) => onEvent(toEvent(response.event || {}, (type) => type)));
    call.on('error', (error) => onEnd(error.code === Status.CANCELLED ? null : fromServiceError(error)));
    call.on('end', () => onEnd(null));
    return { cancel: () => call.cancel() };
  }

  // Stop the event subscription and close the channel.
  close() {
    if (this.subscription) this.subscription.close();
    this.stub.close();
  }
}

function envelope(json = {}) {
  const out = { ...json };
  out.analyticsDetails = json.analyticsDetails || [];
  out.trace = json.trace || [];
  out.responseTokens = json.responseTokens || [];
  const meta = json.meta || {};
  out.meta = {
    decisioningMethod: meta.decisioningMethod,
    remoteMboxes: meta.remoteMboxes || [],
    remoteViews: meta.remoteViews || [],
  };
  return out;
}

// Node's AttributesProvider: getValue returns (does not throw) an Error for a missing attribute.
function attributesProvider(attributes, response) {
  return {
    getValue(mboxName, key) {
      const values = attributes[mboxName];
      if (!values || !(key in values)) return new Error(`Attribute '${key}' does not exist for mbox '${mboxName}'`);
      return values[key];
    },
    asObject(mboxName) {
      return mboxName ? attributes[mboxName] || {} : attributes;
    },
    toJSON() {
      return attributes;
    },
    getResponse() {
      return response;
    },
  };
}

module.exports = { TargetClient, TargetdError, RPC_METHODS, EVENT_NAMES, Status };
