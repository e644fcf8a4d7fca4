/**
 * Overload: a separate load process (test/hostile/overload-load.ts, 300 connections that never wait)
 * posts readings to a Tally process for TALLY_OVERLOAD_SECONDS (20). More is offered than the
 * writer can commit (the queue fills: 503s prove it), and Tally must: answer only 2xx, 429 or 503;
 * store every acknowledged reading exactly once; keep /healthz and a read answering (polled from
 * this process, each within 2 s); and keep its peak RSS under the ceiling README states.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { peakRssBytes, ROOT, sleep, startProcess } from '../../bench/proc.js';
import { tempDir } from '../helpers.js';
import { startTallyProcess } from './tally-process.js';

const SECONDS = Number(process.env.TALLY_OVERLOAD_SECONDS ?? 20);
const CONNECTIONS = 300;
const PER_REQUEST = 50;
const QUEUE_LIMIT = 5_000;
const BODY_BYTES = 64 * 1024;
const MAX_CONNECTIONS = 1024;

/**
 * README's ceiling ("Overload and memory"): 400 MiB for the process (Node, the code, SQLite's page
 * caches, the heap under load), 2 KiB per queued reading (small payloads), and 4 times each body
 * being read at once (its text and the objects it parses to): here at most one body of the load's
 * per connection. Through tsx the process alone would be ~100 MiB more: it runs compiled.
 */
const BODY_SAMPLE = JSON.stringify(Array.from({ length: PER_REQUEST }, (_, i) => ({ device_id: 'load-299', ts: new Date(Date.UTC(2024, 0, 1) + i * 1e9).toISOString(), count: 1 })));
const CEILING_BYTES = 400 * 2 ** 20 + QUEUE_LIMIT * 2048 + CONNECTIONS * 4 * Buffer.byteLength(BODY_SAMPLE);

let tally: Awaited<ReturnType<typeof startTallyProcess>>;
const scratch = tempDir('tally-overload-');

beforeAll(async () => {
  tally = await startTallyProcess({
    TALLY_QUEUE_LIMIT: String(QUEUE_LIMIT),
    TALLY_MAX_READINGS: '1000',
    TALLY_BODY_LIMIT: String(BODY_BYTES),
    TALLY_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
  });
}, 30_000);
afterAll(async () => {
  await tally?.stop();
  scratch.cleanup();
});

/** GETs `path` every 250 ms until `stop()`; every answer's status and time. */
async function poll(path: string, stop: () => boolean): Promise<Array<{ status: number | string; ms: number }>> {
  const answers: Array<{ status: number | string; ms: number }> = [];
  while (!stop()) {
    const started = performance.now();
    try {
      const res = await fetch(new URL(path, tally.url), { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      answers.push({ status: res.status, ms: performance.now() - started });
    } catch (err) {
      answers.push({ status: (err as Error).name, ms: performance.now() - started });
    }
    await sleep(250);
  }
  return answers;
}

test(`${CONNECTIONS} connections overloading for ${SECONDS} s: only 2xx/429/503, every acknowledged reading stored once, health answering, RSS bounded`, async () => {
  const out = join(scratch.dir, 'load.json');
  const load = startProcess(process.execPath, ['--import', 'tsx', 'test/hostile/overload-load.ts', tally.url, String(SECONDS), String(CONNECTIONS), String(PER_REQUEST), out], { cwd: ROOT });
  let done = false;
  const exited = load.exited.then((r) => ((done = true), r));
  const [health, reads, result] = await Promise.all([poll('/healthz', () => done), poll('/v1/devices?limit=10', () => done), exited]);
  expect(result.code, load.output()).toBe(0);
  const peakRss = peakRssBytes(tally.proc.pid)!;
  const { statuses, acked, unknown, refusals } = JSON.parse(readFileSync(out, 'utf8')) as {
    statuses: Record<string, number>;
    acked: Record<string, number>;
    unknown: Record<string, number>;
    refusals: { p50: number; p99: number; max: number } | null;
  };
  const ackedTotal = Object.values(acked).reduce((a, b) => a + b, 0);
  console.log(
    `overload ${SECONDS} s, ${CONNECTIONS} connections x ${PER_REQUEST} readings: answers ${JSON.stringify(statuses)}; ` +
      `${ackedTotal} readings acknowledged (${Math.round(ackedTotal / SECONDS)}/s); peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB ` +
      `(ceiling ${(CEILING_BYTES / 2 ** 20).toFixed(0)} MiB); /healthz worst ${Math.round(Math.max(...health.map((h) => h.ms)))} ms over ${health.length} polls; ` +
      `reads worst ${Math.round(Math.max(...reads.map((h) => h.ms)))} ms; refusals answered in ${refusals && `${refusals.p50.toFixed(0)} ms (median), ${refusals.p99.toFixed(0)} ms (p99)`}`,
  );

  // Only success or an immediate refusal; anything else (5xx but 503, 4xx, no answer) is a failure.
  expect(Object.keys(statuses).filter((s) => !/^2\d\d$/.test(s) && s !== '429' && s !== '503')).toEqual([]);
  // Overloaded indeed: the queue filled and the excess was shed, while readings kept committing.
  expect(statuses['503'] ?? 0).toBeGreaterThan(0);
  expect(ackedTotal).toBeGreaterThan(0);
  // Health and reads answered throughout, each promptly.
  expect(health.length).toBeGreaterThan(SECONDS);
  expect(health.filter((h) => h.status !== 200 || h.ms > 2_000)).toEqual([]);
  expect(reads.filter((h) => h.status !== 200 || h.ms > 2_000)).toEqual([]);
  expect(peakRss).toBeLessThan(CEILING_BYTES);

  // Every acknowledged reading stored, once: each device holds exactly what was acknowledged
  // (readings of refused requests are not stored; those with no answer may or may not be).
  for (const [device, n] of Object.entries(acked)) {
    const res = await fetch(new URL(`/v1/devices/${device}`, tally.url));
    const stored = res.status === 404 ? { reading_count: 0, cumulative_count: 0 } : ((await res.json()) as { reading_count: number; cumulative_count: number });
    expect(stored.reading_count, device).toBeGreaterThanOrEqual(n);
    expect(stored.reading_count, device).toBeLessThanOrEqual(n + (unknown[device] ?? 0));
    // Every reading has count 1: the cumulative count is the number stored, none counted twice.
    expect(stored.cumulative_count, device).toBe(stored.reading_count);
  }
}, (SECONDS + 60) * 1000);
