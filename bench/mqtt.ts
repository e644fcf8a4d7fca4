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
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { freePort, httpOk, peakRssBytes, ROOT, sleep, startProcess, waitReady, type Proc } from './proc.js';
import { machine } from './report.js';

const { values: flags } = parseArgs({
  options: {
    single: { type: 'string', default: '20000' },
    array: { type: 'string', default: '2000' },
    'tally-connections': { type: 'string', default: '1,4' },
    inflight: { type: 'string', default: '100' },
    'pub-connections': { type: 'string', default: '4' },
    window: { type: 'string', default: '100' },
    broker: { type: 'string' },
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

async function runLoad(args: string[]): Promise<number> {
  const proc = startProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/mqtt-load.ts'), ...args], { cwd: ROOT });
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`the load process failed:\n${proc.output()}`);
  return (JSON.parse(proc.output().trim().split('\n').pop()!) as { seconds: number }).seconds;
}

async function scenario(s: Scenario, broker: string, http: string, prefix: string, topic: string): Promise<Omit<Result, 'tallyConnections' | 'inflight'>> {
  const readings = s.messages * s.perMessage;
  const started = performance.now();
  const ackedSeconds = await runLoad([
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

async function main(): Promise<void> {
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
    for (const tallyConnections of flags['tally-connections']!.split(',').map(Number)) {
      for (const inflight of flags.inflight!.split(',').map(Number)) {
        const data = mkdtempSync(join(tmpdir(), 'tally-bench-mqtt-'));
        const port = await freePort();
        const http = `http://127.0.0.1:${port}`;
        const topic = `bench${process.pid}c${tallyConnections}i${inflight}`;
        const tally = startProcess(process.execPath, [join(ROOT, 'dist/app/cli.js'), 'serve'], {
          cwd: ROOT,
          env: {
            ...process.env,
            TALLY_PORT: String(port),
            TALLY_DATA_DIR: data,
            TALLY_LOG_LEVEL: 'warn',
            TALLY_MQTT_URL: broker,
            TALLY_MQTT_PREFIX: topic,
            TALLY_MQTT_CLIENT_ID: topic,
            TALLY_MQTT_CONNECTIONS: String(tallyConnections),
            TALLY_MQTT_INFLIGHT: String(inflight),
            TALLY_MQTT_SESSION_EXPIRY: '60s',
          },
        });
        try {
          await waitReady('tally', tally, () => httpOk(`${http}/v1/devices?limit=1`));
          // Subscribed once a reading published now is stored.
          const probe = await mqtt.connectAsync(broker, { protocolVersion: 5 });
          await waitReady('tally mqtt', tally, async () => {
            await probe.publishAsync(`${topic}/warmup/readings`, JSON.stringify({ ts: new Date().toISOString() }), { qos: 1 });
            await sleep(100);
            return (await stored(http, 'warmup')).readings > 0;
          });
          await probe.endAsync();
          for (const s of scenarios) {
            const r = await scenario(s, broker, http, `${s.name.replace(' ', '-')}-`, topic);
            results.push({ tallyConnections, inflight, ...r });
            console.log(
              `connections ${tallyConnections} inflight ${inflight} ${r.scenario.padEnd(14)} ${String(r.messages).padStart(6)} msgs ${String(r.readings).padStart(7)} readings` +
                `  acked ${r.ackedSeconds.toFixed(2)} s  stored ${r.storedSeconds.toFixed(2)} s  ${Math.round(r.messagesPerSecond).toLocaleString('en')} msg/s` +
                `  ${Math.round(r.readingsPerSecond).toLocaleString('en')} readings/s  ${r.check}`,
            );
          }
          console.log(`  tally peak RSS ${Math.round((peakRssBytes(tally.pid) ?? 0) / 1024 ** 2)} MiB`);
        } finally {
          await tally.stop();
          rmSync(data, { recursive: true, force: true });
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

await main();
