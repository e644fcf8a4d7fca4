/**
 * Hostile HTTP requests, generated from a seed (so a failure reproduces) for every route of the
 * server's /openapi.json: random bytes, truncated and deep JSON, huge and odd numbers, unicode tricks
 * and control characters in ids, __proto__/constructor keys, SQL-looking strings, megabyte strings,
 * forged cursors, bad headers, bad Content-Encoding and Content-Type.
 *
 * Every string the generator puts where a write takes a device id is recorded in `deviceIds`, so a
 * test can check that the store gained no device the requests did not name.
 */
import { gzipSync, deflateSync } from 'node:zlib';

export type Random = () => number;

/** A route as /openapi.json documents it. */
export interface Route {
  readonly method: string;
  /** OpenAPI form: `/v1/devices/{id}`. */
  readonly path: string;
  readonly query: readonly string[];
  readonly pathParams: readonly string[];
  readonly bodyTypes: readonly string[];
}

export interface FuzzRequest {
  readonly method: string;
  /** Path and query, as sent (not necessarily valid). */
  readonly target: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
  /** A short description for a failure report. */
  readonly what: string;
}

/** The routes of an OpenAPI document (paths × methods), with their parameters and body types. */
export function routesOf(openapi: { paths: Record<string, Record<string, any>> }): Route[] {
  const routes: Route[] = [];
  for (const [path, operations] of Object.entries(openapi.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      const params: Array<{ in: string; name: string }> = op.parameters ?? [];
      routes.push({
        method: method.toUpperCase(),
        path,
        query: params.filter((p) => p.in === 'query').map((p) => p.name),
        pathParams: params.filter((p) => p.in === 'path').map((p) => p.name),
        bodyTypes: op.requestBody ? Object.keys(op.requestBody.content) : [],
      });
    }
  }
  return routes;
}

/**
 * encodeURIComponent, except that a lone surrogate (which it refuses) becomes the bytes a careless
 * encoder would send for it (its WTF-8 form, invalid UTF-8).
 */
