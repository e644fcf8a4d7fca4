/**
 * Crash test: acknowledged means durable, and nothing is counted twice.
 *
 * Tally runs as a child process; 32 concurrent writers (one device each) post single readings and
 * small batches, the process is SIGKILLed mid-load and restarted on the same data directory. Every
 * reading that got a 2xx must then be stored with its count, every stored reading must be one that
 * was sent, a request in flight at the kill must be stored whole or not at all, and each device's
 * cumulative count must equal the sum of its stored readings. Finally every request is retried
 * (safe by first-write-wins), after which each device's count must equal exactly what was sent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort, tempDir } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WRITERS = 32;
const KILL_AFTER_MS = 1_500;
const BASE_MS = Date.UTC(2024, 0, 1);

const children = new Set<ChildProcess>();
let data: ReturnType<typeof tempDir>;

beforeAll(() => {
  data = tempDir('tally-crash-');
});

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  data.cleanup();
});


interface Server {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<void>;
}

/** The test's environment without TALLY_* settings, so Tally runs on its defaults (no retention). */
const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TALLY_')));

/** Starts `tally serve` from the TypeScript sources and waits until GET /api/ping answers. */
async function startServer(dataDir: string): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/app/cli.ts', 'serve'], {
    cwd: ROOT,
    env: { ...inherited, TALLY_HOST: '127.0.0.1', TALLY_PORT: String(port), TALLY_DATA_DIR: dataDir, TALLY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`tally exited with ${child.exitCode} before it answered:\n${stderr}`);
    try {
      const res = await fetch(`${url}/api/ping`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return { child, url, exited };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`tally did not answer GET /api/ping within 15 s:\n${stderr}`);
}

interface Reading {
  readonly count: number;
  readonly timestamp: string;
}

type Outcome = 'acked' | 'unknown';

/** Everything one writer (one device) sent, request by request, and what came of each. */
interface Writer {
  readonly deviceId: string;
  readonly requests: Array<{ readings: Reading[]; outcome: Outcome }>;
  /** Non-2xx answers: none are expected under this load. */
  readonly refused: string[];
  inFlight: boolean;
}

function post(url: string, deviceId: string, readings: Reading[]): Promise<Response> {
  return fetch(`${url}/api/device-readings/create`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: deviceId, readings }),
    signal: AbortSignal.timeout(10_000),
  });
}

/**
 * Posts requests of 1-5 readings with increasing timestamps until `stopped()`, and every tenth one
 * of 300 (a run long enough to be written straight into chunks, not through the journal).
 */
async function write(url: string, writer: Writer, stopped: () => boolean): Promise<void> {
  let second = 0;
  for (let n = 0; !stopped(); n++) {
    const size = n % 10 === 9 ? 300 : n % 3 === 0 ? 2 + (n % 4) : 1;
    const readings = Array.from({ length: size }, () => ({
      count: 1 + Math.floor(Math.random() * 9),
      timestamp: new Date(BASE_MS + second++ * 1_000).toISOString(),
    }));
    const request = { readings, outcome: 'unknown' as Outcome };
    writer.requests.push(request);
    writer.inFlight = true;
    try {
      const res = await post(url, writer.deviceId, readings);
      await res.arrayBuffer();
      if (res.status >= 200 && res.status < 300) request.outcome = 'acked';
      else writer.refused.push(`HTTP ${res.status}`);
    } catch {
      // Connection reset or refused: the reading may or may not have been committed.
    } finally {
      writer.inFlight = false;
    }
  }
}

interface DeviceView {
  data: Record<string, number>;
  latest_timestamp?: string;
  cumulative_count: number;
}

async function view(url: string, deviceId: string): Promise<DeviceView> {
  const res = await fetch(`${url}/devices/${deviceId}`);
  if (res.status === 404) return { data: {}, cumulative_count: 0 };
  expect(res.status).toBe(200);
  return (await res.json()) as DeviceView;
}

async function brightCount(url: string, deviceId: string): Promise<number> {
  const res = await fetch(`${url}/api/device-readings/${deviceId}/cumulative-count`);
  if (res.status === 404) return 0;
  return ((await res.json()) as { cumulative_count: number }).cumulative_count;
}

const sum = (values: Iterable<number>) => {
  let total = 0;
  for (const v of values) total += v;
  return total;
};

