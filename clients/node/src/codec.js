'use strict';
// Delivery API JSON <-> targetd.v1 protobuf, over protobufjs reflection of the protos loaded at runtime: the
// package's own copy (protos/, put there by `npm pack`'s prepack script) or, in the repository, ../../protos.
// Keys are the fields' JSON names (camelCase, `$_type`, `webGLRenderer`); enums use their
// (targetd.v1.json_value) spelling ("web", "display", "on-device"); google.protobuf.Value/Struct/ListValue
// are plain JSON; absent fields are left out. Mirrors clients/python/src/targetd_client/json_format.py.

const fs = require('node:fs');
const path = require('node:path');
const protobuf = require('protobufjs');

const PACKAGED_PROTOS = path.resolve(__dirname, '..', 'protos');
const REPO_PROTOS = path.resolve(__dirname, '..', '..', '..', 'protos');
const DEFAULT_PROTOS = fs.existsSync(path.join(PACKAGED_PROTOS, 'targetd', 'v1')) ? PACKAGED_PROTOS : REPO_PROTOS;
const JSON_VALUE = '(targetd.v1.json_value)';
const BUILTIN = new Set(['struct.proto', 'timestamp.proto']); // bundled with protobufjs (protobuf.common)

const camel = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

function loadRoot(protosDir = DEFAULT_PROTOS) {
  const root = new protobuf.Root();
  const shipped = path.dirname(require.resolve('protobufjs/package.json'));
  root.resolvePath = (origin, target) => {
    if (target.startsWith('google/protobuf/')) {
      return BUILTIN.has(path.basename(target)) ? target : path.join(shipped, target);
    }
    return path.join(protosDir, target);
  };
  root.loadSync('targetd/v1/decisioning_service.proto', { keepCase: true });
  root.resolveAll();
  return root;
}

class Codec {
  constructor(root) {
    this.root = root;
    this.plans = new Map();
    this.enums = new Map();
  }

  type(name) {
    return this.root.lookupType(name);
  }

  plan(type) {
    let plan = this.plans.get(type.fullName);
    if (!plan) {
      plan = { byKey: new Map(), fields: [] };
      for (const field of type.fieldsArray) {
        const key = (field.options && field.options.json_name) || camel(field.name);
        plan.fields.push({ field, key });
        plan.byKey.set(key, field);
        plan.byKey.set(field.name, field);
      }
      this.plans.set(type.fullName, plan);
    }
    return plan;
  }

  enumMap(en) {
    let map = this.enums.get(en.fullName);
    if (!map) {
      map = { toJson: new Map(), toNumber: new Map() };
      for (const [name, number] of Object.entries(en.values)) {
        const spelling = en.valuesOptions && en.valuesOptions[name] && en.valuesOptions[name][JSON_VALUE];
        if (spelling) {
          map.toJson.set(number, spelling);
          map.toNumber.set(spelling, number);
        } else if (!map.toJson.has(number)) {
          map.toJson.set(number, name); // enums of targetd's own messages (EventType, ...) print their names
        }
        map.toNumber.set(name, number);
      }
      this.enums.set(en.fullName, map);
    }
    return map;
  }

  // ------------------------------------------------------------------ JSON -> protobufjs object

