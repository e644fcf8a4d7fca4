import { hostname } from 'node:os';
import { parseDuration } from '../domain/duration.js';
import { ConfigError, ValidationError } from '../domain/errors.js';
import { pemFile, wholeNumber, type SettingReader } from '../domain/setting-values.js';
import type { EpochUnit } from '../domain/timestamp.js';

/** The MQTT subscriber's settings, validated at start. Absent from Config when TALLY_MQTT_URL is unset. */
export interface MqttConfig {
  /** mqtt://host:1883 or mqtts://host:8883. */
  readonly url: string;
  /** PEM contents read at start from TALLY_MQTT_CA / _CERT / _KEY (mqtts only). */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  readonly username?: string;
  readonly password?: string;
  /** First topic level(s): devices publish to `<prefix>/<device_id>/readings`. */
  readonly prefix: string;
  /** Subscriber connections, all members of one shared subscription. */
  readonly connections: number;
  /** The shared-subscription group: `$share/<group>/<prefix>/+/readings`. */
  readonly group: string;
  /** Client ids are `<clientId>-<index>`: fixed per node so sessions survive restarts. */
  readonly clientId: string;
  /** QoS 1 messages held per connection (MQTT 5 receiveMaximum): what bounds memory. */
  readonly inflight: number;
  /** How long the broker keeps a session (and queues for it) while Tally is away. */
  readonly sessionExpirySeconds: number;
  /** Numeric `ts` values: their unit; absent, numbers are refused (RFC 3339 text only). */
  readonly epochUnit?: EpochUnit;
}

/** The settings, in the app's SETTINGS form (variable, flag, default, help). */
export const MQTT_SETTINGS = {
  mqttUrl: { env: 'TALLY_MQTT_URL', flag: 'mqtt-url', fallback: '', help: 'MQTT broker, mqtt://host:1883 or mqtts://host:8883; empty: no MQTT' },
  mqttCa: { env: 'TALLY_MQTT_CA', flag: 'mqtt-ca', fallback: '', help: 'mqtts: PEM file of the CA to trust' },
  mqttCert: { env: 'TALLY_MQTT_CERT', flag: 'mqtt-cert', fallback: '', help: 'mqtts: PEM file of the client certificate' },
  mqttKey: { env: 'TALLY_MQTT_KEY', flag: 'mqtt-key', fallback: '', help: 'mqtts: PEM file of the client key' },
  mqttUsername: { env: 'TALLY_MQTT_USERNAME', flag: 'mqtt-username', fallback: '', help: 'broker user name' },
  mqttPassword: { env: 'TALLY_MQTT_PASSWORD', flag: 'mqtt-password', fallback: '', help: 'broker password' },
  mqttPrefix: { env: 'TALLY_MQTT_PREFIX', flag: 'mqtt-prefix', fallback: 'tally', help: 'topic prefix: <prefix>/<device_id>/readings' },
  mqttConnections: { env: 'TALLY_MQTT_CONNECTIONS', flag: 'mqtt-connections', fallback: '4', help: 'subscriber connections (one shared subscription)' },
  mqttGroup: { env: 'TALLY_MQTT_GROUP', flag: 'mqtt-group', fallback: 'tally', help: 'shared-subscription group of all nodes' },
  mqttClientId: { env: 'TALLY_MQTT_CLIENT_ID', flag: 'mqtt-client-id', fallback: 'tally-<hostname>', help: 'client id base, fixed per node (-<n> added)' },
  mqttInflight: { env: 'TALLY_MQTT_INFLIGHT', flag: 'mqtt-inflight', fallback: '1000', help: 'QoS 1 messages held per connection (receiveMaximum)' },
  mqttSessionExpiry: { env: 'TALLY_MQTT_SESSION_EXPIRY', flag: 'mqtt-session-expiry', fallback: '7d', help: 'how long the broker keeps a session while Tally is away' },
  mqttEpochUnit: { env: 'TALLY_MQTT_EPOCH_UNIT', flag: 'mqtt-epoch-unit', fallback: '', help: 's, ms or us: accept numeric ts in that unit; empty refuses numbers' },
} as const;

export type MqttSettingName = keyof typeof MQTT_SETTINGS;
export type ReadSetting = SettingReader<MqttSettingName>;

