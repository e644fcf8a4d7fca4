import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/app/config.js';
import { createTally } from '../../src/app/tally.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import { freePort, startTally, tempDir } from '../helpers.js';

/** The wiring from configuration to a running store: what a start with these settings really gets. */

const CLI = fileURLToPath(new URL('../../src/app/cli.ts', import.meta.url));

describe('configuration reaches the store', () => {
  test.each([
    [{}, 'FULL'],
    [{ TALLY_SYNCHRONOUS: 'NORMAL' }, 'NORMAL'],
    [{ TALLY_SYNCHRONOUS: 'full' }, 'FULL'],
  ] as const)('%o: the writer connection runs with synchronous=%s, in WAL mode', async (env, expected) => {
    const t = await startTally(env);
    try {
      expect(await (t.tally.store as SqliteStore).settings()).toEqual({ synchronous: expected, journalMode: 'wal' });
    } finally {
      await t.stop();
    }
  });

  test('TALLY_STORE=sqlite:<path> puts the file there (directories created), whatever TALLY_DATA_DIR says', async () => {
    const { dir, cleanup } = tempDir();
    const elsewhere = join(dir, 'elsewhere', 'deeper', 'tally.db');
    const dataDir = join(dir, 'data');
    const tally = await createTally(loadConfig({ TALLY_STORE: `sqlite:${elsewhere}`, TALLY_DATA_DIR: dataDir, TALLY_LOG_LEVEL: 'silent' }));
    try {
      const res = await tally.server.inject({
        method: 'POST',
        url: '/v1/readings',
        payload: [{ device_id: 'where', ts: '2024-01-01T00:00:00Z', count: 2 }],
      });
      expect(res.statusCode).toBe(200);
      expect(existsSync(elsewhere)).toBe(true);
      expect(existsSync(join(dataDir, 'tally.db'))).toBe(false);
    } finally {
      await tally.close();
    }
    // Opened again from the same location, the reading is there.
    const again = await createTally(loadConfig({ TALLY_STORE: `sqlite:${elsewhere}`, TALLY_LOG_LEVEL: 'silent' }));
    try {
      expect((await again.store.getDevice('where'))?.cumulativeCount).toBe(2);
    } finally {
      await again.close();
      cleanup();
    }
  });
});

describe('the CLI with TALLY_STORE', () => {
  test('serves from the named file, and SIGTERM stops it cleanly with what it acknowledged kept', async () => {
    const { dir, cleanup } = tempDir();
    const file = join(dir, 'elsewhere', 'tally.db');
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve'], {
      env: { PATH: process.env.PATH ?? '', TALLY_STORE: `sqlite:${file}`, TALLY_PORT: String(port), TALLY_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 20_000;
      for (;;) {
        const up = await fetch(`${base}/api/ping`).then((r) => r.ok, () => false);
        if (up) break;
        if (Date.now() > deadline) throw new Error(`the CLI did not start: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const posted = await fetch(`${base}/v1/readings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ device_id: 'cli', ts: '2024-01-01T00:00:00Z', count: 5 }]),
      });
      expect(posted.status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(existsSync(file)).toBe(true);
      const t = await createTally(loadConfig({ TALLY_STORE: `sqlite:${file}`, TALLY_LOG_LEVEL: 'silent' }));
      try {
        expect((await t.store.getDevice('cli'))?.cumulativeCount).toBe(5);
      } finally {
        await t.close();
      }
    } finally {
      child.kill('SIGKILL');
      cleanup();
    }
  });
});
