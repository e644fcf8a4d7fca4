import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../domain/duration.js';
import { ConfigError, ValidationError } from '../domain/errors.js';
import { parseRate, type Rate } from '../domain/rate-limit.js';
import { wholeNumber } from '../domain/setting-values.js';
import type { AuthMode } from '../http/access.js';
import { HTTP_SERVER_SETTINGS, httpServerConfig, type HttpServerConfig } from '../http/server-config.js';
import type { LineProtocolMapping } from '../ingest/line-protocol-mapping.js';
import { MQTT_SETTINGS, mqttConfig, type MqttConfig } from '../mqtt/config.js';
import { storeConfig, type StoreConfig } from '../store/index.js';

export { ConfigError };

/** Everything Tally reads from its environment and flags, validated once at start. */
export interface Config {
  readonly host: string;
  readonly port: number;
  /** The backend and its own settings (TALLY_STORE, and TALLY_SYNCHRONOUS for SQLite). */
  readonly store: StoreConfig;
  /** Largest request body, bytes. */
  readonly bodyLimit: number;
  /** Most readings one request may carry. */
  readonly maxReadings: number;
  /** Most readings waiting to commit; beyond it writes get 503 with Retry-After. */
  readonly queueLimit: number;
  /** Most readings in one transaction. */
  readonly maxBatchReadings: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** One `debug` line per HTTP request (it costs more than storing a reading, so off by default). */
  readonly requestLog: boolean;
  /** Keep readings this long (e.g. `30d`); undefined keeps them forever. */
  readonly retention?: { readonly us: number; readonly label: string };
  /** `on`: every route but the probes needs a key; `off`: only admin routes; `auto`: on once a key exists. */
  readonly auth: AuthMode;
  /** A static admin credential (DELETE /v1/devices/:id and every other route), beside the keys. */
  readonly adminToken?: string;
  /** Requests per API key, and readings per device (any transport); absent, no limit. */
  readonly rates: { readonly key?: Rate; readonly device?: Rate };
  /** The MQTT subscriber; undefined when TALLY_MQTT_URL is unset. */
  readonly mqtt?: MqttConfig;
  /** How InfluxDB line protocol maps onto readings. */
  readonly lineProtocol: LineProtocolMapping;
  /** TALLY_AUDIT_EVERY: the server audits the store this often; undefined: never. */
  readonly audit?: { readonly everyMs: number; readonly label: string };
  /** TALLY_BACKUP_EVERY (SQLite): the server writes a backup this often into `dir`, keeping the newest `keep`. */
  readonly backups?: { readonly everyMs: number; readonly label: string; readonly dir: string; readonly keep: number };
  /** Limits against slow, hostile and too many clients (rate per address, timeouts, caps), and TLS. */
  readonly http: HttpServerConfig;
}

interface Setting {
  readonly env: string;
  readonly flag: string;
  readonly fallback: string;
  readonly help: string;
}

