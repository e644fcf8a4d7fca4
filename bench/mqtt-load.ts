/**
 * The load of `bench/mqtt.ts`, run as a process of its own so that it does not share the bench's
 * event loop: publishes (MQTT, QoS 1) or posts (HTTP, POST /v1/readings) `--messages` messages of
 * `--per-message` readings each, over `--connections` connections with `--window` in flight on
 * each, and prints {"seconds": ...} once the last one is acknowledged (for MQTT: by the broker).
 *
 * Message i goes to device `<prefix>-<i % devices>`; its readings have distinct timestamps, so every
 * reading of a run is new and the count check knows exactly what must be stored.
 */
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const { values } = parseArgs({
  options: {
    mode: { type: 'string' },
    target: { type: 'string' },
    topic: { type: 'string', default: 'tally' },
    prefix: { type: 'string', default: 'dev' },
    messages: { type: 'string' },
    'per-message': { type: 'string' },
    devices: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '4' },
    window: { type: 'string', default: '100' },
  },
});

const messages = Number(values.messages);
const perMessage = Number(values['per-message']);
const devices = Number(values.devices);
const connections = Number(values.connections);
const window = Number(values.window);
const BASE_MS = Date.UTC(2024, 0, 1);

function readings(i: number): Array<{ ts: string; count: number }> {
  const step = Math.floor(i / devices) * perMessage;
  return Array.from({ length: perMessage }, (_, k) => ({ ts: new Date(BASE_MS + (step + k) * 1000).toISOString(), count: 1 }));
}

/** Runs `send` for messages 0..n-1, `connections` × `window` at a time, each connection its own share. */
async function drive(send: (connection: number, i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (connection: number) => {
    for (let i = next++; i < messages; i = next++) await send(connection, i);
  };
  await Promise.all(Array.from({ length: connections * window }, (_, k) => lane(k % connections)));
}

async function main(): Promise<void> {
  const target = values.target!;
  let seconds: number;
  if (values.mode === 'mqtt') {
    const clients = await Promise.all(
      Array.from({ length: connections }, (_, c) => mqtt.connectAsync(target, { protocolVersion: 5, clientId: `bench-pub-${process.pid}-${c}`, clean: true })),
    );
    const started = performance.now();
    await drive((c, i) => {
      const body = readings(i);
      const payload = JSON.stringify(perMessage === 1 ? body[0] : body);
      return clients[c]!.publishAsync(`${values.topic}/${values.prefix}-${i % devices}/readings`, payload, { qos: 1 });
    });
    seconds = (performance.now() - started) / 1000;
    await Promise.all(clients.map((c) => c.endAsync()));
  } else {
    // Kept-alive sockets, as many as requests in flight: the HTTP counterpart of the MQTT windows.
    const agent = new Agent({ keepAlive: true, maxSockets: connections * window });
    const url = new URL('/v1/readings', target);
    const started = performance.now();
    await drive((_c, i) => {
      const device_id = `${values.prefix}-${i % devices}`;
      return post(agent, url, JSON.stringify(readings(i).map((r) => ({ device_id, ...r }))));
    });
    seconds = (performance.now() - started) / 1000;
    agent.destroy();
  }
  process.stdout.write(`${JSON.stringify({ seconds })}\n`);
}

function post(agent: Agent, url: URL, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`POST /v1/readings answered ${res.statusCode}: ${text}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
