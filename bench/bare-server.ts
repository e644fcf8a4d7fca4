/**
 * The HTTP ceiling: a bare Fastify server that parses the same JSON bodies Tally gets and answers
 * 202 without validating or storing anything. Listens on 127.0.0.1:$BARE_PORT (default 0) and
 * prints its address on stdout.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false, bodyLimit: 4 * 1024 * 1024 });

app.get('/api/ping', async () => ({ status: 'ok' }));
app.post('/api/device-readings/create', async (_request, reply) => reply.code(202).send({ status: 'accepted' }));

const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.BARE_PORT ?? 0) });
process.stdout.write(`${address}\n`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void app.close().then(() => process.exit(0)));
}
