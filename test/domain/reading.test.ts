import { describe, expect, test } from 'vitest';
import { validationError } from './expect-validation.js';
import {
  LIMITS,
  checkCount,
  checkDeviceId,
  checkUuid,
  serializePayload,
} from '../../src/domain/reading.js';


/** An object nested `depth` levels deep: depth 1 is `{}`, depth 2 is `{ a: {} }`. */
function nested(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = {};
  for (let i = 1; i < depth; i++) value = { a: value };
  return value;
}

describe('checkDeviceId', () => {
  test('returns a valid id unchanged', () => {
    expect(checkDeviceId('sensor-1', 'device_id')).toBe('sensor-1');
    expect(checkDeviceId('x', 'device_id')).toBe('x');
    expect(checkDeviceId('Zähler 7 / Küche', 'device_id')).toBe('Zähler 7 / Küche');
    expect(checkDeviceId(' padded ', 'device_id')).toBe(' padded ');
  });

  test('length counts characters, not UTF-16 units: 256 emoji are accepted, 257 are not', () => {
    expect(checkDeviceId('😀'.repeat(256), 'device_id')).toBe('😀'.repeat(256));
    expect(validationError(() => checkDeviceId('😀'.repeat(257), 'device_id'), 'device_id').message).toMatch(/1-256/);
  });

  test('a lone surrogate is refused (it would not round-trip through UTF-8)', () => {
    expect(validationError(() => checkDeviceId('a\ud800', 'device_id'), 'device_id').message).toMatch(/well-formed/);
    expect(validationError(() => checkDeviceId('\udc00b', 'device_id'), 'device_id').message).toMatch(/well-formed/);
  });

  test('256 characters is the longest accepted', () => {
    const id = 'd'.repeat(256);
    expect(LIMITS.deviceIdMaxLength).toBe(256);
    expect(checkDeviceId(id, 'device_id')).toBe(id);
  });

  test('empty and 257 characters are rejected', () => {
    expect(validationError(() => checkDeviceId('', 'device_id'), 'device_id').message).toMatch(/1-256/);
    expect(validationError(() => checkDeviceId('d'.repeat(257), 'device_id'), 'device_id').message).toMatch(/1-256/);
  });

  test.each([
    ['NUL', 'a\u0000b'],
    ['newline', 'a\nb'],
    ['carriage return', 'a\rb'],
    ['tab', '\tab'],
    ['escape', 'ab\u001b'],
    ['unit separator', 'a\u001fb'],
    ['DEL', 'a\u007fb'],
    ['NEL (C1)', 'a\u0085b'],
    ['C1 0x9f', 'a\u009fb'],
  ])('control character rejected: %s', (_name, id) => {
    const error = validationError(() => checkDeviceId(id, 'readings[2].device_id'), 'readings[2].device_id');
    expect(error.message).toMatch(/control/);
  });

  test('the characters just outside the control ranges are accepted', () => {
    expect(checkDeviceId('a\u0020b~\u00a0', 'id')).toBe('a\u0020b~\u00a0');
  });

  test.each([[42], [null], [undefined], [{}], [['a']], [true]])('non-string rejected: %j', (value) => {
    expect(validationError(() => checkDeviceId(value, 'id'), 'id').message).toMatch(/string/);
  });
});

describe('checkUuid', () => {
  test('lower-cases a valid UUID', () => {
    expect(checkUuid('063C5957-8905-45F9-BFE3-960713788919', 'id')).toBe('063c5957-8905-45f9-bfe3-960713788919');
    expect(checkUuid('063c5957-8905-45f9-bfe3-960713788919', 'id')).toBe('063c5957-8905-45f9-bfe3-960713788919');
    expect(checkUuid('AbCdEf01-2345-6789-abcd-ef0123456789', 'id')).toBe('abcdef01-2345-6789-abcd-ef0123456789');
  });

  test.each([
    [''],
    ['063c5957890545f9bfe3960713788919'],
    ['{063c5957-8905-45f9-bfe3-960713788919}'],
    ['063c5957-8905-45f9-bfe3-96071378891'],
    ['063c5957-8905-45f9-bfe3-9607137889190'],
    ['063c5957-8905-45f9-bfe3-96071378891g'],
    [' 063c5957-8905-45f9-bfe3-960713788919'],
    ['063c5957-8905-45f9-bfe3-960713788919\n'],
    ['063c5957_8905_45f9_bfe3_960713788919'],
    ['not-a-uuid'],
    [42],
    [null],
    [undefined],
  ])('rejects %j', (value) => {
    expect(validationError(() => checkUuid(value, 'id'), 'id').message).toMatch(/UUID/);
  });
});

