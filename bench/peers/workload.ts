/**
 * The readings every system gets, generated from a seed before any timing, and their request
 * bodies in each system's format: Tally's `/v1/readings?precision=s` JSON array and Influx line
 * protocol (`m,device=<id> count=<n>i <ts>`, precision s) for InfluxDB and VictoriaMetrics.
 *
 * A plan is columnar: reading r is (device[r], ts[r], count[r]), and body b carries the readings
 * bodyStart[b] .. bodyStart[b + 1] - 1. The same seed always gives the same plan and the same bytes.
 */

/** 2024-01-01T00:00:00Z, seconds. Peers keep it (VictoriaMetrics runs with a long retention). */
export const BASE_TS = Date.UTC(2024, 0, 1) / 1000;
/** Influx measurement and field; VictoriaMetrics names the series `m_count`. */
export const MEASUREMENT = 'm';
export const FIELD = 'count';

export type Format = 'json' | 'line';

export interface Plan {
  readonly name: string;
  readonly readings: number;
  readonly device: Uint32Array;
  readonly ts: Uint32Array;
  readonly count: Uint32Array;
  /** bodies + 1 entries; body b holds readings bodyStart[b] .. bodyStart[b + 1] - 1. */
  readonly bodyStart: Uint32Array;
  readonly bodies: number;
  /** For a plan of resent readings: the index of each reading in the plan it was taken from. */
  readonly source?: Uint32Array;
}

/** Rendered bodies: one buffer and offsets, so nothing is serialised while load runs. */
export interface Bodies {
  readonly format: Format;
  readonly count: number;
  readonly bytes: number;
  body(b: number): Buffer;
}

/** mulberry32: a small, fast, seedable generator of 32-bit integers. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Device ids: dev-0000 .. dev-<n-1>, zero-padded so they sort as numbers. */
export function deviceIds(n: number): string[] {
  const width = Math.max(4, String(n - 1).length);
  return Array.from({ length: n }, (_, i) => `dev-${String(i).padStart(width, '0')}`);
}

function plan(name: string, device: Uint32Array, ts: Uint32Array, count: Uint32Array, bodyStart: Uint32Array, source?: Uint32Array): Plan {
  const p = { name, readings: device.length, device, ts, count, bodyStart, bodies: bodyStart.length - 1 };
  return source === undefined ? p : { ...p, source };
}

/**
 * Bulk: `steps` time steps one second apart from `firstTs`, each step one body holding every
 * device's reading at that instant (the interleaved order real fleets produce). Counts 1..9.
 */
export function bulkPlan(seed: number, devices: number, steps: number, firstTs = BASE_TS): Plan {
  const next = prng(seed);
  const n = devices * steps;
  const device = new Uint32Array(n);
  const ts = new Uint32Array(n);
  const count = new Uint32Array(n);
  const bodyStart = new Uint32Array(steps + 1);
  for (let s = 0, r = 0; s < steps; s++) {
    bodyStart[s] = r;
    for (let d = 0; d < devices; d++, r++) {
      device[r] = d;
      ts[r] = firstTs + s;
      count[r] = 1 + (next() % 9);
    }
  }
  bodyStart[steps] = n;
  return plan('bulk', device, ts, count, bodyStart);
}

/**
 * Duplicates: about `fraction` of the readings of `source` bodies `fromBody` onward, picked by the
 * seed, resent in their original order `perBody` to a body, each with a different (greater) count.
 */
export function duplicatesPlan(seed: number, original: Plan, fraction: number, fromBody = 0, perBody = 1000): Plan {
  const next = prng(seed);
  const threshold = Math.round(fraction * 2 ** 32);
  const picked: number[] = [];
  for (let r = original.bodyStart[fromBody]!; r < original.readings; r++) if (next() < threshold) picked.push(r);
  const n = picked.length;
  const device = new Uint32Array(n);
  const ts = new Uint32Array(n);
  const count = new Uint32Array(n);
  const source = Uint32Array.from(picked);
  for (let i = 0; i < n; i++) {
    const r = picked[i]!;
    device[i] = original.device[r]!;
    ts[i] = original.ts[r]!;
    count[i] = original.count[r]! + 1 + (next() % 5);
  }
  const bodies = Math.ceil(n / perBody);
  const bodyStart = new Uint32Array(bodies + 1);
  for (let b = 0; b <= bodies; b++) bodyStart[b] = Math.min(n, b * perBody);
  return plan('duplicates', device, ts, count, bodyStart, source);
}

