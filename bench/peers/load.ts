/**
 * The load generator: autocannon with keep-alive connections and one request in flight per
 * connection, handing out pre-rendered bodies in order and recording which got a 2xx and how long
 * each took. Every run is bounded by a count of bodies and by a time limit.
 */
import autocannon from 'autocannon';
import type { Bodies } from './workload.js';

/** Which bodies went out and which were acknowledged, across the runs that share it. */
export class Ledger {
  /** Next body to hand out. */
  next = 0;
  readonly acked: Uint8Array;

  constructor(readonly bodies: Bodies) {
    this.acked = new Uint8Array(bodies.count);
  }

  /** Bodies handed to the load generator so far. */
  get sent(): number {
    return Math.min(this.next, this.bodies.count);
  }

  ackedBodies(): number {
    let n = 0;
    for (let b = 0; b < this.sent; b++) n += this.acked[b]!;
    return n;
  }
}

export interface LoadOptions {
  readonly url: string;
  readonly path: string;
  readonly contentType: string;
  readonly connections: number;
  /** Most bodies this run may send (it stops early when the ledger runs out). */
  readonly maxBodies: number;
  /** Time limit, seconds. */
  readonly maxSeconds: number;
  /** Readings in body b. */
  readonly readingsIn: (b: number) => number;
  /** Called once the load is running, with the run's start time (performance.now()). */
  readonly onStart?: (instance: autocannon.Instance) => void;
  /** Request timeout, seconds. */
  readonly timeoutS?: number;
}

export interface LoadResult {
  readonly connections: number;
  readonly sent: number;
  readonly okRequests: number;
  readonly okReadings: number;
  readonly non2xx: number;
  /** Connection errors and timeouts. */
  readonly errors: number;
  readonly statusCodes: Record<string, number>;
  /** From the first request to the last response, seconds. */
  readonly elapsedS: number;
  readonly requestsPerS: number;
  readonly readingsPerS: number;
  /** Latency of 2xx responses, milliseconds. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** CPU seconds the load generator (this process) used during the run. */
  readonly clientCpuS: number;
  /** Whether the run ended early because the pre-generated bodies ran out before the time limit. */
  readonly ranOut: boolean;
}

/** The q-quantile (0..1) of the first n values of an unsorted array, by nearest rank. */
export function quantile(values: Float64Array, n: number, q: number): number {
  if (n === 0) return 0;
  const sorted = values.subarray(0, n).slice().sort();
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
}

export async function runLoad(ledger: Ledger, options: LoadOptions): Promise<LoadResult> {
  const available = ledger.bodies.count - ledger.next;
  const maxBodies = Math.min(options.maxBodies, available);
  if (maxBodies < options.connections) throw new Error(`only ${maxBodies} bodies left for ${options.connections} connections`);
  let latencies = new Float64Array(1 << 16);
  let okRequests = 0;
  let okReadings = 0;
  const statusCodes: Record<string, number> = {};
  const first = ledger.next;
  const limit = first + maxBodies;
  let lastResponseAt = 0;
  let overflow = 0;

  const request: autocannon.Request = {
    method: 'POST',
    path: options.path,
    headers: { 'content-type': options.contentType },
    setupRequest: (req, context) => {
      let b = ledger.next++;
      if (b >= limit) {
        // autocannon caps requests per connection, so this is not expected; resend the last body.
        overflow++;
        b = limit - 1;
      }
      (context as { b?: number }).b = b;
      return { ...req, body: ledger.bodies.body(b) };
    },
    onResponse: (status, _body, context) => {
      lastResponseAt = performance.now();
      statusCodes[status] = (statusCodes[status] ?? 0) + 1;
      if (status >= 200 && status < 300) {
        const b = (context as { b: number }).b;
        if (ledger.acked[b] === 0) {
          ledger.acked[b] = 1;
          okReadings += options.readingsIn(b);
        }
      }
    },
  };

  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  let settle: (outcome: { result?: autocannon.Result; error?: Error }) => void = () => {};
  const finished = new Promise<{ result?: autocannon.Result; error?: Error }>((resolve) => (settle = resolve));
  const instance = autocannon({
    url: options.url,
    connections: options.connections,
    pipelining: 1,
    duration: options.maxSeconds,
    maxOverallRequests: maxBodies,
    timeout: options.timeoutS ?? 30,
    // Checks for the end every 100 ms rather than every second.
    sampleInt: 100,
    requests: [request],
  }, (error, result) => settle(error ? { error } : { result }));
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status < 200 || status >= 300) return;
    if (okRequests === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[okRequests++] = ms;
  });
  options.onStart?.(instance);
  const outcome = await finished;
  if (outcome.error !== undefined || outcome.result === undefined) throw outcome.error ?? new Error('autocannon ended without a result');
  const result = outcome.result;
  const cpu = process.cpuUsage(cpuBefore);
  const elapsedS = Math.max(1e-9, ((lastResponseAt || performance.now()) - startedAt) / 1000);
  if (overflow > 0) console.warn(`  note: ${overflow} request(s) beyond the planned bodies repeated the last body`);
  return {
    connections: options.connections,
    sent: Math.min(ledger.next, limit) - first,
    okRequests,
    okReadings,
    non2xx: result.non2xx,
    errors: result.errors,
    statusCodes,
    elapsedS,
    requestsPerS: okRequests / elapsedS,
    readingsPerS: okReadings / elapsedS,
    p50Ms: quantile(latencies, okRequests, 0.5),
    p99Ms: quantile(latencies, okRequests, 0.99),
    maxMs: quantile(latencies, okRequests, 1),
    clientCpuS: (cpu.user + cpu.system) / 1e6,
    ranOut: available < options.maxBodies && ledger.next >= ledger.bodies.count && elapsedS < options.maxSeconds * 0.98,
  };
}