test('every acknowledged reading survives SIGKILL, counted exactly once', async () => {
  const first = await startServer(data.dir);
  const writers: Writer[] = Array.from({ length: WRITERS }, () => ({
    deviceId: randomUUID(),
    requests: [],
    refused: [],
    inFlight: false,
  }));

  let stopped = false;
  const load = Promise.all(writers.map((w) => write(first.url, w, () => stopped)));
  await new Promise((r) => setTimeout(r, KILL_AFTER_MS));
  stopped = true;
  const inFlightAtKill = writers.filter((w) => w.inFlight).length;
  first.child.kill('SIGKILL');
  await load;
  await first.exited;

  const acked = writers.flatMap((w) => w.requests.filter((r) => r.outcome === 'acked'));
  expect(writers.flatMap((w) => w.refused)).toEqual([]);
  expect(acked.length).toBeGreaterThan(100); // the load was real...
  expect(inFlightAtKill).toBeGreaterThan(0); // ...and the kill landed mid-load

  const second = await startServer(data.dir);
  for (const writer of writers) {
    const { data: stored, cumulative_count, latest_timestamp } = await view(second.url, writer.deviceId);
    const sent = new Map(writer.requests.flatMap((r) => r.readings.map((x) => [x.timestamp, x.count] as const)));

    // Nothing acknowledged is lost, and nothing is stored that was never sent.
    for (const request of writer.requests) {
      const present = request.readings.filter((r) => stored[r.timestamp] === r.count).length;
      if (request.outcome === 'acked') expect(present, `acked request of ${writer.deviceId}`).toBe(request.readings.length);
      // A request in flight at the kill committed whole or not at all.
      else expect([0, request.readings.length], `in-flight request of ${writer.deviceId}`).toContain(present);
    }
    for (const [ts, count] of Object.entries(stored)) expect(sent.get(ts), `stored ${ts} of ${writer.deviceId}`).toBe(count);

    // The summary counts each stored reading once, on both surfaces.
    expect(cumulative_count).toBe(sum(Object.values(stored)));
    expect(await brightCount(second.url, writer.deviceId)).toBe(cumulative_count);
    const times = Object.keys(stored).sort();
    if (times.length > 0) expect(latest_timestamp).toBe(times[times.length - 1]);
  }

  // Clients retry what they never heard back about (and, harmlessly, the rest): after that every
  // device holds exactly what was sent, each reading once.
  await Promise.all(
    writers.map(async (writer) => {
      for (const request of writer.requests) {
        const res = await post(second.url, writer.deviceId, request.readings);
        expect(res.status).toBe(201);
      }
    }),
  );
  for (const writer of writers) {
    const { data: stored, cumulative_count } = await view(second.url, writer.deviceId);
    const sent = writer.requests.flatMap((r) => r.readings);
    expect(Object.keys(stored).length).toBe(sent.length);
    expect(cumulative_count).toBe(sum(sent.map((r) => r.count)));
  }

  second.child.kill('SIGTERM');
  await second.exited;
  expect(second.child.exitCode).toBe(0);
});

test('SIGTERM under load: requests in flight are answered, the queue is committed, exit code 0', async () => {
  const shutdown = tempDir('tally-sigterm-');
  try {
    const server = await startServer(shutdown.dir);
    const writers: Writer[] = Array.from({ length: WRITERS }, () => ({ deviceId: randomUUID(), requests: [], refused: [], inFlight: false }));
    let stopped = false;
    const load = Promise.all(writers.map((w) => write(server.url, w, () => stopped)));
    await new Promise((r) => setTimeout(r, 1_000));
    server.child.kill('SIGTERM');
    await server.exited;
    stopped = true;
    await load;
    expect(server.child.exitCode).toBe(0);
    // A graceful stop refuses new work with a 503 at most; it never fails a request with a 500.
    expect(writers.flatMap((w) => w.refused).filter((r) => r !== 'HTTP 503')).toEqual([]);

    const again = await startServer(shutdown.dir);
    for (const writer of writers) {
      const { data: stored, cumulative_count } = await view(again.url, writer.deviceId);
      for (const request of writer.requests.filter((r) => r.outcome === 'acked')) {
        for (const r of request.readings) expect(stored[r.timestamp], `acked reading of ${writer.deviceId}`).toBe(r.count);
      }
      expect(cumulative_count).toBe(sum(Object.values(stored)));
    }
    again.child.kill('SIGTERM');
    await again.exited;
  } finally {
    shutdown.cleanup();
  }
});
