/**
 * The reads issue's workload, shared by bench/reads.ts (Tally builds against each other) and
 * bench/peers/reads.ts (Tally against InfluxDB): one device with `big` readings a second apart
 * (count 1-5, payload {"temp"}), and a fleet of `fleetDevices` x `fleetReadings` a minute apart,
 * interleaved (reading r of every device before reading r + 1, count 1-3); the requests timed.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { eachLimited, sleep } from './proc.js';
import { median } from './report.js';

export const BASE_MS = Date.UTC(2024, 0, 1);
export const BATCH = 10_000;
export const iso = (ms: number) => new Date(ms).toISOString();

export interface ReadsData {
  readonly big: number;
  readonly fleetDevices: number;
  readonly fleetReadings: number;
}

/** One reading of the workload, as every system is sent it. */
export interface WorkloadReading {
  readonly device: string;
  readonly ms: number;
  readonly count: number;
  readonly temp?: number;
}

/** The workload's readings in batches of BATCH, each made when asked for: the big device, then the fleet. */
export function batches(d: ReadsData): Array<() => WorkloadReading[]> {
  const out: Array<() => WorkloadReading[]> = [];
  for (let start = 0; start < d.big; start += BATCH) {
    out.push(() =>
      Array.from({ length: Math.min(BATCH, d.big - start) }, (_, k) => {
        const i = start + k;
        return { device: 'big', ms: BASE_MS + i * 1000, count: 1 + (i % 5), temp: 15 + (i % 100) / 10 };
      }),
    );
  }
  const fleetTotal = d.fleetDevices * d.fleetReadings;
  for (let start = 0; start < fleetTotal; start += BATCH) {
    out.push(() =>
      Array.from({ length: Math.min(BATCH, fleetTotal - start) }, (_, k) => {
        const i = start + k;
        return { device: `dev-${i % d.fleetDevices}`, ms: BASE_MS + Math.floor(i / d.fleetDevices) * 60_000, count: 1 + (i % 3) };
      }),
    );
  }
  return out;
}

/** A batch as Tally's /v1 takes it. */
export function tallyBody(readings: WorkloadReading[]): string {
  return JSON.stringify(
    readings.map((r) => ({ device_id: r.device, ts: iso(r.ms), count: r.count, ...(r.temp === undefined ? {} : { payload: { temp: r.temp } }) })),
  );
}

/** POSTs a body until it is taken (503: again after 100 ms). */
export async function postUntilTaken(url: string, body: string, contentType: string, ok: number): Promise<void> {
  for (;;) {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
    const text = await res.text();
    if (res.status === ok) return;
    if (res.status === 503) {
      await sleep(100);
      continue;
    }
    throw new Error(`POST ${url}: ${res.status} ${text.slice(0, 200)}`);
  }
}

/** Sends every batch (4 at a time) through `post`; returns readings per second. */
export async function loadAll(d: ReadsData, post: (readings: WorkloadReading[]) => Promise<void>): Promise<number> {
  const started = performance.now();
  await eachLimited(batches(d), 4, (batch) => post(batch()));
  return (d.big + d.fleetDevices * d.fleetReadings) / ((performance.now() - started) / 1000);
}

/** A request, timed; a connection the busy machine did not accept in time is tried again (not timed). */
export async function timed(url: string, init?: RequestInit): Promise<{ ms: number; json: any }> {
  for (let attempt = 1; ; attempt++) {
    try {
      const t0 = performance.now();
      const res = await fetch(url, init);
      const json = await res.json();
      if (!res.ok) throw new Error(`${url}: ${res.status} ${JSON.stringify(json).slice(0, 200)}`);
      return { ms: performance.now() - t0, json };
    } catch (err) {
      if (attempt === 3 || (err as Error).message !== 'fetch failed') throw err;
      console.log(`(${url}: ${String((err as { cause?: unknown }).cause)}; again)`);
    }
  }
}

/** The median of `rounds` timings of `ask`, each answer passed to `check` (which throws if wrong). */
export async function medianOf(rounds: number, ask: () => Promise<{ ms: number; json: any }>, check: (json: any) => void): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const { ms, json } = await ask();
    check(json);
    times.push(ms);
  }
  return median(times);
}

export function expectEqual(what: string, got: unknown, want: unknown): void {
  if (got !== want) throw new Error(`check failed: ${what}: got ${String(got)}, expected ${String(want)}`);
}

/** Single-reading writes (`send(i)` writes the i-th) at `perSecond` for `seconds`; their latencies in ms (Infinity: never answered). */
export async function writeLatencies(perSecond: number, seconds: number, send: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  const sends: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; i < perSecond * seconds; i++) {
    const due = started + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    sends.push(
      (async () => {
        const t0 = performance.now();
        try {
          await send(i);
          out.push(performance.now() - t0);
        } catch {
          out.push(Infinity); // not answered at all (a server too busy to accept the connection in 10 s)
        }
      })(),
    );
  }
  await Promise.all(sends);
  return out;
}

export const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
};

/** `p50/p99` of latencies, with how many were never answered. */
export function latencyText(values: number[]): string {
  const failed = values.filter((v) => v === Infinity).length;
  return `${pct(values, 0.5).toFixed(1)}/${pct(values, 0.99).toFixed(1)}${failed > 0 ? ` (${failed} failed)` : ''}`;
}

/** Bytes of the files under `dir`, recursively. */
export function dirBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((sum, e) => sum + (e.isDirectory() ? dirBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);
}
