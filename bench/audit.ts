/**
 * `tally audit` and `tally backup` on a store of known size, as an operator runs them: fills a fresh
 * SQLite store (DEVICES x READINGS hourly readings, each with a count and a small payload) through
 * SqliteStore, then runs the built CLI (dist/) for `audit`, `audit --full` and `backup`, each in a
 * process of its own under /usr/bin/time for its wall time and peak memory.
 *
 *   npm run build && node --import tsx bench/audit.ts [--devices 1000] [--readings 1000]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SqliteStore } from '../src/store/sqlite/store.js';
import { ROOT } from './proc.js';

const { values } = parseArgs({ options: { devices: { type: 'string', default: '1000' }, readings: { type: 'string', default: '1000' } } });
const DEVICES = Number(values.devices);
const READINGS = Number(values.readings);
const HOURS_PER_BATCH = 10;
const BASE = Date.UTC(2025, 0, 1) * 1000;
const HOUR = 3_600_000_000;

const dir = mkdtempSync(join(tmpdir(), 'tally-bench-audit-'));
const file = join(dir, 'tally.db');
try {
  const started = performance.now();
  const store = await SqliteStore.open({ file, synchronous: 'NORMAL', cacheMiB: 64, compactRows: 100_000 });
  for (let h = 0; h < READINGS; h += HOURS_PER_BATCH) {
    const batch = [];
    for (let d = 0; d < DEVICES; d++) {
      for (let k = h; k < Math.min(READINGS, h + HOURS_PER_BATCH); k++) {
        const tsUs = BASE + k * HOUR;
        batch.push({ deviceId: `dev-${d}`, tsUs, tsText: new Date(tsUs / 1000).toISOString(), count: (k + d) % 7, payload: JSON.stringify({ temp: 20 + (d % 10), hum: 0.5 }) });
      }
    }
    await store.appendBatch(batch);
  }
  await store.close();
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  console.log(`store: ${DEVICES} devices x ${READINGS} readings = ${DEVICES * READINGS} readings, ${mib(statSync(file).size)} MiB, filled in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  for (const args of [['audit'], ['audit', '--full'], ['backup', join(dir, 'backup.db')]]) {
    const run = spawnSync('/usr/bin/time', ['-f', '%e s wall, %M KiB peak RSS', process.execPath, 'dist/app/cli.js', ...args, '--store', `sqlite:${file}`], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    if (run.status !== 0) throw new Error(`tally ${args.join(' ')} exited ${run.status}: ${run.stderr}`);
    console.log(`${run.stdout.trim()}\n  (${run.stderr.trim()})`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
