'use strict';
// The client's errors: TargetdError carries the gRPC status code, so callers never need @grpc/grpc-js.

const { status: Status } = require('@grpc/grpc-js');

const CODE_NAMES = Object.fromEntries(Object.entries(Status).map(([name, code]) => [code, name]));

class TargetdError extends Error {
  constructor(details, { code = Status.UNKNOWN, field, upstreamStatus } = {}) {
    super(`${CODE_NAMES[code] || code}: ${details}`);
    this.name = 'TargetdError';
    this.code = code; // numeric gRPC status code
    this.codeName = CODE_NAMES[code] || String(code); // e.g. "INVALID_ARGUMENT"
    this.details = details;
    this.field = field; // the offending request field (INVALID_ARGUMENT)
    this.upstreamStatus = upstreamStatus; // Target's HTTP status when targetd's upstream call failed
  }
}

function fromServiceError(error) {
  const trailing = error.metadata ? error.metadata.getMap() : {};
  const upstream = trailing['targetd-upstream-status'];
  return new TargetdError(error.details || error.message, {
    code: error.code,
    field: trailing['targetd-field'] ? String(trailing['targetd-field']) : undefined,
    upstreamStatus: upstream ? Number(upstream) : undefined,
  });
}

module.exports = { TargetdError, fromServiceError, Status, CODE_NAMES };
