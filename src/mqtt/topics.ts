import { ValidationError } from '../domain/errors.js';
import { checkDeviceId } from '../domain/reading.js';

/**
 * The topic layout:
 *   <prefix>/<device_id>/readings   a device's readings (one reading or an array)
 *   <prefix>/gateway/readings       a gateway's map {"<device_id>": [readings...]}
 *   <prefix>/<device_id>/errors     what Tally reports about a device's bad messages
 *   <prefix>/gateway/errors         ... a gateway's
 *   <prefix>/errors                 ... messages on topics Tally cannot read (no device id)
 * A device id in a topic is one topic level: any characters but `/`, `+` and `#` (MQTT's level
 * separator and wildcards), within the domain's rules (1-256 characters, no control characters).
 * `gateway` is taken, so a device called `gateway` must publish through a gateway topic.
 */
export type Route =
  | { readonly kind: 'device'; readonly deviceId: string }
  | { readonly kind: 'gateway' }
  | { readonly kind: 'unknown'; readonly reason: string };

export const GATEWAY = 'gateway';

export class Topics {
  private readonly head: string;

  constructor(readonly prefix: string) {
    this.head = `${prefix}/`;
  }

  /** The one filter every connection of every node subscribes to: the broker spreads messages among them. */
  sharedFilter(group: string): string {
    // `+` matches `gateway` too: one filter for both kinds.
    return `$share/${group}/${this.head}+/readings`;
  }

  route(topic: string): Route {
    if (!topic.startsWith(this.head) || !topic.endsWith('/readings')) {
      return { kind: 'unknown', reason: `topic ${JSON.stringify(topic)} is not ${this.head}<device_id>/readings` };
    }
    const level = topic.slice(this.head.length, -'/readings'.length);
    if (level.includes('/')) return { kind: 'unknown', reason: `topic ${JSON.stringify(topic)}: a device id cannot contain /` };
    if (level === GATEWAY) return { kind: 'gateway' };
    try {
      return { kind: 'device', deviceId: checkDeviceId(level, 'topic device id') };
    } catch (err) {
      if (err instanceof ValidationError) return { kind: 'unknown', reason: `topic ${JSON.stringify(topic)}: ${err.message}` };
      throw err;
    }
  }

  /** Where problems with a message on `route` are reported. */
  errorTopic(route: Route): string {
    if (route.kind === 'device') return `${this.head}${route.deviceId}/errors`;
    if (route.kind === 'gateway') return `${this.head}${GATEWAY}/errors`;
    return `${this.head}errors`;
  }
}
