import { type Context, defineService, event, on } from '@chassis/core';
import { z } from 'zod';

export interface EffectsTables {
  effects: { message_id: string; pid: number };
}

/** The consuming service and the event it handles; SUFFIX keeps runs on the shared brokers apart. */
export function inboxNames(suffix: string) {
  return { service: `inbox-${suffix}`, event: `inbox-src-${suffix}.happened` };
}

export function inboxService(suffix: string, run: (ctx: Context) => Promise<void>) {
  const names = inboxNames(suffix);
  const happened = event(names.event, z.object({ n: z.number().int() }));
  return defineService({
    name: names.service,
    migrations: new URL('../fixtures/migrations/effects/', import.meta.url),
    events: [
      on(happened, (_payload, ctx) => run(ctx), {
        // One delivery at a time per instance: a second delivery of the same event must go to the other one.
        prefetch: 1,
        // A paused instance must not time its handler out when it resumes.
        timeoutMs: 300_000,
        maxDeliveries: 20,
      }),
    ],
  });
}
