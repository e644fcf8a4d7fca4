import type { FastifyPluginCallback } from 'fastify';
import { Type } from 'typebox';
import type { Health } from '../../observability/health.js';
import { errorReplies, reply as doc, TallyErrorForm } from '../docs.js';

/** What the operations routes read: the metrics' exposition and the health checks. */
export interface OperationsDeps {
  readonly scrape: () => Promise<{ contentType: string; body: string }>;
  readonly health: Health;
}

const tags = ['operations'];

const Liveness = Type.Object({
  status: Type.String(),
  uptimeSeconds: Type.Integer(),
  eventLoopDelayMs: Type.Object({ mean: Type.Number(), p99: Type.Number(), max: Type.Number() }),
});
const Readiness = Type.Object({ status: Type.String(), reasons: Type.Optional(Type.Array(Type.String())) });

/**
 * For operators and their tools: Prometheus metrics, liveness and readiness. The probes are open
 * (no key, for load balancers and orchestrators); metrics need a read key that is not bound to
 * devices. Cheap to call; none of them writes.
 */
export const operationsSurface: FastifyPluginCallback<OperationsDeps> = (app, deps, done) => {
  app.get(
    '/metrics',
    {
      config: { access: 'read', fleet: true },
      schema: {
        tags,
        summary: 'Prometheus metrics (text exposition format)',
        description: 'Counters, gauges and histograms named tally_*, and Node.js process metrics. See README, "Operating Tally".',
        response: {
          200: {
            description: 'The metrics',
            content: { 'text/plain': { schema: { type: 'string', examples: ['tally_readings_accepted_total{transport="http",surface="v1"} 42\n'] } } },
          },
          ...errorReplies(TallyErrorForm, []),
        },
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await deps.scrape();
      return reply.type(contentType).send(body);
    },
  );

  app.get(
    '/healthz',
    {
      config: { access: 'open' },
      schema: {
        tags,
        summary: 'Liveness: the process answers; how late its event loop runs',
        description: 'Always 200 while the process can answer. eventLoopDelayMs covers the time since the previous call.',
        response: {
          200: doc('Alive', Liveness, { status: 'ok', uptimeSeconds: 3600, eventLoopDelayMs: { mean: 10.2, p99: 12.1, max: 15.3 } }),
        },
      },
    },
    async () => deps.health.liveness(),
  );

  app.get(
    '/readyz',
    {
      config: { access: 'open' },
      schema: {
        tags,
        summary: 'Readiness: a write sent now could be taken',
        description:
          'Ready when the store can start a write, the write queue is below its limit and, when MQTT is configured, every ' +
          'connection to the broker is up. Otherwise 503 with the reasons.',
        response: {
          200: doc('Ready', Readiness, { status: 'ready' }),
          503: doc('Not ready, and why', Readiness, { status: 'not ready', reasons: ['store: SQLite write failed: database is locked'] }),
        },
      },
    },
    async (_request, reply) => {
      const readiness = await deps.health.readiness();
      return reply.code(readiness.status === 'ready' ? 200 : 503).send(readiness);
    },
  );

  done();
};