/** Each setting: its variable, the flag that mirrors it, its default and what it means. */
export const SETTINGS = {
  host: { env: 'TALLY_HOST', flag: 'host', fallback: '127.0.0.1', help: 'address to listen on' },
  port: { env: 'TALLY_PORT', flag: 'port', fallback: '8080', help: 'TCP port (0 picks a free one)' },
  store: { env: 'TALLY_STORE', flag: 'store', fallback: 'sqlite:<data dir>/tally.db', help: 'where readings are kept: sqlite:<path> or postgres://user@host:port/db' },
  dataDir: { env: 'TALLY_DATA_DIR', flag: 'data-dir', fallback: './data', help: 'directory of the default store file tally.db' },
  bodyLimit: { env: 'TALLY_BODY_LIMIT', flag: 'body-limit', fallback: '4MiB', help: 'largest request body (bytes, or with KiB/MiB)' },
  maxReadings: { env: 'TALLY_MAX_READINGS', flag: 'max-readings', fallback: '10000', help: 'most readings in one request' },
  queueLimit: { env: 'TALLY_QUEUE_LIMIT', flag: 'queue-limit', fallback: '100000', help: 'most readings waiting to commit' },
  maxBatchReadings: { env: 'TALLY_MAX_BATCH', flag: 'max-batch', fallback: '20000', help: 'most readings in one transaction' },
  synchronous: { env: 'TALLY_SYNCHRONOUS', flag: 'synchronous', fallback: 'FULL', help: 'SQLite only: FULL (fsync every commit) or NORMAL' },
  logLevel: { env: 'TALLY_LOG_LEVEL', flag: 'log-level', fallback: 'info', help: 'fatal, error, warn, info, debug, trace or silent' },
  requestLog: { env: 'TALLY_REQUEST_LOG', flag: 'request-log', fallback: 'off', help: 'on: a debug line per HTTP request (needs TALLY_LOG_LEVEL=debug)' },
  retention: { env: 'TALLY_RETENTION', flag: 'retention', fallback: '', help: 'keep readings this long, e.g. 30d; empty keeps forever' },
  auth: { env: 'TALLY_AUTH', flag: 'auth', fallback: 'auto', help: 'on (every route needs a key), off (only admin routes), auto (on once a key exists)' },
  rateKey: { env: 'TALLY_RATE_KEY', flag: 'rate-key', fallback: 'off', help: 'requests per API key, e.g. 1000/s or 1000/s,burst=5000; off: no limit' },
  rateDevice: { env: 'TALLY_RATE_DEVICE', flag: 'rate-device', fallback: 'off', help: 'readings per device over every transport, e.g. 50/s; off: no limit' },
  adminToken: { env: 'TALLY_ADMIN_TOKEN', flag: 'admin-token', fallback: '', help: 'a static admin credential beside the keys (prefer `tally keys create --scope admin`)' },
  lpDeviceTag: { env: 'TALLY_LP_DEVICE_TAG', flag: 'lp-device-tag', fallback: 'device', help: 'line protocol: the tag holding the device id (else the measurement name)' },
  lpCountField: { env: 'TALLY_LP_COUNT_FIELD', flag: 'lp-count-field', fallback: 'count', help: "line protocol: the integer field that is the reading's count" },
  auditEvery: { env: 'TALLY_AUDIT_EVERY', flag: 'audit-every', fallback: '', help: 'audit the store in the server this often, e.g. 24h (as tally audit); empty: never' },
  backupEvery: { env: 'TALLY_BACKUP_EVERY', flag: 'backup-every', fallback: '', help: 'SQLite: write a checked backup this often, e.g. 6h; empty: never' },
  backupDir: { env: 'TALLY_BACKUP_DIR', flag: 'backup-dir', fallback: '<store dir>/backups', help: 'where scheduled backups go (best on another disk)' },
  backupKeep: { env: 'TALLY_BACKUP_KEEP', flag: 'backup-keep', fallback: '7', help: 'scheduled backups kept; older ones are deleted' },
  ...HTTP_SERVER_SETTINGS,
  ...MQTT_SETTINGS,
} as const satisfies Record<string, Setting>;

type SettingName = keyof typeof SETTINGS;

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1000, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 };

function size(name: string, raw: string): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(raw.trim());
  const unit = match ? SIZE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (match === null || unit === undefined) {
    throw new ConfigError(`${name} must be a size such as 4194304, 512KiB or 4MiB, got ${JSON.stringify(raw)}`);
  }
  const bytes = Number(match[1]) * unit;
  if (bytes < 1024 || bytes > 1024 ** 3) throw new ConfigError(`${name} must be between 1KiB and 1GiB, got ${raw}`);
  return bytes;
}

function nonEmpty(name: string, raw: string): string {
  if (raw.trim() === '') throw new ConfigError(`${name} must not be empty`);
  return raw;
}

function oneOf<T extends string>(name: string, raw: string, allowed: readonly T[]): T {
  const value = (allowed as readonly string[]).find((a) => a.toLowerCase() === raw.toLowerCase());
  if (value === undefined) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
  return value as T;
}

function rates([keyName, keyRaw]: [string, string], [deviceName, deviceRaw]: [string, string]): Config['rates'] {
  const key = parseRate(keyRaw, keyName);
  const device = parseRate(deviceRaw, deviceName);
  return { ...(key === undefined ? {} : { key }), ...(device === undefined ? {} : { device }) };
}

