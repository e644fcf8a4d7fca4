import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort, tempDir } from '../helpers.js';

/**
 * The broker the MQTT tests run against: TALLY_TEST_MQTT_URL (e.g. mqtt://127.0.0.1:1883). Unset,
 * the tests are skipped, except under CI, where they must run: there, unset or unreachable fails.
 */
export const BROKER_URL = process.env.TALLY_TEST_MQTT_URL || undefined;
export const MUST_RUN = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';
export const SKIP = BROKER_URL === undefined && !MUST_RUN;

/** A topic prefix and client-id base no other run or test shares. */
export function unique(name: string): string {
  return `t${process.pid}-${randomBytes(3).toString('hex')}-${name}`;
}

/** Resolves when something accepts TCP connections at host:port, rejects after `ms`. */
export function reachable(host: string, port: number, ms = 2_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`nothing listens at ${host}:${port}`));
    }, ms);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Checks the configured broker is there; the message says what to set or start. */
export async function requireBroker(): Promise<string> {
  if (BROKER_URL === undefined) throw new Error('CI is set, so the MQTT tests must run: set TALLY_TEST_MQTT_URL=mqtt://127.0.0.1:1883');
  const { hostname, port } = new URL(BROKER_URL);
  try {
    await reachable(hostname, Number(port || 1883));
  } catch (err) {
    throw new Error(`TALLY_TEST_MQTT_URL=${BROKER_URL} is unreachable (${(err as Error).message}): start mosquitto`);
  }
  return BROKER_URL;
}

/** A publisher/subscriber of the test's own, MQTT 5, clean session. */
export function testClient(url: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, clientId: unique('client'), reconnectPeriod: 0 });
}

/**
 * A Mosquitto of the test's own on a free port, persistent, with room for many queued messages:
 * what the restart test needs, which a shared broker's settings may not give.
 */
export async function ownBroker(): Promise<{ url: string; stop(): Promise<void> }> {
  const { dir, cleanup } = tempDir('tally-mosquitto-');
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${dir}/`,
      'max_queued_messages 100000',
      'max_inflight_messages 0',
      'log_dest none',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; ; i++) {
    try {
      await reachable('127.0.0.1', port, 200);
      break;
    } catch (err) {
      if (i > 50 || child.exitCode !== null) throw new Error(`mosquitto -c ${conf} did not start: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      cleanup();
    },
  };
}
