import type { FastifyInstance } from 'fastify';
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
import type { Config } from './config.js';

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
  /** Present when TALLY_MQTT_URL is set: the subscriber (its `ready()` resolves once subscribed). */
  readonly mqtt: MqttIngest | undefined;
  /** Starts listening; resolves with the address, e.g. http://127.0.0.1:8080. */
  listen(): Promise<string>;
  /** Stops accepting, answers what is in flight, commits the queue, closes the store. Idempotent. */
  close(): Promise<void>;
}

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

export async function createTally(config: Config, options: TallyOptions = {}): Promise<Tally> {
  const backend = await openStore(config.store);
  const metrics = new TallyMetrics();
  // Everything but the metrics' own queries goes through the timing wrapper.
  const store = new TimedStore(backend, metrics);
  const batcher = new GroupCommitBatcher(store, {
    queueLimit: config.queueLimit,
    maxBatchReadings: config.maxBatchReadings,
  });
  const retention = config.retention && new RetentionWindow(config.retention.us, config.retention.label);
  const ingest = new IngestPipeline(batcher, { retention, observer: metrics });
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
      adminToken: config.adminToken,
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
        ['batcher', () => batcher.close()],
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
    mqtt,
    listen: () => server.listen({ host: config.host, port: config.port }),
    close,
  };
}
