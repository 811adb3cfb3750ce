'use strict';
// SubscribeEvents -> the `events` callbacks (Node SDK names: clientReady, artifactDownloadSucceeded, ...),
// reconnecting with capped exponential backoff and jitter. The same per-connection rules as the Python
// client (clients/python/src/targetd_client/_events.py): clientReady once per connection when the server is
// ready (so again after a reconnect); replayed events passed on only when new to this client.

const EVENT_NAMES = {
  EVENT_TYPE_CLIENT_READY: 'clientReady',
  EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED: 'artifactDownloadSucceeded',
  EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED: 'artifactDownloadFailed',
  EVENT_TYPE_GEO_LOCATION_UPDATED: 'geoLocationUpdated',
  EVENT_TYPE_STATE: 'state',
  EVENT_TYPE_HEARTBEAT: 'heartbeat',
  EVENT_TYPE_SHUTDOWN: 'shutdown',
};

// ArtifactInfo JSON with `source` as "remote" / "file" / "payload" / "disk_cache" (as the Python client).
function artifactInfo(info) {
  if (!info) return info;
  const source = typeof info.source === 'string' ? info.source.replace(/^ARTIFACT_SOURCE_/, '').toLowerCase() : undefined;
  return { ...info, source };
}

// The JSON of an Event (see codec.js) -> the callback's event object.
function toEvent(json, numberToType, name) {
  const type = numberToType(json.type);
  const event = { type: name || EVENT_NAMES[type] || 'unknown', sequence: json.sequence || 0, time: json.time };
  if (json.artifactLocation !== undefined) event.artifactLocation = json.artifactLocation;
  if (json.artifact) event.artifact = artifactInfo(json.artifact);
  if (type === 'EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED' && json.artifactPayload) {
    event.artifactPayload = JSON.parse(Buffer.from(json.artifactPayload).toString('utf8'));
  }
  if (type === 'EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED') {
    const error = new Error((json.error && json.error.message) || 'artifact download failed');
    error.kind = json.error && json.error.kind;
    error.httpStatus = (json.error && json.error.httpStatus) || 0;
    event.error = error;
  }
  if (json.geoContext) event.geoContext = json.geoContext;
  if (type === 'EVENT_TYPE_STATE') event.ready = Boolean(json.ready);
  return event;
}

class ConnectionState {
  constructor() {
    this.lastSeen = 0;
    this.stateSequence = 0;
    this.replayIsNew = true;
    this.readyEmitted = false;
    this.gotState = false;
  }

  connected() {
    this.gotState = false;
    this.readyEmitted = false;
  }

  onMessage(json, numberToType) {
    const type = numberToType(json.type);
    const sequence = json.sequence || 0;
    if (type === 'EVENT_TYPE_STATE') {
      const restarted = sequence < this.lastSeen;
      this.replayIsNew = this.lastSeen === 0 || restarted;
      if (restarted) this.lastSeen = 0;
      this.stateSequence = sequence;
      this.gotState = true;
      const out = [toEvent(json, numberToType)];
      if (json.ready) {
        this.readyEmitted = true;
        out.push(toEvent(json, numberToType, 'clientReady'));
      }
      return out;
    }
    if (type === 'EVENT_TYPE_HEARTBEAT' || type === 'EVENT_TYPE_SHUTDOWN') return [toEvent(json, numberToType)];
    const replayed = this.gotState && sequence <= this.stateSequence;
    const isNew = sequence > this.lastSeen;
    this.lastSeen = Math.max(this.lastSeen, sequence);
    if (type === 'EVENT_TYPE_CLIENT_READY') {
      if (this.readyEmitted) return [];
      this.readyEmitted = true;
      return [toEvent(json, numberToType)];
    }
    if (replayed && !(this.replayIsNew || isNew)) return [];
    return [toEvent(json, numberToType)];
  }
}

class Backoff {
  constructor(initialMs, maxMs) {
    this.initial = initialMs;
    this.max = Math.max(initialMs, maxMs);
    this.attempt = 0;
  }

  next() {
    const base = Math.min(this.max, this.initial * 2 ** Math.min(this.attempt, 32));
    this.attempt += 1;
    return base / 2 + Math.random() * (base / 2);
  }

  reset() {
    this.attempt = 0;
  }
}

// Keeps one SubscribeEvents stream open (reopening it after a backoff) and calls handlers[event.type].
class EventSubscription {
  constructor(open, numberToType, handlers, { initialDelayMs = 250, maxDelayMs = 15000, logger = console } = {}) {
    this.open = open; // () => grpc ClientReadableStream of decoded SubscribeEventsResponse JSON
    this.numberToType = numberToType;
    this.handlers = handlers;
    this.backoff = new Backoff(initialDelayMs, maxDelayMs);
    this.state = new ConnectionState();
    this.logger = logger;
    this.closed = false;
    this.call = null;
    this.timer = null;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    this.state.connected();
    const call = this.open();
    this.call = call;
    let finished = false;
    const retry = () => {
      if (finished) return;
      finished = true;
      if (this.closed) return;
      this.timer = setTimeout(() => this.connect(), this.backoff.next());
    };
    call.on('data', (response) => {
      this.backoff.reset();
      for (const event of this.state.onMessage(response.event || {}, this.numberToType)) this.dispatch(event);
    });
    call.on('error', (error) => {
      if (!this.closed) this.logger.warn(`targetd event stream failed (${error.code}); reconnecting`);
      retry();
    });
    call.on('end', retry);
  }

  dispatch(event) {
    const handler = this.handlers[event.type];
    if (typeof handler !== 'function') return;
    try {
      if (handler.length === 0) handler();
      else handler(event);
    } catch (error) {
      this.logger.error(`events.${event.type} callback threw`, error);
    }
  }

  close() {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.call) this.call.cancel();
  }
}

module.exports = { EVENT_NAMES, EventSubscription, ConnectionState, Backoff, toEvent, artifactInfo };
