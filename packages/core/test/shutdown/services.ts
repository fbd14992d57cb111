import { setTimeout as sleep } from 'node:timers/promises';
import { action, defineService, event, handle, on } from '@chassis/core';
import { z } from 'zod';

export function workerContracts(suffix: string) {
  return {
    work: action(`worker-${suffix}.work`, {
      input: z.object({ n: z.number() }),
      output: z.object({ n: z.number(), node: z.string() }),
    }),
    jobQueued: event(`producer-${suffix}.job_queued`, z.object({ id: z.string() })),
  };
}

/** The worker service: a slow action, and a job handler that reports what it handled. */
export function workerServices(suffix: string, handled: (id: string) => void, slowWork: () => Promise<unknown>) {
  const { work, jobQueued } = workerContracts(suffix);
  return [
    defineService({
      name: `worker-${suffix}`,
      actions: [
        handle(work, async ({ n }, ctx) => {
          await slowWork();
          return { n, node: ctx.nodeId };
        }),
      ],
      events: [
        on(
          jobQueued,
          async ({ id }) => {
            await sleep(20);
            handled(id);
          },
          { prefetch: 5 },
        ),
      ],
    }),
  ];
}
