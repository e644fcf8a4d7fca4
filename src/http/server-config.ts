import type { ServerOptions } from 'node:http';
import { createSecureContext } from 'node:tls';
import { parseDuration } from '../domain/duration.js';
import { ConfigError, ValidationError } from '../domain/errors.js';
import { pemFile, wholeNumber, type SettingReader } from '../domain/setting-values.js';
import { parseRate, type Rate } from '../domain/rate-limit.js';

/**
 * What the HTTP server does against slow, hostile and too many clients, and TLS. Validated at start;
 * see README, "Security".
 */
export interface HttpServerConfig {
  /** Requests per client address, checked before anything else; undefined: no limit. */
  readonly rateAddress?: Rate;
  /** A request's headers must have arrived within this (slowloris). */
  readonly headersTimeoutMs: number;
  /** The whole request, headers and body, must have arrived within this; 0: no limit. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** Largest request head (request line and headers), bytes; larger is a 431. */
  readonly maxHeaderBytes: number;
  /** Most open connections; the next ones are closed as they arrive. */
  readonly maxConnections: number;
  /** PEM contents read at start from TALLY_TLS_CERT / TALLY_TLS_KEY: present, Tally serves HTTPS only. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
}

/** The settings, in the app's SETTINGS form (variable, flag, default, help). */
export const HTTP_SERVER_SETTINGS = {
  rateAddress: { env: 'TALLY_RATE_ADDRESS', flag: 'rate-address', fallback: 'off', help: 'requests per client address, e.g. 100/s or 100/s,burst=400; off: no limit' },
  headersTimeout: { env: 'TALLY_HEADERS_TIMEOUT', flag: 'headers-timeout', fallback: '10s', help: "a request's headers must arrive within this" },
  requestTimeout: { env: 'TALLY_REQUEST_TIMEOUT', flag: 'request-timeout', fallback: '2m', help: 'the whole request (headers and body) must arrive within this; off: no limit' },
  keepAliveTimeout: { env: 'TALLY_KEEPALIVE_TIMEOUT', flag: 'keepalive-timeout', fallback: '72s', help: 'idle keep-alive connections are closed after this' },
  maxHeaderSize: { env: 'TALLY_MAX_HEADER_SIZE', flag: 'max-header-size', fallback: '16KiB', help: 'largest request head (bytes, or with KiB)' },
  maxConnections: { env: 'TALLY_MAX_CONNECTIONS', flag: 'max-connections', fallback: '1024', help: 'most open HTTP connections; more are closed as they arrive' },
  tlsCert: { env: 'TALLY_TLS_CERT', flag: 'tls-cert', fallback: '', help: 'PEM file of the server certificate (chain): serve HTTPS' },
  tlsKey: { env: 'TALLY_TLS_KEY', flag: 'tls-key', fallback: '', help: 'PEM file of the private key of TALLY_TLS_CERT' },
} as const;

export type HttpServerSettingName = keyof typeof HTTP_SERVER_SETTINGS;
export type ReadHttpSetting = SettingReader<HttpServerSettingName>;

/** Node's timeouts are checked on this period (its default, 30 s, would let a trickler stay 30 s longer). */
const CONNECTION_CHECK_MS = 1_000;

function millis(name: string, raw: string, { allowOff = false } = {}): number {
  if (allowOff && raw.trim().toLowerCase() === 'off') return 0;
  let us: number;
  try {
    us = parseDuration(raw, name);
  } catch (err) {
    if (err instanceof ValidationError) throw new ConfigError(`${err.message}${allowOff ? ', or off' : ''}; got ${JSON.stringify(raw)}`);
    throw err;
  }
  const ms = Math.round(us / 1000);
  if (ms < 100 || ms > 24 * 3_600_000) throw new ConfigError(`${name} must be between 100ms and 24h, got ${JSON.stringify(raw)}`);
  return ms;
}

function headerBytes(name: string, raw: string): number {
  const match = /^(\d{1,9})\s*(b|kib|kb)?$/i.exec(raw.trim());
  const bytes = match === null ? NaN : Number(match[1]) * (match[2] === undefined || match[2].toLowerCase() === 'b' ? 1 : match[2].toLowerCase() === 'kb' ? 1000 : 1024);
  // Below 4 KiB ordinary clients' headers stop fitting; above 1 MiB a head is an attack.
  if (!(bytes >= 4096 && bytes <= 1024 * 1024)) throw new ConfigError(`${name} must be a size between 4KiB and 1024KiB, such as 16KiB, got ${JSON.stringify(raw)}`);
  return bytes;
}


/** The pair, if TLS can use it: both PEM, and the key the certificate's. */
function usableKeyPair(certName: string, cert: Buffer, keyName: string, key: Buffer): { cert: Buffer; key: Buffer } {
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new ConfigError(`${certName} and ${keyName} are not a usable certificate and key (PEM, the key of the certificate): ${(err as Error).message}`);
  }
  return { cert, key };
}

/** Reads and checks the HTTP server's settings. */
export function httpServerConfig(read: ReadHttpSetting): HttpServerConfig {
  const [headersName, headersRaw] = read('headersTimeout');
  const [requestName, requestRaw] = read('requestTimeout');
  const headersTimeoutMs = millis(headersName, headersRaw);
  const requestTimeoutMs = millis(requestName, requestRaw, { allowOff: true });
  // Node refuses a headers timeout longer than the request's, which includes the headers.
  if (requestTimeoutMs > 0 && headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError(`${headersName} (${headersRaw}) must not be longer than ${requestName} (${requestRaw})`);
  }
  const [rateName, rateRaw] = read('rateAddress');
  const rateAddress = parseRate(rateRaw, rateName);
  let config: HttpServerConfig = {
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: millis(...read('keepAliveTimeout')),
    maxHeaderBytes: headerBytes(...read('maxHeaderSize')),
    maxConnections: wholeNumber(...read('maxConnections'), 1, 1_000_000),
    ...(rateAddress === undefined ? {} : { rateAddress }),
  };
  const [certName, certFile] = read('tlsCert');
  const [keyName, keyFile] = read('tlsKey');
  if ((certFile === '') !== (keyFile === '')) {
    throw new ConfigError(`${certName} and ${keyName} go together: set both (PEM files) to serve HTTPS, or neither`);
  }
  if (certFile !== '') config = { ...config, tls: usableKeyPair(certName, pemFile(certName, certFile), keyName, pemFile(keyName, keyFile)) };
  return Object.freeze(config);
}

/**
 * The Fastify options that carry these settings: Node's server options go in `http` (or `https`,
 * with the certificate), the two Fastify sets itself at the top level. The connection cap is not an
 * option: `applyConnectionCap` sets it on the created server.
 */
export function fastifyServerOptions(config: HttpServerConfig): {
  keepAliveTimeout: number;
  requestTimeout: number;
  http?: ServerOptions;
  https?: ServerOptions & { cert: Buffer; key: Buffer };
} {
  const node: ServerOptions = {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    maxHeaderSize: config.maxHeaderBytes,
    connectionsCheckingInterval: Math.min(CONNECTION_CHECK_MS, config.headersTimeoutMs),
  };
  return {
    keepAliveTimeout: config.keepAliveTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    ...(config.tls === undefined ? { http: node } : { https: { ...node, cert: config.tls.cert, key: config.tls.key } }),
  };
}

/** Node closes the connections beyond `maxConnections` as soon as they are accepted. */
export function applyConnectionCap(server: { maxConnections: number }, config: HttpServerConfig): void {
  server.maxConnections = config.maxConnections;
}
