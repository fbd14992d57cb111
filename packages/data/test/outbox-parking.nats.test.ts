import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { action, createLogger, createNode, createTransport, defineService, event, handle, on } from '@chassis/core';
import { dataExtension, listParkedOutbox, replayParkedOutbox } from '@chassis/data';
import { waitUntil } from '@chassis/testing';
import { z } from 'zod';
import { natsServerMissing, smallStreamNats } from './outbox/small-stream-nats.ts';

/** A sample's value in Prometheus text, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

it('a node parks an event NATS refuses for good: its other events go on, and the gauge, the counter and a warning show it until it is replayed', {
  skip: natsServerMissing,
}, async () => {
  // A nats-server of the test's own whose events stream refuses anything over 4 KiB.
  const nats = await smallStreamNats(4096);
  const suffix = randomBytes(3).toString('hex');
  const nodeId = `parking-${suffix}`;
  const sendReport = action(`reports-${suffix}.send`, {
    input: z.object({ reports: z.array(z.object({ id: z.string(), size: z.number().int() })) }),
    output: z.object({ sent: z.number().int() }),
  });
  const reportSent = event(`reports-${suffix}.report_sent`, z.object({ id: z.string(), text: z.string() }));
  const reports = defineService({
    name: sendReport.service,
    migrations: new URL('./fixtures/migrations/orders/', import.meta.url),
    uses: [reportSent],
    actions: [
      handle(sendReport, async (input, ctx) => {
        for (const { id, size } of input.reports) await ctx.emit(reportSent, { id, text: 'x'.repeat(size) });
        return { sent: input.reports.length };
      }),
    ],
  });
  const archived: string[] = [];
  const archive = defineService({
    name: `archive-${suffix}`,
    events: [
      on(reportSent, async ({ id }) => {
        archived.push(id);
      }),
    ],
  });
  const lines: string[] = [];
  const data = dataExtension({ url: 'pglite://memory', relayParkAfterAttempts: 2, relayPollIntervalMs: 50 });
  const node = createNode({
    services: [reports, archive],
    transport: await createTransport(nats.url, { nodeId }),
    logger: createLogger({ nodeId, destination: { write: (line) => lines.push(line) } }),
    extensions: [data],
  });
  await node.start();
  try {
    const send = (...reports: { id: string; size: number }[]) =>
      node.call(sendReport, { reports }, { timeoutMs: 60_000 });
    await send({ id: 'r-1', size: 10 });
    // Committed together: the relay finds the event behind the refused one at its first look.
    await send({ id: 'r-big', size: 8192 }, { id: 'r-2', size: 10 });
    await waitUntil(() => archived.includes('r-2'), { timeoutMs: 30_000, what: 'the event behind the refused one' });
    assert.deepEqual(archived, ['r-1', 'r-2']);

    const service = reports.name;
    // The relay publishes the event behind the refused one before its batch commits the parking: the
    // archive can have it first (seen on a loaded machine).
    let parkedRows: Awaited<ReturnType<typeof listParkedOutbox>> = [];
    await waitUntil(
      async () => {
        parkedRows = await listParkedOutbox(data.database, service);
        return parkedRows.length > 0;
      },
      { timeoutMs: 30_000, what: 'the refused event parked' },
    );
    const [parked, ...more] = parkedRows;
    assert.equal(more.length, 0);
    assert.equal(parked?.event, reportSent.name);
    // relayParkAfterAttempts (2), and the one more try after the event behind it went.
    assert.equal(parked?.attempts, 3);
    const metrics = await node.metrics.registry.metrics();
    assert.equal(sample(metrics, `chassis_outbox_parked{service="${service}"}`), 1);
    assert.equal(sample(metrics, `chassis_outbox_parked_total{service="${service}",event="${reportSent.name}"}`), 1);
    assert.equal(sample(metrics, `chassis_outbox_pending{service="${service}"}`), 0, 'a parked event is not pending');
    const warning = lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((entry) => entry.level === 'warn' && entry.outboxId === parked?.id);
    assert.ok(warning, 'a warning names the parked row');
    assert.equal(warning.event, reportSent.name);
    assert.equal(warning.messageId, parked?.messageId);
    assert.match(String(warning.lastError), /refused by JetStream/);
    assert.match(String(warning.msg), /replayParkedOutbox/);

    await nats.raiseLimit(64 * 1024);
    assert.equal(await replayParkedOutbox(data.database, service, 'all'), 1);
    await waitUntil(() => archived.includes('r-big'), { timeoutMs: 30_000, what: 'the replayed event' });
    assert.deepEqual(archived, ['r-1', 'r-2', 'r-big']);
    const after = await node.metrics.registry.metrics();
    assert.equal(sample(after, `chassis_outbox_parked{service="${service}"}`), 0);
  } finally {
    await node.stop();
    await nats.stop();
  }
});
