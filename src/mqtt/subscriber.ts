import type { Duplex } from 'node:stream';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { QueueFullError, ShuttingDownError, StorageUnavailableError } from '../domain/errors.js';
import type { IngestPipeline } from '../ingest/pipeline.js';
import { decodeMessage, type DecodeOptions } from './messages.js';
import { rejectionReport, type ErrorReporter, type ErrorReport } from './report.js';
import type { Route, Topics } from './topics.js';

/** Counters of one node's MQTT side, summed over its connections. */
export interface MqttStats {
  /** Messages taken (both QoS). */
  messages: number;
  qos0: number;
  /** Readings stored, and readings already stored (redelivery, device retries). */
  stored: number;
  duplicates: number;
  /** Readings rejected inside messages that were otherwise read. */
  rejectedReadings: number;
  /** Messages refused whole: not JSON, wrong form, unknown topic. Acknowledged and reported. */
  badMessages: number;
  /** QoS 0 messages not stored: the store was busy or down, or too many were held. */
  qos0Dropped: number;
  /** Writes retried after the store refused them (QoS 1: held, not acknowledged, meanwhile). */
  retries: number;
  /** QoS 1 messages acknowledged (PUBACK sent, after their readings committed). */
  acked: number;
}

export function emptyStats(): MqttStats {
  return { messages: 0, qos0: 0, stored: 0, duplicates: 0, rejectedReadings: 0, badMessages: 0, qos0Dropped: 0, retries: 0, acked: 0 };
}

/** The logging a subscriber needs (pino's, as Fastify's logger has it). */
export interface MqttLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface SubscriberDeps {
  readonly ingest: IngestPipeline;
  readonly topics: Topics;
  readonly reporter: ErrorReporter;
  readonly stats: MqttStats;
  readonly decode: DecodeOptions;
  readonly log: MqttLog;
}

/** Retry delays of a held write: short at first (a full queue drains in milliseconds), then capped. */
const FIRST_RETRY_MS = 50;
const MAX_RETRY_MS = 2_000;

/**
 * Handed to mqtt.js's message callback so that it sends no PUBACK of its own (its QoS 1 handler
 * only acknowledges on success) and goes on to the next packet: the PUBACK is sent here, once the
 * message's readings are committed.
 */
const ACK_DEFERRED = new Error('PUBACK deferred until the readings are committed');

/** A QoS 1 message taken on one connection, waiting for its turn to be acknowledged. */
interface PendingAck {
  readonly messageId: number;
  /** The connection it came on: an ack for an earlier connection is not sent (the broker redelivers). */
  readonly stream: Duplex;
  /** undefined while being written; true to acknowledge; false when abandoned at stop. */
  ack?: boolean;
}

/**
 * One subscriber connection. Messages are processed concurrently (so one connection's messages
 * share group commits) and acknowledged in the order they arrived, as MQTT requires, each only
 * after its readings are committed. The broker sends at most `receiveMaximum` unacknowledged QoS 1
 * messages, which bounds what is held; QoS 0 messages beyond that many in progress are dropped
 * (and counted).
 */
export class Subscriber {
  readonly client: MqttClient;
  readonly subscribed: Promise<void>;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private acksBlocked = false;
  private readonly acks: PendingAck[] = [];
  private readonly inProgress = new Set<Promise<void>>();
  private readonly sleepers = new Set<() => void>();
  private failing = false;
  private lastTaken = performance.now();

  constructor(
    url: string,
    options: IClientOptions,
    filter: string,
    private readonly maxHeld: number,
    private readonly deps: SubscriberDeps,
  ) {
    this.client = mqtt.connect(url, { ...options, manualConnect: true });
    this.client.handleMessage = (packet, callback) => {
      this.take(packet);
      callback(packet.qos === 0 ? undefined : ACK_DEFERRED);
    };
    // mqtt.js reconnects every second while the broker is away: one line per kind of error a minute.
    let lastError = '';
    let lastErrorAt = -Infinity;
    this.client.on('error', (err) => {
      if (err.message === lastError && performance.now() - lastErrorAt < 60_000) return;
      lastError = err.message;
      lastErrorAt = performance.now();
      if (refused(err)) deps.log.error({ err, clientId: options.clientId, username: options.username }, 'mqtt: the broker refused the connection (check TALLY_MQTT_USERNAME / TALLY_MQTT_PASSWORD and the broker\'s password file and ACL); retrying');
      else deps.log.warn({ err, clientId: options.clientId }, 'mqtt connection error (reconnecting)');
    });
    this.subscribed = new Promise((resolve, reject) => {
      this.client.once('connect', () => {
        this.client.subscribe(filter, { qos: 1 }, (err, granted) => {
          const code = granted?.[0]?.qos ?? 0;
          if (err) reject(err);
          else if (code >= 0x80) reject(new Error(`the broker refused the subscription ${filter} (reason code ${code})`));
          else {
            deps.log.info({ clientId: options.clientId, filter }, 'mqtt subscribed');
            resolve();
          }
        });
      });
    });
    // A refusal is logged here; whoever awaits `subscribed` sees it too.
    this.subscribed.catch((err: unknown) => deps.log.error({ err, clientId: options.clientId }, 'mqtt subscription failed'));
    this.client.connect();
  }

  /**
   * Stops taking messages (those arriving now stay with the broker, unacknowledged), lets the writes
   * in progress commit and acknowledges them, abandons writes waiting to be retried (unacknowledged:
   * the broker redelivers them to this client id's next session), then disconnects.
   */
  stop(endSession = false): Promise<void> {
    return (this.stopped ??= this.end(endSession));
  }

