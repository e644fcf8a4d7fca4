/**
 * The HTTP server's own settings: TLS (with a certificate this test makes), the header size limit,
 * timeouts reaching Node's server, and the ConfigErrors of bad values. Slow clients and the
 * connection cap under attack: test/hostile/slowloris.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/app/config.js';
import { startTally, tempDir } from '../helpers.js';

const certs = tempDir('tally-tls-');
const CERT = join(certs.dir, 'cert.pem');
const KEY = join(certs.dir, 'key.pem');

beforeAll(() => {
  // A self-signed P-256 certificate for 127.0.0.1, made fresh for this run.
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', KEY, '-out', CERT, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' });
});
afterAll(() => certs.cleanup());

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('settings', () => {
  test('each reaches the configuration', () => {
    const config = loadConfig({
      TALLY_RATE_ADDRESS: '50/s,burst=100',
      TALLY_HEADERS_TIMEOUT: '5s',
      TALLY_REQUEST_TIMEOUT: 'off',
      TALLY_KEEPALIVE_TIMEOUT: '5s',
      TALLY_MAX_HEADER_SIZE: '32KiB',
      TALLY_MAX_CONNECTIONS: '200',
      TALLY_TLS_CERT: CERT,
      TALLY_TLS_KEY: KEY,
    });
    expect(config.http).toEqual({
      rateAddress: { perSecond: 50, burst: 100 },
      headersTimeoutMs: 5000,
      requestTimeoutMs: 0,
      keepAliveTimeoutMs: 5000,
      maxHeaderBytes: 32768,
      maxConnections: 200,
      tls: { cert: readFileSync(CERT), key: readFileSync(KEY) },
    });
  });

  test.each([
    [{ TALLY_TLS_CERT: 'x.pem' }, /TALLY_TLS_CERT and TALLY_TLS_KEY go together/],
    [{ TALLY_TLS_KEY: 'x.pem' }, /TALLY_TLS_CERT and TALLY_TLS_KEY go together/],
    [{ TALLY_TLS_CERT: '/nonexistent/cert.pem', TALLY_TLS_KEY: '/nonexistent/key.pem' }, /TALLY_TLS_CERT: cannot read "\/nonexistent\/cert.pem"/],
    [{ TALLY_RATE_ADDRESS: 'lots' }, /TALLY_RATE_ADDRESS must be a rate/],
    [{ TALLY_HEADERS_TIMEOUT: '10' }, /TALLY_HEADERS_TIMEOUT must be a duration/],
    [{ TALLY_HEADERS_TIMEOUT: '50ms' }, /TALLY_HEADERS_TIMEOUT must be between 100ms and 24h/],
    [{ TALLY_HEADERS_TIMEOUT: 'off' }, /TALLY_HEADERS_TIMEOUT must be a duration/],
    [{ TALLY_HEADERS_TIMEOUT: '30s', TALLY_REQUEST_TIMEOUT: '20s' }, /TALLY_HEADERS_TIMEOUT \(30s\) must not be longer than TALLY_REQUEST_TIMEOUT \(20s\)/],
    [{ TALLY_MAX_HEADER_SIZE: '1KiB' }, /TALLY_MAX_HEADER_SIZE must be a size between 4KiB and 1024KiB/],
    [{ TALLY_MAX_HEADER_SIZE: '1MB' }, /TALLY_MAX_HEADER_SIZE must be a size/],
    [{ TALLY_MAX_CONNECTIONS: '0' }, /TALLY_MAX_CONNECTIONS must be a whole number between 1 and 1000000/],
    [{ TALLY_KEEPALIVE_TIMEOUT: 'forever' }, /TALLY_KEEPALIVE_TIMEOUT must be a duration/],
  ])('%j is refused', (env, message) => expect(configError(env)).toMatch(message));

  test('a key file that is not a key, or not the certificate\'s, is a ConfigError', () => {
    const notPem = join(certs.dir, 'not.pem');
    writeFileSync(notPem, 'not a key');
    expect(configError({ TALLY_TLS_CERT: CERT, TALLY_TLS_KEY: notPem })).toMatch(/TALLY_TLS_CERT and TALLY_TLS_KEY are not a usable certificate and key/);
    const otherKey = join(certs.dir, 'other-key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', otherKey], { stdio: 'ignore' });
    expect(configError({ TALLY_TLS_CERT: CERT, TALLY_TLS_KEY: otherKey })).toMatch(/not a usable certificate and key.*key values mismatch/);
  });
});

describe('the server', () => {
  let t: Awaited<ReturnType<typeof startTally>>;
  let address: string;
  beforeAll(async () => {
    t = await startTally({ TALLY_TLS_CERT: CERT, TALLY_TLS_KEY: KEY, TALLY_HEADERS_TIMEOUT: '3s', TALLY_KEEPALIVE_TIMEOUT: '4s', TALLY_MAX_CONNECTIONS: '77' });
    address = await t.tally.listen();
  });
  afterAll(() => t.stop());

  /** One HTTPS request trusting only the test's certificate. */
  function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(new URL(path, address), { ca: readFileSync(CERT), headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  test('serves HTTPS with the configured certificate', async () => {
    expect(address).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await get('/api/ping')).toEqual({ status: 200, body: '{"status":"ok"}' });
  });

  test('a client that does not trust the certificate is refused by TLS', async () => {
    const err = await new Promise<Error>((resolve) => {
      const req = httpsRequest(new URL('/api/ping', address), { agent: false }, () => resolve(new Error('answered')));
      req.on('error', resolve);
      req.end();
    });
    expect(err.message).toMatch(/self[- ]signed/i);
  });

  test('plain HTTP on the HTTPS port gets no HTTP answer', async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(new URL(address).port), '127.0.0.1');
      let got = '';
      socket.on('data', (c) => (got += c.toString('latin1')));
      socket.on('close', () => resolve(got));
      socket.on('error', () => resolve(got));
      socket.write('GET /api/ping HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    expect(answer).not.toContain('{"status":"ok"}');
  });

  test('a request head over TALLY_MAX_HEADER_SIZE (16 KiB) is a 431; one under it is served', async () => {
    expect((await get('/api/ping', { 'x-padding': 'a'.repeat(14_000) })).status).toBe(200);
    expect((await get('/api/ping', { 'x-padding': 'a'.repeat(17_000) })).status).toBe(431);
  });

  test("the timeouts and the cap are the Node server's", () => {
    const server = t.tally.server.server as unknown as { headersTimeout: number; keepAliveTimeout: number; requestTimeout: number; maxConnections: number };
    expect(server).toMatchObject({ headersTimeout: 3000, keepAliveTimeout: 4000, requestTimeout: 120_000, maxConnections: 77 });
  });
});
