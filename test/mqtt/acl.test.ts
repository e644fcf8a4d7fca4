import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/app/config.js';
import { MqttIngest } from '../../src/mqtt/ingest.js';
import type { MqttLog } from '../../src/mqtt/subscriber.js';
import { startTally } from '../helpers.js';
import { ownBroker, requireBroker, setPassword, SKIP, unique, until } from './broker.js';

/**
 * The broker setup the README gives for production, on a Mosquitto of the test's own: no anonymous
 * clients, a password file made with mosquitto_passwd, and an ACL where a device may publish only
 * to its own topic and Tally's user reads every device's and reports on the error topics.
 */

// The broker is the test's own: the default prefix, and the ACL file the docs give, as it is.
const PREFIX = 'tally';
const USERS = { tally: 'tally-secret', 'meter-1': 'meter-1-secret', 'meter-2': 'meter-2-secret' };
const ACL = readFileSync(new URL('../../docs/mosquitto.acl', import.meta.url), 'utf8').split('\n');

const REFUSED = /Connection refused: (Not authorized|Bad User Name or Password)/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ts = (second: number) => `2025-06-18T10:00:${String(second).padStart(2, '0')}Z`;

describe.skipIf(SKIP)('a broker with a password file and an ACL (a Mosquitto of the test own)', () => {
  let broker: Awaited<ReturnType<typeof ownBroker>>;
  let t: Awaited<ReturnType<typeof startTally>>;
  let meter: MqttClient;

  const device = async (id: string) => {
    const res = await t.tally.server.inject({ url: `/v1/devices/${encodeURIComponent(id)}` });
    return res.statusCode === 200 ? res.json() : undefined;
  };
  const login = (user: string, password: string) =>
    mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: unique(user), username: user, password, reconnectPeriod: 0, connectTimeout: 3_000 });

  beforeAll(async () => {
    await requireBroker();
    broker = await ownBroker({ auth: { users: USERS, acl: ACL } });
    t = await startTally({
      TALLY_MQTT_URL: broker.url,
      TALLY_MQTT_PREFIX: PREFIX,
      TALLY_MQTT_CLIENT_ID: unique('tally'),
      TALLY_MQTT_CONNECTIONS: '2',
      TALLY_MQTT_USERNAME: 'tally',
      TALLY_MQTT_PASSWORD: USERS.tally,
    });
    // Rejects if the ACL refused the shared subscription.
    await t.tally.mqtt!.ready();
    meter = await login('meter-1', USERS['meter-1']);
  });
  afterAll(async () => {
    await meter?.endAsync();
    await t?.stop();
    await broker?.stop();
  });

  test('a device publishing QoS 1 to its own topic is stored', async () => {
    await meter.publishAsync(`${PREFIX}/meter-1/readings`, JSON.stringify({ ts: ts(0), count: 3 }), { qos: 1 });
    expect(await until('meter-1 stored', () => device('meter-1'))).toMatchObject({ reading_count: 1, cumulative_count: 3 });
  });

  test("a device publishing to another device's topic is dropped by the broker: nothing is stored", async () => {
    const before = t.tally.mqtt!.stats().messages;
    // Mosquitto answers an MQTT 5 publisher's denied QoS 1 message with PUBACK "Not authorized".
    await expect(meter.publishAsync(`${PREFIX}/meter-2/readings`, JSON.stringify({ ts: ts(1), count: 5 }), { qos: 1 })).rejects.toThrow(/not authori[sz]ed/i);
    // A device's messages reach Tally in order: once the next one is stored, the denied one would have been too.
    await meter.publishAsync(`${PREFIX}/meter-1/readings`, JSON.stringify({ ts: ts(2), count: 1 }), { qos: 1 });
    await until('the next own-topic reading', async () => ((await device('meter-1'))?.reading_count >= 2 ? true : undefined));
    await sleep(200);
    expect(await device('meter-2')).toBeUndefined();
    expect(await device('meter-1')).toMatchObject({ reading_count: 2, cumulative_count: 4 });
    expect(t.tally.mqtt!.stats().messages - before).toBe(1);
  });

  test("Tally's error report reaches the device on its own errors topic (Tally may write there, the device read)", async () => {
    const reports: string[] = [];
    meter.on('message', (topic, payload) => reports.push(`${topic} ${payload.toString()}`));
    await meter.subscribeAsync(`${PREFIX}/meter-1/errors`, { qos: 0 });
    await meter.publishAsync(`${PREFIX}/meter-1/readings`, '{not json', { qos: 1 });
    await until('the error report', () => reports.length > 0);
    expect(reports[0]).toBe(`${PREFIX}/meter-1/errors ${JSON.stringify({ topic: `${PREFIX}/meter-1/readings`, reason: 'payload is not valid JSON' })}`);
  });

  test('a client with a wrong password is refused at connect', async () => {
    // Mosquitto 2.0 answers a wrong password with CONNACK "Not authorized" (0x87), not 0x86.
    await expect(login('meter-2', 'wrong')).rejects.toThrow(REFUSED);
    await expect(login('nobody', 'anything')).rejects.toThrow(REFUSED);
  });

  test("Tally with a wrong password is not subscribed: it logs the refusal as an error and retries; once the broker's password file accepts it, it subscribes", async () => {
    const errors: Array<{ details: any; message: string }> = [];
    const log: MqttLog = { info: () => {}, warn: () => {}, error: (details, message) => errors.push({ details, message }) };
    const config = loadConfig({
      TALLY_MQTT_URL: broker.url,
      TALLY_MQTT_PREFIX: PREFIX,
      // A group of its own: it would otherwise take a share of the other Tally's messages.
      TALLY_MQTT_GROUP: 'late',
      TALLY_MQTT_CLIENT_ID: unique('late'),
      TALLY_MQTT_CONNECTIONS: '1',
      TALLY_MQTT_SESSION_EXPIRY: '60s',
      TALLY_MQTT_USERNAME: 'tally',
      TALLY_MQTT_PASSWORD: 'rotated',
    });
    const late = new MqttIngest(config.mqtt!, { ingest: t.tally.ingest, maxReadings: t.config.maxReadings, maxBytes: t.config.bodyLimit, log });
    try {
      let subscribed = false;
      void late.ready().then(() => (subscribed = true));
      await until('the refusal logged', () => errors.length > 0);
      expect(errors[0]!.message).toMatch(/the broker refused the connection .*TALLY_MQTT_PASSWORD.*retrying/);
      expect(errors[0]!.details.err.message).toMatch(REFUSED);
      // Still refused a few reconnects later: one log line, no subscription.
      await sleep(2_500);
      expect(subscribed).toBe(false);
      expect(late.clients[0]!.connected).toBe(false);
      expect(errors).toHaveLength(1);

      // The operator rotates the password on the broker: Tally gets in without a restart.
      setPassword(broker.dir, 'tally', 'rotated');
      broker.reload();
      await until('subscribed after the reload', () => subscribed, 5_000);
    } finally {
      await late.stop();
    }
  });
});