function enc(text: string): string {
  let out = '';
  for (const char of text) {
    const u = char.charCodeAt(0);
    out +=
      char.length === 1 && u >= 0xd800 && u <= 0xdfff
        ? [0xe0 | (u >> 12), 0x80 | ((u >> 6) & 0x3f), 0x80 | (u & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('')
        : encodeURIComponent(char);
  }
  return out;
}

const pick = <T>(r: Random, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
const chance = (r: Random, p: number) => r() < p;
const int = (r: Random, min: number, max: number) => min + Math.floor(r() * (max - min + 1));

/** A JSON token written as is: numbers JSON.stringify cannot produce, or broken text. */
class Raw {
  constructor(readonly text: string) {}
}

/** JSON text of `value`, with Raw tokens inlined (and keys such as __proto__ kept as own keys). */
function json(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map(json).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${json(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const MEGABYTE = 'x'.repeat(1024 * 1024);

const HOSTILE_STRINGS = [
  "' OR '1'='1",
  "'; DROP TABLE readings; --",
  '"; DELETE FROM devices; --',
  "1); SELECT pg_sleep(5); --",
  '%',
  '_',
  '%%',
  '\\',
  '\\%_',
  "meter' UNION SELECT * FROM sqlite_master --",
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  '\u202egnp.exe',
  'a\u200bb',
  'e\u0301',
  '\u0430dmin',
  '\ufeffmeter',
  '\u2028\u2029',
  '😀🔥',
  '\ud800',
  '\udfff\ud800',
  'a\u0000b',
  '\u0001\u001f',
  '\u007f',
  '\u0085',
  '\r\nX-Injected: 1',
  '../../etc/passwd',
  '..',
  '.',
  '/',
  '?',
  '#',
  '%2F',
  '%00',
  '%zz',
  '${7*7}',
  '{{7*7}}',
  '%s%n%x',
  '<script>alert(1)</script>',
  ' ',
  '',
  'NaN',
  'Infinity',
  '-0',
  '1e309',
  'null',
  'true',
  '[]',
  '{}',
  'a'.repeat(256),
  'a'.repeat(257),
  'é'.repeat(256),
  '😀'.repeat(129),
];

const HOSTILE_NUMBERS = ['1e309', '-1e309', '1e-400', '-0', '0', '-1', '2147483647', '2147483648', '9007199254740993', '1.5', '1E+99999', '123456789012345678901234567890', '0.0000001', '4294967296', '-2147483649'];

const TIMESTAMPS = [
  '2024-01-01T00:00:00Z',
  '2024-06-01T12:00:00.123456+02:00',
  '2021-02-30T00:00:00Z',
  '2024-01-01T24:00:00Z',
  '2024-01-01T00:00:60Z',
  '2024-01-01T00:00:00+99:99',
  '2024-01-01T00:00:00.1234567890123Z',
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:59Z',
  '1899-12-31T23:59:59Z',
  '2201-01-01T00:00:00Z',
  '2024-01-01',
  '2024-01-01T00:00:00',
  'yesterday',
  '',
];

/** Some id-like string: mostly hostile, sometimes plain, rarely a megabyte. */
function hostileString(r: Random): string {
  const roll = r();
  if (roll < 0.01) return MEGABYTE.slice(0, int(r, 1, 3) * 400_000);
  if (roll < 0.2) return `fuzz-${int(r, 0, 50)}`;
  if (roll < 0.3) return String.fromCharCode(...Array.from({ length: int(r, 1, 12) }, () => int(r, 0, 0xffff)));
  if (roll < 0.35) return '063c5957-8905-45f9-bfe3-96071378891' + int(r, 0, 9);
  return pick(r, HOSTILE_STRINGS);
}

/** Some value for a JSON field: a hostile string, an odd number, a wrong type. */
function hostileValue(r: Random, depthBudget = 2): unknown {
  const roll = r();
  if (roll < 0.3) return hostileString(r);
  if (roll < 0.55) return new Raw(pick(r, HOSTILE_NUMBERS));
  if (roll < 0.65) return pick(r, [null, true, false, [], {}, [1, 2], { a: 1 }]);
  if (roll < 0.75) return pick(r, TIMESTAMPS);
  if (roll < 0.8 && depthBudget > 0) return { [hostileString(r).slice(0, 64)]: hostileValue(r, depthBudget - 1) };
  if (roll < 0.85) return { __proto__: new Raw('{"polluted":true}') } as never;
  return int(r, -5, 1_000_000);
}

/** A plausible timestamp value for `field` (epoch seconds where a surface takes them), sometimes hostile. */
function tsValue(r: Random, epoch: boolean): unknown {
  if (chance(r, 0.5)) return epoch ? 1_700_000_000 + int(r, 0, 1e6) : `2024-0${int(r, 1, 9)}-1${int(r, 0, 9)}T0${int(r, 0, 9)}:${int(r, 10, 59)}:${int(r, 10, 59)}Z`;
  return chance(r, 0.5) ? pick(r, TIMESTAMPS) : hostileValue(r);
}

/** Replaces some fields of an object by hostile values, adds odd keys, removes some. */
function mutate(r: Random, object: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...object };
  for (const key of Object.keys(out)) {
    if (chance(r, 0.15)) out[key] = hostileValue(r);
    else if (chance(r, 0.05)) delete out[key];
  }
  if (chance(r, 0.08)) Object.defineProperty(out, '__proto__', { value: { polluted: true }, enumerable: true, writable: true });
  if (chance(r, 0.05)) (out as Record<string, unknown>)['constructor'] = { prototype: { polluted: true } };
  if (chance(r, 0.05)) Object.defineProperty(out, hostileString(r).slice(0, 100), { value: hostileValue(r), enumerable: true, writable: true });
  return out;
}

/**
 * Records a string a write named, in the forms the server may store it under: as is, in lower case
 * (UUIDs), and well-formed (a lone surrogate in a text body arrives as U+FFFD).
 */
function remember(value: string, ids: Set<string>): void {
  ids.add(value);
  ids.add(value.toLowerCase());
  ids.add(value.toWellFormed());
}

function rememberAll(value: unknown, ids: Set<string>): void {
  if (typeof value === 'string') remember(value, ids);
  else if (Array.isArray(value)) for (const v of value) rememberAll(v, ids);
  else if (value !== null && typeof value === 'object' && !(value instanceof Raw)) {
    for (const [k, v] of Object.entries(value)) {
      remember(k, ids);
      rememberAll(v, ids);
    }
  }
}

/** Writes: structured bodies in each surface's shape (recording their device ids), then mutated. */
function writeBody(r: Random, path: string, deviceIds: Set<string>): { text: string; type: string } {
  const id = () => {
    const value = hostileString(r);
    remember(value, deviceIds);
    return value;
  };
  const n = chance(r, 0.02) ? 10_001 : int(r, 0, 4);
  const many = <T>(make: () => T) => Array.from({ length: n }, make);
  if (path === '/write' || path === '/api/v2/write') {
    const lines = many(() => {
      const device = id().replace(/[\s,=\\]/g, '_');
      remember(device, deviceIds);
      const measurement = chance(r, 0.3) ? id().replace(/[\s,\\]/g, '_') : 'm';
      remember(measurement, deviceIds);
      const fields = chance(r, 0.7) ? `count=${pick(r, ['1i', '-1i', '99999999999999999999i', '1.5', 'x', '"s"', 't'])}` : `v=${pick(r, HOSTILE_NUMBERS)}`;
      const ts = chance(r, 0.7) ? ` ${pick(r, ['1700000000000000000', '-1', '99999999999999999999999', '1.5', 'x', ''])}` : '';
      return `${measurement},device=${device} ${fields}${ts}`;
    });
    return { text: lines.join(pick(r, ['\n', '\r\n', '\n\n'])), type: 'text/plain' };
  }
  let value: unknown;
  if (path === '/v1/readings') {
    value = many(() => mutate(r, { device_id: id(), ts: tsValue(r, false), count: int(r, 0, 9), payload: chance(r, 0.5) ? { t: hostileValue(r) } : undefined }));
    if (chance(r, 0.2)) {
      rememberAll(value, deviceIds);
      return { text: (value as unknown[]).map((line) => json(line)).join('\n'), type: 'application/x-ndjson' };
    }
    if (chance(r, 0.05)) value = mutate(r, { readings: value });
  } else if (path === '/api/device-readings/create') {
    value = mutate(r, { id: id(), readings: many(() => mutate(r, { count: int(r, 1, 9), timestamp: tsValue(r, false) })) });
  } else if (path === '/ingest') {
    value = chance(r, 0.5)
      ? mutate(r, { id: id(), readings: many(() => mutate(r, { timestamp: tsValue(r, false), count: int(r, 0, 9) })) })
      : mutate(r, { device_id: id(), timestamp: tsValue(r, false), data_payload: chance(r, 0.8) ? { g: hostileValue(r) } : hostileValue(r) });
  } else if (path === '/vital-data') {
    value = mutate(r, { device: id(), timestamp: tsValue(r, true), heartRateValue: chance(r, 0.7) ? int(r, 40, 200) : hostileValue(r) });
  } else {
    value = hostileValue(r);
  }
  // A mutation may have put any string where the id belongs: every string of the body counts as named.
  rememberAll(value, deviceIds);
  return { text: json(value), type: 'application/json' };
}

/** Breaks a body's text: truncation, deep nesting, random bytes, or nothing. */
function breakText(r: Random, full: string, path: string): Buffer {
  // Over twice the body limit (a 413) is as good as a hundred megabytes (10,001 lines of megabyte ids), and faster.
  const text = full.length > 8 * 2 ** 20 ? full.slice(0, 8 * 2 ** 20) : full;
  const roll = r();
  if (roll < 0.12) return Buffer.from(text.slice(0, int(r, 0, Math.max(0, text.length - 1))));
  if (roll < 0.17) {
    const depth = pick(r, [33, 100, 5_000, 200_000]);
    return Buffer.from(`${'['.repeat(depth)}1${']'.repeat(depth)}`);
  }
  if (roll < 0.2) {
    const depth = pick(r, [33, 1_000, 100_000]);
    return Buffer.from(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
  }
  if (roll < 0.3) {
    const bytes = Buffer.from(Array.from({ length: int(r, 0, 300) }, () => int(r, 0, 255)));
    // Line protocol: no '=' in random bytes, so they can never be a valid line (which would be a
    // legitimate write of a device this test did not name).
    if (path.endsWith('/write')) for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x3d) bytes[i] = 0x2d;
    return bytes;
  }
  if (roll < 0.32) return Buffer.from(`${text}${text}`);
  return Buffer.from(text);
}

const CONTENT_TYPES = [
  'text/plain',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/x-ndjson',
  'application/xml',
  'multipart/form-data; boundary=x',
  'application/x-www-form-urlencoded',
  '*/*',
  'application/json, text/plain',
  'application/jsonx',
  ';;;',
  'a'.repeat(2000),
];

/** Query parameters: the route's own with plausible or hostile values, and some it does not take. */
function query(r: Random, route: Route, cursors: readonly string[]): string {
  const parts: string[] = [];
  const add = (name: string, value: string, encode = true) => parts.push(`${enc(name)}=${encode ? enc(value) : value}`);
  for (const name of route.query) {
    if (!chance(r, 0.6)) continue;
    add(name, queryValue(r, name, cursors));
    if (chance(r, 0.05)) add(name, queryValue(r, name, cursors));
  }
  if (chance(r, 0.1)) add(pick(r, ['__proto__', 'constructor', 'constructor[prototype][x]', 'limit[]', 'x'.repeat(300), '']), hostileString(r).slice(0, 500));
  if (chance(r, 0.03)) parts.push(pick(r, ['%zz', '=', '&&&', 'a=%', 'limit=%E0%A4%A', '%00=%00']));
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

function queryValue(r: Random, name: string, cursors: readonly string[]): string {
  if (name === 'cursor') return cursorValue(r, cursors);
  if (chance(r, 0.45)) return String(hostileValue(r) instanceof Raw ? pick(r, HOSTILE_NUMBERS) : hostileString(r));
  const plausible: Record<string, () => string> = {
    limit: () => pick(r, ['1', '100', '1000', '1001', '0', '-1', '1e3', '99999999999999999999']),
    count: () => pick(r, ['1', '100', '101', '0']),
    offset: () => pick(r, ['0', '5', '1e18', '9007199254740993', '-1']),
    sort: () => pick(r, ['device_id', 'latest_ts', 'payload.temp', 'payload.', 'payload.a.b.c', 'payload.__proto__', `payload.${'x'.repeat(300)}`, "payload.a'--"]),
    sortBy: () => pick(r, ['deviceId', 'heartRate', 'timestamp', 'x']),
    order: () => pick(r, ['asc', 'desc', 'ASC', 'sideways']),
    orderBy: () => pick(r, ['asc', 'desc']),
    prefix: () => pick(r, ['meter-', '%', '_', '\\', "'", 'a'.repeat(300), '']),
    from: () => pick(r, TIMESTAMPS),
    to: () => pick(r, TIMESTAMPS),
    every: () => pick(r, ['1s', '1us', '5m', '0s', '99999999w', '1y', '-1h', '1']),
    fn: () => pick(r, ['count', 'count,sum,min,max,avg', 'median', 'count,count', '', ',']),
    field: () => pick(r, ['count', 'payload.temp', 'payload.', 'payload.__proto__', 'payload.a"b']),
    precision: () => pick(r, ['s', 'ms', 'us', 'ns', 'h', '']),
    atomic: () => pick(r, ['true', 'false', '1', 'yes']),
    format: () => pick(r, ['json', 'ndjson', 'csv', 'xml', '']),
    fields: () => pick(r, ['device_id,ts', 'count', 'payload.a', 'x', '', ',,,']),
  };
  return (plausible[name] ?? (() => hostileString(r)))();
}

/** A cursor: one the server issued, one tampered with, one forged in its format, or garbage. */
function cursorValue(r: Random, cursors: readonly string[]): string {
  const real = cursors.length > 0 ? pick(r, cursors) : 'WyJ4IiwxXQ';
  const roll = r();
  if (roll < 0.2) return real;
  if (roll < 0.4) {
    const i = int(r, 0, real.length - 1);
    return real.slice(0, i) + pick(r, ['A', '_', '-', '=', '%', '']) + real.slice(i + 1);
  }
  if (roll < 0.7) {
    let listing = 'x';
    try {
      listing = JSON.parse(Buffer.from(real, 'base64url').toString())[0];
    } catch {
      // not one of ours: forge with a made-up listing
    }
    const position = Array.from({ length: int(r, 0, 4) }, () => pick(r, [hostileString(r).slice(0, 1000), 1e308, -1, 9007199254740993, null, 1.5, {}, [], true]));
    return Buffer.from(JSON.stringify([listing, ...position])).toString(pick(r, ['base64url', 'base64'] as const));
  }
  return pick(r, ['', '!!!', 'null', 'W10', 'x'.repeat(5000), Buffer.from('{"__proto__":1}').toString('base64url'), hostileString(r)]);
}

/** The path with its parameters filled: hostile ids, mostly percent-encoded, sometimes not. */
function fillPath(r: Random, route: Route, knownIds: readonly string[]): string {
  return route.path.replace(/\{(\w+)\}/g, () => {
    const value = route.method !== 'DELETE' && chance(r, 0.15) && knownIds.length > 0 ? pick(r, knownIds) : hostileString(r);
    return chance(r, 0.85) ? enc(value) : value;
  });
}

const ODD_HEADERS: Array<[string, string]> = [
  ['x-request-id', 'a'.repeat(200)],
  ['x-request-id', '../../\u00e9'],
  ['authorization', 'Bearer ' + 'A'.repeat(5000)],
  ['authorization', 'Basic Og=='],
  ['x-api-key', "' OR 1=1 --"],
  ['accept', 'application/xml'],
  ['accept-encoding', 'br, zstd, *;q=0'],
  ['content-length', '5'],
  ['transfer-encoding', 'chunked'],
  ['expect', '100-continue'],
  ['host', 'evil.example'],
  ['x-forwarded-for', '1.2.3.4, ::1'],
  ['cookie', 'a=' + 'b'.repeat(4000)],
  ['range', 'bytes=0-1'],
  ['if-none-match', '*'],
];

/**
 * One hostile request for `route`. `cursors` are real cursors the server gave, `knownIds` real
 * device ids (read routes reach deeper with them); device ids written are added to `deviceIds`.
 */
export function fuzzRequest(r: Random, route: Route, ctx: { cursors: readonly string[]; knownIds: readonly string[]; deviceIds: Set<string> }): FuzzRequest {
  const headers: Record<string, string> = {};
  let method = route.method;
  if (chance(r, 0.03)) method = pick(r, ['PUT', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'PROPFIND', 'DELETE', 'POST']);
  const target = fillPath(r, route, ctx.knownIds) + query(r, route, ctx.cursors);
  let body: Buffer | undefined;
  let what = 'no body';
  const writes = route.bodyTypes.length > 0;
  if (writes || chance(r, 0.05)) {
    const { text, type } = writes ? writeBody(r, route.path, ctx.deviceIds) : { text: json(hostileValue(r)), type: 'application/json' };
    body = breakText(r, text, route.path);
    headers['content-type'] = chance(r, 0.85) ? type : pick(r, CONTENT_TYPES);
    if (chance(r, 0.03)) delete headers['content-type'];
    const encoding = r();
    if (encoding < 0.08) {
      body = gzipSync(body);
      headers['content-encoding'] = 'gzip';
      what = 'gzip ';
    } else if (encoding < 0.1) {
      body = deflateSync(body);
      headers['content-encoding'] = 'deflate';
      what = 'deflate ';
    } else if (encoding < 0.16) {
      headers['content-encoding'] = pick(r, ['gzip', 'deflate', 'br', 'compress', 'gzip, gzip', 'identity', 'x-unknown', '']);
      if (chance(r, 0.5)) body = gzipSync(body).subarray(0, int(r, 0, 30));
      what = `bad ${headers['content-encoding']} `;
    } else {
      what = '';
    }
    what += `${headers['content-type'] ?? 'no content-type'}, ${body.length} bytes: ${JSON.stringify(body.subarray(0, 120).toString('latin1'))}`;
  }
  if (chance(r, 0.1)) {
    const [name, value] = pick(r, ODD_HEADERS);
    // A Content-Length above the body's would leave the server waiting for the rest (until
    // TALLY_REQUEST_TIMEOUT): only ever one below it.
    if (name === 'content-length') {
      if (body !== undefined && body.length > 5) headers[name] = value;
    } else if (name !== 'transfer-encoding' || body !== undefined) headers[name] = value;
  }
  return { method, target, headers, body, what };
}

/** Requests no ordinary client library sends: broken request lines and headers, raw on a socket. */
export function rawRequest(r: Random, routes: readonly Route[]): string {
  const route = pick(r, routes);
  const path = route.path.replace(/\{\w+\}/g, 'x');
  const cases = [
    () => `${route.method} ${path} HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n0123456789`,
    () => `${route.method} ${path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n`,
    () => `POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffff\r\n[`,
    () => `POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{"device_id":`,
    () => `GET ${path}\u0000 HTTP/1.1\r\nHost: t\r\n\r\n`,
    () => `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: t\r\n\r\n`,
    () => `GET ${path} HTTP/1.1\r\nHost: t\r\nX-Bad: a\u0001b\r\n\r\n`,
    () => `GET ${path} HTTP/1.1\r\nHost: t\r\nX-Bad\r\n\r\n`,
    () => `GET ${path} HTTP/9.9\r\nHost: t\r\n\r\n`,
    () => `${'\u00ff'.repeat(20)} ${path} HTTP/1.1\r\n\r\n`,
    () => `GET ${path} HTTP/1.1\nHost: t\n\n`,
    () => `GET ${path} HTTP/1.1\r\nHost: t\r\n X-Folded: yes\r\n\r\n`,
    () => `GET ${path} HTTP/1.1\r\n${'X-Many: 1\r\n'.repeat(3000)}\r\n`,
    () => `GET ${path}?${'%'.repeat(50)} HTTP/1.1\r\nHost: t\r\n\r\n`,
    () => `POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n`,
    () => `POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\u001f\u008b\u0008\u0000`,
    () => `GET ${path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n\r\n`,
    () => `CONNECT t:80 HTTP/1.1\r\nHost: t\r\n\r\n`,
    () => `GET http://evil.example${path} HTTP/1.1\r\nHost: t\r\n\r\n`,
    () => `GET * HTTP/1.1\r\nHost: t\r\n\r\n`,
    () => Buffer.from(Array.from({ length: int(r, 1, 200) }, () => int(r, 0, 255))).toString('latin1'),
  ];
  return pick(r, cases)();
}
