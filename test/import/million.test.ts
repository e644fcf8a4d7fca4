import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, expect, test } from 'vitest';
import { startPingServer, type Server } from '../../bench/proc.js';
import type { Reading } from '../../src/domain/reading.js';
import { formatUtc } from '../../src/domain/timestamp.js';
import { openStore, storeConfig } from '../../src/store/index.js';
import { startTally, tempDir } from '../helpers.js';
import { runCli } from '../cli.js';

const runImport = (args: readonly string[], env: Record<string, string>, stdin?: Buffer | string) => runCli(['import', ...args], env, stdin);

/**
 * The round trip: a device with a million readings exported by a Tally server (a process of
 * its own, whose resident memory is watched while it streams), then imported with `tally import`
 * into an empty store, which then answers /v1 exactly as the original.
 */

const READINGS = 1_000_000;
const BASE_US = Date.UTC(2024, 0, 1) * 1000;
/** Growth of the server's resident memory allowed while it streams ~80 MB: generous, and still far below what holding the answer would take. */
const RSS_GROWTH_LIMIT = 96 * 2 ** 20;

const work = tempDir('tally-million-');
let server: Server | undefined;
afterAll(async () => {
  await server?.proc.stop();
  work.cleanup();
});

function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]) * 1024;
}

async function sha256(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const json = async (url: string) => (await fetch(url)).json() as Promise<unknown>;

test(`${READINGS.toLocaleString('en-US')} readings: exported in bounded memory, imported with tally import, identical`, async () => {
  const t0 = Date.now();
  const laps: string[] = [];
  const lap = (what: string) => laps.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // The original store, built through the store API (HTTP would only make the test slower).
  const original = join(work.dir, 'original.db');
  const store = await openStore(storeConfig(`sqlite:${original}`));
  for (let start = 0; start < READINGS; start += 20_000) {
    const batch: Reading[] = [];
    for (let i = start; i < start + 20_000; i++) {
      const tsUs = BASE_US + i * 1_000_000 + (i % 7);
      batch.push({ deviceId: 'million', tsUs, tsText: formatUtc(tsUs), count: i % 5, payload: i % 10 === 0 ? null : `{"t":${i % 50},"ok":${i % 3 === 0}}` });
    }
    await store.appendBatch(batch);
  }
  await store.close();
  lap('built');

  server = await startPingServer('tally', process.execPath, ['--import', 'tsx', 'src/app/cli.ts', 'serve'], {
    TALLY_STORE: `sqlite:${original}`,
    TALLY_LOG_LEVEL: 'warn',
  });
  const pid = server.proc.pid;
  lap('server up');
  // Warm the routes up first, so what grows below is the export's doing.
  await json(`${server.url}/v1/devices/million/readings?limit=1000`);
  await (await fetch(`${server.url}/v1/devices/million/readings?format=ndjson&to=2024-01-01T01:00:00Z`)).text();
  const before = rssBytes(pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 10);
  const exported = join(work.dir, 'million.ndjson');
  try {
    const res = await fetch(`${server.url}/v1/devices/million/readings?format=ndjson`);
    expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    await pipeline(Readable.fromWeb(res.body as never), createWriteStream(exported));
  } finally {
    clearInterval(sampler);
  }
  lap('exported');
  const bytes = statSync(exported).size;
  expect(bytes).toBeGreaterThan(50_000_000);
  const growth = peak - before;
  expect(growth, `server RSS grew ${(growth / 2 ** 20).toFixed(1)} MiB streaming ${(bytes / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(RSS_GROWTH_LIMIT);
  console.log(`export: server RSS ${(before / 2 ** 20).toFixed(0)} MiB before, peak growth ${(growth / 2 ** 20).toFixed(1)} MiB for ${(bytes / 2 ** 20).toFixed(1)} MiB streamed`);

  // Into an empty store, through tally import.
  const copyStore = `sqlite:${join(work.dir, 'copy.db')}`;
  const run = await runImport([exported], { TALLY_STORE: copyStore });
  expect(run.stderr).toBe('');
  expect(run.stdout).toMatch(/read 1,000,000 readings: 1,000,000 accepted, 0 duplicates, 0 rejected /);
  expect(run.code).toBe(0);
  console.log(run.stdout.trim());
  lap('imported');

  const copy = await startTally({ TALLY_STORE: copyStore });
  try {
    const copyUrl = await copy.tally.listen();
    lap('copy up');
    for (const path of [
      '/v1/devices/million',
      '/v1/devices?limit=10',
      '/v1/devices/million/aggregate?every=1d&fn=count,sum,min,max,avg',
      '/v1/devices/million/aggregate?every=1h&field=payload.t&from=2024-01-03T00:00:00Z&to=2024-01-04T00:00:00Z',
      '/v1/devices/million/readings?limit=1000&from=2024-01-05T00:00:00Z',
    ]) {
      expect(await json(`${copyUrl}${path}`), path).toEqual(await json(`${server.url}${path}`));
    }
    // Every reading: the copy's export is the original's, byte for byte.
    const copyExport = await fetch(`${copyUrl}/v1/devices/million/readings?format=ndjson`);
    expect(await sha256(Readable.fromWeb(copyExport.body as never))).toBe(await sha256(createReadStream(exported)));
    lap('compared');
    console.log(`timeline: ${laps.join(', ')}`);
  } finally {
    await copy.stop();
  }
}, 120_000);
