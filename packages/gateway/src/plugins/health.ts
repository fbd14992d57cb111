import type { ChassisNode } from '@chassis/core';
import type { FastifyPluginCallback, FastifyReply } from 'fastify';

export interface HealthOptions {
  node: ChassisNode;
}

/** `/health/live` and `/health/ready`: the node's reports, never rate limited. */
export const health: FastifyPluginCallback<HealthOptions> = (app, { node }, done) => {
  app.get('/health/live', { config: { rateLimit: false } }, (_request, reply) => report(reply, () => node.liveness()));
  app.get('/health/ready', { config: { rateLimit: false } }, (_request, reply) =>
    report(reply, () => node.readiness()),
  );
  done();
};

async function report(reply: FastifyReply, check: () => Promise<{ status: string }>) {
  const result = await check();
  return reply
    .status(result.status === 'fail' ? 503 : 200)
    .type('application/health+json')
    .send(result);
}
