/**
 * The load of `bench/mqtt.ts`, run as a process of its own so that it does not share the bench's
 * event loop: publishes (MQTT, QoS 1) or posts (HTTP, POST /v1/readings) `--messages` messages of
 * `--per-message` readings each, over `--connections` connections with `--window` in flight on
 * each, and prints {"seconds": ...} once the last one is acknowledged (for MQTT: by the broker).
 *
 * With `--rate`, MQTT only: an open-loop load instead, message i published at i / rate seconds
 * whatever the acknowledgements (devices do not wait for the broker), for `--seconds`; it prints
 * {"seconds", "published", "acked", "refused", "maxLagMs"} once every PUBACK is in: `acked` is what
 * the broker took responsibility for, the figure the bench compares with the readings stored.
 *
 * Message i goes to device `<prefix>-<i % devices>`; its readings have distinct timestamps, so every
 * reading of a run is new and the count check knows exactly what must be stored.
 */
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';

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
    rate: { type: 'string' },
    seconds: { type: 'string', default: '10' },
  },
});

const rate = values.rate === undefined ? undefined : Number(values.rate);
const messages = rate === undefined ? Number(values.messages) : Math.round(rate * Number(values.seconds));
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

function publishers(target: string): Promise<MqttClient[]> {
  return Promise.all(
    Array.from({ length: connections }, (_, c) => mqtt.connectAsync(target, { protocolVersion: 5, clientId: `bench-pub-${process.pid}-${c}`, clean: true })),
  );
}

const payload = (i: number) => {
  const body = readings(i);
  return JSON.stringify(perMessage === 1 ? body[0] : body);
};

/** Publishes message i at i / rate seconds, round robin over the connections, without waiting for PUBACKs. */
async function steady(target: string, perSecond: number): Promise<void> {
  const clients = await publishers(target);
  let acked = 0;
  let refused = 0;
  let maxLagMs = 0;
  const done: Array<Promise<void>> = [];
  const started = performance.now();
  for (let i = 0; i < messages; ) {
    const elapsed = performance.now() - started;
    // Everything due by now, then a short sleep: a 1 ms timer cannot pace 5 messages a millisecond one by one.
    const due = Math.min(messages, Math.floor((elapsed / 1000) * perSecond) + 1);
    if (i < due) maxLagMs = Math.max(maxLagMs, elapsed - (i / perSecond) * 1000);
    for (; i < due; i++) {
      done.push(
        clients[i % connections]!.publishAsync(`${values.topic}/${values.prefix}-${i % devices}/readings`, payload(i), { qos: 1 }).then(
          () => void acked++,
          () => void refused++,
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  const sent = (performance.now() - started) / 1000;
  await Promise.all(done);
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(clients.map((c) => c.endAsync()));
  process.stdout.write(`${JSON.stringify({ seconds, sent, published: messages, acked, refused, maxLagMs: Math.round(maxLagMs) })}\n`);
}

async function main(): Promise<void> {
  const target = values.target!;
  if (rate !== undefined) {
    if (values.mode !== 'mqtt') throw new Error('--rate is for --mode mqtt');
    return steady(target, rate);
  }
  let seconds: number;
  if (values.mode === 'mqtt') {
    const clients = await publishers(target);
    const started = performance.now();
    await drive((c, i) => clients[c]!.publishAsync(`${values.topic}/${values.prefix}-${i % devices}/readings`, payload(i), { qos: 1 }));
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
