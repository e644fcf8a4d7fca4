import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/app/config.js';
import { createTally, type Tally } from '../../src/app/tally.js';
import { startTally, tempDir } from '../helpers.js';
import { ownBroker, requireBroker, SKIP, testClient, unique, until } from './broker.js';
import type { StoreConfig } from '../../src/store/index.js';

/** The SQLite file behind a test Tally (these tests lock it to make the store fail). */
function sqliteFile(store: StoreConfig): string {
  if (store.backend !== 'sqlite') throw new Error('these tests need the SQLite store');
  return store.sqlite.file;
}

/**
 * MQTT end to end, no mocks: a real Mosquitto, Tally subscribed to it with TALLY_MQTT_URL, devices
 * publishing with mqtt.js and with mosquitto_pub, and the results read back over HTTP.
 */

if (SKIP) console.warn('MQTT broker tests skipped: set TALLY_TEST_MQTT_URL=mqtt://127.0.0.1:1883 to run them');

type Harness = Awaited<ReturnType<typeof startTally>>;
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a Tally subscribed to `url` under a prefix of its own; its sessions expire soon after the tests. */
async function mqttTally(url: string, env: Record<string, string> = {}): Promise<Harness & { prefix: string }> {
  const prefix = unique('p');
  const t = await startTally({ TALLY_MQTT_URL: url, TALLY_MQTT_PREFIX: prefix, TALLY_MQTT_CLIENT_ID: prefix, TALLY_MQTT_SESSION_EXPIRY: '60s', ...env });
  await t.tally.mqtt!.ready();
  return { ...t, prefix };
}

async function device(tally: Tally, id: string): Promise<any> {
  const res = await tally.server.inject({ url: `/v1/devices/${encodeURIComponent(id)}` });
  return res.statusCode === 200 ? res.json() : undefined;
}

/** Every device's reading and count totals, over HTTP. */
async function totals(tally: Tally): Promise<{ devices: number; readings: number; count: number }> {
  const res = await tally.server.inject({ url: '/v1/devices?limit=1000' });
  const items = res.json().items as Array<{ reading_count: number; cumulative_count: number }>;
  return {
    devices: items.length,
    readings: items.reduce((n, d) => n + d.reading_count, 0),
    count: items.reduce((n, d) => n + d.cumulative_count, 0),
  };
}

/**
 * Polls the device until it holds `readings` readings. A publisher's PUBACK comes from the broker,
 * not from Tally, so a reading is readable some time after it: waiting for the exact count, and
 * checking no more arrive, is how the tests know everything was taken.
 */
async function settled(tally: Tally, id: string, readings: number): Promise<any> {
  await until(`${readings} readings of ${id}`, async () => ((await device(tally, id))?.reading_count >= readings ? true : undefined));
  await sleep(50);
  return device(tally, id);
}

/**
 * The PUBACKs Tally sends to the broker, seen on its own connections; for each, the device as read
 * over HTTP right then: a PUBACK sent before the commit would find the reading missing.
 */
function watchPubacks(tally: Tally, id: string): { seen: Array<Promise<any>>; stop(): void } {
  const seen: Array<Promise<any>> = [];
  const listener = (packet: { cmd: string }) => {
    if (packet.cmd === 'puback') seen.push(device(tally, id));
  };
  for (const client of tally.mqtt!.clients) client.on('packetsend', listener);
  return { seen, stop: () => tally.mqtt!.clients.forEach((c) => c.off('packetsend', listener)) };
}

/** mosquitto_pub, the real command-line client, at QoS 1: it exits once the broker's PUBACK is in. */
async function mosquittoPub(url: string, topic: string, message: string): Promise<void> {
  const { hostname, port } = new URL(url);
  await run('mosquitto_pub', ['-V', 'mqttv5', '-h', hostname, '-p', port || '1883', '-q', '1', '-t', topic, '-m', message]);
}

const ts = (minute: number, second = 0) => `2025-06-18T10:${String(minute).padStart(2, '0')}:${String(second).padStart(2, '0')}Z`;

