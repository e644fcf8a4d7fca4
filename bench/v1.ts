/**
 * The /v1 read side of the bench: paging GET /v1/devices the way a client does, and the devices
 * scenario (load N devices untimed, then time full listings and a concurrent prefix mix).
 */
import autocannon from 'autocannon';
import { measureCpu } from './cpu.js';
import type { DevicesRun, MixRun, PagingRun } from './report.js';
import { peakRssBytes, type Server } from './proc.js';
import { BASE_MS, V1_PATH } from './workload.js';

interface DeviceItem {
  readonly device_id: string;
  readonly latest_ts: string;
  readonly reading_count: number;
  readonly cumulative_count: number;
}
interface Page {
  readonly items: DeviceItem[];
  readonly next_cursor: string | null;
}

/** Readings per NDJSON body when loading devices. */
const LOAD_BODY = 10_000;
/** Devices sharing each latest_ts. */
const TIES = 10;
const PAGE = 1_000;
/** The mix: the first page (device_id order) of a random two-hex-digit prefix, about N/256 devices each. */
const MIX_LIMIT = 100;
const PREFIXES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

async function getPage(url: string, query: string): Promise<Page> {
  const res = await fetch(`${url}/v1/devices?${query}`);
  if (!res.ok) throw new Error(`GET /v1/devices?${query}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as Page;
}

/** Follows next_cursor from the first page to the last, one request at a time; `onPage` gets each page and its latency. */
async function pageAll(url: string, query: string, onPage: (items: readonly DeviceItem[], ms: number) => void): Promise<void> {
  let cursor: string | null = null;
  do {
    const started = performance.now();
    const page: Page = await getPage(url, cursor === null ? query : `${query}&cursor=${encodeURIComponent(cursor)}`);
    onPage(page.items, performance.now() - started);
    cursor = page.next_cursor;
  } while (cursor !== null);
}

/** Sums of cumulative_count and reading_count over every device, from a full listing. */
export async function storedTotals(url: string): Promise<{ counts: number; readings: number }> {
  let counts = 0;
  let readings = 0;
  await pageAll(url, `limit=${PAGE}`, (items) => {
    for (const d of items) {
      counts += d.cumulative_count;
      readings += d.reading_count;
    }
  });
  return { counts, readings };
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * One reading per device, TIES devices to a second, the seconds shuffled: latest_ts order is neither
 * id nor insertion order, and pages must break ties by their cursor's key.
 */
async function load(url: string, devices: readonly string[]): Promise<number> {
  const seconds = devices.map((_, i) => Math.floor(i / TIES));
  for (let i = seconds.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [seconds[i], seconds[j]] = [seconds[j]!, seconds[i]!];
  }
  const started = performance.now();
  let accepted = 0;
  for (let from = 0; from < devices.length; from += LOAD_BODY) {
    let body = '';
    for (let i = from; i < Math.min(from + LOAD_BODY, devices.length); i++) {
      body += `{"device_id":"${devices[i]}","ts":"${new Date(BASE_MS + seconds[i]! * 1000).toISOString()}","count":${1 + (i % 5)}}\n`;
    }
    const res = await fetch(url + V1_PATH, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body });
    if (res.status !== 200) throw new Error(`loading devices: HTTP ${res.status} ${await res.text()}`);
    accepted += ((await res.json()) as { accepted: number }).accepted;
  }
  if (accepted !== devices.length) throw new Error(`loading devices: ${accepted} accepted of ${devices.length}`);
  return (performance.now() - started) / 1000;
}

interface Listing {
  readonly name: string;
  readonly query: string;
  /** Whether b may follow a in this listing. */
  readonly inOrder: (a: DeviceItem, b: DeviceItem) => boolean;
}
const LISTINGS: readonly Listing[] = [
  { name: 'sort=device_id', query: `limit=${PAGE}&sort=device_id`, inOrder: (a, b) => a.device_id < b.device_id },
  { name: 'sort=latest_ts&order=desc', query: `limit=${PAGE}&sort=latest_ts&order=desc`, inOrder: (a, b) => Date.parse(a.latest_ts) >= Date.parse(b.latest_ts) },
];

/** `passes` full listings, each checked to hold every loaded device exactly once, in order. */
async function timeListing(server: Server, listing: Listing, known: ReadonlySet<string>, passes: number): Promise<PagingRun> {
  const latencies: number[] = [];
  const distinct: number[] = [];
  let items = 0;
  let ordered = true;
  let unknown = 0;
  const stopCpu = measureCpu(server.proc.pid);
  const started = performance.now();
  for (let pass = 0; pass < passes; pass++) {
    const seen = new Set<string>();
    let previous: DeviceItem | undefined;
    await pageAll(server.url, listing.query, (page, ms) => {
      latencies.push(ms);
      items += page.length;
      for (const d of page) {
        if (previous !== undefined && !listing.inOrder(previous, d)) ordered = false;
        if (!known.has(d.device_id)) unknown++;
        seen.add(d.device_id);
        previous = d;
      }
    });
    distinct.push(seen.size);
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = stopCpu();
  latencies.sort((a, b) => a - b);
  return {
    listing: listing.name,
    passes,
    pages: latencies.length,
    items,
    pagesPerS: latencies.length / seconds,
    devicesPerS: items / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies[latencies.length - 1]!,
    distinct,
    ordered,
    pass: ordered && unknown === 0 && items === passes * known.size && distinct.every((n) => n === known.size),
    cpu,
  };
}

/** Each prefix's listing must be exactly the loaded devices with that prefix. Also warms the read path. */
async function checkPrefixes(url: string, devices: readonly string[]): Promise<boolean> {
  let pass = true;
  for (const prefix of PREFIXES) {
    const expected = devices.filter((id) => id.startsWith(prefix)).sort();
    const got: string[] = [];
    await pageAll(url, `limit=${PAGE}&prefix=${prefix}`, (items) => got.push(...items.map((d) => d.device_id)));
    if (got.length !== expected.length || got.some((id, i) => id !== expected[i])) pass = false;
  }
  return pass;
}

/** 8 (or so) connections asking for the first page of random prefixes. */
async function timeMix(server: Server, connections: number, warmupS: number, durationS: number): Promise<MixRun> {
  const paths = PREFIXES.map((p) => `/v1/devices?limit=${MIX_LIMIT}&prefix=${p}`);
  const options = (duration: number): autocannon.Options => ({
    url: server.url,
    connections,
    pipelining: 1,
    duration,
    timeout: 10,
    requests: [{ setupRequest: (request) => ({ ...request, method: 'GET', path: paths[Math.floor(Math.random() * paths.length)]! }) }],
  });
  if (warmupS > 0) await autocannon(options(warmupS));
  const stopCpu = measureCpu(server.proc.pid);
  const result = await autocannon(options(durationS));
  const cpu = stopCpu();
  return {
    query: `prefix=<2 hex digits>&limit=${MIX_LIMIT}`,
    connections,
    durationS: result.duration,
    queriesPerS: result['2xx'] / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    cpu,
  };
}

/** The devices scenario against a running Tally with an empty data dir. */
export async function devicesScenario(
  server: Server,
  devices: readonly string[],
  options: { passes: number; connections: number; warmupS: number; durationS: number },
): Promise<DevicesRun> {
  const loadS = await load(server.url, devices);
  console.log(`  loaded ${devices.length.toLocaleString('en-US')} devices (one NDJSON reading each, ${LOAD_BODY.toLocaleString('en-US')} a request) in ${loadS.toFixed(1)} s (untimed)`);
  const prefixCheck = await checkPrefixes(server.url, devices);
  const known = new Set(devices);
  const paging: PagingRun[] = [];
  for (const listing of LISTINGS) paging.push(await timeListing(server, listing, known, options.passes));
  const mix = await timeMix(server, options.connections, options.warmupS, options.durationS);
  const peak = peakRssBytes(server.proc.pid);
  return {
    devices: devices.length,
    loadS,
    paging,
    prefixCheck,
    mix,
    peakRssMiB: peak === undefined ? null : peak / 1024 ** 2,
    pass: prefixCheck && paging.every((p) => p.pass) && mix.non2xx === 0 && mix.errors === 0,
  };
}
