import type { IClientOptions, MqttClient } from 'mqtt';
import type { IngestPipeline } from '../ingest/pipeline.js';
import type { MqttConfig } from './config.js';
import { ErrorReporter } from './report.js';
import { emptyStats, Subscriber, type MqttLog, type MqttStats } from './subscriber.js';
import { Topics } from './topics.js';

export interface MqttIngestDeps {
  readonly ingest: IngestPipeline;
  /** Most readings in one message, and most bytes: the HTTP limits of one request. */
  readonly maxReadings: number;
  readonly maxBytes: number;
  readonly log: MqttLog;
}

/** The connection options of subscriber `index`: a fixed client id and a session that outlives it. */
export function clientOptions(config: MqttConfig, index: number): IClientOptions {
  return {
    clientId: `${config.clientId}-${index}`,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: config.sessionExpirySeconds, receiveMaximum: config.inflight },
    reconnectPeriod: 1_000,
    // A broker refusing the credentials may be fixed without Tally (a reloaded password file or
    // ACL): keep trying, where mqtt.js would otherwise give up for good after one refusal.
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
    // Error reports are advice of the moment: never queued for a later connection.
    queueQoSZero: false,
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(config.tls === undefined ? {} : { ...config.tls, rejectUnauthorized: true }),
  };
}

/**
 * Tally's MQTT side: `connections` subscribers in one shared subscription, every message written
 * through the ingest pipeline and acknowledged after its commit.
 */
export class MqttIngest {
  private readonly subscribers: Subscriber[];
  private readonly reporter = new ErrorReporter();
  private readonly counters = emptyStats();
  private stopping: Promise<void> | undefined;
  private readonly filter: string;
  private readonly log: MqttLog;

  constructor(config: MqttConfig, deps: MqttIngestDeps) {
    const topics = new Topics(config.prefix);
    const filter = topics.sharedFilter(config.group);
    this.filter = filter;
    this.log = deps.log;
    const subscriberDeps = {
      ingest: deps.ingest,
      topics,
      reporter: this.reporter,
      stats: this.counters,
      decode: { maxReadings: deps.maxReadings, maxBytes: deps.maxBytes, ...(config.epochUnit ? { epochUnit: config.epochUnit } : {}) },
      log: deps.log,
    };
    this.subscribers = Array.from(
      { length: config.connections },
      (_, i) => new Subscriber(config.url, clientOptions(config, i), filter, config.inflight, subscriberDeps),
    );
  }

  /** The connections, to observe (e.g. their `packetsend` events); Tally drives them. */
  get clients(): readonly MqttClient[] {
    return this.subscribers.map((s) => s.client);
  }

  /** Resolves once every connection is subscribed; rejects when the broker refuses a subscription. */
  async ready(): Promise<void> {
    await Promise.all(this.subscribers.map((s) => s.subscribed));
  }

  /** How many connections are connected to the broker now, of how many. */
  connections(): { readonly connected: number; readonly total: number } {
    let connected = 0;
    for (const s of this.subscribers) if (s.client.connected) connected++;
    return { connected, total: this.subscribers.length };
  }

  stats(): MqttStats & { readonly errorsReported: number; readonly errorsSuppressed: number } {
    return { ...this.counters, errorsReported: this.reporter.sent, errorsSuppressed: this.reporter.suppressed };
  }

  /**
   * Empties and ends the sessions of connections `from` and up (all by default): for a node, or
   * connections of one, that will not come back, whose sessions would otherwise keep being given a
   * share of the shared subscription's messages until they expire, and then lose them.
   */
  async drain(from = 0, quietMs = 2_000): Promise<void> {
    const leaving = this.subscribers.slice(from);
    await Promise.all(leaving.map((s) => s.drain(this.filter, quietMs)));
    await this.stop();
  }

  /** Stops taking messages, commits and acknowledges what was taken, disconnects. Idempotent. */
  stop(): Promise<void> {
    return (this.stopping ??= Promise.all(this.subscribers.map((s) => s.stop())).then(() => {
      // What this run took and refused: the counters are not kept anywhere else.
      this.log.info(this.stats(), 'mqtt stopped');
    }));
  }
}
