import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/app/config.js';
import { clientOptions } from '../../src/mqtt/ingest.js';
import { decodeMessage, type DecodedMessage, type MessageProblem } from '../../src/mqtt/messages.js';
import { TokenBucket } from '../../src/domain/token-bucket.js';
import { Topics } from '../../src/mqtt/topics.js';
import { tempDir } from '../helpers.js';

/** The MQTT side's pure parts: settings, topics, message forms, the error-report rate. */

describe('MQTT settings', () => {
  const load = (env: Record<string, string>) => loadConfig({ TALLY_LOG_LEVEL: 'silent', ...env });

  test('absent TALLY_MQTT_URL: no MQTT', () => {
    expect(load({}).mqtt).toBeUndefined();
  });

  test('defaults, and client options for a session that survives restarts', () => {
    const mqtt = load({ TALLY_MQTT_URL: 'mqtt://broker:1883', TALLY_MQTT_CLIENT_ID: 'node-a' }).mqtt!;
    expect(mqtt).toMatchObject({ url: 'mqtt://broker:1883', prefix: 'tally', connections: 4, group: 'tally', clientId: 'node-a', inflight: 1000, sessionExpirySeconds: 604800 });
    expect(clientOptions(mqtt, 2)).toMatchObject({
      clientId: 'node-a-2',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 604800, receiveMaximum: 1000 },
      reconnectOnConnackError: true,
    });
  });

  test('flags win over variables', () => {
    const mqtt = loadConfig({ TALLY_MQTT_URL: 'mqtt://a:1883', TALLY_MQTT_PREFIX: 'env' }, ['--mqtt-prefix', 'site/7']).mqtt!;
    expect(mqtt.prefix).toBe('site/7');
  });

  test.each([
    [{ TALLY_MQTT_URL: 'http://broker' }, /TALLY_MQTT_URL must use mqtt:\/\/ or mqtts:\/\//],
    [{ TALLY_MQTT_URL: 'broker:1883' }, /TALLY_MQTT_URL must/],
    [{ TALLY_MQTT_URL: 'mqtt://b', TALLY_MQTT_PREFIX: 'a/+' }, /TALLY_MQTT_PREFIX must be/],
    [{ TALLY_MQTT_URL: 'mqtt://b', TALLY_MQTT_GROUP: 'a/b' }, /TALLY_MQTT_GROUP must be/],
    [{ TALLY_MQTT_URL: 'mqtt://b', TALLY_MQTT_CONNECTIONS: '0' }, /TALLY_MQTT_CONNECTIONS must be a whole number between 1 and 64/],
    [{ TALLY_MQTT_URL: 'mqtt://b', TALLY_MQTT_INFLIGHT: 'many' }, /TALLY_MQTT_INFLIGHT must be/],
    [{ TALLY_MQTT_URL: 'mqtt://b', TALLY_MQTT_CLIENT_ID: 'a b' }, /TALLY_MQTT_CLIENT_ID must be/],
    [{ TALLY_MQTT_URL: 'mqtt://b', TALLY_MQTT_SESSION_EXPIRY: '0s' }, /TALLY_MQTT_SESSION_EXPIRY must be/],
    [{ TALLY_MQTT_URL: 'mqtt://b', TALLY_MQTT_EPOCH_UNIT: 'ns' }, /TALLY_MQTT_EPOCH_UNIT must be s, ms, us or empty/],
    [{ TALLY_MQTT_URL: 'mqtt://b', TALLY_MQTT_CA: '/etc/hosts' }, /TALLY_MQTT_CA needs an mqtts:\/\/ TALLY_MQTT_URL/],
    [{ TALLY_MQTT_URL: 'mqtts://b', TALLY_MQTT_CA: '/nonexistent/ca.pem' }, /TALLY_MQTT_CA: cannot read/],
    [{ TALLY_MQTT_URL: 'mqtt://b', TALLY_MQTT_PASSWORD: 'secret' }, /TALLY_MQTT_PASSWORD needs TALLY_MQTT_USERNAME/],
  ])('%o is refused at start, naming the variable', (env, message) => {
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(message);
  });

  test('mqtts:// with CA, certificate and key files read at start; user name and password', () => {
    const { dir, cleanup } = tempDir();
    try {
      for (const name of ['ca', 'cert', 'key']) writeFileSync(join(dir, `${name}.pem`), `-- ${name} --`);
      const mqtt = load({
        TALLY_MQTT_URL: 'mqtts://broker:8883',
        TALLY_MQTT_CA: join(dir, 'ca.pem'),
        TALLY_MQTT_CERT: join(dir, 'cert.pem'),
        TALLY_MQTT_KEY: join(dir, 'key.pem'),
        TALLY_MQTT_USERNAME: 'tally',
        TALLY_MQTT_PASSWORD: 'pw',
      }).mqtt!;
      const options = clientOptions(mqtt, 0);
      expect(String(options.ca)).toBe('-- ca --');
      expect(String(options.key)).toBe('-- key --');
      expect(options).toMatchObject({ username: 'tally', password: 'pw', rejectUnauthorized: true });
      expect(() => load({ TALLY_MQTT_URL: 'mqtts://b', TALLY_MQTT_CERT: join(dir, 'cert.pem') })).toThrow(/TALLY_MQTT_CERT and TALLY_MQTT_KEY go together/);
    } finally {
      cleanup();
    }
  });
});

