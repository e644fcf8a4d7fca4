import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTally } from '../helpers.js';
import { scrape, sumOf, valueOf, type Sample } from './exposition.js';

/**
 * GET /metrics after a known workload, on a real Tally in-process: every counter equals what the
 * workload did, labels stay in their closed sets, and the exposition passes promtool.
 */

type Harness = Awaited<ReturnType<typeof startTally>>;

const DAY = 86_400_000;
const now = Date.now();
const iso = (msAgo: number) => new Date(now - msAgo).toISOString();
const T1 = iso(60_000);
const T2 = iso(120_000);
const T3 = iso(180_000);
const OLD = iso(40 * DAY); // beyond TALLY_RETENTION=30d
const UUID = '063c5957-8905-45f9-bfe3-960713788919';

async function post(t: Harness, url: string, body: unknown, type = 'application/json'): Promise<number> {
  const res = await t.tally.server.inject({
    method: 'POST',
    url,
    payload: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': type },
  });
  return res.statusCode;
}

async function get(t: Harness, url: string): Promise<number> {
  return (await t.tally.server.inject({ method: 'GET', url })).statusCode;
}

/** Where promtool is, or undefined (then its check is skipped, saying why). */
const PROMTOOL = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).stdout.trim() || undefined;

describe('GET /metrics after a known workload', () => {
  let t: Harness;
  let samples: Sample[];
  let text: string;
  let contentType: string;

  beforeAll(async () => {
    t = await startTally({ TALLY_RETENTION: '30d', TALLY_QUEUE_LIMIT: '50000' });
    const statuses: number[] = [];
    // /v1, JSON: 2 stored, 1 duplicate inside the batch, 1 invalid, 1 older than the window.
    statuses.push(
      await post(t, '/v1/readings', [
        { device_id: 'v1-a', ts: T1, count: 1 },
        { device_id: 'v1-b', ts: T1, count: 1 },
        { device_id: 'v1-a', ts: T1, count: 1 },
        { device_id: 'v1-a', ts: 'yesterday' },
        { device_id: 'v1-a', ts: OLD },
      ]),
    );
    // /v1: a retry of a stored reading is a duplicate.
    statuses.push(await post(t, '/v1/readings', [{ device_id: 'v1-a', ts: T1, count: 1 }]));
    // /v1, NDJSON: 1 stored, 1 line that is not JSON.
    statuses.push(await post(t, '/v1/readings', `${JSON.stringify({ device_id: 'v1-c', ts: T1 })}\n{not json\n`, 'application/x-ndjson'));
    // /v1, atomic: 1 invalid, so the valid one is not written.
    statuses.push(await post(t, '/v1/readings?atomic=true', [{ device_id: 'v1-d', ts: T1 }, { device_id: 'v1-d', ts: 'never' }]));
    expect(statuses).toEqual([207, 200, 207, 400]);

    // Bright Counter: 2 stored; the same 2 again (duplicates); then all or nothing with a count of 0.
    const bright = [{ count: 1, timestamp: T1 }, { count: 2, timestamp: T2 }];
    expect(await post(t, '/api/device-readings/create', { id: UUID, readings: bright })).toBe(201);
    expect(await post(t, '/api/device-readings/create', { id: UUID, readings: bright })).toBe(201);
    expect(await post(t, '/api/device-readings/create', { id: UUID, readings: [{ count: 1, timestamp: T3 }, { count: 0, timestamp: T3 }] })).toBe(400);

    // Device readings (/ingest): 2 stored, 1 invalid.
    expect(
      await post(t, '/ingest', { id: 'dr-1', readings: [{ timestamp: T1, count: 1 }, { timestamp: T2, count: 2 }, { timestamp: 'bad', count: 1 }] }),
    ).toBe(207);
    // Records (/ingest): stored, then a duplicate.
    const record = { device_id: 'rec-1', timestamp: T1, data_payload: { x: 1 } };
    expect(await post(t, '/ingest', record)).toBe(201);
    expect(await post(t, '/ingest', record)).toBe(200);
    // Vital data: 1 stored, 1 older than the window.
    expect(await post(t, '/vital-data', { device: 'vit-1', timestamp: Math.floor((now - 60_000) / 1000), heartRateValue: 70 })).toBe(202);
    expect(await post(t, '/vital-data', { device: 'vit-1', timestamp: Math.floor((now - 40 * DAY) / 1000), heartRateValue: 70 })).toBe(400);

    expect(await get(t, '/no/such/route')).toBe(404);
    expect(await get(t, '/v1/devices/no-such-device')).toBe(404);
    expect(await get(t, '/v1/devices/v1-a')).toBe(200);
    ({ samples, text, contentType } = await scrape(t.tally));
  });
  afterAll(() => t.stop());

  test('is the Prometheus text format', () => {
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toContain('# TYPE tally_readings_accepted_total counter');
  });

  test('readings accepted, duplicate and rejected equal the workload, by transport, surface and reason', () => {
    const http = (surface: string) => ({ transport: 'http', surface });
    const accepted = (surface: string) => valueOf(samples, 'tally_readings_accepted_total', http(surface));
    const duplicate = (surface: string) => valueOf(samples, 'tally_readings_duplicate_total', http(surface));
    const rejected = (surface: string, reason: string) => valueOf(samples, 'tally_readings_rejected_total', { ...http(surface), reason });

    expect([accepted('v1'), duplicate('v1'), rejected('v1', 'invalid'), rejected('v1', 'retention'), rejected('v1', 'atomic')]).toEqual([3, 2, 3, 1, 1]);
    expect([accepted('bright_counter'), duplicate('bright_counter'), rejected('bright_counter', 'invalid'), rejected('bright_counter', 'atomic')]).toEqual([2, 2, 1, 1]);
    expect([accepted('device_readings'), duplicate('device_readings'), rejected('device_readings', 'invalid')]).toEqual([2, 0, 1]);
    expect([accepted('records'), duplicate('records')]).toEqual([1, 1]);
    expect([accepted('vital_data'), rejected('vital_data', 'retention')]).toEqual([1, 1]);
    // Nothing else: the totals are exactly the sums above.
    expect(sumOf(samples, 'tally_readings_accepted_total')).toBe(9);
    expect(sumOf(samples, 'tally_readings_duplicate_total')).toBe(5);
    expect(sumOf(samples, 'tally_readings_rejected_total')).toBe(9);
    expect(sumOf(samples, 'tally_readings_rejected_total', { reason: 'queue_full' })).toBe(0);
    expect(sumOf(samples, 'tally_backpressure_rejections_total')).toBe(0);
    // Every surface is listed from the start, MQTT's too, with zeros.
    expect(samples.some((s) => s.name === 'tally_readings_accepted_total' && s.labels.surface === 'mqtt_gateway' && s.labels.transport === 'mqtt')).toBe(true);
  });

  test('commits: every reading sent to the store is in one commit, stored or duplicate', () => {
    expect(valueOf(samples, 'tally_commit_readings_sum', { backend: 'sqlite' })).toBe(14);
    const commits = valueOf(samples, 'tally_commit_readings_count', { backend: 'sqlite' });
    expect(commits).toBeGreaterThanOrEqual(1);
    expect(commits).toBeLessThanOrEqual(9); // at most one per write; group commit may join some
    expect(valueOf(samples, 'tally_commit_duration_seconds_count', { backend: 'sqlite' })).toBe(commits);
    expect(sumOf(samples, 'tally_store_errors_total')).toBe(0);
  });

  test('requests by method, route template and status class; 404s without a route are `unmatched`', () => {
    const requests = (method: string, route: string, status_class: string) =>
      valueOf(samples, 'tally_http_requests_total', { method, route, status_class });
    expect(requests('POST', '/v1/readings', '2xx')).toBe(3);
    expect(requests('POST', '/v1/readings', '4xx')).toBe(1);
    expect(requests('POST', '/api/device-readings/create', '2xx')).toBe(2);
    expect(requests('POST', '/api/device-readings/create', '4xx')).toBe(1);
    expect(requests('POST', '/ingest', '2xx')).toBe(3);
    expect(requests('GET', 'unmatched', '4xx')).toBe(1);
    expect(requests('GET', '/v1/devices/:id', '4xx')).toBe(1);
    expect(requests('GET', '/v1/devices/:id', '2xx')).toBe(1);
    expect(valueOf(samples, 'tally_http_request_duration_seconds_count', { method: 'POST', route: '/v1/readings' })).toBe(4);
    expect(valueOf(samples, 'tally_http_request_duration_seconds_bucket', { method: 'POST', route: '/v1/readings', le: '+Inf' })).toBe(4);
  });

  test('gauges: queue depth and capacity, devices, store size, reads in flight', () => {
    expect(valueOf(samples, 'tally_queue_depth_readings')).toBe(0);
    expect(valueOf(samples, 'tally_queue_capacity_readings')).toBe(50_000);
    // v1-a, v1-b, v1-c, the Bright Counter device, dr-1, rec-1, vit-1 (v1-d was never written).
    expect(valueOf(samples, 'tally_devices')).toBe(7);
    expect(valueOf(samples, 'tally_store_size_bytes', { backend: 'sqlite' })).toBeGreaterThan(0);
    expect(valueOf(samples, 'tally_reads_in_flight')).toBe(0);
    // Node's process metrics, on Tally's own registry.
    expect(samples.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);
    expect(samples.some((s) => s.name === 'nodejs_eventloop_lag_p99_seconds')).toBe(true);
  });

  test('no label carries a device id, a raw URL or another client-chosen string', () => {
    const values = new Set(samples.filter((s) => s.name.startsWith('tally_')).flatMap((s) => Object.values(s.labels)));
    for (const chosen of ['v1-a', 'v1-b', UUID, 'dr-1', 'rec-1', 'vit-1', '/no/such/route', '/v1/devices/no-such-device', 'no-such-device']) {
      expect(values.has(chosen), chosen).toBe(false);
    }
  });

  test('each Tally counts on a registry of its own', async () => {
    const other = await startTally();
    try {
      const { samples: fresh } = await scrape(other.tally);
      expect(sumOf(fresh, 'tally_readings_accepted_total')).toBe(0);
    } finally {
      await other.stop();
    }
  });

  test.skipIf(PROMTOOL === undefined)(
    `promtool check metrics passes on a real scrape${PROMTOOL === undefined ? ' (skipped: promtool is not installed; apt-get install prometheus)' : ''}`,
    () => {
      // prom-client's own default gauges named *_total are the only findings promtool has; they are
      // Node's standard process metrics, which dashboards know by these names. Tally's must be clean.
      const known = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
      const run = (input: string) => spawnSync(PROMTOOL!, ['check', 'metrics'], { input, encoding: 'utf8' });
      const whole = run(text);
      const findings = `${whole.stdout}${whole.stderr}`.split('\n').filter((l) => l.trim() !== '');
      for (const finding of findings) expect(known.some((name) => finding.startsWith(name)), finding).toBe(true);
      const tallyOnly = text
        .split('\n')
        .filter((line) => !known.some((name) => line.includes(name)))
        .join('\n');
      const clean = run(tallyOnly);
      expect(`${clean.stdout}${clean.stderr}`, 'promtool findings').toBe('');
      expect(clean.status).toBe(0);
      // and it is read as metrics at all (a parse error is a different message and exit code)
      expect(execFileSync(PROMTOOL!, ['check', 'metrics'], { input: tallyOnly, encoding: 'utf8' })).toBe('');
    },
  );
});

