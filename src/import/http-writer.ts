import type { EpochUnit } from '../domain/timestamp.js';
import type { LineProtocolItem } from '../ingest/line-protocol-mapping.js';
import type { BatchOutcome, BatchWriter } from './importer.js';

/**
 * `tally import --url`: batches posted to a running Tally's POST /v1/readings (JSON), so a file can
 * go into a SQLite file a server holds, through that server's own pipeline. NDJSON and CSV items
 * already are /v1 readings; line-protocol items, mapped here with this command's TALLY_LP_*
 * settings, go as microseconds. Answers are read back by index, so rejected lines keep their
 * numbers. A batch the server finds too large (413) is sent in halves; 503 and 429 are retried
 * after their Retry-After, for at most `patienceMs` in a row.
 */

export class RemoteImportError extends Error {}

interface V1Answer {
  accepted: number;
  duplicates: number;
  rejected: Array<{ index: number; message: string }>;
  rejected_total?: number;
}

export interface RemoteOptions {
  /** Unit of numeric `ts` in NDJSON and CSV items (sent as ?precision=). */
  readonly precision?: EpochUnit;
  /** The items are line protocol's (LineProtocolItem), to be sent as /v1 readings. */
  readonly lineProtocol?: boolean;
  /** An API key with the ingest scope, for a server whose routes need one (TALLY_API_KEY). */
  readonly key?: string;
  /** How long to keep retrying a server that answers 503 or 429. */
  readonly patienceMs?: number;
}

function v1Reading(item: LineProtocolItem): unknown {
  return { device_id: item.device, ts: item.ts, count: item.count ?? null, payload: JSON.parse(item.payload) as unknown };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function remoteWriter(base: string, options: RemoteOptions = {}): BatchWriter {
  let url: URL;
  try {
    url = new URL('/v1/readings', base);
  } catch {
    throw new RemoteImportError(`--url must be the address of a Tally, e.g. http://127.0.0.1:8080, got ${JSON.stringify(base)}`);
  }
  const precision = options.lineProtocol ? 'us' : options.precision;
  if (precision !== undefined) url.searchParams.set('precision', precision);
  const patienceMs = options.patienceMs ?? 120_000;

  async function post(items: readonly unknown[]): Promise<{ status: number; body: unknown }> {
    const body = JSON.stringify(items);
    const started = Date.now();
    for (;;) {
      let res: Response;
      try {
        res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(options.key === undefined ? {} : { authorization: `Bearer ${options.key}` }) }, body });
      } catch (err) {
        throw new RemoteImportError(`cannot reach ${url.origin}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
      }
      const text = await res.text();
      if ((res.status === 503 || res.status === 429) && Date.now() - started < patienceMs) {
        await sleep(Math.min(10, Number(res.headers.get('retry-after')) || 1) * 1000);
        continue;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
      return { status: res.status, body: parsed };
    }
  }

  const problem = (status: number, body: unknown) =>
    new RemoteImportError(
      `${url.origin} answered ${status}: ${(body as { error?: { message?: string } })?.error?.message ?? JSON.stringify(body).slice(0, 300)}` +
        (status === 401 ? ' (set TALLY_API_KEY to a key with the ingest scope)' : ''),
    );

  /** Posts items (at `offset` in the batch), halving on 413; a single reading too large is rejected by index. */
  async function send(items: readonly unknown[], offset: number, out: { stored: number; duplicates: number; rejections: Array<{ index: number; reason: string }> }): Promise<void> {
    const { status, body } = await post(items);
    if (status === 413) {
      if (items.length === 1) {
        out.rejections.push({ index: offset, reason: `the server refused it as too large: ${(body as { error?: { message?: string } })?.error?.message ?? status}` });
        return;
      }
      const half = items.length >> 1;
      await send(items.slice(0, half), offset, out);
      await send(items.slice(half), offset + half, out);
      return;
    }
    const answer = body as V1Answer;
    // 403 with an outcome: every reading was of a device the key may not write, each rejected.
    if ((status !== 200 && status !== 207 && status !== 400 && status !== 403) || typeof answer?.accepted !== 'number') throw problem(status, body);
    out.stored += answer.accepted;
    out.duplicates += answer.duplicates;
    for (const r of answer.rejected) out.rejections.push({ index: offset + r.index, reason: r.message });
    const unlisted = (answer.rejected_total ?? answer.rejected.length) - answer.rejected.length;
    if (unlisted > 0) {
      // More rejections than one answer lists: send the batch again in halves to learn each one
      // (first write wins, so what was stored comes back as duplicates, which are not counted twice).
      const again = { stored: 0, duplicates: 0, rejections: [] as Array<{ index: number; reason: string }> };
      const half = items.length >> 1;
      out.rejections.length -= answer.rejected.length;
      await send(items.slice(0, half), offset, again);
      await send(items.slice(half), offset + half, again);
      out.rejections.push(...again.rejections);
    }
  }

  return async (items: unknown[]): Promise<BatchOutcome> => {
    const out = { stored: 0, duplicates: 0, rejections: [] as Array<{ index: number; reason: string }> };
    await send(options.lineProtocol ? items.map((i) => v1Reading(i as LineProtocolItem)) : items, 0, out);
    out.rejections.sort((a, b) => a.index - b.index);
    return out;
  };
}