  private async end(endSession: boolean): Promise<void> {
    this.stopping = true;
    for (const wake of [...this.sleepers]) wake();
    while (this.inProgress.size > 0) await Promise.allSettled([...this.inProgress]);
    // end(false) writes the acks already queued before DISCONNECT; with no connection there is nothing to flush.
    // Session expiry 0 at DISCONNECT ends the session: the broker forgets it and its subscription.
    await this.client.endAsync(!this.client.connected, endSession ? { properties: { sessionExpiryInterval: 0 } } : {});
  }

  /**
   * For a session no node will use again: takes it out of the shared subscription (so the broker
   * routes nothing new to it), stores and acknowledges what it still holds until none has come for
   * `quietMs`, then ends it.
   */
  async drain(filter: string, quietMs: number): Promise<void> {
    await this.subscribed;
    await this.client.unsubscribeAsync(filter);
    while (this.inProgress.size > 0 || performance.now() - this.lastTaken < quietMs) await new Promise((r) => setTimeout(r, 50));
    await this.stop(true);
  }

  private take(packet: IPublishPacket): void {
    if (this.stopping) return;
    this.lastTaken = performance.now();
    const { stats } = this.deps;
    stats.messages++;
    if (packet.qos === 0) {
      stats.qos0++;
      if (this.inProgress.size >= this.maxHeld) stats.qos0Dropped++;
      else this.track(this.handle(packet, false).then(() => undefined));
      return;
    }
    const pending: PendingAck = { messageId: packet.messageId!, stream: this.client.stream };
    this.acks.push(pending);
    this.track(
      this.handle(packet, true).then((ack) => {
        pending.ack = ack;
        this.sendAcks();
      }),
    );
  }

  private track(work: Promise<void>): void {
    this.inProgress.add(work);
    void work.finally(() => this.inProgress.delete(work));
  }

  /** Acknowledges the finished messages at the head of the arrival order. */
  private sendAcks(): void {
    while (this.acks.length > 0 && this.acks[0]!.ack !== undefined) {
      const { messageId, stream, ack } = this.acks.shift()!;
      // Once one is abandoned, none after it may be acknowledged: acks go in order.
      if (!ack) this.acksBlocked = true;
      if (this.acksBlocked || stream !== this.client.stream || !this.client.connected) continue;
      sendPuback(this.client, messageId);
      this.deps.stats.acked++;
    }
  }

  /** Writes one message's readings; resolves true to acknowledge it, false to leave it with the broker. Never rejects. */
  private async handle(packet: IPublishPacket, reliable: boolean): Promise<boolean> {
    try {
      return await this.write(packet, reliable);
    } catch (err) {
      // A fault of Tally's own, not of the store (whose failures are retried): holding the message
      // would hold every later acknowledgement of the connection, so it is logged and let go.
      this.deps.stats.badMessages++;
      this.deps.log.error({ err, topic: packet.topic }, 'mqtt: message could not be processed');
      return true;
    }
  }

  private async write(packet: IPublishPacket, reliable: boolean): Promise<boolean> {
    const { topics, stats, ingest } = this.deps;
    const route = topics.route(packet.topic);
    if (route.kind === 'unknown') return this.bad(route, { topic: packet.topic, reason: route.reason });
    const message = decodeMessage(route, packet.payload as Buffer, this.deps.decode);
    if ('reason' in message) return this.bad(route, { topic: packet.topic, reason: message.reason });

    for (let attempt = 0; ; attempt++) {
      try {
        const outcome = await ingest.write(message.items, message.shape, { surface: route.kind === 'gateway' ? 'mqtt_gateway' : 'mqtt_device' });
        stats.stored += outcome.stored;
        stats.duplicates += outcome.duplicates;
        if (outcome.rejections.length > 0) {
          stats.rejectedReadings += outcome.rejections.length;
          this.deps.reporter.report(this.client, topics.errorTopic(route), rejectionReport(packet.topic, message, outcome.rejections));
        }
        this.recovered();
        return true;
      } catch (err) {
        if (!reliable) {
          stats.qos0Dropped++;
          return true;
        }
        if (this.stopping) return false;
        stats.retries++;
        this.failed(err);
        await this.pause(Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt));
        if (this.stopping) return false;
      }
    }
  }

  /** A message refused whole: acknowledged (redelivery would not make it better), counted, reported. */
  private bad(route: Route, report: ErrorReport): true {
    this.deps.stats.badMessages++;
    this.deps.reporter.report(this.client, this.deps.topics.errorTopic(route), report);
    return true;
  }

  /** Logs the first failure of a streak, not every retry of every held message. */
  private failed(err: unknown): void {
    if (this.failing) return;
    this.failing = true;
    const transient = err instanceof QueueFullError || err instanceof StorageUnavailableError || err instanceof ShuttingDownError;
    const log = transient ? this.deps.log.warn : this.deps.log.error;
    log.call(this.deps.log, { err, clientId: this.client.options.clientId }, 'mqtt: write refused; holding messages unacknowledged and retrying');
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.deps.log.info({ clientId: this.client.options.clientId }, 'mqtt: writes resumed');
  }

  /** A delay that `stop` cuts short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}

/**
 * mqtt.js sends a QoS 1 PUBACK only from inside its one-packet-at-a-time handler, which would
 * hold every later message of the connection until this one's commit. Its packet writer is the
 * way to send the PUBACK later, once the readings are durable.
 */
function sendPuback(client: MqttClient, messageId: number): void {
  (client as unknown as { _sendPacket(packet: object, cb: () => void): void })._sendPacket({ cmd: 'puback', messageId, reasonCode: 0 }, () => {});
}

/** CONNACK refusals that only the broker's configuration or Tally's credentials can cure. */
const REFUSALS = new Set([0x86, 0x87, 4, 5]); // v5 bad user name or password, not authorized; v3.1.1 the same

function refused(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' && REFUSALS.has(code) && err.message.startsWith('Connection refused');
}