describe('topics', () => {
  const topics = new Topics('tally');

  test('device, gateway and everything else', () => {
    expect(topics.sharedFilter('g')).toBe('$share/g/tally/+/readings');
    expect(topics.route('tally/meter 7 é/readings')).toEqual({ kind: 'device', deviceId: 'meter 7 é' });
    expect(topics.route('tally/gateway/readings')).toEqual({ kind: 'gateway' });
    expect(topics.route('tally//readings')).toMatchObject({ kind: 'unknown', reason: expect.stringMatching(/1-256 characters/) });
    expect(topics.route('tally/a/b/readings')).toMatchObject({ kind: 'unknown' });
    expect(topics.route('other/a/readings')).toMatchObject({ kind: 'unknown' });
    expect(topics.route(`tally/${'x'.repeat(257)}/readings`)).toMatchObject({ kind: 'unknown' });
  });

  test('error topics', () => {
    expect(topics.errorTopic({ kind: 'device', deviceId: 'm' })).toBe('tally/m/errors');
    expect(topics.errorTopic({ kind: 'gateway' })).toBe('tally/gateway/errors');
    expect(topics.errorTopic({ kind: 'unknown', reason: '' })).toBe('tally/errors');
  });

  test('a multi-level prefix', () => {
    const site = new Topics('site/7');
    expect(site.route('site/7/m/readings')).toEqual({ kind: 'device', deviceId: 'm' });
  });
});

describe('message forms', () => {
  const options = { maxReadings: 3, maxBytes: 1024 };
  const decode = (kind: 'device' | 'gateway', body: string) =>
    decodeMessage(kind === 'device' ? { kind, deviceId: 'd' } : { kind }, Buffer.from(body), options);
  const problem = (m: DecodedMessage | MessageProblem) => ('reason' in m ? m.reason : undefined);

  test('a reading, an array of them, a gateway map', () => {
    expect(decode('device', '{"ts":"x"}')).toMatchObject({ items: [{ ts: 'x' }] });
    expect(decode('device', '[{"ts":"x"},{"ts":"y"}]')).toMatchObject({ items: [{ ts: 'x' }, { ts: 'y' }] });
    const gateway = decode('gateway', '{"a":[{"ts":"x","device_id":"not me"},7],"b":{"ts":"y"}}') as DecodedMessage;
    expect(gateway.items).toEqual([{ ts: 'x', device_id: 'a' }, 7, { ts: 'y', device_id: 'b' }]);
    expect([0, 1, 2].map((k) => gateway.locate(k))).toEqual([
      { index: 0, device_id: 'a' },
      { index: 1, device_id: 'a' },
      { index: 0, device_id: 'b' },
    ]);
  });

  test.each([
    ['device', 'nope', /not valid JSON/],
    ['device', '7', /must be a reading/],
    ['device', '[]', /no readings/],
    ['device', '[{},{},{},{}]', /4 readings; at most 3/],
    ['gateway', '[]', /must be an object/],
    ['gateway', '{"a":[{},{}],"b":[{},{}]}', /at most 3/],
    ['gateway', '{}', /no readings/],
    ['device', `{"payload":"${'x'.repeat(2000)}"}`, /over the limit of 1024/],
  ] as const)('%s %s is refused whole', (kind, body, reason) => {
    expect(problem(decode(kind, body))).toMatch(reason);
  });
});

describe('token bucket', () => {
  test('a burst, then the rate', () => {
    let now = 0;
    const bucket = new TokenBucket(2, 3, () => now);
    expect([1, 2, 3, 4].map(() => bucket.take())).toEqual([true, true, true, false]);
    now += 500;
    expect([bucket.take(), bucket.take()]).toEqual([true, false]);
    now += 10_000;
    expect([1, 2, 3, 4].map(() => bucket.take())).toEqual([true, true, true, false]);
  });
});
