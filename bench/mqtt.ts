/**
 * `npm run bench:mqtt`: Tally (built, SQLite, fresh data dir) fed through a real Mosquitto, beside
 * the same readings over HTTP in the same run. A load process of its own (`bench/mqtt-load.ts`)
 * publishes at QoS 1 single readings and 100-reading arrays, then posts the same to
 * POST /v1/readings; each scenario's time runs from its first message to the moment every reading
 * is readable over HTTP, and is checked to the exact count (readings and cumulative counts).
 *
 *   npm run bench:mqtt -- [--single 20000] [--array 2000] [--tally-connections 1,4] [--inflight 100]
 *                         [--pub-connections 4] [--window 100] [--broker mqtt://host:port]
 *
 * Without --broker, a Mosquitto of its own is started on a free port with docs/mosquitto.conf.
 *
 *   npm run bench:mqtt -- --steady 5000 [--seconds 10] [--runs 3] [--pub-connections 4] [--broker mqtt://127.0.0.1:1883]
 *                         [--tally-connections N] [--inflight N] [--stall MS]   (--broker own: docs/mosquitto.conf)
 *
 * --steady: the issue's check instead. Single readings published at QoS 1 at a fixed arrival rate
 * (messages a second) for --seconds, through the broker at --broker (by default the system's
 * Mosquitto on 127.0.0.1:1883, whatever its configuration), to a fresh Tally with its defaults (or
 * the given connections and inflight). Messages the broker acknowledged are compared with readings
 * stored; any difference, or a message the broker refused, fails the run (exit 1). --stall holds
 * SQLite's write lock for MS milliseconds halfway through, as a slow disk or a busy machine would
 * stall commits: what the broker holds for Tally meanwhile is what decides whether anything is lost.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { freePort, httpOk, peakRssBytes, ROOT, sleep, startProcess, waitReady, type Proc } from './proc.js';
import { machine } from './report.js';

const { values: flags } = parseArgs({
  options: {
    single: { type: 'string', default: '20000' },
    array: { type: 'string', default: '2000' },
    // Defaults applied per mode: --steady leaves Tally's own unless given.
    'tally-connections': { type: 'string' },
    inflight: { type: 'string' },
    'pub-connections': { type: 'string', default: '4' },
    window: { type: 'string', default: '100' },
    broker: { type: 'string' },
    steady: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '1' },
    stall: { type: 'string', default: '0' },
  },
});

const DEVICES = 1000;

interface Scenario {
  readonly name: string;
  readonly mode: 'mqtt' | 'http';
  readonly messages: number;
  readonly perMessage: number;
}

interface Result {
  readonly tallyConnections: number;
  readonly inflight: number;
  readonly scenario: string;
  readonly messages: number;
  readonly readings: number;
  /** From the first message to the last acknowledgement the load saw (MQTT: the broker's). */
  readonly ackedSeconds: number;
  /** From the first message to every reading readable over HTTP. */
  readonly storedSeconds: number;
  readonly messagesPerSecond: number;
  readonly readingsPerSecond: number;
  readonly check: 'exact' | string;
}

async function ownBroker(): Promise<{ url: string; proc: Proc; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-mosquitto-'));
  // Mosquitto run as root drops to its own user, which must be able to save its database here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const conf = readFileSync(join(ROOT, 'docs/mosquitto.conf'), 'utf8')
    .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
    .replace(/^persistence_location .*$/m, `persistence_location ${dir}/`);
  writeFileSync(join(dir, 'mosquitto.conf'), conf);
  const proc = startProcess('mosquitto', ['-c', join(dir, 'mosquitto.conf')]);
  const url = `mqtt://127.0.0.1:${port}`;
  await waitReady('mosquitto', proc, async () => {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 500 });
    await client.endAsync();
    return true;
  });
  return { url, proc, dir };
}

