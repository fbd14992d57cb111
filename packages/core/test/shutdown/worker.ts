/**
 * A node in its own process, for the shutdown test: it serves `work` (100 ms) and handles `job_queued`
 * (20 ms), printing one line per handled job, and drains on SIGTERM as any `runNode` program does.
 * Service names carry SUFFIX so runs never share queues.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { runNode } from '@chassis/core';
import { workerServices } from './services.ts';

const suffix = process.env.SUFFIX ?? 'x';
const node = await runNode({
  services: workerServices(
    suffix,
    (id) => process.stdout.write(`handled ${id}\n`),
    () => sleep(100),
  ),
  env: { ...process.env, NODE_ID: `worker-${process.pid}` },
});
process.stdout.write(`ready ${node.id}\n`);
