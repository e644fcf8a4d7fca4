import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../http/server.js';
import { RetentionWindow } from '../domain/retention.js';
import { GroupCommitBatcher } from '../ingest/batcher.js';
import { RetentionPruner } from '../ingest/pruner.js';
import { SqliteStore } from '../store/sqlite/store.js';
import type { Config } from './config.js';

/** A running Tally: the HTTP server, the pipeline and the store, wired together. */
export interface Tally {
  readonly server: FastifyInstance;
  readonly store: SqliteStore;
  readonly batcher: GroupCommitBatcher;
  /** Present when TALLY_RETENTION is set. */
  readonly pruner: RetentionPruner | undefined;
  /** Starts listening; resolves with the address, e.g. http://127.0.0.1:8080. */
  listen(): Promise<string>;
  /** Stops accepting, answers what is in flight, commits the queue, closes the store. Idempotent. */
  close(): Promise<void>;
}

export async function createTally(config: Config): Promise<Tally> {
  mkdirSync(config.dataDir, { recursive: true });
  const store = await SqliteStore.open({
    file: join(config.dataDir, 'tally.db'),
    synchronous: config.synchronous,
    cacheMiB: 64,
    compactRows: 100_000,
  });
  const batcher = new GroupCommitBatcher(store, {
    queueLimit: config.queueLimit,
    maxBatchReadings: config.maxBatchReadings,
  });
  const retention = config.retention && new RetentionWindow(config.retention.us, config.retention.label);
  const server = buildServer(
    { store, batcher, maxReadings: config.maxReadings, retention, adminToken: config.adminToken },
    { bodyLimit: config.bodyLimit, logger: { level: config.logLevel } },
  );
  const pruner =
    retention &&
    new RetentionPruner(store, retention, {
      intervalMs: 60_000,
      batchLimit: 2_000,
      onError: (err) => server.log.error({ err }, 'retention sweep failed'),
    });
  pruner?.start();

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      // Each step runs even if an earlier one failed, in this order: no new requests, then every
      // accepted reading committed, then the store closed.
      const steps: Array<[string, () => Promise<unknown>]> = [
        ['http', () => server.close()],
        ['retention', async () => pruner?.stop()],
        ['batcher', () => batcher.close()],
        ['store', () => store.close()],
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
    store,
    batcher,
    pruner,
    listen: () => server.listen({ host: config.host, port: config.port }),
    close,
  };
}