/**
 * Single: one reading per body; reading i is device i mod D at firstTs + floor(i / D), so every
 * reading is distinct and each device's timestamps rise in sending order. Counts 1..9.
 */
export function singlePlan(seed: number, devices: number, readings: number, firstTs = BASE_TS, name = 'single'): Plan {
  const next = prng(seed);
  const device = new Uint32Array(readings);
  const ts = new Uint32Array(readings);
  const count = new Uint32Array(readings);
  const bodyStart = new Uint32Array(readings + 1);
  for (let i = 0; i < readings; i++) {
    device[i] = i % devices;
    ts[i] = firstTs + Math.floor(i / devices);
    count[i] = 1 + (next() % 9);
    bodyStart[i] = i;
  }
  bodyStart[readings] = readings;
  return plan(name, device, ts, count, bodyStart);
}

function renderBody(p: Plan, b: number, format: Format, ids: readonly string[]): string {
  const from = p.bodyStart[b]!;
  const to = p.bodyStart[b + 1]!;
  const parts: string[] = new Array(to - from);
  if (format === 'json') {
    for (let r = from; r < to; r++) parts[r - from] = `{"device_id":"${ids[p.device[r]!]}","ts":${p.ts[r]},"count":${p.count[r]}}`;
    return `[${parts.join(',')}]`;
  }
  for (let r = from; r < to; r++) parts[r - from] = `${MEASUREMENT},device=${ids[p.device[r]!]} ${FIELD}=${p.count[r]}i ${p.ts[r]}`;
  return parts.join('\n');
}

/** Renders every body of a plan into one buffer (device ids must be ASCII without , = space or "). */
export function render(p: Plan, format: Format, ids: readonly string[]): Bodies {
  for (const id of ids) {
    if (!/^[A-Za-z0-9_.:-]+$/.test(id)) throw new Error(`device id ${JSON.stringify(id)} needs escaping; use plain ASCII ids`);
  }
  const offsets = new Float64Array(p.bodies + 1);
  const chunks: Buffer[] = [];
  let pending: string[] = [];
  let pendingBytes = 0;
  let total = 0;
  for (let b = 0; b < p.bodies; b++) {
    const text = renderBody(p, b, format, ids);
    offsets[b] = total;
    total += text.length;
    pending.push(text);
    pendingBytes += text.length;
    if (pendingBytes >= 1 << 22) {
      chunks.push(Buffer.from(pending.join(''), 'latin1'));
      pending = [];
      pendingBytes = 0;
    }
  }
  if (pending.length > 0) chunks.push(Buffer.from(pending.join(''), 'latin1'));
  offsets[p.bodies] = total;
  const buf = Buffer.concat(chunks, total);
  return {
    format,
    count: p.bodies,
    bytes: total,
    body: (b) => buf.subarray(offsets[b]!, offsets[b + 1]!),
  };
}

/** Key of one reading for set membership: device * 2^32 + ts (exact below 2^53). */
export function readingKey(device: number, ts: number): number {
  return device * 4294967296 + ts;
}

/** Readings in each body of `p`, by body index. */
export function readingsIn(p: Plan): (b: number) => number {
  return (b) => p.bodyStart[b + 1]! - p.bodyStart[b]!;
}

/** Per-device sum of counts over the bodies `include` accepts (all by default). */
export function sumsByDevice(p: Plan, devices: number, include: (b: number) => boolean = () => true): Float64Array {
  const sums = new Float64Array(devices);
  for (let b = 0; b < p.bodies; b++) {
    if (!include(b)) continue;
    for (let r = p.bodyStart[b]!; r < p.bodyStart[b + 1]!; r++) {
      const d = p.device[r]!;
      sums[d] = sums[d]! + p.count[r]!;
    }
  }
  return sums;
}
