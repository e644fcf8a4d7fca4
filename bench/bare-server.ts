/**
 * The HTTP ceiling: a bare Fastify server that parses the same JSON (and NDJSON) bodies Tally gets
 * and answers without validating or storing anything. Listens on 127.0.0.1:$BARE_PORT (default 0) and
 * prints its address on stdout.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false, bodyLimit: 4 * 1024 * 1024 });

app.get('/api/ping', async () => ({ status: 'ok' }));
app.post('/api/device-readings/create', async (_request, reply) => reply.code(202).send({ status: 'accepted' }));
// NDJSON for /v1/readings: the whole body, split into lines, each line parsed.
app.addContentTypeParser('application/x-ndjson', { parseAs: 'string' }, (_request, body, done) => {
  try {
    done(null, (body as string).split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as unknown));
  } catch (error) {
    done(error as Error, undefined);
  }
});
app.post('/v1/readings', async (request) => ({ accepted: (request.body as unknown[]).length, duplicates: 0, rejected: [] }));

const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.BARE_PORT ?? 0) });
process.stdout.write(`${address}\n`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void app.close().then(() => process.exit(0)));
}