describe.skipIf(SKIP)('MQTT through a real broker', () => {
  let url: string;
  let t: Harness & { prefix: string };
  let pub: MqttClient;
  let errors: Array<{ topic: string; body: any }>;

  beforeAll(async () => {
    url = await requireBroker();
    t = await mqttTally(url, { TALLY_MQTT_CONNECTIONS: '2' });
    pub = await testClient(url);
    errors = [];
    await pub.subscribeAsync([`${t.prefix}/+/errors`, `${t.prefix}/errors`], { qos: 0 });
    pub.on('message', (topic, payload) => {
      if (topic.endsWith('/errors')) errors.push({ topic, body: JSON.parse(payload.toString()) });
    });
  });
  afterAll(async () => {
    await pub?.endAsync();
    await t?.stop();
  });

  const publish = (topic: string, body: unknown, qos: 0 | 1 = 1) =>
    pub.publishAsync(`${t.prefix}/${topic}`, typeof body === 'string' ? body : JSON.stringify(body), { qos });

  test("Tally's PUBACK of a QoS 1 message goes to the broker only after the commit: the reading is readable at that moment", async () => {
    const pubacks = watchPubacks(t.tally, 'meter-1');
    try {
      await publish('meter-1/readings', { ts: ts(0), count: 3, payload: { temp: 21.5 } });
      await until('the PUBACK', () => pubacks.seen.length === 1);
    } finally {
      pubacks.stop();
    }
    expect(await pubacks.seen[0]).toEqual({
      device_id: 'meter-1',
      first_ts: ts(0),
      latest_ts: ts(0),
      reading_count: 1,
      cumulative_count: 3,
      latest_payload: { temp: 21.5 },
    });
  });

  test('an array of 100 readings: exact counts', async () => {
    await publish('meter-2/readings', Array.from({ length: 100 }, (_, i) => ({ ts: ts(Math.floor(i / 60), i % 60), count: i })));
    expect(await settled(t.tally, 'meter-2', 100)).toMatchObject({ reading_count: 100, cumulative_count: 4950, latest_ts: ts(1, 39) });
  });

  test('mosquitto_pub: device and gateway topics', async () => {
    await mosquittoPub(url, `${t.prefix}/cli meter 1/readings`, JSON.stringify({ ts: ts(0), count: 2 }));
    await mosquittoPub(url, `${t.prefix}/gateway/readings`, JSON.stringify({ 'gw-a': [{ ts: ts(0), count: 1 }, { ts: ts(1), count: 2 }], 'gw-b': { ts: ts(2), count: 4 } }));
    expect(await settled(t.tally, 'cli meter 1', 1)).toMatchObject({ reading_count: 1, cumulative_count: 2 });
    expect(await settled(t.tally, 'gw-a', 2)).toMatchObject({ reading_count: 2, cumulative_count: 3, latest_ts: ts(1) });
    expect(await settled(t.tally, 'gw-b', 1)).toMatchObject({ reading_count: 1, cumulative_count: 4 });
  });

  test('redelivered and repeated readings are absorbed: first write wins', async () => {
    const before = t.tally.mqtt!.stats().duplicates;
    await publish('dup-1/readings', { ts: ts(5), count: 7 });
    await publish('dup-1/readings', { ts: ts(5), count: 9 });
    await publish('dup-1/readings', { ts: '2025-06-18T12:05:00+02:00', count: 11 }); // the same instant
    await until('both duplicates', () => t.tally.mqtt!.stats().duplicates - before >= 2);
    expect(await device(t.tally, 'dup-1')).toMatchObject({ reading_count: 1, cumulative_count: 7 });
    expect(t.tally.mqtt!.stats().duplicates - before).toBe(2);
  });

  test('out of order: the latest is the greatest ts, not the last to arrive', async () => {
    await publish('ooo-1/readings', { ts: ts(10), count: 1, payload: { n: 'late' } });
    await publish('ooo-1/readings', { ts: ts(3), count: 2, payload: { n: 'early' } });
    expect(await settled(t.tally, 'ooo-1', 2)).toMatchObject({ latest_ts: ts(10), first_ts: ts(3), cumulative_count: 3, latest_payload: { n: 'late' } });
  });

  test('QoS 0 readings are stored too (best effort) and counted', async () => {
    const before = t.tally.mqtt!.stats().qos0;
    await publish('q0-1/readings', { ts: ts(0), count: 5 }, 0);
    expect(await until('the QoS 0 reading', () => device(t.tally, 'q0-1'))).toMatchObject({ cumulative_count: 5 });
    expect(t.tally.mqtt!.stats().qos0 - before).toBe(1);
  });

  test('bad messages are acknowledged, counted and reported on the error topic; valid readings beside them are stored', async () => {
    const before = t.tally.mqtt!.stats();
    await publish('bad-1/readings', '{not json');
    await publish('bad-2/readings', [{ ts: ts(0), count: 1 }, { ts: 'yesterday' }, 5, { ts: 1750240800 }]);
    await publish('/readings', { ts: ts(0) }); // no device id
    await publish('gateway/readings', { 'gw-c': [{ ts: ts(0) }, { ts: ts(1), count: -1 }] });
    await publish('gateway/readings', [{ ts: ts(0) }]);
    await publish('ok-after-bad/readings', { ts: ts(0), count: 1 });

    // Messages of one publisher arrive in order, and this one was sent last.
    expect(await settled(t.tally, 'ok-after-bad', 1)).toMatchObject({ reading_count: 1 });
    await until('every message', () => t.tally.mqtt!.stats().messages - before.messages >= 6);
    await sleep(50);
    expect(await device(t.tally, 'bad-2')).toMatchObject({ reading_count: 1, cumulative_count: 1 });
    expect(await device(t.tally, 'gw-c')).toMatchObject({ reading_count: 1 });
    const after = t.tally.mqtt!.stats();
    expect(after.badMessages - before.badMessages).toBe(3);
    expect(after.rejectedReadings - before.rejectedReadings).toBe(4);

    await until('five error reports', () => errors.length >= 5);
    const on = (topic: string) => errors.filter((e) => e.topic === `${t.prefix}/${topic}`).map((e) => e.body);
    expect(on('bad-1/errors')).toEqual([{ topic: `${t.prefix}/bad-1/readings`, reason: 'payload is not valid JSON' }]);
    const [partial] = on('bad-2/errors');
    expect(partial.reason).toBe('3 of 4 readings rejected; the others were stored');
    expect(partial.rejected.map((r: any) => [r.index, r.field])).toEqual([
      [1, '[1].ts'],
      [2, '[2]'],
      [3, '[3].ts'],
    ]);
    expect(partial.rejected[2].reason).toMatch(/TALLY_MQTT_EPOCH_UNIT/);
    expect(on('errors')).toEqual([{ topic: `${t.prefix}//readings`, reason: expect.stringMatching(/device id must be 1-256 characters/) }]);
    // Messages are written concurrently, so their reports may come in either order.
    const gateway = on('gateway/errors');
    expect(gateway).toHaveLength(2);
    // A message with rejected readings is reported after its commit, one refused whole at once:
    // the second can be reported first.
    const [partialGateway, wholeGateway] = [gateway.find((g) => g.rejected !== undefined), gateway.find((g) => g.rejected === undefined)];
    expect(partialGateway.rejected).toEqual([{ index: 1, device_id: 'gw-c', field: '"gw-c"[1].count', reason: expect.any(String) }]);
    expect(wholeGateway.reason).toMatch(/must be an object/);
  });

  test('with the store locked, no PUBACK is sent; a full queue holds messages and retries them; all is stored and acknowledged once it is back', async () => {
    const s = await mqttTally(url, { TALLY_MQTT_CONNECTIONS: '1', TALLY_MAX_READINGS: '10', TALLY_QUEUE_LIMIT: '10' });
    // Another connection holding SQLite's write lock: the store cannot commit until it lets go.
    const lock = new Database(sqliteFile(s.config.store));
    const pubacks = watchPubacks(s.tally, 'held');
    try {
      lock.exec('BEGIN IMMEDIATE');
      const five = Array.from({ length: 5 }, (_, i) => ({ ts: ts(0, i), count: 1 }));
      const ten = Array.from({ length: 10 }, (_, i) => ({ ts: ts(1, i), count: 1 }));
      await pub.publishAsync(`${s.prefix}/held/readings`, JSON.stringify(five), { qos: 1 });
      await pub.publishAsync(`${s.prefix}/held/readings`, JSON.stringify(ten), { qos: 1 });
      // The second message finds the queue full (the first is waiting for the lock) and is held.
      await until('a retried write', () => s.tally.mqtt!.stats().retries > 0);
      await sleep(500);
      expect(pubacks.seen).toHaveLength(0);
      expect(await device(s.tally, 'held')).toBeUndefined();
      lock.exec('ROLLBACK');
      await until('both PUBACKs', () => pubacks.seen.length >= 2);
      // Acknowledged in order, each after its own commit.
      expect((await pubacks.seen[0])?.reading_count).toBeGreaterThanOrEqual(5);
      expect(await pubacks.seen[1]).toMatchObject({ reading_count: 15, cumulative_count: 15 });
      expect(pubacks.seen).toHaveLength(2);
    } finally {
      pubacks.stop();
      if (lock.inTransaction) lock.exec('ROLLBACK');
      lock.close();
      await s.stop();
    }
  });

  test('a store that fails (StorageUnavailableError: locked past its busy timeout) holds the message unacknowledged; it is stored once the store is back', async () => {
    const s = await mqttTally(url, { TALLY_MQTT_CONNECTIONS: '1' });
    const lock = new Database(sqliteFile(s.config.store));
    const pubacks = watchPubacks(s.tally, 'unavailable');
    try {
      lock.exec('BEGIN IMMEDIATE');
      await pub.publishAsync(`${s.prefix}/unavailable/readings`, JSON.stringify({ ts: ts(0), count: 4 }), { qos: 1 });
      // The writer gives up after its 5 s busy timeout: the write fails and is retried.
      await until('a failed write', () => s.tally.mqtt!.stats().retries > 0, 15_000);
      expect(pubacks.seen).toHaveLength(0);
      lock.exec('ROLLBACK');
      await until('the PUBACK', () => pubacks.seen.length === 1, 15_000);
      expect(await pubacks.seen[0]).toMatchObject({ reading_count: 1, cumulative_count: 4 });
    } finally {
      pubacks.stop();
      if (lock.inTransaction) lock.exec('ROLLBACK');
      lock.close();
      await s.stop();
    }
  });

  test('what one connection holds is bounded by TALLY_MQTT_INFLIGHT (MQTT 5 receiveMaximum): the broker keeps the rest', async () => {
    const s = await mqttTally(url, { TALLY_MQTT_CONNECTIONS: '1', TALLY_MQTT_INFLIGHT: '4' });
    const lock = new Database(sqliteFile(s.config.store));
    try {
      lock.exec('BEGIN IMMEDIATE');
      for (let i = 0; i < 20; i++) await pub.publishAsync(`${s.prefix}/window/readings`, JSON.stringify({ ts: ts(0, i), count: 1 }), { qos: 1 });
      await until('four messages taken', () => s.tally.mqtt!.stats().messages >= 4);
      await sleep(500);
      expect(s.tally.mqtt!.stats().messages).toBe(4);
      lock.exec('ROLLBACK');
      expect(await settled(s.tally, 'window', 20)).toMatchObject({ reading_count: 20, cumulative_count: 20 });
      expect(s.tally.mqtt!.stats().messages).toBe(20);
    } finally {
      if (lock.inTransaction) lock.exec('ROLLBACK');
      lock.close();
      await s.stop();
    }
  });

  test("a leaving node's sessions are drained (mqtt-drain): what the broker gave them while it was away is stored, then they end", async () => {
    const prefix = unique('drain');
    const env = { TALLY_MQTT_URL: url, TALLY_MQTT_PREFIX: prefix, TALLY_MQTT_CLIENT_ID: prefix, TALLY_MQTT_CONNECTIONS: '2', TALLY_MQTT_SESSION_EXPIRY: '60s' };
    const node = await startTally(env);
    await node.tally.mqtt!.ready();
    await node.stop();
    // Offline, its sessions are still members of the shared subscription: the broker queues them a share.
    for (let i = 0; i < 20; i++) await pub.publishAsync(`${prefix}/d/readings`, JSON.stringify({ ts: ts(0, i), count: 1 }), { qos: 1 });
    const drainer = await startTally(env);
    try {
      await drainer.tally.mqtt!.ready();
      await drainer.tally.mqtt!.drain(0, 300);
      expect(await device(drainer.tally, 'd')).toMatchObject({ reading_count: 20, cumulative_count: 20 });
    } finally {
      await drainer.stop();
    }
    for (const id of [`${prefix}-0`, `${prefix}-1`]) {
      const probe = mqtt.connect(url, { protocolVersion: 5, clientId: id, clean: false, reconnectPeriod: 0 });
      const present = await new Promise<boolean>((resolve) => probe.once('connect', (connack) => resolve(connack.sessionPresent)));
      await probe.endAsync(false, { properties: { sessionExpiryInterval: 0 } });
      expect(present, `session ${id} after the drain`).toBe(false);
    }
  });

  test('a flood of bad messages becomes a trickle of error reports (token bucket); the subscriber carries on', async () => {
    const s = await mqttTally(url, { TALLY_MQTT_CONNECTIONS: '2' });
    try {
      const flood = 400;
      const started = Date.now();
      await Promise.all(Array.from({ length: flood }, () => pub.publishAsync(`${s.prefix}/flood/readings`, 'nope', { qos: 1 })));
      await until('every bad message', () => s.tally.mqtt!.stats().badMessages >= flood);
      const seconds = (Date.now() - started) / 1000;
      const stats = s.tally.mqtt!.stats();
      expect(stats.badMessages).toBe(flood);
      expect(stats.errorsReported + stats.errorsSuppressed).toBe(flood);
      // A burst of 100, then 20 a second.
      expect(stats.errorsReported).toBeLessThanOrEqual(100 + Math.ceil(seconds * 20) + 1);
      expect(stats.errorsSuppressed).toBeGreaterThan(0);
      await pub.publishAsync(`${s.prefix}/flood/readings`, JSON.stringify({ ts: ts(0) }), { qos: 1 });
      expect(await settled(s.tally, 'flood', 1)).toMatchObject({ reading_count: 1 });
    } finally {
      await s.stop();
    }
  });
});