/** Sums of reading_count and cumulative_count over the devices whose id starts with `prefix`. */
async function stored(http: string, prefix: string): Promise<{ readings: number; count: number }> {
  let readings = 0;
  let count = 0;
  let cursor: string | null = null;
  do {
    const url = `${http}/v1/devices?limit=1000&prefix=${encodeURIComponent(prefix)}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = (await (await fetch(url)).json()) as { items: Array<{ reading_count: number; cumulative_count: number }>; next_cursor: string | null };
    for (const d of page.items) {
      readings += d.reading_count;
      count += d.cumulative_count;
    }
    cursor = page.next_cursor;
  } while (cursor);
  return { readings, count };
}

/** Runs bench/mqtt-load.ts and returns the JSON line it ends with. */
async function runLoad<T extends { seconds: number }>(args: string[]): Promise<T> {
  const proc = startProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/mqtt-load.ts'), ...args], { cwd: ROOT });
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`the load process failed:\n${proc.output()}`);
  return JSON.parse(proc.output().trim().split('\n').pop()!) as T;
}

/**
 * The built Tally, SQLite in a fresh data dir, subscribed to `broker` under the prefix `topic`;
 * `mqttEnv` adds TALLY_MQTT_* settings. Returns once a reading published now is stored.
 */
async function startTally(broker: string, topic: string, mqttEnv: Record<string, string>): Promise<{ proc: Proc; http: string; db: string; stop(): Promise<void> }> {
  const data = mkdtempSync(join(tmpdir(), 'tally-bench-mqtt-'));
  const port = await freePort();
  const http = `http://127.0.0.1:${port}`;
  const proc = startProcess(process.execPath, [join(ROOT, 'dist/app/cli.js'), 'serve'], {
    cwd: ROOT,
    env: {
      ...process.env,
      TALLY_PORT: String(port),
      TALLY_DATA_DIR: data,
      TALLY_LOG_LEVEL: 'warn',
      TALLY_MQTT_URL: broker,
      TALLY_MQTT_PREFIX: topic,
      TALLY_MQTT_CLIENT_ID: topic,
      TALLY_MQTT_SESSION_EXPIRY: '60s',
      ...mqttEnv,
    },
  });
  const stop = async () => {
    await proc.stop();
    rmSync(data, { recursive: true, force: true });
  };
  try {
    await waitReady('tally', proc, () => httpOk(`${http}/v1/devices?limit=1`));
    // Subscribed once a reading published now is stored.
    const probe = await mqtt.connectAsync(broker, { protocolVersion: 5 });
    await waitReady('tally mqtt', proc, async () => {
      await probe.publishAsync(`${topic}/warmup/readings`, JSON.stringify({ ts: new Date().toISOString() }), { qos: 1 });
      await sleep(100);
      return (await stored(http, 'warmup')).readings > 0;
    });
    await probe.endAsync();
  } catch (err) {
    await stop();
    throw err;
  }
  return { proc, http, db: join(data, 'tally.db'), stop };
}

async function scenario(s: Scenario, broker: string, http: string, prefix: string, topic: string): Promise<Omit<Result, 'tallyConnections' | 'inflight'>> {
  const readings = s.messages * s.perMessage;
  const started = performance.now();
  const { seconds: ackedSeconds } = await runLoad([
    '--mode', s.mode,
    '--target', s.mode === 'mqtt' ? broker : http,
    '--topic', topic,
    '--prefix', prefix,
    '--messages', String(s.messages),
    '--per-message', String(s.perMessage),
    '--devices', String(DEVICES),
    '--connections', flags['pub-connections']!,
    '--window', flags.window!,
  ]);
  // The load process takes a moment to start: time from its own first message.
  const startup = (performance.now() - started) / 1000 - ackedSeconds;
  let got = { readings: 0, count: 0 };
  const deadline = performance.now() + 300_000;
  while (performance.now() < deadline) {
    got = await stored(http, prefix);
    if (got.readings >= readings) break;
    await sleep(25);
  }
  const storedSeconds = (performance.now() - started) / 1000 - startup;
  await sleep(500);
  got = await stored(http, prefix);
  const check = got.readings === readings && got.count === readings ? 'exact' : `MISMATCH: ${got.readings} readings, count ${got.count}, expected ${readings}`;
  return {
    scenario: s.name,
    messages: s.messages,
    readings,
    ackedSeconds,
    storedSeconds,
    messagesPerSecond: s.messages / storedSeconds,
    readingsPerSecond: readings / storedSeconds,
    check,
  };
}

async function compare(): Promise<void> {
  const single = Number(flags.single);
  const array = Number(flags.array);
  const scenarios: Scenario[] = [
    { name: 'mqtt single', mode: 'mqtt', messages: single, perMessage: 1 },
    { name: 'mqtt array100', mode: 'mqtt', messages: array, perMessage: 100 },
    { name: 'http single', mode: 'http', messages: single, perMessage: 1 },
    { name: 'http array100', mode: 'http', messages: array, perMessage: 100 },
  ];
  const own = flags.broker === undefined ? await ownBroker() : undefined;
  const broker = flags.broker ?? own!.url;
  const results: Result[] = [];
  try {
    for (const tallyConnections of (flags['tally-connections'] ?? '1,4').split(',').map(Number)) {
      for (const inflight of (flags.inflight ?? '100').split(',').map(Number)) {
        const topic = `bench${process.pid}c${tallyConnections}i${inflight}`;
        const tally = await startTally(broker, topic, { TALLY_MQTT_CONNECTIONS: String(tallyConnections), TALLY_MQTT_INFLIGHT: String(inflight) });
        const http = tally.http;
        try {
          for (const s of scenarios) {
            const r = await scenario(s, broker, http, `${s.name.replace(' ', '-')}-`, topic);
            results.push({ tallyConnections, inflight, ...r });
            console.log(
              `connections ${tallyConnections} inflight ${inflight} ${r.scenario.padEnd(14)} ${String(r.messages).padStart(6)} msgs ${String(r.readings).padStart(7)} readings` +
                `  acked ${r.ackedSeconds.toFixed(2)} s  stored ${r.storedSeconds.toFixed(2)} s  ${Math.round(r.messagesPerSecond).toLocaleString('en')} msg/s` +
                `  ${Math.round(r.readingsPerSecond).toLocaleString('en')} readings/s  ${r.check}`,
            );
          }
          console.log(`  tally peak RSS ${Math.round((peakRssBytes(tally.proc.pid) ?? 0) / 1024 ** 2)} MiB`);
        } finally {
          await tally.stop();
        }
      }
    }
  } finally {
    if (own) {
      await own.proc.stop();
      rmSync(own.dir, { recursive: true, force: true });
    }
  }
  const out = { machine: machine(), broker: own ? 'own mosquitto, docs/mosquitto.conf' : broker, flags, results };
  writeFileSync(join(ROOT, 'bench/results/mqtt.json'), `${JSON.stringify(out, null, 2)}\n`);
  if (results.some((r) => r.check !== 'exact')) process.exitCode = 1;
}

if (flags.steady === undefined) await compare();
else await steady(Number(flags.steady));

interface SteadyRun {
  readonly run: number;
  readonly rate: number;
  /** Messages the load process sent, the broker acknowledged, and refused. */
  readonly published: number;
  readonly acked: number;
  readonly refused: number;
  /** Readings readable over HTTP once no more arrive. */
  readonly stored: number;
  /** How far behind its schedule the publisher fell at worst, and the time its sends took. */
  readonly maxLagMs: number;
  readonly sendSeconds: number;
  /** From the first message to the last reading stored. */
  readonly storedSeconds: number;
  readonly pass: boolean;
}

/** Waits until `expected` readings are stored or none has come for `quietMs`; returns the last count. */
async function storedWhenSettled(http: string, prefix: string, expected: number, quietMs = 10_000): Promise<number> {
  let last = -1;
  let lastChange = performance.now();
  for (;;) {
    const { readings } = await stored(http, prefix);
    if (readings !== last) lastChange = performance.now();
    last = readings;
    if (readings >= expected) break;
    if (performance.now() - lastChange > quietMs) break;
    await sleep(100);
  }
  // Anything late (or more than was published) shows now.
  await sleep(1_000);
  return (await stored(http, prefix)).readings;
}

/** Holds the store's write lock for `ms` from `afterMs / 2` on (the load process takes about a second to start). */
async function stallHalfway(file: string, ms: number, afterMs: number): Promise<void> {
  if (ms <= 0) return;
  await sleep(1_000 + afterMs / 2);
  const lock = new Database(file);
  try {
    lock.exec('BEGIN IMMEDIATE');
    await sleep(ms);
    lock.exec('ROLLBACK');
  } finally {
    lock.close();
  }
}

/** The issue's check: a fixed arrival rate through the broker, every acknowledged message stored. */
async function steady(rate: number): Promise<void> {
  // `--broker own`: a Mosquitto of the bench's own with docs/mosquitto.conf, to compare with the system's defaults.
  const own = flags.broker === 'own' ? await ownBroker() : undefined;
  try {
    await steadyRuns(rate, own?.url ?? flags.broker ?? 'mqtt://127.0.0.1:1883', own ? 'own mosquitto, docs/mosquitto.conf' : undefined);
  } finally {
    if (own) {
      await own.proc.stop();
      rmSync(own.dir, { recursive: true, force: true });
    }
  }
}

async function steadyRuns(rate: number, broker: string, brokerName = broker): Promise<void> {
  const mqttEnv: Record<string, string> = {
    ...(flags['tally-connections'] === undefined ? {} : { TALLY_MQTT_CONNECTIONS: flags['tally-connections'] }),
    ...(flags.inflight === undefined ? {} : { TALLY_MQTT_INFLIGHT: flags.inflight }),
  };
  const runs: SteadyRun[] = [];
  for (let run = 1; run <= Number(flags.runs); run++) {
    const topic = `steady${process.pid}r${run}`;
    const tally = await startTally(broker, topic, mqttEnv);
    try {
      const started = performance.now();
      const stall = stallHalfway(tally.db, Number(flags.stall), Number(flags.seconds) * 1000);
      const load = await runLoad<{ seconds: number; sent: number; published: number; acked: number; refused: number; maxLagMs: number }>([
        '--mode', 'mqtt',
        '--target', broker,
        '--topic', topic,
        '--prefix', 'steady-',
        '--rate', String(rate),
        '--seconds', flags.seconds!,
        '--per-message', '1',
        '--devices', String(DEVICES),
        '--connections', flags['pub-connections']!,
      ]);
      await stall;
      const startup = (performance.now() - started) / 1000 - load.seconds;
      const got = await storedWhenSettled(tally.http, 'steady-', load.acked).catch((err: Error) => {
        // Tally gone: what it said is the explanation.
        throw tally.proc.alive() ? err : new Error(`tally exited during the run:\n${tally.proc.output()}`);
      });
      const r: SteadyRun = {
        run,
        rate,
        published: load.published,
        acked: load.acked,
        refused: load.refused,
        stored: got,
        maxLagMs: load.maxLagMs,
        sendSeconds: load.sent,
        storedSeconds: (performance.now() - started) / 1000 - startup - 1,
        pass: load.refused === 0 && load.acked === load.published && got === load.acked,
      };
      runs.push(r);
      console.log(
        `run ${run}: ${rate.toLocaleString('en')} msg/s for ${flags.seconds} s${Number(flags.stall) > 0 ? ` (store stalled ${flags.stall} ms)` : ''}  published ${r.published}  acked by broker ${r.acked}  refused ${r.refused}  stored ${r.stored}` +
          `  ${r.pass ? 'exact' : `FAIL: ${r.acked - r.stored} acknowledged but not stored`}  (sends took ${r.sendSeconds.toFixed(2)} s, worst lag ${r.maxLagMs} ms, all stored after ${r.storedSeconds.toFixed(2)} s)`,
      );
    } finally {
      await tally.stop();
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(`median of ${runs.length}: stored ${median(runs.map((r) => r.stored))} of ${median(runs.map((r) => r.acked))} acked; all stored after ${median(runs.map((r) => r.storedSeconds)).toFixed(2)} s`);
  const out = { date: new Date().toISOString(), machine: machine(), broker: brokerName, flags, runs };
  writeFileSync(join(ROOT, 'bench/results/mqtt-steady.json'), `${JSON.stringify(out, null, 2)}\n`);
  if (runs.some((r) => !r.pass)) {
    console.error('FAIL: messages the broker acknowledged were not all stored');
    process.exitCode = 1;
  }
}
