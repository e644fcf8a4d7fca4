/**
 * Micro-benchmark of what observability adds to each request and each commit, in nanoseconds per
 * call: `node --import tsx bench/metrics.ts`. prom-client's own Histogram is timed beside Tally's
 * FastHistogram for comparison.
 */
import { Histogram, Registry } from 'prom-client';
import { requestId } from '../src/http/server.js';
import { TallyMetrics } from '../src/observability/metrics.js';

const N = 1_000_000;
function time(name: string, f: (i: number) => void): void {
  for (let i = 0; i < 100_000; i++) f(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) f(i);
  console.log(`${name.padEnd(44)} ${(Number(process.hrtime.bigint() - t0) / N).toFixed(1).padStart(7)} ns/call`);
}

const metrics = new TallyMetrics();
time('a request answered (counter + latency)', (i) => metrics.httpResponse('POST', '/v1/readings', 200, 0.001 * (i % 50)));
time('a write counted (IngestObserver.count)', () => metrics.count('v1', 'stored', 1));
time('a commit (StoreEvent: 2 histograms)', (i) => metrics.onStoreEvent({ op: 'appendBatch', backend: 'sqlite', durationMs: i % 7, rows: 5 }));
time('request id: a safe X-Request-Id kept', () => requestId({ headers: { 'x-request-id': 'client-id.42' } }));
time('request id: a new one', () => requestId({ headers: {} }));
const promClient = new Histogram({ name: 'h', help: 'h', labelNames: ['method', 'route'], registers: [new Registry()] }).labels('POST', '/v1/readings');
time("for comparison: prom-client Histogram child", (i) => promClient.observe(0.001 * (i % 50)));
