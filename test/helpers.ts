import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../src/app/config.js';
import { createTally, type Tally, type TallyOptions } from '../src/app/tally.js';
import { createDatabase } from './pg/database.js';

/** A fresh data directory under the system temp dir, removed by the returned cleanup. */
export function tempDir(prefix = 'tally-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A Tally on a fresh SQLite file, not listening: drive it with `tally.server.inject(...)`.
 * `env` overrides configuration variables (TALLY_MAX_READINGS and so on). With
 * TALLY_TEST_STORE=postgres (and TALLY_TEST_PG_URL) in the environment, a test that names no
 * store gets a fresh PostgreSQL database instead, so the HTTP suites can run on either backend.
 */
export async function startTally(
  env: Record<string, string> = {},
  options: TallyOptions = {},
): Promise<{ tally: Tally; config: Config; dir: string; stop(): Promise<void> }> {
  const { dir, cleanup } = tempDir();
  const db = env.TALLY_STORE === undefined && process.env.TALLY_TEST_STORE === 'postgres' ? await createDatabase() : undefined;
  const store = db === undefined ? {} : { TALLY_STORE: db.url };
  const config = loadConfig({ TALLY_DATA_DIR: dir, TALLY_PORT: '0', TALLY_LOG_LEVEL: 'silent', ...store, ...env });
  const tally = await createTally(config, options);
  await tally.server.ready();
  return {
    tally,
    config,
    dir,
    stop: async () => {
      await tally.close();
      cleanup();
      await db?.drop();
    },
  };
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
