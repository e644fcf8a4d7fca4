import type { Reading } from '../domain/reading.js';
import type { DeviceReadingsQuery, TelemetryStore } from './types.js';

/**
 * Every reading of a device in a range, a keyset page at a time: however many there are, the
 * caller holds one page. A consumer that stops iterating stops the reads.
 */
export async function* readingPages(
  store: TelemetryStore,
  deviceId: string,
  range: Omit<DeviceReadingsQuery, 'limit' | 'cursor'>,
  pageSize: number,
): AsyncGenerator<readonly Reading[]> {
  let cursor: string | undefined;
  do {
    const page = await store.deviceReadings(deviceId, { ...range, limit: pageSize, cursor });
    yield page.items;
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
}
