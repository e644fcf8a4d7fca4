import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { GroupCommitBatcher } from '../ingest/batcher.js';
import type { MqttIngest } from '../mqtt/ingest.js';
import type { TelemetryStore } from '../store/types.js';

/** How long the store's probe may wait for a lock someone else holds: a busy store answers well within it. */
const PROBE_WAIT_MS = 250;
/** How long a readiness check waits for the store at all (its writer may be busy with a commit). */
const STORE_TIMEOUT_MS = 2_000;

export interface Liveness {
  readonly status: 'ok';
  readonly uptimeSeconds: number;
  /** Event-loop delay since the previous /healthz (or the start), milliseconds. */
  readonly eventLoopDelayMs: { readonly mean: number; readonly p99: number; readonly max: number };
}

export type Readiness = { readonly status: 'ready' } | { readonly status: 'not ready'; readonly reasons: readonly string[] };

export interface HealthSources {
  readonly store: TelemetryStore;
  readonly batcher: GroupCommitBatcher;
  /** When MQTT is configured: every connection must be up for the node to be ready. */
  readonly mqtt?: MqttIngest;
}

/** How often the delay monitor samples, ms; Node's figures include this interval, which is taken off. */
const RESOLUTION_MS = 20;
const ms = (ns: number) => Math.max(0, Math.round((ns / 1e6 - RESOLUTION_MS) * 100) / 100);

/**
 * Liveness and readiness. Liveness says the process answers and how late its event loop runs;
 * readiness says whether a write sent now could be taken: the store can start a write, the queue
 * has room, and MQTT (when configured) is connected.
 */
export class Health {
  private readonly delay: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private readonly started = performance.now();

  private mqtt: MqttIngest | undefined;

  constructor(private readonly sources: HealthSources) {
    this.mqtt = sources.mqtt;
    this.delay.enable();
  }

  /** The MQTT side, created after the HTTP server (it logs through the server's logger). */
  attachMqtt(mqtt: MqttIngest | undefined): void {
    this.mqtt = mqtt;
  }

  liveness(): Liveness {
    const d = this.delay;
    const eventLoopDelayMs = d.count === 0 ? { mean: 0, p99: 0, max: 0 } : { mean: ms(d.mean), p99: ms(d.percentile(99)), max: ms(d.max) };
    d.reset();
    return { status: 'ok', uptimeSeconds: Math.round((performance.now() - this.started) / 1000), eventLoopDelayMs };
  }

  async readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    const { store, batcher } = this.sources;
    const mqtt = this.mqtt;
    const stats = batcher.stats();
    const backlog = stats.queued + stats.writing;
    if (backlog >= stats.queueLimit) reasons.push(`queue: full (${backlog} of ${stats.queueLimit} readings waiting to commit)`);
    if (mqtt !== undefined) {
      const { connected, total } = mqtt.connections();
      if (connected < total) reasons.push(`mqtt: ${total - connected} of ${total} connections to the broker are down`);
    }
    const storeReason = await this.checkStore(store);
    if (storeReason !== undefined) reasons.push(storeReason);
    return reasons.length === 0 ? { status: 'ready' } : { status: 'not ready', reasons };
  }

  /** undefined when the store could take a write now; otherwise why not. */
  private async checkStore(store: TelemetryStore): Promise<string | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`store: no answer within ${STORE_TIMEOUT_MS} ms`), STORE_TIMEOUT_MS);
    });
    const check = (store.probe !== undefined ? store.probe(PROBE_WAIT_MS) : store.getDevice('readiness-probe')).then(
      () => undefined,
      (err: unknown) => `store: ${(err as Error).message}`,
    );
    try {
      return await Promise.race([check, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.delay.disable();
  }
}
