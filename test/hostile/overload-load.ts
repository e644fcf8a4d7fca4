/**
 * The load of the overload test (test/hostile/overload.test.ts), run as a process of its own so it
 * does not share the test's event loop: `connections` closed-loop writers, each posting
 * `perRequest` readings of its own device (count 1, one second apart) to POST /v1/readings for
 * `seconds`. Writes, as JSON to `out`: the answers by status, per device the readings acknowledged
 * (2xx) and those whose fate is unknown (no answer), and how long the refusals (503, 429) took.
 *
 *   node --import tsx test/hostile/overload-load.ts <url> <seconds> <connections> <perRequest> <out>
 */
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

const [url, seconds, connections, perRequest, out] = process.argv.slice(2);
const target = new URL('/v1/readings', url);
const CONNECTIONS = Number(connections);
const PER_REQUEST = Number(perRequest);
const BASE_MS = Date.UTC(2024, 0, 1);
const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });

const statuses: Record<string, number> = {};
const acked: Record<string, number> = {};
const unknown: Record<string, number> = {};
const refusalMs: number[] = [];

function post(body: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request(target, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(undefined));
    });
    req.setTimeout(30_000, () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end(body);
  });
}

async function writer(index: number, until: number): Promise<void> {
  const device = `load-${index}`;
  acked[device] = 0;
  unknown[device] = 0;
  let second = 0;
  while (Date.now() < until) {
    const readings = Array.from({ length: PER_REQUEST }, () => ({ device_id: device, ts: new Date(BASE_MS + second++ * 1000).toISOString(), count: 1 }));
    const started = performance.now();
    const status = await post(JSON.stringify(readings));
    if (status === 503 || status === 429) refusalMs.push(performance.now() - started);
    const key = status === undefined ? 'none' : String(status);
    statuses[key] = (statuses[key] ?? 0) + 1;
    if (status === undefined) unknown[device] += PER_REQUEST;
    // Refusals are not waited on (no Retry-After honoured): a client that hammers is the point.
    else if (status >= 200 && status < 300) acked[device] += PER_REQUEST;
  }
}

const until = Date.now() + Number(seconds) * 1000;
await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => writer(i, until)));
agent.destroy();
refusalMs.sort((a, b) => a - b);
const refusals = refusalMs.length === 0 ? null : { p50: refusalMs[refusalMs.length >> 1], p99: refusalMs[Math.floor(refusalMs.length * 0.99)], max: refusalMs[refusalMs.length - 1] };
writeFileSync(out!, JSON.stringify({ statuses, acked, unknown, refusals }));
