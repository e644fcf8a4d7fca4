/**
 * Aggregates of a payload field read one key of each payload without JSON.parse
 * (src/store/sqlite/chunk-reads.ts payloadNumber): it must agree with JSON.parse on every payload
 * Tally can store (JSON.stringify output) and every field name.
 */
import { describe, expect, test } from 'vitest';
import { isPlainName, payloadNumber } from '../../src/store/sqlite/chunk-reads.js';
import { rng } from '../http/client.js';

/** What the aggregate counts: an own number field of an object payload. */
function reference(payload: string, name: string): number | null {
  const parsed = JSON.parse(payload) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const value = (parsed as Record<string, unknown>)[name];
  return typeof value === 'number' && Object.hasOwn(parsed, name) ? value : null;
}

const NAMES = ['temp', 't', 'a', 'temp2', 'te"mp', 'te\\mp', 'line\nbreak', 'ü', '😀', '', '0', 'length', 'measurement', '__proto__', 'x:y', 'temp ', '\ud800'];
const STRINGS = ['', 'temp', '"temp":1', 'a\\"b', '\\', '{"temp":5}', 'ü😀', '\u0000\u001f', '"', '\ud800x', ':', ',', '}'];

describe('payloadNumber: one key of a payload, without JSON.parse', () => {
  test('agrees with JSON.parse on generated payloads, nested keys, keys inside strings, every kind of value and name', () => {
    const random = rng(20261207);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const number = () =>
      random() < 0.5
        ? pick([0, -0, 1, -1, 21.5, -3.25e-7, 1e21, -1.7976931348623157e308, 5e-324, 123456789012345680000, 0.1 + 0.2, 999999999999999, 1234567890123456])
        : // Decimals of every scale and length: short ones take the fast path, long ones Number().
          Number(((random() - 0.5) * 10 ** Math.floor(random() * 16)).toFixed(Math.floor(random() * 12)));
    const value = (depth: number): unknown => {
      const kind = Math.floor(random() * (depth > 2 ? 5 : 7));
      if (kind === 0) return number();
      if (kind === 1) return pick(STRINGS);
      if (kind === 2) return pick([true, false, null]);
      if (kind === 3) return number();
      if (kind === 4) return pick(STRINGS) + String(number());
      if (kind === 5) return Array.from({ length: Math.floor(random() * 3) }, () => value(depth + 1));
      return object(depth + 1);
    };
    const object = (depth: number): Record<string, unknown> => {
      const out: Record<string, unknown> = {};
      const keys = Math.floor(random() * 5);
      for (let k = 0; k < keys; k++) out[random() < 0.6 ? pick(NAMES) : pick(STRINGS)] = value(depth);
      return out;
    };
    let checked = 0;
    let numbers = 0;
    for (let i = 0; i < 10_000; i++) {
      const payload = JSON.stringify(random() < 0.9 ? object(0) : value(0));
      for (const name of NAMES) {
        const expected = reference(payload, name);
        expect(payloadNumber(payload, name, isPlainName(name)), `${payload} [${JSON.stringify(name)}]`).toBe(expected);
        checked++;
        if (expected !== null) numbers++;
      }
    }
    expect(checked).toBe(10_000 * NAMES.length);
    expect(numbers).toBeGreaterThan(2_000); // the generator does reach numbers under the names asked for
  });

  test('cases by hand: the top-level key wins over nested ones and over text that looks like it', () => {
    const cases: Array<[unknown, string, number | null]> = [
      [{ temp: 21.5 }, 'temp', 21.5],
      [{ a: { temp: 1 }, temp: 2 }, 'temp', 2],
      [{ a: { temp: 1 } }, 'temp', null],
      [{ note: '"temp":7', temp: 3 }, 'temp', 3],
      [{ note: '"temp":7' }, 'temp', null],
      [{ temp: '21.5' }, 'temp', null],
      [{ temp: [1] }, 'temp', null],
      [{ temp: null }, 'temp', null],
      [{ tempo: 1, tem: 2 }, 'temp', null],
      [{ 'te"mp': 4 }, 'te"mp', 4],
      [{ list: [{ temp: 1 }, '}'], temp: -0.5 }, 'temp', -0.5],
      [[5], '0', null], // not an object: no fields
      ['text', 'length', null],
      [null, 'temp', null],
      [7, 'temp', null],
    ];
    for (const [payload, name, expected] of cases) {
      expect(payloadNumber(JSON.stringify(payload), name, isPlainName(name)), JSON.stringify([payload, name])).toBe(expected);
    }
  });
});