  fromJson(type, data, where = type.name) {
    const special = this.wellKnownIn(type, data, where);
    if (special !== undefined) return special;
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      throw new TypeError(`${where}: expected an object`);
    }
    const { byKey } = this.plan(type);
    const out = {};
    for (const [key, value] of Object.entries(data)) {
      const field = byKey.get(key);
      if (!field) throw new TypeError(`${where}: unknown field '${key}'`);
      if (value === null || value === undefined) continue;
      const child = `${where}.${key}`;
      if (field.map) {
        const entries = {};
        for (const [k, v] of Object.entries(value)) entries[k] = this.single(field, v, `${child}.${k}`);
        out[field.name] = entries;
      } else if (field.repeated) {
        if (!Array.isArray(value)) throw new TypeError(`${child}: expected an array`);
        out[field.name] = value.map((v, i) => this.single(field, v, `${child}[${i}]`));
      } else {
        out[field.name] = this.single(field, value, child);
      }
    }
    return out;
  }

  single(field, value, where) {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Enum) {
      if (typeof value === 'number') return value;
      const number = this.enumMap(resolved).toNumber.get(value);
      if (number === undefined) {
        const allowed = [...this.enumMap(resolved).toJson.values()].filter((v) => !v.endsWith('UNSPECIFIED'));
        throw new TypeError(`${where}: '${value}' is not one of: ${allowed.join(', ')}`);
      }
      return number;
    }
    if (resolved instanceof protobuf.Type) return this.fromJson(resolved, value, where);
    return value;
  }

  wellKnownIn(type, data, where) {
    switch (type.fullName) {
      case '.google.protobuf.Struct':
        if (data === null || typeof data !== 'object' || Array.isArray(data)) {
          throw new TypeError(`${where}: expected an object`);
        }
        return structIn(data);
      case '.google.protobuf.Value':
        return valueIn(data);
      case '.google.protobuf.ListValue':
        if (!Array.isArray(data)) throw new TypeError(`${where}: expected an array`);
        return { values: data.map(valueIn) };
      default:
        return undefined;
    }
  }

  // The request's wire bytes as a Buffer (no copy: protobufjs writes into a Buffer under Node). Throws
  // TypeError naming the field when `data` is not valid Delivery API JSON for the type.
  encode(typeName, data) {
    const type = this.type(typeName);
    const bytes = type.encode(type.fromObject(this.fromJson(type, data))).finish();
    return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  // ------------------------------------------------------------------ protobufjs message -> JSON

  toJson(type, message) {
    switch (type.fullName) {
      case '.google.protobuf.Struct':
        return structOut(message);
      case '.google.protobuf.Value':
        return valueOut(message);
      case '.google.protobuf.ListValue':
        return (message.values || []).map(valueOut);
      case '.google.protobuf.Timestamp':
        return new Date(toNumber(message.seconds) * 1000 + Math.floor((message.nanos || 0) / 1e6));
      default:
    }
    const out = {};
    for (const { field, key } of this.plan(type).fields) {
      if (!Object.prototype.hasOwnProperty.call(message, field.name)) continue;
      const value = message[field.name];
      if (field.map) {
        const entries = {};
        for (const [k, v] of Object.entries(value)) entries[k] = this.singleOut(field, v);
        if (Object.keys(entries).length) out[key] = entries;
      } else if (field.repeated) {
        if (value.length) out[key] = value.map((v) => this.singleOut(field, v));
      } else {
        const converted = this.singleOut(field, value);
        if (converted !== undefined) out[key] = converted;
      }
    }
    return out;
  }

  singleOut(field, value) {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Enum) return this.enumMap(resolved).toJson.get(value);
    if (resolved instanceof protobuf.Type) return this.toJson(resolved, value);
    if (field.type === 'bytes') return Buffer.from(value);
    if (['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'].includes(field.type)) return toNumber(value);
    return value;
  }

  decode(typeName, buffer) {
    const type = this.type(typeName);
    return this.toJson(type, type.decode(buffer));
  }
}

function toNumber(value) {
  if (value && typeof value === 'object' && typeof value.toNumber === 'function') return value.toNumber();
  return Number(value);
}

function valueIn(value) {
  if (value === null || value === undefined) return { nullValue: 0 };
  if (typeof value === 'boolean') return { boolValue: value };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(valueIn) } };
  if (typeof value === 'object') return { structValue: structIn(value) };
  throw new TypeError(`${typeof value} is not JSON`);
}

function structIn(data) {
  const fields = {};
  for (const [k, v] of Object.entries(data)) fields[k] = valueIn(v);
  return { fields };
}

const own = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

function valueOut(value) {
  if (!value) return null;
  if (own(value, 'stringValue')) return value.stringValue;
  if (own(value, 'numberValue')) return value.numberValue;
  if (own(value, 'boolValue')) return value.boolValue;
  if (own(value, 'structValue')) return structOut(value.structValue);
  if (own(value, 'listValue')) return (value.listValue.values || []).map(valueOut);
  return null;
}

function structOut(struct) {
  const out = {};
  for (const [k, v] of Object.entries((struct && struct.fields) || {})) out[k] = valueOut(v);
  return out;
}

module.exports = { Codec, loadRoot, DEFAULT_PROTOS };