/** A topic level (or prefix) must not hold wildcards; `allowSlash` for the multi-level prefix. */
function topicPart(name: string, value: string, allowSlash: boolean): string {
  if (value === '' || /[+#\u0000]/.test(value) || (!allowSlash && value.includes('/')) || value.startsWith('/') || value.endsWith('/') || value.startsWith('$')) {
    throw new ConfigError(`${name} must be a non-empty topic ${allowSlash ? 'prefix' : 'level'} without +, #${allowSlash ? '' : ', /'}, a leading $ or a leading/trailing /, got ${JSON.stringify(value)}`);
  }
  return value;
}


/** Reads and checks the MQTT settings; undefined when TALLY_MQTT_URL is unset (no MQTT). */
export function mqttConfig(read: ReadSetting): MqttConfig | undefined {
  const [urlName, url] = read('mqttUrl');
  if (url === '') return undefined;
  let scheme: string;
  try {
    const parsed = new URL(url);
    scheme = parsed.protocol;
    if (parsed.hostname === '') throw new Error('no host');
  } catch {
    throw new ConfigError(`${urlName} must be a URL such as mqtt://broker:1883 or mqtts://broker:8883, got ${JSON.stringify(url)}`);
  }
  if (scheme !== 'mqtt:' && scheme !== 'mqtts:') throw new ConfigError(`${urlName} must use mqtt:// or mqtts://, got ${JSON.stringify(scheme)}`);

  let config: MqttConfig = {
    url,
    prefix: topicPart(...read('mqttPrefix'), true),
    connections: wholeNumber(...read('mqttConnections'), 1, 64),
    group: topicPart(...read('mqttGroup'), false),
    clientId: clientIdBase(...read('mqttClientId')),
    inflight: wholeNumber(...read('mqttInflight'), 1, 65535),
    sessionExpirySeconds: sessionExpiry(...read('mqttSessionExpiry')),
  };

  const files = (['mqttCa', 'mqttCert', 'mqttKey'] as const).map((key) => read(key));
  if (files.some(([, file]) => file !== '')) {
    if (scheme !== 'mqtts:') throw new ConfigError(`${files.find(([, f]) => f !== '')![0]} needs an mqtts:// ${urlName}`);
    const [ca, cert, key] = files.map(([name, file]) => (file === '' ? undefined : pemFile(name, file)));
    if ((cert === undefined) !== (key === undefined)) throw new ConfigError(`${files[1]![0]} and ${files[2]![0]} go together: set both or neither`);
    config = { ...config, tls: { ca, cert, key } };
  }
  const [, username] = read('mqttUsername');
  const [passwordName, password] = read('mqttPassword');
  if (password !== '' && username === '') throw new ConfigError(`${passwordName} needs ${MQTT_SETTINGS.mqttUsername.env}`);
  if (username !== '') config = { ...config, username, ...(password === '' ? {} : { password }) };
  const [unitName, unit] = read('mqttEpochUnit');
  if (unit !== '') {
    if (unit !== 's' && unit !== 'ms' && unit !== 'us') throw new ConfigError(`${unitName} must be s, ms, us or empty, got ${JSON.stringify(unit)}`);
    config = { ...config, epochUnit: unit };
  }
  return Object.freeze(config);
}

function clientIdBase(name: string, raw: string): string {
  const value = raw === MQTT_SETTINGS.mqttClientId.fallback ? `tally-${hostname()}` : raw;
  // Brokers accept at least 23 characters; the index suffix takes up to 3 of them.
  if (!/^[\w.-]{1,100}$/.test(value)) throw new ConfigError(`${name} must be 1-100 letters, digits, _, . or -, got ${JSON.stringify(value)}`);
  return value;
}

function sessionExpiry(name: string, raw: string): number {
  try {
    const seconds = Math.floor(parseDuration(raw, name) / 1_000_000);
    // 0 would end the session at disconnect, losing what is published while Tally is away.
    if (seconds < 1 || seconds > 0xfffffffe) throw new ConfigError(`${name} must be between 1s and about 136 years, got ${raw}`);
    return seconds;
  } catch (err) {
    if (err instanceof ValidationError) throw new ConfigError(err.message);
    throw err;
  }
}