describe('the number of series does not grow with devices or paths', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startTally();
  });
  afterAll(() => t.stop());

  const tallySeries = async () => (await scrape(t.tally)).samples.filter((s) => s.name.startsWith('tally_')).length;
  const devices = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ device_id: `${tag}-${i}`, ts: T1, count: 1 }));

  test('1,000 distinct devices written and read, 1,000 distinct 404 paths: the same series', async () => {
    // Every kind of request once, so each of their series exists.
    expect(await post(t, '/v1/readings', devices(1, 'warm'))).toBe(200);
    expect(await get(t, '/v1/devices/warm-0')).toBe(200);
    expect(await get(t, '/v1/devices/absent')).toBe(404);
    expect(await get(t, '/not-a-route/0')).toBe(404);
    // A method no route has is counted as `other`, not under its name.
    await t.tally.server.inject({ method: 'PROPFIND' as 'GET', url: '/x' });
    await tallySeries(); // GET /metrics' own series
    const before = await tallySeries();

    expect(await post(t, '/v1/readings', devices(1000, 'many'))).toBe(200);
    for (let i = 0; i < 1000; i++) expect(await get(t, `/not-a-route/${i}/x${i}`)).toBe(404);
    for (let i = 0; i < 100; i++) expect(await get(t, `/v1/devices/many-${i}`)).toBe(200);
    for (let i = 0; i < 100; i++) expect(await get(t, `/v1/devices/absent-${i}`)).toBe(404);
    await t.tally.server.inject({ method: 'MKCOL' as 'GET', url: '/y' });
    const after = await tallySeries();
    expect(after).toBe(before);
    const { samples } = await scrape(t.tally);
    expect(valueOf(samples, 'tally_devices')).toBe(1001);
    expect(valueOf(samples, 'tally_http_requests_total', { method: 'GET', route: 'unmatched', status_class: '4xx' })).toBe(1001);
    expect(valueOf(samples, 'tally_http_requests_total', { method: 'other', route: 'unmatched', status_class: '4xx' })).toBe(2);
    const methods = new Set(samples.filter((s) => s.name === 'tally_http_requests_total').map((s) => s.labels.method));
    expect([...methods].sort()).toEqual(['GET', 'POST', 'other'].sort());
    // 1,000 more of each: not one series more.
    expect(await post(t, '/v1/readings', devices(1000, 'more'))).toBe(200);
    for (let i = 0; i < 1000; i++) expect(await get(t, `/elsewhere/${i}`)).toBe(404);
    expect(await tallySeries()).toBe(after);
  });
});
