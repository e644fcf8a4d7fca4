import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
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

/** Polls `probe` until it gives something other than undefined or false; throws after `ms`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
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
export async function ownBroker(options: { tls?: boolean; auth?: BrokerAuth; maxQueued?: number } = {}): Promise<{ url: string; dir: string; reload(): void; stop(): Promise<void> }> {
  const { dir, cleanup } = tempDir('tally-mosquitto-');
  // Mosquitto started as root drops to its own user, which must be able to read and save here.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const tls = options.tls ? certificates(dir) : [];
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      ...tls,
      ...(options.auth ? authentication(dir, options.auth) : ['allow_anonymous true']),
      'persistence true',
      `persistence_location ${dir}/`,
      `max_queued_messages ${options.maxQueued ?? 100000}`,
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
    url: `${options.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    dir,
    // Mosquitto rereads its password and ACL files on SIGHUP.
    reload: () => void child.kill('SIGHUP'),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      cleanup();
    },
  };
}

/** Users (name: password) and ACL lines of a broker that admits no one else. */
export interface BrokerAuth {
  readonly users: Readonly<Record<string, string>>;
  readonly acl: readonly string[];
}

/** The broker's password file, made with mosquitto_passwd as an operator would, and ACL file. */
function authentication(dir: string, auth: BrokerAuth): string[] {
  const passwd = join(dir, 'passwd');
  Object.entries(auth.users).forEach(([user, password], i) =>
    execFileSync('mosquitto_passwd', [...(i === 0 ? ['-c'] : []), '-b', passwd, user, password], { stdio: 'ignore' }),
  );
  const acl = join(dir, 'acl');
  writeFileSync(acl, `${auth.acl.join('\n')}\n`);
  // Readable by the broker's own user.
  chmodSync(passwd, 0o644);
  chmodSync(acl, 0o644);
  return ['allow_anonymous false', `password_file ${passwd}`, `acl_file ${acl}`];
}

/** Sets a user's password in the password file of a broker made with `auth` (then `reload()` it). */
export function setPassword(dir: string, user: string, password: string): void {
  execFileSync('mosquitto_passwd', ['-b', join(dir, 'passwd'), user, password], { stdio: 'ignore' });
}

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in `dir`
 * (ca.pem, client.pem, client-key.pem): the listener lines of a broker that requires the client's.
 */
function certificates(dir: string): string[] {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const key = (name: string) => ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-keyout', 'ca-key.pem', '-subj', '/CN=tally test CA', '-out', 'ca.pem');
  key('server');
  key('client');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  const sign = (name: string, ...extra: string[]) =>
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '1', '-out', `${name}.pem`, ...extra);
  sign('server', '-extfile', 'san.ext');
  sign('client');
  // Readable by the broker's own user.
  for (const file of ['ca.pem', 'server.pem', 'server-key.pem']) chmodSync(join(dir, file), 0o644);
  return [`cafile ${dir}/ca.pem`, `certfile ${dir}/server.pem`, `keyfile ${dir}/server-key.pem`, 'require_certificate true'];
}
