/**
 * The SQLite writer on its own, without HTTP or threads: how many readings per second one writer
 * commits for the two arrival patterns that matter, with synchronous=FULL on a fresh file.
 *
 *   fleet:  each transaction holds K time steps across 1,000 devices (a fleet reporting together)
 *   device: each transaction holds 10 requests of 1,000 readings of one device each
 *
 * Also the time to seal the text chunks left waiting once the writes are done (seal-chunks.ts), and
 * the file's size after close (everything compacted and sealed, free pages given back) per reading.
 *
 * node --import tsx bench/writer.ts [--readings 1000000] [--compact-rows 100000] [--steps-per-tx 10] [--patterns fleet,device]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Reading } from '../src/domain/reading.js';
import { toColumns } from '../src/store/sqlite/columns.js';
import { SqliteWriter } from '../src/store/sqlite/writer.js';

const { values } = parseArgs({
  options: {
    readings: { type: 'string', default: '1000000' },
    'compact-rows': { type: 'string', default: '100000' },
    'steps-per-tx': { type: 'string', default: '10' },
    patterns: { type: 'string', default: 'fleet,device' },
  },
});
const TOTAL = Number(values.readings);
const COMPACT_ROWS = Number(values['compact-rows']);
const STEPS_PER_TX = Number(values['steps-per-tx']);
const DEVICES = Array.from({ length: 1000 }, (_, i) => `device-${String(i).padStart(4, '0')}`);
const T0 = Date.UTC(2024, 0, 1) * 1000;
const SECOND = 1_000_000;

function reading(deviceId: string, second: number): Reading {
  return { deviceId, tsUs: T0 + second * SECOND, tsText: null, count: 1, payload: null };
}

/** Transactions of the fleet pattern: STEPS_PER_TX time steps, every device once per step. */
function* fleet(): Generator<Reading[]> {
  for (let step = 0; step * DEVICES.length < TOTAL; step += STEPS_PER_TX) {
    const tx: Reading[] = [];
    for (let s = step; s < step + STEPS_PER_TX; s++) for (const d of DEVICES) tx.push(reading(d, s));
    yield tx;
  }
}

/** Transactions of the device pattern: 10 requests of 1,000 consecutive readings of one device. */
function* deviceBatches(): Generator<Reading[]> {
  const next = new Map<string, number>();
  let d = 0;
  for (let n = 0; n < TOTAL; n += 10_000) {
    const tx: Reading[] = [];
    for (let r = 0; r < 10; r++) {
      const device = DEVICES[d++ % DEVICES.length]!;
      const start = next.get(device) ?? 0;
      for (let k = 0; k < 1000; k++) tx.push(reading(device, start + k));
      next.set(device, start + 1000);
    }
    yield tx;
  }
}

function run(name: string, transactions: Iterable<Reading[]>): void {
  const dir = mkdtempSync(join(tmpdir(), 'tally-writer-bench-'));
  const writer = new SqliteWriter({ file: join(dir, 'tally.db'), synchronous: 'FULL', cacheMiB: 64, compactRows: COMPACT_ROWS });
  const txMs: number[] = [];
  const compactMs: number[] = [];
  let rows = 0;
  const started = performance.now();
  for (const tx of transactions) {
    const t = performance.now();
    writer.append(toColumns(tx));
    txMs.push(performance.now() - t);
    rows += tx.length;
    // As the writer thread does: a step after each commit while a round is under way.
    if (writer.compacting || writer.backlog >= writer.compactRows) {
      const m = performance.now();
      writer.compactStep();
      compactMs.push(performance.now() - m);
    }
    // And a sealing step while more text waits than its bound (seal-chunks.ts).
    if (writer.sealDue) writer.sealStep();
  }
  const seconds = (performance.now() - started) / 1000;
  // What is left to seal waits for an idle writer: timed apart.
  const sealStarted = performance.now();
  while (writer.sealBacklog > 0) writer.sealStep();
  const sealSeconds = (performance.now() - sealStarted) / 1000;
  writer.close();
  const fileBytes = statSync(join(dir, 'tally.db')).size;
  rmSync(dir, { recursive: true, force: true });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;
  console.log(
    `${name.padEnd(7)} ${rows.toLocaleString('en-US')} readings in ${seconds.toFixed(2)} s = ` +
      `${Math.round(rows / seconds).toLocaleString('en-US')} readings/s; transaction median ${median(txMs).toFixed(1)} ms; ` +
      `${compactMs.length} compaction steps, median ${median(compactMs).toFixed(0)} ms, max ${Math.max(0, ...compactMs).toFixed(0)} ms; ` +
      `${(fileBytes / rows).toFixed(1)} bytes a reading on disk after close; ` +
      `sealing afterwards ${sealSeconds.toFixed(2)} s (${((sealSeconds / rows) * 1e6).toFixed(2)} µs a reading)`,
  );
}

console.log(`SQLite writer alone: synchronous=FULL, compactRows ${COMPACT_ROWS.toLocaleString('en-US')}, node ${process.version}`);
const patterns = values.patterns.split(',');
if (patterns.includes('fleet')) run('fleet', fleet());
if (patterns.includes('device')) run('device', deviceBatches());
