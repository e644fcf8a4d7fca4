import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createKey } from '../auth/keys.js';
import { startTally, tempDir } from '../helpers.js';
import { get, postReadings } from '../http/client.js';
import { createDatabase, describePg, type TestDatabase } from '../pg/database.js';
import { runCli } from '../cli.js';

const runImport = (args: readonly string[], env: Record<string, string>, stdin?: Buffer | string) => runCli(['import', ...args], env, stdin);

/**
 * `tally import` as a user runs it (a process of its own) into a real store, read back over /v1 by
 * a Tally opened on the same store afterwards.
 */

const files = tempDir('tally-import-');
afterAll(() => files.cleanup());

function file(name: string, content: string | Buffer): string {
  const path = join(files.dir, name);
  writeFileSync(path, content);
  return path;
}

/** What /v1 answers about `device` on `store`, from a Tally opened on it after the import. */
async function readBack(store: string, devices: readonly string[]) {
  const t = await startTally({ TALLY_STORE: store });
  try {
    const out: Record<string, unknown> = {};
    for (const d of devices) {
      const summary = await get(t, `/v1/devices/${d}`);
      out[d] = summary.status === 404 ? null : { summary: summary.json, items: (await get(t, `/v1/devices/${d}/readings?limit=1000`)).json.items };
    }
    return out;
  } finally {
    await t.stop();
  }
}

const NDJSON = [
  '{"device_id":"nd-1","ts":"2025-06-18T10:00:00Z","count":3,"payload":{"temp":21.5,"tags":["a"]}}',
  '{"device_id":"nd-1","ts":"2025-06-18T12:01:00+02:00","count":2,"payload":null}',
  '',
  '{"device_id":"nd-1","ts":"yesterday","count":2}',
  'not json',
  '{"device_id":"nd-2","ts":1750240800,"count":1}',
  '{"device_id":"nd-2","ts":"2025-06-18T10:00:00.123456Z","count":-1}',
  '{"device_id":"nd-2","ts":"2025-06-18T10:00:01Z"}',
].join('\n');

const CSV = [
  'device_id,ts,count,payload.temp,payload.ok,payload.note,payload.nested,site',
  'cs-1,2025-06-18T10:00:00Z,3,21.5,true,"x,""y""\nsecond line",,oslo',
  'cs-1,2025-06-18T10:01:00Z,,,false,,"{""k"":[1,2]}",',
  'cs-2,not a time,1,,,,,',
  'cs-2,2025-06-18T10:00:00Z,abc,,,,,',
  'cs-3,2025-06-18T10:00:00Z',
  'cs-2,2025-06-18T10:00:01Z,4,,,,,',
].join('\r\n');

const LP = [
  '# exported by influx',
  'plant,host=boiler-1,site=oslo count=3i,pressure=1.25,ok=true,label="a \\"b\\"" 1750240800000000000',
  'plant,host=boiler-1 pressure=high 1750240860000000000',
  '',
  'plant,host=boiler-1 count=2i,pressure=1.5 1750240860000000000',
  'weather temp=-3.5 1750240800000000000',
  'plant,host=boiler-1 count=2.5 1750240920000000000',
].join('\n');

const DEVICE_ONE = { device_id: 'nd-1', first_ts: '2025-06-18T10:00:00Z', latest_ts: '2025-06-18T10:01:00Z', reading_count: 2, cumulative_count: 5, latest_payload: null };

