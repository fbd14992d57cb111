import { setTimeout as sleep } from 'node:timers/promises';
import { action, defineService, handle } from '@chassis/core';
import { z } from 'zod';

export function skewContracts(suffix: string) {
  return {
    /** Answers with the receiver's clock and the time it saw left for the call. */
    clock: action(`skew-${suffix}.clock`, {
      input: z.object({}),
      output: z.object({ now: z.number(), remainingMs: z.number() }),
    }),
    /** Sleeps `ms` unless its signal aborts first; tells which through `outcome`. */
    slow: action(`skew-${suffix}.slow`, {
      input: z.object({ id: z.string(), ms: z.number().int().nonnegative() }),
      output: z.object({}),
    }),
  };
}

/** The receiving service; `outcome(id, 'aborted' | 'finished')` reports how each slow call ended. */
export function skewService(suffix: string, outcome: (id: string, how: 'aborted' | 'finished') => void) {
  const { clock, slow } = skewContracts(suffix);
  return defineService({
    name: `skew-${suffix}`,
    actions: [
      handle(clock, (_input, ctx) => ({ now: Date.now(), remainingMs: ctx.remainingMs() })),
      handle(slow, async ({ id, ms }, ctx) => {
        try {
          await sleep(ms, undefined, { signal: ctx.signal });
          outcome(id, 'finished');
        } catch {
          outcome(id, 'aborted');
        }
        return {};
      }),
    ],
  });
}
