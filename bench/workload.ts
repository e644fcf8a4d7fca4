/**
 * Pre-generated request bodies (Bright Counter JSON, and /v1 NDJSON: see makeNdjsonWorkload) and
 * the bookkeeping of which ones were acknowledged.
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
export const V1_PATH = '/v1/readings';
export const BASE_MS = Date.UTC(2024, 0, 1);

export interface Workload {
  readonly name: string;
  readonly path: string;
  readonly contentType: string;
  /** Whether 2xx answers carry `accepted` (the /v1 ingest outcome). */
  readonly answersAccepted: boolean;
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
    path: PATH,
    contentType: 'application/json',
    answersAccepted: false,
    readingsPerRequest,
    devices,
    size: d * rounds,
    body: (i) => Buffer.concat([prefixes[i % d]!, roundBodies[Math.floor(i / d)]!]),
    countSum: (i) => roundSums[Math.floor(i / d)]!,
  };
}

/**
 * NDJSON bodies for POST /v1/readings, each `perDevice` readings of every device: body i holds the
 * seconds i*perDevice .. i*perDevice+perDevice-1, one line per device for each second in turn, so
 * each device's timestamps increase from body to body. Bodies are whole buffers, built up front.
 */
export function makeNdjsonWorkload(name: string, devices: readonly string[], perDevice: number, minBodies: number): Workload {
  const lineStarts = devices.map((id) => `{"device_id":"${id}","ts":"`);
  const bodies: Buffer[] = [];
  const sums: number[] = [];
  for (let i = 0; i < Math.max(1, minBodies); i++) {
    let text = '';
    let sum = 0;
    for (let k = 0; k < perDevice; k++) {
      const second = i * perDevice + k;
      const count = 1 + (second % 5);
      const tail = `${new Date(BASE_MS + second * 1000).toISOString()}","count":${count}}\n`;
      for (const start of lineStarts) text += start + tail;
      sum += count * devices.length;
    }
    bodies.push(Buffer.from(text));
    sums.push(sum);
  }
  return {
    name,
    path: V1_PATH,
    contentType: 'application/x-ndjson',
    answersAccepted: true,
    readingsPerRequest: perDevice * devices.length,
    devices,
    size: bodies.length,
    body: (i) => bodies[i]!,
    countSum: (i) => sums[i]!,
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
  /** Sum of `accepted` over the 2xx answers, where the workload's answers carry it. */
  acceptedSum = 0;

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
      onResponse: (status, body, context) => {
        if (status >= 200 && status < 300) this.ack((context as { i: number }).i, body);
      },
    };
  }

  /** Indices of bodies sent but never acknowledged: in flight at the end, timed out or refused. */
  unacknowledged(): number[] {
    const out: number[] = [];
    for (let i = 0; i < Math.min(this.next, this.workload.size); i++) if (this.acked[i] === 0) out.push(i);
    return out;
  }

  /** Records a 2xx answer to body i. */
  ack(i: number, answer: string): void {
    this.acked[i] = 1;
    if (this.workload.answersAccepted) this.acceptedSum += (JSON.parse(answer) as { accepted: number }).accepted;
  }

  /** Sum of counts over the distinct bodies acknowledged so far. */
  ackedCountSum(): number {
    let sum = 0;
    for (let i = 0; i < this.workload.size; i++) if (this.acked[i] === 1) sum += this.workload.countSum(i);
    return sum;
  }

  /** Distinct bodies acknowledged so far. */
  ackedBodies(): number {
    let n = 0;
    for (let i = 0; i < this.workload.size; i++) n += this.acked[i]!;
    return n;
  }
}
