import type { MqttClient } from 'mqtt';
import type { Rejection } from '../ingest/pipeline.js';
import type { DecodedMessage } from './messages.js';
import { TokenBucket } from '../domain/token-bucket.js';

/** What Tally publishes on an error topic about one bad message. */
export interface ErrorReport {
  /** The topic the bad message came on. */
  readonly topic: string;
  readonly reason: string;
  /** Rejected readings, by their index in the message (a gateway's also by device), at most MAX_LISTED. */
  readonly rejected?: ReadonlyArray<{ index: number; device_id?: string; field: string; reason: string }>;
  /** Present when more readings were rejected than listed. */
  readonly rejected_total?: number;
}

/** Reports a second, after a burst: a flood of bad messages must not become a flood of error messages. */
const REPORTS_PER_SECOND = 20;
const REPORT_BURST = 100;
const MAX_LISTED = 100;

/** The report of a message whose readings were partly or wholly rejected. */
export function rejectionReport(topic: string, message: DecodedMessage, rejections: readonly Rejection[]): ErrorReport {
  const rejected = rejections.slice(0, MAX_LISTED).map(({ index, error }) => ({ ...message.locate(index), field: error.field, reason: error.message }));
  return {
    topic,
    reason:
      rejections.length < message.items.length
        ? `${rejections.length} of ${message.items.length} readings rejected; the others were stored`
        : message.items.length === 1
          ? 'reading rejected'
          : `all ${message.items.length} readings rejected`,
    rejected,
    ...(rejections.length > MAX_LISTED ? { rejected_total: rejections.length } : {}),
  };
}

/**
 * Publishes error reports at QoS 0 (best effort: a report is advice to the device, never held for),
 * within a token bucket shared by all connections. Reports over the rate are counted, not sent.
 */
export class ErrorReporter {
  private readonly bucket = new TokenBucket(REPORTS_PER_SECOND, REPORT_BURST);
  sent = 0;
  suppressed = 0;

  report(client: MqttClient, errorTopic: string, report: ErrorReport): void {
    if (!this.bucket.take() || !client.connected) {
      this.suppressed++;
      return;
    }
    this.sent++;
    client.publish(errorTopic, JSON.stringify(report), { qos: 0 });
  }
}