describe('checkCount', () => {
  test('non-negative accepts 0 and positive integers', () => {
    expect(checkCount(0, 'count', { positive: false })).toBe(0);
    expect(checkCount(1, 'count', { positive: false })).toBe(1);
    expect(checkCount(123_456, 'count', { positive: false })).toBe(123_456);
  });

  test('positive rejects 0, accepts 1', () => {
    expect(validationError(() => checkCount(0, 'count', { positive: true }), 'count').message).toMatch(/greater than 0/);
    expect(checkCount(1, 'count', { positive: true })).toBe(1);
  });

  test('negative numbers are rejected in both modes', () => {
    expect(validationError(() => checkCount(-1, 'count', { positive: false }), 'count').message).toMatch(/0 or greater/);
    expect(validationError(() => checkCount(-1, 'count', { positive: true }), 'count').message).toMatch(/greater than 0/);
  });

  test('maxCount is accepted, one more is rejected', () => {
    expect(LIMITS.maxCount).toBe(2_147_483_647);
    expect(checkCount(LIMITS.maxCount, 'count', { positive: true })).toBe(2_147_483_647);
    expect(validationError(() => checkCount(LIMITS.maxCount + 1, 'count', { positive: false }), 'count').message).toMatch(
      /at most 2147483647/,
    );
    validationError(() => checkCount(Number.MAX_SAFE_INTEGER, 'count', { positive: false }), 'count');
  });

  test.each([[1.5], [0.1], [Number.NaN], [Number.POSITIVE_INFINITY], ['5'], ['0'], [null], [true], [[5]], [{}]])(
    'rejects %j as not an integer',
    (value) => {
      const error = validationError(() => checkCount(value, 'readings[1].count', { positive: false }), 'readings[1].count');
      expect(error.message).toMatch(/integer/);
    },
  );
});

describe('serializePayload', () => {
  test('returns the JSON text of an object', () => {
    expect(serializePayload({ temp: 21.5, ok: true, tags: ['a', 'b'], nested: { n: null } }, 'payload')).toBe(
      '{"temp":21.5,"ok":true,"tags":["a","b"],"nested":{"n":null}}',
    );
    expect(serializePayload({}, 'payload')).toBe('{}');
  });

  test.each([[[]], [[1, 2]], [null], [undefined], ['{}'], [42], [true]])('rejects a non-object: %j', (value) => {
    expect(validationError(() => serializePayload(value, 'data_payload'), 'data_payload').message).toMatch(/JSON object/);
  });

  test('depth exactly 32 is accepted, 33 is rejected', () => {
    expect(LIMITS.payloadMaxDepth).toBe(32);
    const ok = serializePayload(nested(32), 'payload');
    expect(ok).toBe('{"a":'.repeat(31) + '{}' + '}'.repeat(31));
    expect(validationError(() => serializePayload(nested(33), 'payload'), 'payload').message).toMatch(/deeper than 32/);
  });

  test('arrays count toward the depth', () => {
    // { a: [ [ ... ] ] }: the object is level 1, each array one more level.
    const build = (arrays: number) => {
      let inner: unknown = 1;
      for (let i = 0; i < arrays; i++) inner = [inner];
      return { a: inner };
    };
    expect(serializePayload(build(31), 'payload')).toBe('{"a":' + '['.repeat(31) + '1' + ']'.repeat(31) + '}');
    validationError(() => serializePayload(build(32), 'payload'), 'payload');
  });

  test('a deep branch next to shallow ones is found', () => {
    validationError(() => serializePayload({ a: 1, b: { c: 2 }, d: nested(32), e: 'x' }, 'payload'), 'payload');
    expect(() => serializePayload({ a: 1, b: { c: 2 }, d: nested(31), e: 'x' }, 'payload')).not.toThrow();
  });

  test('a 100,000-deep object is rejected without exhausting the stack', () => {
    const error = validationError(() => serializePayload(nested(100_000), 'payload'), 'payload');
    expect(error.message).toMatch(/deeper than 32/);
  });

  test('a self-referencing object is rejected as too deep, not looped on', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    validationError(() => serializePayload(cyclic, 'payload'), 'payload');
  });

  test('exactly 64 KiB of JSON is accepted, one byte more is rejected', () => {
    expect(LIMITS.payloadMaxBytes).toBe(65_536);
    // {"s":"..."} is 8 bytes around the string.
    const exact = { s: 'x'.repeat(65_536 - 8) };
    expect(serializePayload(exact, 'payload')).toHaveLength(65_536);
    const over = { s: 'x'.repeat(65_536 - 7) };
    expect(validationError(() => serializePayload(over, 'payload'), 'payload').message).toMatch(/65536 bytes/);
  });

  test('size is measured in UTF-8 bytes, not characters', () => {
    // 'é' is one UTF-16 unit and two UTF-8 bytes: 33,000 of them are 66,008 bytes in 33,008 characters.
    const twoByte = { s: 'é'.repeat(33_000) };
    expect(JSON.stringify(twoByte).length).toBeLessThan(65_536);
    validationError(() => serializePayload(twoByte, 'payload'), 'payload');
    // '€' is three bytes: 21,842 of them plus 8 bytes of JSON is 65,534 bytes: accepted.
    const threeByte = { s: '€'.repeat(21_842) };
    expect(Buffer.byteLength(serializePayload(threeByte, 'payload'))).toBe(65_534);
    // One more '€' is 65,537 bytes: rejected.
    validationError(() => serializePayload({ s: '€'.repeat(21_843) }, 'payload'), 'payload');
    // An emoji is two UTF-16 units and four bytes: 16,382 of them are 65,536 bytes exactly.
    expect(Buffer.byteLength(serializePayload({ s: '😀'.repeat(16_382) }, 'payload'))).toBe(65_536);
    validationError(() => serializePayload({ s: '😀'.repeat(16_383) }, 'payload'), 'payload');
  });

  test('just under the limit with multi-byte characters near the fast-path threshold is accepted', () => {
    // 21,846 ASCII characters * 3 > 65,536, so the exact byte count is taken, and it is small.
    const text = serializePayload({ s: 'a'.repeat(21_846) }, 'payload');
    expect(text).toHaveLength(21_854);
  });
});
