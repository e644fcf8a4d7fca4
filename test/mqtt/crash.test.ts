import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { freePort, tempDir } from '../helpers.js';
import { ownBroker, requireBroker, SKIP, testClient, until } from './broker.js';

/**
 * A PUBACK means durable, through a crash: Tally SIGKILLed in the middle of a QoS 1 burst, started
 * again on the same data and the same persistent sessions, stores every message exactly once; and
 * messages published while it is down are all stored when it comes back.
 */

const CLI = fileURLToPath(new URL('../../src/app/cli.ts', import.meta.url));

interface Node {
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
}

async function startNode(env: Record<string, string>): Promise<Node> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve'], {
    env: { PATH: process.env.PATH ?? '', TALLY_PORT: String(port), TALLY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  await until(
    'the node to answer',
    async () => (child.exitCode === null ? fetch(`${url}/api/ping`).then((r) => r.ok, () => undefined) : Promise.reject(new Error(stderr))),
    30_000,
  );
  return { url, child, exited };
}

async function totals(url: string): Promise<{ readings: number; count: number }> {
  let readings = 0;
  let count = 0;
  let cursor: string | null = null;
  do {
    const res = await fetch(`${url}/v1/devices?limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
    const page = (await res.json()) as { items: Array<{ reading_count: number; cumulative_count: number }>; next_cursor: string | null };
    for (const d of page.items) {
      readings += d.reading_count;
      count += d.cumulative_count;
    }
    cursor = page.next_cursor;
  } while (cursor !== null);
  return { readings, count };
}

describe.skipIf(SKIP)('MQTT through a crash (a persistent Mosquitto of the test own)', () => {
  test('SIGKILL mid-burst, then a restart: every message stored exactly once; 5,000 published while down: all stored', async () => {
    await requireBroker();
    const broker = await ownBroker();
    const { dir, cleanup } = tempDir();
    const env = {
      TALLY_DATA_DIR: dir,
      TALLY_MQTT_URL: broker.url,
      TALLY_MQTT_PREFIX: 'k',
      TALLY_MQTT_CLIENT_ID: 'crash',
      TALLY_MQTT_CONNECTIONS: '2',
    };
    const pub = await testClient(broker.url);
    let node: Node | undefined;
    try {
      const message = (i: number) => JSON.stringify({ ts: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(), count: 1 + (i % 3) });
      const publish = (from: number, to: number) =>
        Promise.all(Array.from({ length: to - from }, (_, k) => pub.publishAsync(`k/dev-${(from + k) % 20}/readings`, message(from + k), { qos: 1 })));
      const countOf = (n: number) => Array.from({ length: n }, (_, i) => 1 + (i % 3)).reduce((a, b) => a + b, 0);

      node = await startNode(env);
      const first = node;
      // A burst of 4,000; the node is killed once some of it is stored, with the rest in flight.
      const burst = publish(0, 4000);
      await until('some readings in', async () => ((await totals(first.url)).readings > 300 ? true : undefined), 30_000);
      node.child.kill('SIGKILL');
      await node.exited;
      node = undefined;
      await burst; // the broker has every message: acknowledged to the publisher, queued for the sessions
      // Down: 5,000 more.
      await publish(4000, 9000);

      node = await startNode(env);
      const again = node;
      await until('every message', async () => ((await totals(again.url)).readings >= 9000 ? true : undefined), 60_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await totals(again.url)).toEqual({ readings: 9000, count: countOf(9000) });
    } finally {
      node?.child.kill('SIGKILL');
      await pub.endAsync();
      await broker.stop();
      cleanup();
    }
  }, 120_000);
});
