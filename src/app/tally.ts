import type { FastifyInstance } from 'fastify';
import { KeyRing } from '../auth/key-ring.js';
import { RateLimiter } from '../domain/rate-limit.js';
import { RetentionWindow } from '../domain/retention.js';
import { buildServer, REDACTED_PATHS } from '../http/server.js';
import { GroupCommitBatcher } from '../ingest/batcher.js';
import { IngestPipeline } from '../ingest/pipeline.js';
import { RetentionPruner } from '../ingest/pruner.js';
import { MqttIngest } from '../mqtt/ingest.js';
import { Health } from '../observability/health.js';
import { TallyMetrics } from '../observability/metrics.js';
import { TimedStore } from '../observability/timed-store.js';
import { openStore } from '../store/index.js';
import type { TelemetryStore } from '../store/types.js';
import { ConfigError, SETTINGS, type Config } from './config.js';
import { Maintenance } from './maintenance.js';

/** A running Tally: the HTTP server, the pipeline and the store, wired together. */
export interface Tally {
  readonly server: FastifyInstance;
  /** The backend itself (the pipeline and the HTTP surfaces use it through a timing wrapper). */
  readonly store: TelemetryStore;
  /** Counters and histograms behind GET /metrics, on a registry of this Tally's own. */
  readonly metrics: TallyMetrics;
  /** The one entry point of every write. */
  readonly ingest: IngestPipeline;
  readonly batcher: GroupCommitBatcher;
  /** Present when TALLY_RETENTION is set. */
  readonly pruner: RetentionPruner | undefined;
  /** The API keys in memory, refreshed from the store. */
  readonly keys: KeyRing;
  /** Present when TALLY_AUDIT_EVERY or TALLY_BACKUP_EVERY is set: the scheduled audit and backups. */
  readonly maintenance: Maintenance | undefined;
  /** Present when TALLY_MQTT_URL is set: the subscriber (its `ready()` resolves once subscribed). */
  readonly mqtt: MqttIngest | undefined;
  /** Starts listening; resolves with the address, e.g. http://127.0.0.1:8080. */
  listen(): Promise<string>;
  /** Stops accepting, answers what is in flight, commits the queue, closes the store. Idempotent. */
  close(): Promise<void>;
}

/**
 * Buckets the per-key and per-device limiters keep at most (least recently used forgotten first):
 * about 220 bytes each, so at most ~14 and ~44 MiB whatever the number of keys and devices.
 */
const KEY_LIMITER_CAPACITY = 65_536;
const DEVICE_LIMITER_CAPACITY = 200_000;

/** Retention sweeps: often enough that little piles up, in deletes small enough not to hold ingest up. */
const PRUNE_INTERVAL_MS = 60_000;
const PRUNE_BATCH = 2_000;

/**
 * Time the HTTP server gives open connections to finish when it stops: a client reading a long
 * stream slowly (or not at all) must not hold the shutdown, and the queue's commits, forever.
 */
const HTTP_GRACE_MS = 10_000;

async function closeHttp(server: FastifyInstance): Promise<void> {
  const cut = setTimeout(() => server.server.closeAllConnections(), HTTP_GRACE_MS).unref();
  try {
    await server.close();
  } finally {
    clearTimeout(cut);
  }
}

/** What a caller may add to the configuration when creating a Tally in-process. */
export interface TallyOptions {
  /** Where log lines go, one JSON line per write (pino's destination); standard output by default. */
  readonly logStream?: { write(line: string): void };
}

/** Addresses only this machine can reach: Tally may be open there until a key exists. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Secure by default: a server others can reach must not start open by accident. Refused unless
 * auth is explicitly off, or a credential exists that the mode honours.
 */
function checkExposure(config: Config, anyKeys: boolean): void {
  if (config.auth === 'off' || isLoopback(config.host) || anyKeys) return;
  if (config.auth === 'on' && config.adminToken !== undefined) return;
  throw new ConfigError(
    `${SETTINGS.host.env}=${config.host} is reachable from other machines and no API key exists: create one first ` +
      '(`npx tally keys create --scope admin --name ops`, with the same TALLY_STORE or TALLY_DATA_DIR), ' +
      `or set ${SETTINGS.auth.env}=off to serve without keys`,
  );
}

