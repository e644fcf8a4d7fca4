import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { GroupCommitBatcher } from '../ingest/batcher.js';
import { INGEST_RESULTS, INGEST_SURFACES, type IngestObserver, type IngestResult, type IngestSurface } from '../ingest/pipeline.js';
import { RATE_LIMITS, type RateLimitName } from '../domain/rate-limit.js';
import type { MqttIngest } from '../mqtt/ingest.js';
import type { AuditReport, BackupResult, TelemetryStore } from '../store/types.js';
import { FastHistogram, type HistogramChild } from './histogram.js';
import type { StoreEvent, StoreListener } from './timed-store.js';

/**
 * Tally's Prometheus metrics, on a registry of its own (never prom-client's global one, so one
 * process may hold several Tallys, as the tests do).
 *
 * Hot paths add to plain numbers: the pipeline reports once per write and result (never per
 * reading), and an HTTP response costs one array increment and one histogram observation. The
 * numbers become Prometheus series when scraped. Every label comes from a closed set: no device id,
 * raw URL, method or other client-chosen string ever becomes a label value.
 */

const transportOf = (surface: IngestSurface): 'http' | 'mqtt' => (surface.startsWith('mqtt_') ? 'mqtt' : 'http');

/** Reasons a reading is counted as rejected: every IngestResult but stored and duplicate. */
const REJECT_REASONS = INGEST_RESULTS.filter((r) => r !== 'stored' && r !== 'duplicate');
const RESULT_INDEX = new Map<IngestResult, number>(INGEST_RESULTS.map((r, i) => [r, i]));
const SURFACE_INDEX = new Map<IngestSurface, number>(INGEST_SURFACES.map((s, i) => [s, i]));

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
/** The route label of requests no route matched (404s, and errors raised before routing). */
export const UNMATCHED_ROUTE = 'unmatched';

/** Seconds: a request answered from memory takes well under a millisecond; a commit with fsync several. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const COMMIT_SIZE_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];

/** One route and method's counts by status class. */
interface RouteCounts {
  readonly method: string;
  readonly route: string;
  readonly byClass: Float64Array;
  readonly latency: HistogramChild;
}

/** What the scrape reads from the running Tally (gauges are computed when scraped, not kept up to date). */
export interface MetricSources {
  readonly batcher: GroupCommitBatcher;
  /** The backend itself (not the timing wrapper): the scrape's own queries are not counted as reads. */
  readonly store: TelemetryStore;
  readonly mqtt?: MqttIngest;
}

export class TallyMetrics implements IngestObserver, StoreListener {
  readonly registry = new Registry();
  /** Readings by surface and result, flattened: [surface * INGEST_RESULTS.length + result]. */
  private readonly readings = new Float64Array(INGEST_SURFACES.length * INGEST_RESULTS.length);
  /** Writes refused because the queue was full, by transport. */
  private readonly backpressure = { http: 0, mqtt: 0 };
  /** route -> method -> counts. Routes are the server's route templates: a set fixed at start. */
  private readonly routes = new Map<string, Map<string, RouteCounts>>();
  private readsInFlight = 0;
  /** Requests refused with 429, by limit. */
  private readonly limited = new Map<RateLimitName, number>(RATE_LIMITS.map((l) => [l, 0]));
  private readonly requestSeconds: FastHistogram;
  private readonly commitSeconds: FastHistogram;
  private readonly commitReadings: FastHistogram;
  private readonly storeSeconds: FastHistogram;
  private readonly storeErrors: Counter<'backend' | 'op'>;
  private sources: MetricSources | undefined;
  /** The latest scheduled audit and backup, and how many of each ended how. */
  private readonly maintenance = {
    audit: { lastRun: 0, seconds: 0, mismatches: 0, devices: 0, readings: 0, runs: { clean: 0, mismatches: 0, failed: 0 } },
    backup: { lastSuccess: 0, seconds: 0, bytes: 0, runs: { ok: 0, failed: 0 } },
  };
  private commit: { readonly backend: string; readonly seconds: HistogramChild; readonly readings: HistogramChild } | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const self = this;