/**
 * Builds the configuration from flags (which win) and environment variables. Throws ConfigError
 * naming the variable for any invalid value.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = []): Config {
  const options = Object.fromEntries(Object.values(SETTINGS).map((s) => [s.flag, { type: 'string' as const }]));
  let flags: Record<string, string | undefined>;
  try {
    flags = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const read = (key: SettingName): [string, string] => {
    const s = SETTINGS[key];
    const fromFlag = flags[s.flag];
    if (fromFlag !== undefined) return [`--${s.flag}`, fromFlag];
    return [s.env, env[s.env] === undefined || env[s.env] === '' ? s.fallback : env[s.env]!];
  };
  const [storeName, storeRaw] = read('store');
  const location = storeRaw === SETTINGS.store.fallback ? `sqlite:${join(read('dataDir')[1], 'tally.db')}` : storeRaw;
  let config: Config = {
    host: read('host')[1],
    port: wholeNumber(...read('port'), 0, 65535),
    store: storeConfig(location, { sqlite: { synchronous: oneOf(...read('synchronous'), ['FULL', 'NORMAL'] as const) } }, storeName),
    bodyLimit: size(...read('bodyLimit')),
    maxReadings: wholeNumber(...read('maxReadings'), 1, 1_000_000),
    queueLimit: wholeNumber(...read('queueLimit'), 1, 100_000_000),
    maxBatchReadings: wholeNumber(...read('maxBatchReadings'), 1, 1_000_000),
    lineProtocol: { deviceTag: nonEmpty(...read('lpDeviceTag')), countField: nonEmpty(...read('lpCountField')) },
    logLevel: oneOf(...read('logLevel'), ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
    requestLog: oneOf(...read('requestLog'), ['on', 'off'] as const) === 'on',
    auth: oneOf(...read('auth'), ['on', 'off', 'auto'] as const),
    rates: rates(read('rateKey'), read('rateDevice')),
    http: httpServerConfig(read),
  };
  const [retentionName, retention] = read('retention');
  if (retention !== '') {
    try {
      config = { ...config, retention: { us: parseDuration(retention, retentionName), label: retention } };
    } catch (err) {
      if (err instanceof ValidationError) throw new ConfigError(err.message);
      throw err;
    }
  }
  const [tokenName, adminToken] = read('adminToken');
  if (adminToken !== '') {
    if (adminToken.length < 16) throw new ConfigError(`${tokenName} must be at least 16 characters`);
    config = { ...config, adminToken };
  }
  config = { ...config, ...maintenanceConfig(read, config.store) };
  const mqtt = mqttConfig(read);
  if (mqtt !== undefined) config = { ...config, mqtt };
  if (config.queueLimit < config.maxReadings) {
    throw new ConfigError(
      `${SETTINGS.queueLimit.env} (${config.queueLimit}) must be at least ${SETTINGS.maxReadings.env} (${config.maxReadings}), or a full request could never be queued`,
    );
  }
  return Object.freeze(config);
}

/** Longest schedule: Node's timers hold at most 2^31 - 1 ms (24.8 days). */
const LONGEST_EVERY_MS = 24 * 86_400_000;

function every(name: string, raw: string): { everyMs: number; label: string } {
  let us: number;
  try {
    us = parseDuration(raw, name);
  } catch (err) {
    if (err instanceof ValidationError) throw new ConfigError(err.message);
    throw err;
  }
  const everyMs = Math.max(1, Math.round(us / 1000));
  if (everyMs > LONGEST_EVERY_MS) throw new ConfigError(`${name} must be at most 24d, got ${raw}`);
  return { everyMs, label: raw };
}

/** The scheduled audit and backups (TALLY_AUDIT_EVERY, TALLY_BACKUP_*). */
function maintenanceConfig(read: (key: SettingName) => [string, string], store: StoreConfig): Pick<Config, 'audit' | 'backups'> {
  const out: { audit?: Config['audit']; backups?: Config['backups'] } = {};
  const [auditName, auditRaw] = read('auditEvery');
  if (auditRaw !== '') out.audit = every(auditName, auditRaw);
  const [backupName, backupRaw] = read('backupEvery');
  const keep = wholeNumber(...read('backupKeep'), 1, 10_000);
  if (backupRaw !== '') {
    if (store.backend !== 'sqlite') {
      throw new ConfigError(`${backupName} backs up SQLite stores; for PostgreSQL use pg_dump or a streaming replica (README: Backups and restore)`);
    }
    const [dirName, dirRaw] = read('backupDir');
    const dir = dirRaw === SETTINGS.backupDir.fallback ? join(dirname(store.sqlite.file), 'backups') : nonEmpty(dirName, dirRaw);
    out.backups = { ...every(backupName, backupRaw), dir: resolve(dir), keep };
  }
  return out;
}
