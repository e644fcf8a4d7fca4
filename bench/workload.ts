/**
 * Pre-generated Bright Counter request bodies and the bookkeeping of which ones were acknowledged.
 *
 * Body i belongs to device i mod D and carries "round" floor(i / D) of that device: round r holds
 * the readings r*B .. r*B+B-1 of the device, one second apart, so every reading is unique and each
 * device's timestamps increase in the order the bodies are sent. Bodies are assembled from two
 * pre-built buffers (the device prefix and the round's readings), so nothing is serialised while
 * the load runs.
 */
import { randomUUID } from 'node:crypto';
import type autocannon from 'autocannon';

export const PATH = '/api/device-readings/create';
const BASE_MS = Date.UTC(2024, 0, 1);

export interface Workload {
  readonly name: string;
  readonly readingsPerRequest: number;
  readonly devices: readonly string[];
  /** Distinct bodies; beyond this many requests bodies repeat (and are duplicates to Tally). */
  readonly size: number;
  body(i: number): Buffer;
  /** Sum of the counts in body i. */
  countSum(i: number): number;
}

export function makeDevices(n: number): string[] {
  return Array.from({ length: n }, () => randomUUID());
}

/** A workload of `readingsPerRequest`-reading bodies with at least `minBodies` distinct bodies. */
export function makeWorkload(name: string, devices: readonly string[], readingsPerRequest: number, minBodies: number): Workload {
  const rounds = Math.max(1, Math.ceil(minBodies / devices.length));
  const prefixes = devices.map((id) => Buffer.from(`{"id":"${id}","readings":`));
  const roundBodies: Buffer[] = [];
  const roundSums: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const readings = Array.from({ length: readingsPerRequest }, (_, k) => {
      const second = r * readingsPerRequest + k;
      return { count: 1 + (second % 5), timestamp: new Date(BASE_MS + second * 1000).toISOString() };
    });
    roundBodies.push(Buffer.from(`${JSON.stringify(readings)}}`));
    roundSums.push(readings.reduce((sum, reading) => sum + reading.count, 0));
  }
  const d = devices.length;
  return {
    name,
    readingsPerRequest,
    devices,
    size: d * rounds,
    body: (i) => Buffer.concat([prefixes[i % d]!, roundBodies[Math.floor(i / d)]!]),
    countSum: (i) => roundSums[Math.floor(i / d)]!,
  };
}

/**
 * Hands out bodies in order to autocannon and records which got a 2xx. Autocannon keeps one
 * request in flight per connection (no pipelining), so a connection's context holds the index of
 * the body its response answers.
 */
export class AckTracker {
  private next = 0;
  private readonly acked: Uint8Array;

  constructor(readonly workload: Workload) {
    this.acked = new Uint8Array(workload.size);
  }

  /** Whether more requests were sent than there are distinct bodies. */
  get wrapped(): boolean {
    return this.next > this.workload.size;
  }

  request(): autocannon.Request {
    return {
      setupRequest: (request, context) => {
        const i = this.next++ % this.workload.size;
        (context as { i?: number }).i = i;
        return { ...request, body: this.workload.body(i) };
      },
      onResponse: (status, _body, context) => {
        if (status >= 200 && status < 300) this.acked[(context as { i: number }).i] = 1;
      },
    };
  }

  /** Indices of bodies sent but never acknowledged: in flight at the end, timed out or refused. */
  unacknowledged(): number[] {
    const out: number[] = [];
    for (let i = 0; i < Math.min(this.next, this.workload.size); i++) if (this.acked[i] === 0) out.push(i);
    return out;
  }

  markAcked(i: number): void {
    this.acked[i] = 1;
  }

  /** Sum of counts over the distinct bodies acknowledged so far. */
  ackedCountSum(): number {
    let sum = 0;
    for (let i = 0; i < this.workload.size; i++) if (this.acked[i] === 1) sum += this.workload.countSum(i);
    return sum;
  }
}