    const readingsBySurface = (name: string, help: string, result: IngestResult) =>
      new Counter({
        name,
        help,
        labelNames: ['transport', 'surface'],
        registers,
        collect() {
          this.reset();
          for (const surface of INGEST_SURFACES) this.inc({ transport: transportOf(surface), surface }, self.total(surface, result));
        },
      });
    readingsBySurface('tally_readings_accepted_total', 'Readings stored (committed), by transport and surface', 'stored');
    readingsBySurface(
      'tally_readings_duplicate_total',
      'Readings not stored because the same (device, timestamp) already was: first write wins',
      'duplicate',
    );
    new Counter({
      name: 'tally_readings_rejected_total',
      help:
        'Readings not stored, by reason: invalid (broke a rule), forbidden (a device its key does not cover), rate_limited ' +
        '(its device over TALLY_RATE_DEVICE), retention (older than the window), atomic (not written because ' +
        'another item of an all-or-nothing write was rejected), queue_full (503, write queue full), unavailable (store or shutdown)',
      labelNames: ['transport', 'surface', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const surface of INGEST_SURFACES) {
          for (const reason of REJECT_REASONS) this.inc({ transport: transportOf(surface), surface, reason }, self.total(surface, reason));
        }
      },
    });
    new Counter({
      name: 'tally_backpressure_rejections_total',
      help: 'Writes (requests, MQTT messages) refused because the write queue was full (HTTP 503 with Retry-After)',
      labelNames: ['transport'],
      registers,
      collect() {
        this.reset();
        this.inc({ transport: 'http' }, self.backpressure.http);
        this.inc({ transport: 'mqtt' }, self.backpressure.mqtt);
      },
    });

    new Counter({
      name: 'tally_rate_limited_total',
      help:
        'Refused with 429, by the limit they went over: HTTP requests over TALLY_RATE_ADDRESS (address) or TALLY_RATE_KEY (key); ' +
        'readings, over any transport, over TALLY_RATE_DEVICE (device)',
      labelNames: ['limit'],
      registers,
      collect() {
        this.reset();
        for (const [limit, n] of self.limited) this.inc({ limit }, n);
      },
    });
    new Counter({
      name: 'tally_http_requests_total',
      help: `HTTP requests answered, by method, route template (${UNMATCHED_ROUTE} when no route matched) and status class`,
      labelNames: ['method', 'route', 'status_class'],
      registers,
      collect() {
        this.reset();
        for (const byMethod of self.routes.values()) {
          for (const { method, route, byClass } of byMethod.values()) {
            for (let c = 0; c < STATUS_CLASSES.length; c++) {
              if (byClass[c]! > 0) this.inc({ method, route, status_class: STATUS_CLASSES[c]! }, byClass[c]!);
            }
          }
        }
      },
    });
    this.requestSeconds = new FastHistogram(
      'tally_http_request_duration_seconds',
      'Time from receiving a request to sending the last byte of its answer, by method and route template',
      ['method', 'route'],
      LATENCY_BUCKETS,
      this.registry,
    );
    this.commitSeconds = new FastHistogram(
      'tally_commit_duration_seconds',
      'Time to commit one group-commit batch (one transaction, fsync included), failed ones too',
      ['backend'],
      LATENCY_BUCKETS,
      this.registry,
    );
    this.commitReadings = new FastHistogram(
      'tally_commit_readings',
      'Readings in one committed group-commit batch (stored and duplicates)',
      ['backend'],
      COMMIT_SIZE_BUCKETS,
      this.registry,
    );
    this.storeSeconds = new FastHistogram(
      'tally_store_operation_duration_seconds',
      'Time of store operations other than commits (reads, deletes, pruning, readiness probes), by backend and operation',
      ['backend', 'op'],
      LATENCY_BUCKETS,
      this.registry,
    );
    this.storeErrors = new Counter({
      name: 'tally_store_errors_total',
      help: 'Store operations that failed, by backend and operation (appendBatch: a commit that did not happen)',
      labelNames: ['backend', 'op'],
      registers,
    });

    new Gauge({
      name: 'tally_queue_depth_readings',
      help: 'Readings accepted and not yet committed (waiting, or in a transaction)',
      registers,
      collect() {
        const stats = self.sources?.batcher.stats();
        if (stats) this.set(stats.queued + stats.writing);
      },
    });
    new Gauge({
      name: 'tally_queue_capacity_readings',
      help: 'Most readings the write queue holds (TALLY_QUEUE_LIMIT); beyond it writes get 503',
      registers,
      collect() {
        const stats = self.sources?.batcher.stats();
        if (stats) this.set(stats.queueLimit);
      },
    });
    new Gauge({
      name: 'tally_reads_in_flight',
      help: 'Store reads started and not yet answered',
      registers,
      collect() {
        this.set(self.readsInFlight);
      },
    });
    new Gauge({
      name: 'tally_store_size_bytes',
      help: 'Bytes the store takes on disk (SQLite: the database file and its WAL)',
      labelNames: ['backend'],
      registers,
      async collect() {
        const store = self.sources?.store;
        if (store?.diskBytes === undefined) return;
        try {
          this.set({ backend: store.name }, await store.diskBytes());
        } catch {
          // a scrape must not fail because one figure could not be read
        }
      },
    });
    new Gauge({
      name: 'tally_devices',
      help: 'Devices with stored readings',
      registers,
      async collect() {
        const store = self.sources?.store;
        if (store === undefined) return;
        try {
          const page = await store.listDevices({ sort: { by: 'deviceId' }, order: 'asc', limit: 1, withTotal: true });
          this.set(page.total ?? 0);
        } catch {
          // as above
        }
      },
    });

    const maintenanceGauge = (name: string, help: string, value: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(value());
        },
      });
    const audit = this.maintenance.audit;
    const backup = this.maintenance.backup;
    maintenanceGauge('tally_audit_last_run_timestamp_seconds', 'When the latest scheduled audit (TALLY_AUDIT_EVERY) ran to the end, Unix seconds; 0 before the first', () => audit.lastRun);
    maintenanceGauge('tally_audit_duration_seconds', 'How long the latest scheduled audit took', () => audit.seconds);
    maintenanceGauge('tally_audit_mismatches', 'Mismatches the latest scheduled audit found (0: the store is consistent)', () => audit.mismatches);
    maintenanceGauge('tally_audit_devices_checked', 'Devices the latest scheduled audit checked', () => audit.devices);
    maintenanceGauge('tally_audit_readings_checked', 'Stored readings the latest scheduled audit checked', () => audit.readings);
    new Counter({
      name: 'tally_audit_runs_total',
      help: 'Scheduled audits by result: clean, mismatches (found some), failed (could not run to the end)',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        for (const [result, n] of Object.entries(audit.runs)) this.inc({ result }, n);
      },
    });
    maintenanceGauge('tally_backup_last_success_timestamp_seconds', 'When the latest scheduled backup (TALLY_BACKUP_EVERY) was written and checked, Unix seconds; 0 before the first', () => backup.lastSuccess);
    maintenanceGauge('tally_backup_duration_seconds', 'How long the latest successful scheduled backup took (copy and check)', () => backup.seconds);
    maintenanceGauge('tally_backup_size_bytes', 'Size of the latest successful scheduled backup', () => backup.bytes);
    new Counter({
      name: 'tally_backup_runs_total',
      help: 'Scheduled backups by result: ok, failed',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        for (const [result, n] of Object.entries(backup.runs)) this.inc({ result }, n);
      },
    });

    const mqttCounter = (name: string, help: string, value: (s: ReturnType<MqttIngest['stats']>) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const mqtt = self.sources?.mqtt;
          if (mqtt === undefined) return;
          this.reset();
          this.inc(value(mqtt.stats()));
        },
      });
    mqttCounter('tally_mqtt_messages_received_total', 'MQTT messages taken from the broker (QoS 0 and 1)', (s) => s.messages);
    mqttCounter('tally_mqtt_messages_acked_total', 'MQTT QoS 1 messages acknowledged (PUBACK sent after their readings committed)', (s) => s.acked);
    mqttCounter('tally_mqtt_bad_messages_total', 'MQTT messages refused whole (not JSON, wrong form, unknown topic): acknowledged and reported', (s) => s.badMessages);
    mqttCounter('tally_mqtt_qos0_dropped_total', 'MQTT QoS 0 messages not stored (store busy or down, or too many held)', (s) => s.qos0Dropped);
    mqttCounter('tally_mqtt_write_retries_total', 'MQTT writes retried after the store or queue refused them (the message held unacknowledged meanwhile)', (s) => s.retries);
    mqttCounter('tally_mqtt_error_reports_total', 'Messages published to error topics about bad messages and readings', (s) => s.errorsReported);
    mqttCounter('tally_mqtt_error_reports_suppressed_total', 'Error-topic reports not published because too many were sent recently', (s) => s.errorsSuppressed);
    new Gauge({
      name: 'tally_mqtt_connections',
      help: 'MQTT subscriber connections, by state (connected or down)',
      labelNames: ['state'],
      registers,
      collect() {
        const mqtt = self.sources?.mqtt;
        if (mqtt === undefined) return;
        const { connected, total } = mqtt.connections();
        this.set({ state: 'connected' }, connected);
        this.set({ state: 'down' }, total - connected);
      },
    });
  }

  /** What the gauges read when scraped; set once the Tally is wired. */
  attach(sources: MetricSources): void {
    this.sources = sources;
  }

  /** A scheduled audit ended: with its report, or with the error that stopped it. */
  auditFinished(outcome: { report: AuditReport } | { error: unknown }): void {
    const audit = this.maintenance.audit;
    if ('error' in outcome) {
      audit.runs.failed++;
      return; // the last run's time stays that of the last audit that ran to the end: an alert on its age fires
    }
    audit.lastRun = Date.now() / 1000;
    const { report } = outcome;
    Object.assign(audit, { seconds: report.durationMs / 1000, mismatches: report.mismatchCount, devices: report.devices, readings: report.readings });
    audit.runs[report.mismatchCount === 0 ? 'clean' : 'mismatches']++;
  }

  /** A scheduled backup ended. */
  backupFinished(outcome: { result: BackupResult } | { error: unknown }): void {
    const backup = this.maintenance.backup;
    if ('error' in outcome) {
      backup.runs.failed++;
      return;
    }
    Object.assign(backup, { lastSuccess: Date.now() / 1000, seconds: outcome.result.durationMs / 1000, bytes: outcome.result.bytes });
    backup.runs.ok++;
  }

  private total(surface: IngestSurface, result: IngestResult): number {
    return this.readings[SURFACE_INDEX.get(surface)! * INGEST_RESULTS.length + RESULT_INDEX.get(result)!]!;
  }

  /** IngestObserver: once per write and result. */
  count(surface: IngestSurface, result: IngestResult, n: number): void {
    this.readings[SURFACE_INDEX.get(surface)! * INGEST_RESULTS.length + RESULT_INDEX.get(result)!]! += n;
    if (result === 'queue_full') this.backpressure[transportOf(surface)]++;
    else if (result === 'rate_limited') this.rateLimited('device', n);
  }

  /** StoreListener: one event per store operation. */
  onStoreEvent(event: StoreEvent): void {
    const seconds = event.durationMs / 1000;
    if (event.op === 'appendBatch') {
      // One backend per Tally: its two children are looked up once.
      let commit = this.commit;
      if (commit?.backend !== event.backend) {
        commit = this.commit = { backend: event.backend, seconds: this.commitSeconds.child(event.backend), readings: this.commitReadings.child(event.backend) };
      }
      commit.seconds.observe(seconds);
      if (event.error === undefined) commit.readings.observe(event.rows);
    } else {
      this.storeSeconds.child(event.backend, event.op).observe(seconds);
    }
    if (event.error !== undefined) this.storeErrors.inc({ backend: event.backend, op: event.op });
  }

  onReadsInFlight(delta: number): void {
    this.readsInFlight += delta;
  }

  /**
   * One answered HTTP request. `route` is the route template (Fastify's routeOptions.url), undefined
   * when no route matched; `seconds` its latency.
   */
  httpResponse(method: string, route: string | undefined, status: number, seconds: number): void {
    const routeLabel = route ?? UNMATCHED_ROUTE;
    const methodLabel = METHODS.has(method) ? method : 'other';
    let byMethod = this.routes.get(routeLabel);
    if (byMethod === undefined) this.routes.set(routeLabel, (byMethod = new Map()));
    let counts = byMethod.get(methodLabel);
    if (counts === undefined) {
      const latency = this.requestSeconds.child(methodLabel, routeLabel);
      byMethod.set(methodLabel, (counts = { method: methodLabel, route: routeLabel, byClass: new Float64Array(5), latency }));
    }
    const statusClass = Math.floor(status / 100) - 1;
    if (statusClass >= 0 && statusClass < 5) counts.byClass[statusClass]!++;
    counts.latency.observe(seconds);
  }

  /** HttpObserver: a request refused with 429 by `limit`. */
  rateLimited(limit: RateLimitName, n = 1): void {
    this.limited.set(limit, this.limited.get(limit)! + n);
  }

  /** The text exposition and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