function importSuite(storeFor: () => Promise<{ store: string; done(): Promise<void> }>) {
  let store: string;
  let done: () => Promise<void>;
  beforeAll(async () => ({ store, done } = await storeFor()));
  afterAll(() => done());

  test('NDJSON: good lines stored, bad ones reported by line number with the field at fault, exit 1', async () => {
    const run = await runImport([file('readings.ndjson', NDJSON)], { TALLY_STORE: store });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^tally import: .*readings\.ndjson \(ndjson\) into /);
    expect(lines[1]).toMatch(/^read 7 readings: 3 accepted, 0 duplicates, 4 rejected \(/);
    expect(lines.slice(2)).toEqual([
      'rejected lines:',
      '  line 4: ts is not an RFC 3339 timestamp with seconds and a zone (e.g. 2021-09-29T16:09:15Z or +01:00): "yesterday"',
      expect.stringMatching(/^ {2}line 5: not valid JSON: /),
      '  line 6: ts is a number: pass --precision s, ms or us to say its unit',
      expect.stringMatching(/^ {2}line 7: count must be /),
    ]);
    expect(await readBack(store, ['nd-1', 'nd-2'])).toEqual({
      'nd-1': {
        summary: DEVICE_ONE,
        items: [
          { device_id: 'nd-1', ts: '2025-06-18T10:00:00Z', count: 3, payload: { temp: 21.5, tags: ['a'] } },
          { device_id: 'nd-1', ts: '2025-06-18T10:01:00Z', count: 2, payload: null },
        ],
      },
      'nd-2': {
        summary: { device_id: 'nd-2', first_ts: '2025-06-18T10:00:01Z', latest_ts: '2025-06-18T10:00:01Z', reading_count: 1, cumulative_count: 0, latest_payload: null },
        items: [{ device_id: 'nd-2', ts: '2025-06-18T10:00:01Z', count: null, payload: null }],
      },
    });

    // Again, with --precision: numeric ts is read in that unit; the rest is already there.
    const again = await runImport([join(files.dir, 'readings.ndjson'), '--precision', 's'], { TALLY_STORE: store });
    expect(again.stdout.split('\n')[1]).toMatch(/^read 7 readings: 1 accepted, 3 duplicates, 3 rejected /);
    expect(again.code).toBe(1);
  });

  test('CSV as /v1/export writes it: quoted cells, typed payload cells, other columns as payload fields', async () => {
    const run = await runImport([file('readings.csv', CSV)], { TALLY_STORE: store });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[1]).toMatch(/^read 6 readings: 3 accepted, 0 duplicates, 3 rejected /);
    expect(lines.slice(2)).toEqual([
      'rejected lines:',
      '  line 5: ts is not an RFC 3339 timestamp with seconds and a zone (e.g. 2021-09-29T16:09:15Z or +01:00): "not a time"',
      expect.stringMatching(/^ {2}line 6: count must be /),
      '  line 7: the row has 2 fields, the header 8',
    ]);
    expect(await readBack(store, ['cs-1', 'cs-2', 'cs-3'])).toEqual({
      'cs-1': {
        summary: expect.objectContaining({ reading_count: 2, cumulative_count: 3 }),
        items: [
          { device_id: 'cs-1', ts: '2025-06-18T10:00:00Z', count: 3, payload: { temp: 21.5, ok: true, note: 'x,"y"\nsecond line', site: 'oslo' } },
          { device_id: 'cs-1', ts: '2025-06-18T10:01:00Z', count: null, payload: { ok: false, nested: { k: [1, 2] } } },
        ],
      },
      'cs-2': { summary: expect.objectContaining({ reading_count: 1, cumulative_count: 4 }), items: [{ device_id: 'cs-2', ts: '2025-06-18T10:00:01Z', count: 4, payload: null }] },
      'cs-3': null,
    });
  });

  test('line protocol, gzipped, mapped by TALLY_LP_DEVICE_TAG as /write maps it', async () => {
    const run = await runImport([file('points.lp.gz', gzipSync(LP))], { TALLY_STORE: store, TALLY_LP_DEVICE_TAG: 'host' });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/points\.lp\.gz \(lp\)/);
    expect(lines[1]).toMatch(/^read 5 readings: 4 accepted, 0 duplicates, 1 rejected /);
    expect(lines.slice(2)).toEqual(['rejected lines:', '  line 3: field "pressure" has an invalid value "high"']);
    expect(await readBack(store, ['boiler-1', 'weather'])).toEqual({
      'boiler-1': {
        summary: expect.objectContaining({ reading_count: 3, cumulative_count: 5 }),
        items: [
          { device_id: 'boiler-1', ts: '2025-06-18T10:00:00Z', count: 3, payload: { measurement: 'plant', site: 'oslo', pressure: 1.25, ok: true, label: 'a "b"' } },
          { device_id: 'boiler-1', ts: '2025-06-18T10:01:00Z', count: 2, payload: { measurement: 'plant', pressure: 1.5 } },
          // Only an integer field is the count, as on /write: a float one is a payload field.
          { device_id: 'boiler-1', ts: '2025-06-18T10:02:00Z', count: null, payload: { measurement: 'plant', count: 2.5 } },
        ],
      },
      weather: { summary: expect.objectContaining({ reading_count: 1 }), items: [{ device_id: 'weather', ts: '2025-06-18T10:00:00Z', count: null, payload: { measurement: 'weather', temp: -3.5 } }] },
    });
  });

  test('an interrupted import run again: what was stored comes back as duplicates, the rest is stored, exit 0', async () => {
    const all = Array.from({ length: 12_000 }, (_, i) =>
      JSON.stringify({ device_id: `re-${i % 3}`, ts: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(), count: 1, payload: { i } }),
    );
    // The first run got through 7,000 lines (and the last of them cut short) before it stopped.
    const cut = `${all.slice(0, 7000).join('\n')}\n${all[7000]!.slice(0, 20)}`;
    const first = await runImport(['-', '--format', 'ndjson'], { TALLY_STORE: store }, cut);
    expect(first.stdout).toMatch(/read 7,001 readings: 7,000 accepted, 0 duplicates, 1 rejected /);
    expect(first.stdout).toMatch(/line 7001: not valid JSON/);
    const whole = file('whole.ndjson.gz', gzipSync(`${all.join('\n')}\n`));
    const second = await runImport([whole], { TALLY_STORE: store });
    expect(second.stderr).toBe('');
    expect(second.stdout).toMatch(/read 12,000 readings: 5,000 accepted, 7,000 duplicates, 0 rejected /);
    expect(second.code).toBe(0);
    const third = await runImport([whole], { TALLY_STORE: store });
    expect(third.stdout).toMatch(/read 12,000 readings: 0 accepted, 12,000 duplicates, 0 rejected /);
    expect(third.code).toBe(0);
    const back = await readBack(store, ['re-0', 're-1', 're-2']);
    for (const d of ['re-0', 're-1', 're-2']) expect((back[d] as { summary: { reading_count: number; cumulative_count: number } }).summary).toMatchObject({ reading_count: 4000, cumulative_count: 4000 });
  });

  test('a CSV from /v1/export comes back as it went out', async () => {
    const source = await startTally();
    try {
      const readings = [
        { device_id: 'rt-1', ts: '2025-03-01T00:00:00Z', count: 1, payload: { on: false, level: 0, name: 'a,b "c"', deep: { x: [1, { y: null }] } } },
        { device_id: 'rt-1', ts: '2025-03-01T00:00:01.5Z', count: null, payload: { on: true, level: -2.5e-7 } },
        { device_id: 'rt-2', ts: '2025-03-01T00:00:00.000001Z', count: 0, payload: null },
      ];
      expect((await postReadings(source, readings)).json).toMatchObject({ accepted: 3 });
      const csv = await source.tally.server.inject({ method: 'GET', url: '/v1/export?format=csv&prefix=rt-' });
      const run = await runImport([file('export.csv', csv.body)], { TALLY_STORE: store });
      expect(run.code, run.stdout + run.stderr).toBe(0);
      const back = await readBack(store, ['rt-1', 'rt-2']);
      for (const d of ['rt-1', 'rt-2']) {
        expect(back[d]).toEqual({ summary: (await get(source, `/v1/devices/${d}`)).json, items: (await get(source, `/v1/devices/${d}/readings`)).json.items });
      }
    } finally {
      await source.stop();
    }
  });

  test('many bad lines: the first 20 listed with their reason, then how many more', async () => {
    const text = Array.from({ length: 30 }, (_, i) => `{"device_id":"many","ts":"2025-01-01T00:00:${String(i).padStart(2, '0')}Z","count":"${i}"}`).join('\n');
    const run = await runImport([file('many.jsonl', text)], { TALLY_STORE: store });
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[1]).toMatch(/^read 30 readings: 0 accepted, 0 duplicates, 30 rejected /);
    expect(lines[2]).toBe('rejected lines (the first 20):');
    expect(lines.slice(3, 23).map((l) => /^ {2}line (\d+): count must be/.exec(l)?.[1])).toEqual(Array.from({ length: 20 }, (_, i) => String(i + 1)));
    expect(lines[23]).toBe('  and 10 more');
    expect(run.code).toBe(1);
  });

  test('nothing imported, exit 2, for a bad command line, a missing file or a CSV without its ts column', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[file('x.txt', '')], /cannot tell the format of .*x\.txt from its name .*pass --format ndjson, csv or lp/],
      [[join(files.dir, 'x.txt'), '--format', 'xml'], /--format must be one of ndjson, csv, lp, got "xml"/],
      [[join(files.dir, 'absent.csv')], /cannot read .*absent\.csv: no such file/],
      [[file('p.ndjson', ''), '--precision', 'ns'], /--precision for ndjson must be one of s, ms, us, got "ns"/],
      [[file('nots.csv', 'device_id,time,count\nh-1,2025-01-01T00:00:00Z,1\n')], /nots\.csv: line 1: the header has no ts column .*nothing was imported/],
      [[], /name one file to import/],
      [[join(files.dir, 'p.ndjson'), '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const run = await runImport(args, { TALLY_STORE: store });
      expect(run.stderr, args.join(' ')).toMatch(message);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout).toBe('');
    }
    expect(await readBack(store, ['h-1'])).toEqual({ 'h-1': null });
  });
}

