/**
 * One instance of the inbox test's consumer, in its own process so that the test can pause (SIGSTOP)
 * or kill (SIGKILL) it: a node with the data extension whose handler writes an effect row in its unit
 * of work and then holds the unit open until the test says `release`. Two of these, same service, same
 * database, are the two instances a duplicate delivery lands on.
 *
 * Env: DATABASE_URL, TRANSPORT (`nats://…` or `amqp://…`), SUFFIX, ACK_WAIT_MS (NATS).
 * Lines out: `ready`; `received <id>` (the handler began: the inbox's pre-check let the delivery through);
 * `holding <id>` (its effect is written, not committed); `finished <id> ok|error` (the whole run is over,
 * the data extension's commit or rollback included). Line in: `release` lets held handlers go on, now
 * and from then on.
 */
import { writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createNode, createTransport, type NodeExtension } from '@chassis/core';
import { database, dataExtension } from '@chassis/data';
import { type EffectsTables, inboxService } from './service.ts';

const env = process.env;
// Synchronous: the test may stop or kill the process right after reading a line.
const say = (line: string) => writeSync(1, `${line}\n`);

let released = false;
const waiting: (() => void)[] = [];
const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  if (line !== 'release') return;
  released = true;
  for (const go of waiting.splice(0)) go();
});
// The test is gone (it closed our stdin, or died): so are we, rather than hold a database open.
commands.on('close', () => process.exit(0));
const release = () => (released ? Promise.resolve() : new Promise<void>((go) => waiting.push(go)));

// Outermost: it sees the end of the run after the data extension has committed or rolled back.
const report: NodeExtension = {
  name: 'report',
  async around(invocation, next) {
    try {
      const result = await next();
      say(`finished ${invocation.ctx.messageId} ok`);
      return result;
    } catch (error) {
      say(`finished ${invocation.ctx.messageId} error`);
      throw error;
    }
  },
};

const service = inboxService(env.SUFFIX!, async (ctx) => {
  say(`received ${ctx.messageId}`);
  const db = await database<EffectsTables>(ctx);
  await db.insertInto('effects').values({ message_id: ctx.messageId, pid: process.pid }).execute();
  say(`holding ${ctx.messageId}`);
  await release();
});

const node = createNode({
  services: [service],
  transport: await createTransport(env.TRANSPORT!, { nats: { ackWaitMs: Number(env.ACK_WAIT_MS ?? 2000) } }),
  extensions: [report, dataExtension({ url: env.DATABASE_URL! })],
  logLevel: 'silent',
});
await node.start();
say('ready');