describe.skipIf(SKIP)('TALLY_RATE_DEVICE over MQTT: the same ingest path as HTTP', () => {
  test('readings of a device over its rate are refused one by one and reported on its error topic; the message is acknowledged', async () => {
    const url = await requireBroker();
    const t = await mqttTally(url, { TALLY_RATE_DEVICE: '1/m,burst=3' });
    const pub = await testClient(url);
    try {
      const errors: any[] = [];
      await pub.subscribeAsync(`${t.prefix}/+/errors`, { qos: 0 });
      pub.on('message', (_topic, payload) => errors.push(JSON.parse(payload.toString())));
      await pub.publishAsync(`${t.prefix}/chatty/readings`, JSON.stringify([0, 1, 2, 3, 4].map((s) => ({ ts: ts(0, s), count: 1 }))), { qos: 1 });
      expect(await settled(t.tally, 'chatty', 3)).toMatchObject({ reading_count: 3, cumulative_count: 3 });
      const [report] = await until('the error report', () => (errors.length > 0 ? errors : undefined));
      expect(report.reason).toBe('2 of 5 readings rejected; the others were stored');
      expect(report.rejected.map((r: any) => r.index)).toEqual([3, 4]);
      expect(report.rejected[0].reason).toMatch(/over its rate/);
      const metrics = (await t.tally.server.inject({ url: '/metrics' })).body;
      expect(metrics).toMatch(/tally_readings_rejected_total\{transport="mqtt",surface="mqtt_device",reason="rate_limited"\} 2/);
    } finally {
      await pub.endAsync();
      await t.stop();
    }
  });
});