describe('tally import into SQLite', () => {
  importSuite(async () => {
    const { dir, cleanup } = tempDir();
    return { store: `sqlite:${join(dir, 'tally.db')}`, done: async () => cleanup() };
  });

  test('a server on the same file: a clear error naming the way out, exit 3, nothing written', async () => {
    const t = await startTally();
    try {
      await postReadings(t, [{ device_id: 'busy', ts: '2025-01-01T00:00:00Z', count: 1 }]);
      const store = `sqlite:${join(t.dir, 'tally.db')}`;
      const run = await runImport([file('busy.ndjson', '{"device_id":"busy","ts":"2025-01-01T00:00:01Z","count":1}\n')], { TALLY_STORE: store });
      expect(run.stderr).toMatch(/tally\.db is in use by another Tally \(one writer per data file\): a SQLite file takes one writer process, so stop the server first, or send the file through it: tally import --url/);
      expect(run.code).toBe(3);
      expect((await get(t, '/v1/devices/busy')).json).toMatchObject({ reading_count: 1 });
    } finally {
      await t.stop();
    }
  });

  test('--url: more rejections in a batch than one answer lists (1,000) are still each reported and counted', async () => {
    const t = await startTally();
    try {
      const url = await t.tally.listen();
      const text = Array.from({ length: 2500 }, (_, i) =>
        JSON.stringify({ device_id: 'many-url', ts: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(), count: i % 2 === 0 ? 'x' : 1 })).join('\n');
      const run = await runImport([file('many-url.ndjson', text), '--url', url], {});
      const lines = run.stdout.trimEnd().split('\n');
      expect(lines[1]).toMatch(/^read 2,500 readings: 1,250 accepted, 0 duplicates, 1,250 rejected /);
      expect(lines.slice(3, 23).map((l) => /^ {2}line (\d+): count must be/.exec(l)?.[1])).toEqual(Array.from({ length: 20 }, (_, i) => String(2 * i + 1)));
      expect(lines[23]).toBe('  and 1,230 more');
      expect((await get(t, '/v1/devices/many-url')).json).toMatchObject({ reading_count: 1250 });
    } finally {
      await t.stop();
    }
  });

  test('--url to a Tally with auth on: TALLY_API_KEY carries the key; a device-bound key stores only its devices, the others rejected by line', async () => {
    const t = await startTally({ TALLY_AUTH: 'on' });
    try {
      const url = await t.tally.listen();
      const key = await createKey(t.tally, 'importer', ['ingest'], 'mine-');
      const text = ['mine-1', 'other-1', 'mine-2'].map((d) => JSON.stringify({ device_id: d, ts: '2025-01-01T00:00:00Z', count: 1 })).join('\n');
      const path = file('keyed.ndjson', text);
      const refused = await runImport([path, '--url', url], {});
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/answered 401: .*TALLY_API_KEY/);
      const run = await runImport([path, '--url', url], { TALLY_API_KEY: key });
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/read 3 readings: 2 accepted, 0 duplicates, 1 rejected/);
      expect(run.stdout).toMatch(/line 2: device_id "other-1" is not a device this key may write/);
      expect(run.stdout).not.toContain(key);
      expect((await t.tally.store.getDevice('mine-2'))?.readingCount).toBe(1);
      expect(await t.tally.store.getDevice('other-1')).toBeUndefined();
    } finally {
      await t.stop();
    }
  });

  test('--url: through a running Tally, batches it finds too large sent in halves, bad lines still by number', async () => {
    // A server taking at most 1,000 readings a request: the import's batches of 5,000 come back 413.
    const t = await startTally({ TALLY_MAX_READINGS: '1000' });
    try {
      const url = await t.tally.listen();
      const lines = Array.from({ length: 6000 }, (_, i) => JSON.stringify({ device_id: `url-${i % 2}`, ts: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(), count: 2 }));
      lines[1234] = '{"device_id":"url-0","ts":"2025-01-01T00:20:34Z","count":"two"}';
      lines[4999] = '{"device_id":"url-1"';
      const path = file('via-url.ndjson', lines.join('\n'));
      const run = await runImport([path, '--url', url], {});
      expect(run.stderr).toBe('');
      expect(run.code).toBe(1);
      expect(run.stdout.split('\n').slice(0, 5)).toEqual([
        `tally import: ${path} (ndjson) into ${url}`,
        expect.stringMatching(/^read 6,000 readings: 5,998 accepted, 0 duplicates, 2 rejected /),
        'rejected lines:',
        expect.stringMatching(/^ {2}line 1235: count must be /),
        expect.stringMatching(/^ {2}line 5000: not valid JSON/),
      ]);
      const again = await runImport([path, '--url', url], {});
      expect(again.stdout).toMatch(/read 6,000 readings: 0 accepted, 5,998 duplicates, 2 rejected /);
      expect((await get(t, '/v1/devices/url-0')).json).toMatchObject({ reading_count: 2999, cumulative_count: 5998 });

      const lp = await runImport([file('via-url.lp', LP), '--url', url], { TALLY_LP_DEVICE_TAG: 'host' });
      expect(lp.stdout).toMatch(/read 5 readings: 4 accepted, 0 duplicates, 1 rejected /);
      expect((await get(t, '/v1/devices/boiler-1/readings')).json.items[0]).toEqual({
        device_id: 'boiler-1', ts: '2025-06-18T10:00:00Z', count: 3, payload: { measurement: 'plant', site: 'oslo', pressure: 1.25, ok: true, label: 'a "b"' },
      });
      const nobody = await runImport([path, '--url', 'http://127.0.0.1:1'], {});
      expect(nobody.stderr).toMatch(/stopped: cannot reach http:\/\/127\.0\.0\.1:1: .*nothing was committed/s);
      expect(nobody.code).toBe(3);
    } finally {
      await t.stop();
    }
  });
});

describePg('tally import into PostgreSQL', () => {
  let db: TestDatabase;
  importSuite(async () => {
    db = await createDatabase();
    return { store: db.url, done: () => db.drop() };
  });

  test('while a Tally runs on the same database (PostgreSQL takes many writers)', async () => {
    const t = await startTally({ TALLY_STORE: db.url });
    try {
      const run = await runImport([file('live.ndjson', '{"device_id":"live","ts":"2025-01-01T00:00:00Z","count":7}\n')], { TALLY_STORE: db.url });
      expect(run.code).toBe(0);
      expect((await get(t, '/v1/devices/live')).json).toMatchObject({ reading_count: 1, cumulative_count: 7 });
    } finally {
      await t.stop();
    }
  });
});
