/**
 * Tally's bulk speed from its start, in parts: on a fresh data dir, then after a restart on the same
 * dir. If a restarted server is as slow at first as a fresh one, the slow start is the process
 * warming up (JIT compilation, heap sizing), not the data: why `npm run bench:peers` warms each
 * server up before timing it. `--node-args` passes flags to Tally's node (e.g. V8 flags to try).
 *
 *   npm run build && node --import tsx bench/peers/warmup.ts [--parts 5] [--steps 1000] [--node-args='--flag ...']
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { threadCpuSeconds } from '../proc.js';
import { Ledger, runLoad } from './load.js';
import { tally } from './systems.js';
import { bulkPlan, deviceIds, render } from './workload.js';

const { values } = parseArgs({
  options: { parts: { type: 'string', default: '5' }, steps: { type: 'string', default: '1000' }, 'node-args': { type: 'string', default: '' } },
});
const parts = Number(values.parts);
const steps = Number(values.steps);
const DEVICES = 1000;

const system = tally({ nodeArgs: values['node-args']!.split(' ').filter((a) => a !== '') });
const dir = mkdtempSync(join(tmpdir(), 'tally-warmup-'));
const plan = bulkPlan(1, DEVICES, 2 * parts * steps);
const ledger = new Ledger(render(plan, 'json', deviceIds(DEVICES)));
console.log(`bulk, ${steps} steps of ${DEVICES} readings per part, 8 connections: readings/s (server CPU µs per reading: all threads; the two busiest)`);
try {
  for (const start of ['fresh', 'restarted']) {
    const server = await system.start(dir);
    const line: string[] = [];
    try {
      for (let p = 0; p < parts; p++) {
        const before = threadCpuSeconds(server.proc.pid);
        const load = await runLoad(ledger, { url: server.url, path: system.writePath, contentType: system.contentType, connections: 8, maxBodies: steps, maxSeconds: 600, readingsIn: () => DEVICES });
        const used = [...threadCpuSeconds(server.proc.pid)].map(([tid, s]) => ((s - (before.get(tid) ?? 0)) / load.okReadings) * 1e6).sort((a, b) => b - a);
        const all = used.reduce((a, b) => a + b, 0);
        line.push(`${Math.round(load.readingsPerS / 1000)}k (${all.toFixed(2)}: ${used[0]!.toFixed(2)}, ${used[1]!.toFixed(2)})`);
      }
    } finally {
      await server.proc.stop();
    }
    console.log(`${start.padEnd(9)} ${line.join('  ')}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