describe.skipIf(SKIP)('MQTT sessions survive restarts (a Mosquitto of the test own, persistent)', () => {
  test('Tally stopped in the middle of a stream, more published while it is down, started again: every reading stored exactly once', async () => {
    await requireBroker();
    const broker = await ownBroker();
    const { dir, cleanup } = tempDir();
    const env = {
      TALLY_DATA_DIR: dir,
      TALLY_PORT: '0',
      TALLY_LOG_LEVEL: 'silent',
      TALLY_MQTT_URL: broker.url,
      TALLY_MQTT_PREFIX: 'r',
      TALLY_MQTT_CLIENT_ID: 'restart',
      TALLY_MQTT_CONNECTIONS: '2',
    };
    let tally: Tally | undefined;
    const pub = await testClient(broker.url);
    try {
      tally = await createTally(loadConfig(env));
      await tally.mqtt!.ready();
      const N = 2000;
      const message = (i: number) => JSON.stringify({ ts: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(), count: 1 });
      const send = (from: number, to: number) =>
        Promise.all(Array.from({ length: to - from }, (_, k) => pub.publishAsync(`r/dev-${(from + k) % 10}/readings`, message(from + k), { qos: 1 })));

      // Half while Tally runs, stopped once some of it is in: what it took is committed and acknowledged.
      const running = send(0, N / 2);
      const first = tally;
      await until('some readings in', () => first.mqtt!.stats().stored > 100);
      await tally.close();
      tally = undefined;
      await running;
      await send(N / 2, N);

      tally = await createTally(loadConfig(env));
      await tally.mqtt!.ready();
      const again = tally;
      const got = await until('every reading', async () => {
        const sum = await totals(again);
        return sum.readings >= N ? sum : undefined;
      }, 20_000);
      await sleep(200);
      expect(await totals(again)).toEqual({ devices: 10, readings: N, count: N });
      expect(got.readings).toBe(N);
    } finally {
      await pub.endAsync();
      await tally?.close();
      await broker.stop();
      cleanup();
    }
  });
});

