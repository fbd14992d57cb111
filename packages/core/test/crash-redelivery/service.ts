import { type Context, defineService, event, on } from '@chassis/core';
import { z } from 'zod';

/** The consuming service's names; SUFFIX keeps runs on the shared brokers apart. */
export function crashNames(suffix: string) {
  const service = `crash-${suffix}`;
  return { service, event: `crash-src-${suffix}.happened`, subscription: `${service}.happened` };
}

export function crashingService(suffix: string, maxDeliveries: number, run: (ctx: Context) => void) {
  const names = crashNames(suffix);
  const happened = event(names.event, z.object({ n: z.number().int() }));
  return defineService({
    name: names.service,
    events: [on(happened, async (_payload, ctx) => run(ctx), { prefetch: 1, maxDeliveries })],
  });
}
