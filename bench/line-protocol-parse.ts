/**
 * CPU per reading of what a bulk write does before the store, on one thread, no HTTP: line
 * protocol (lines read, mapped to items, checked by the pipeline's CandidateReader) beside JSON
 * (JSON.parse of a /v1 array, then the same checks), on the bench:peers bulk body of 1,000 devices.
 * Rounds alternate the two; the best round of each is printed (the machine is shared).
 *
 *   node --import tsx bench/line-protocol-parse.ts [--rounds 8] [--bodies 500]
 */
import { parseArgs } from 'node:util';
import { CandidateReader } from '../src/ingest/candidate.js';
import { forEachLine } from '../src/ingest/line-protocol.js';
import { LineProtocolMapper, lineProtocolShape } from '../src/ingest/line-protocol-mapping.js';
import type { ReadingShape } from '../src/ingest/shape.js';
import { deviceIds } from './peers/workload.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '8' }, bodies: { type: 'string', default: '500' } } });
const rounds = Number(values.rounds);
const bodies = Number(values.bodies);

const ids = deviceIds(1000);
const ts = Date.UTC(2024, 0, 1) / 1000;
const lp = ids.map((id, i) => `m,device=${id} count=${1 + (i % 9)}i ${ts}`).join('\n');
const json = `[${ids.map((id, i) => `{"device_id":"${id}","ts":${ts},"count":${1 + (i % 9)}}`).join(',')}]`;
const v1Shape: ReadingShape = {
  deviceId: { property: 'device_id' },
  ts: 'ts',
  epoch: { unit: 's' },
  count: { property: 'count', rule: 'optional' },
  payload: { property: 'payload', required: false },
  itemForm: '{device_id, ts, count?, payload?}',
};
const mapping = { deviceTag: 'device', countField: 'count' };

const runs: Record<string, () => void> = {
  'line protocol': () => {
    const mapper = new LineProtocolMapper(mapping, 's');
    const items: unknown[] = [];
    const nowUs = Date.now() * 1000;
    forEachLine(lp, (line) => items.push(mapper.item(line, nowUs)));
    const reader = new CandidateReader(lineProtocolShape);
    for (let i = 0; i < items.length; i++) reader.read(items[i], i);
  },
  'JSON /v1': () => {
    const items = JSON.parse(json) as unknown[];
    const reader = new CandidateReader(v1Shape);
    for (let i = 0; i < items.length; i++) reader.read(items[i], i);
  },
};

const best: Record<string, number> = {};
for (let round = 0; round < rounds; round++) {
  for (const [name, run] of Object.entries(runs)) {
    const started = performance.now();
    for (let b = 0; b < bodies; b++) run();
    const usPerReading = ((performance.now() - started) * 1000) / (bodies * ids.length);
    best[name] = Math.min(best[name] ?? Infinity, usPerReading);
  }
}
console.log(`body: 1,000 readings (line protocol ${lp.length} bytes, JSON ${json.length} bytes); best of ${rounds} rounds of ${bodies} bodies`);
for (const [name, us] of Object.entries(best)) console.log(`  ${name}: ${us.toFixed(3)} µs per reading`);