describe.skipIf(SKIP)("what the broker keeps for a connection that is behind (a Mosquitto of the test own)", () => {
  test('its in-flight window (TALLY_MQTT_INFLIGHT) plus max_queued_messages; the rest is dropped, though the publisher had its PUBACK', async () => {
    await requireBroker();
    const broker = await ownBroker({ maxQueued: 50 });
    const s = await mqttTally(broker.url, { TALLY_MQTT_CONNECTIONS: '1', TALLY_MQTT_INFLIGHT: '20' });
    const pub = await testClient(broker.url);
    const lock = new Database(sqliteFile(s.config.store));
    try {
      lock.exec('BEGIN IMMEDIATE');
      for (let i = 0; i < 150; i++) await pub.publishAsync(`${s.prefix}/behind/readings`, JSON.stringify({ ts: ts(Math.floor(i / 60), i % 60), count: 1 }), { qos: 1 });
      lock.exec('ROLLBACK');
      expect(await settled(s.tally, 'behind', 70)).toMatchObject({ reading_count: 70 });
      await sleep(1_000);
      expect(await device(s.tally, 'behind')).toMatchObject({ reading_count: 70 });
    } finally {
      if (lock.inTransaction) lock.exec('ROLLBACK');
      lock.close();
      await pub.endAsync();
      await s.stop();
      await broker.stop();
    }
  });
});

