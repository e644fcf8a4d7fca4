import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { MqttClient } from 'mqtt';
import { startTally } from '../helpers.js';
import { requireBroker, SKIP, testClient, unique } from '../mqtt/broker.js';
import { scrape, valueOf } from './exposition.js';

/** MQTT's counters in GET /metrics, through a real broker (TALLY_TEST_MQTT_URL). */

type Harness = Awaited<ReturnType<typeof startTally>>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(SKIP)('MQTT in GET /metrics', () => {
  let t: Harness;
  let prefix: string;
  let pub: MqttClient;

  beforeAll(async () => {
    const url = await requireBroker();
    prefix = unique('metrics');
    t = await startTally({ TALLY_MQTT_URL: url, TALLY_MQTT_PREFIX: prefix, TALLY_MQTT_CLIENT_ID: prefix, TALLY_MQTT_SESSION_EXPIRY: '60s', TALLY_MQTT_CONNECTIONS: '2' });
    await t.tally.mqtt!.ready();
    pub = await testClient(url);
  });
  afterAll(async () => {
    await pub?.endAsync();
    await t?.stop();
  });

  test('messages received and acknowledged, readings by device and gateway topic, bad messages, connections', async () => {
    const ts = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, '0')}Z`;
    await pub.publishAsync(`${prefix}/m-1/readings`, JSON.stringify([{ ts: ts(1), count: 1 }, { ts: ts(1), count: 1 }, { ts: 'bad' }]), { qos: 1 });
    await pub.publishAsync(`${prefix}/gateway/readings`, JSON.stringify({ 'g-1': [{ ts: ts(2) }], 'g-2': { ts: ts(3) } }), { qos: 1 });
    await pub.publishAsync(`${prefix}/m-2/readings`, '{not json', { qos: 1 });
    // The broker's PUBACK to the publisher comes before Tally's; wait for Tally's three.
    for (let i = 0; i < 500 && t.tally.mqtt!.stats().acked < 3; i++) await sleep(10);

    const { samples } = await scrape(t.tally);
    const mqtt = (surface: string) => ({ transport: 'mqtt', surface });
    expect(valueOf(samples, 'tally_mqtt_messages_received_total')).toBe(3);
    expect(valueOf(samples, 'tally_mqtt_messages_acked_total')).toBe(3);
    expect(valueOf(samples, 'tally_mqtt_bad_messages_total')).toBe(1);
    expect(valueOf(samples, 'tally_mqtt_error_reports_total')).toBe(2); // the bad reading's message and the bad message
    expect(valueOf(samples, 'tally_readings_accepted_total', mqtt('mqtt_device'))).toBe(1);
    expect(valueOf(samples, 'tally_readings_duplicate_total', mqtt('mqtt_device'))).toBe(1);
    expect(valueOf(samples, 'tally_readings_rejected_total', { ...mqtt('mqtt_device'), reason: 'invalid' })).toBe(1);
    expect(valueOf(samples, 'tally_readings_accepted_total', mqtt('mqtt_gateway'))).toBe(2);
    expect(valueOf(samples, 'tally_mqtt_connections', { state: 'connected' })).toBe(2);
    expect(valueOf(samples, 'tally_mqtt_connections', { state: 'down' })).toBe(0);
    const ready = await t.tally.server.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
  });

  test('/readyz is 503 while MQTT is not connected', async () => {
    await t.tally.mqtt!.stop();
    const res = await t.tally.server.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().reasons).toEqual(['mqtt: 2 of 2 connections to the broker are down']);
  });
});
