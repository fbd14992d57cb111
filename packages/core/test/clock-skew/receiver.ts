/**
 * The receiving node of the clock-skew test, in its own process so its clock can be shifted (run with
 * `--import ./shift-clock.ts`). Prints `ready`, then `aborted <id>` or `finished <id>` per slow call.
 * Service names carry SUFFIX so runs never share queues.
 */
import { runNode } from '@chassis/core';
import { skewService } from './services.ts';

const suffix = process.env.SUFFIX ?? 'x';
const node = await runNode({
  services: [skewService(suffix, (id, how) => process.stdout.write(`${how} ${id}\n`))],
  env: { ...process.env, NODE_ID: `skewed-${process.pid}` },
});
process.stdout.write(`ready ${node.id}\n`);