describe.skipIf(SKIP)('mqtts:// with TALLY_MQTT_CA, _CERT and _KEY (a Mosquitto of the test own, TLS, client certificates required)', () => {
  test('Tally connects over TLS with its client certificate and stores what a device publishes', async () => {
    await requireBroker();
    const broker = await ownBroker({ tls: true });
    const files = { ca: join(broker.dir, 'ca.pem'), cert: join(broker.dir, 'client.pem'), key: join(broker.dir, 'client-key.pem') };
    const t = await mqttTally(broker.url, { TALLY_MQTT_CA: files.ca, TALLY_MQTT_CERT: files.cert, TALLY_MQTT_KEY: files.key, TALLY_MQTT_CONNECTIONS: '1' });
    const device_ = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      ca: readFileSync(files.ca),
      cert: readFileSync(files.cert),
      key: readFileSync(files.key),
    });
    try {
      await device_.publishAsync(`${t.prefix}/tls-1/readings`, JSON.stringify({ ts: ts(0), count: 2 }), { qos: 1 });
      expect(await settled(t.tally, 'tls-1', 1)).toMatchObject({ reading_count: 1, cumulative_count: 2 });
      // The broker does require a client certificate: without one, no connection.
      await expect(mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3_000, ca: readFileSync(files.ca) })).rejects.toThrow();
    } finally {
      await device_.endAsync();
      await t.stop();
      await broker.stop();
    }
  });
});