export async function createTally(config: Config, options: TallyOptions = {}): Promise<Tally> {
  const backend = await openStore(config.store);
  const keys = new KeyRing(backend, {
    adminToken: config.adminToken,
    // The ring keeps the keys it had; said once per failed refresh, never with a key in it.
    onError: (err, doing) => server.log.warn({ err }, `${doing} failed`),
  });
  try {
    await keys.load();
    checkExposure(config, keys.anyKeys);
  } catch (err) {
    await backend.close();
    throw err;
  }
  const metrics = new TallyMetrics();
  // Everything but the metrics' own queries goes through the timing wrapper.
  const store = new TimedStore(backend, metrics);
  const batcher = new GroupCommitBatcher(store, {
    queueLimit: config.queueLimit,
    maxBatchReadings: config.maxBatchReadings,
  });
  const retention = config.retention && new RetentionWindow(config.retention.us, config.retention.label);
  const deviceRate = config.rates.device && new RateLimiter(config.rates.device, { capacity: DEVICE_LIMITER_CAPACITY });
  const ingest = new IngestPipeline(batcher, { retention, observer: metrics, ...(deviceRate === undefined ? {} : { deviceRate }) });
  const health = new Health({ store, batcher });
  const logger = {
    level: config.logLevel,
    redact: REDACTED_PATHS,
    ...(options.logStream === undefined ? {} : { stream: options.logStream }),
  };
  const server = buildServer(
    { store, ingest, batcher, maxReadings: config.maxReadings, lineProtocol: config.lineProtocol },
    {
      bodyLimit: config.bodyLimit,
      logger,
      access: {
        mode: config.auth,
        keys,
        ...(config.rates.key === undefined ? {} : { keyRate: new RateLimiter(config.rates.key, { capacity: KEY_LIMITER_CAPACITY }) }),
        onKeyLimited: () => metrics.rateLimited('key'),
      },
      requestLog: config.requestLog,
      observer: metrics,
      limits: config.http,
      operations: { scrape: () => metrics.scrape(), health },
    },
  );
  const pruner =
    retention &&
    new RetentionPruner(store, retention, {
      intervalMs: PRUNE_INTERVAL_MS,
      batchLimit: PRUNE_BATCH,
      onError: (err) => server.log.error({ err }, 'retention sweep failed'),
    });
  pruner?.start();
  keys.start();
  const maintenance =
    config.audit !== undefined || config.backups !== undefined
      ? new Maintenance(store, metrics, server.log.child({ task: 'maintenance' }), config)
      : undefined;
  maintenance?.start();
  // Connects in the background (and reconnects): a broker that is down does not keep HTTP from starting.
  const mqtt =
    config.mqtt &&
    new MqttIngest(config.mqtt, { ingest, maxReadings: config.maxReadings, maxBytes: config.bodyLimit, log: server.log.child({ transport: 'mqtt' }) });
  metrics.attach({ batcher, store: backend, mqtt });
  health.attachMqtt(mqtt);

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      // Each step runs even if an earlier one failed, in this order: no new requests (HTTP, then
      // MQTT, which also acknowledges what it committed), then every accepted reading committed,
      // then the store closed.
      const steps: Array<[string, () => Promise<unknown>]> = [
        ['http', () => closeHttp(server)],
        ['mqtt', async () => mqtt?.stop()],
        ['retention', async () => pruner?.stop()],
        ['maintenance', async () => maintenance?.stop()],
        ['batcher', () => batcher.close()],
        ['keys', () => keys.close()],
        ['store', () => store.close()],
        ['health', async () => health.close()],
      ];
      for (const [name, step] of steps) {
        try {
          await step();
        } catch (err) {
          server.log.error({ err }, `shutdown step ${name} failed`);
        }
      }
    })());

  return {
    server,
    store: backend,
    metrics,
    ingest,
    batcher,
    pruner,
    keys,
    maintenance,
    mqtt,
    listen: () => server.listen({ host: config.host, port: config.port }),
    close,
  };
}
