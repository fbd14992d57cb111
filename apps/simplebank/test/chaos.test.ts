import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Database, sql } from '@chassis/data';
import {
  freePort,
  postgresTarget,
  requestJson,
  restartNats,
  restartPostgres,
  servers,
  skipUnlessUp,
} from '@chassis/testing';
import { type DistributedSimplebank, launchDistributed } from '../src/launcher.ts';
import { removeBrokerState } from './broker.ts';
import { settleAndCheckInvariants } from './invariants.ts';

const postgres = await postgresTarget();
const skip = postgres.skip || (await skipUnlessUp('nats'));

/**
 * Chaos on the distributed topology (separate processes over NATS and PostgreSQL): while orders stream
 * in, random service processes are SIGKILLed and restarted, the broker is restarted once and the
 * database once; then every accepted order must reach a terminal status and every invariant of the spec
 * must hold.
 */
describe('SimpleBank under chaos: SIGKILLed processes, a broker and a database restart while orders stream in', {
  skip,
}, () => {
  let bank: DistributedSimplebank;
  let database: Database;
  const log: string[] = [];
  before(async () => {
    await removeBrokerState(servers.nats.url);
    const databaseUrl = await postgres.newDatabase();
    database = await Database.open(databaseUrl);
    process.env.ORDERS_STALE_AFTER_MS = '5000';
    bank = await launchDistributed({
      transport: servers.nats.url,
      databaseUrl,
      port: await freePort(),
      exchangePort: await freePort(),
      output: (line) => log.push(line),
    });
  });
  after(async () => {
    await bank?.stop();
    await database?.close();
    await postgres.cleanup();
    await removeBrokerState(servers.nats.url);
  });

  it('every accepted order ends, nothing is lost or applied twice', { timeout: 280_000 }, async () => {
    const tokens: Record<string, string> = {};
    for (const user of ['alice', 'bob']) {
      const issued = await requestJson(bank.url, 'POST', '/auth/token', {
        username: user,
        password: `${user}-password`,
      });
      tokens[user] = String(issued.body.access_token);
    }
    const accepted: string[] = [];
    const refusals: Record<string, number> = {};
    let failed = 0;
    const orders = [
      { user: 'alice', side: 'sell', body: { accountId: '101', symbol: 'GOOG', quantity: 1 } },
      { user: 'bob', side: 'buy', body: { accountId: '102', symbol: 'ABC', quantity: 2 } },
      { user: 'alice', side: 'buy', body: { accountId: '101', symbol: 'BHP', quantity: 1 } },
    ] as const;
    let streaming = true;
    const stream = (async () => {
      for (let i = 0; streaming; i++) {
        const { user, side, body } = orders[i % orders.length]!;
        try {
          const answer = await requestJson(bank.url, 'POST', `/shares/${side}`, body, tokens[user]);
          if (answer.status === 202) accepted.push(String(answer.body.orderId));
          else {
            const why = `${answer.status} ${(answer.body.error as { code?: string } | undefined)?.code ?? ''}`;
            refusals[why] = (refusals[why] ?? 0) + 1;
          }
        } catch {
          failed++; // the edge process is down: the client would retry later
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    // CHAOS_VICTIMS=ledger,edge picks from those only, to reproduce a run that failed (its message names them).
    const victims = process.env.CHAOS_VICTIMS?.split(',') ?? [
      'orders-1',
      'orders-2',
      'market-1',
      'market-2',
      'ledger',
      'edge',
    ];
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const killed: string[] = [];
    try {
      for (let round = 0; round < 5; round++) {
        await pause(3000);
        const victim = victims[Math.floor(Math.random() * victims.length)]!;
        killed.push(victim);
        await bank.kill(victim);
        await pause(500 + Math.random() * 1500);
        await bank.start(victim);
        if (round === 2) await restartNats({ downMs: 1000 });
        if (round === 3) await restartPostgres({ downMs: 1000 });
      }
      // A process that was down (the ledger has one instance) refused orders meanwhile: keep streaming
      // until enough orders went in for the check to mean something.
      const until = Date.now() + 60_000;
      do await pause(3000);
      while (accepted.length < 50 && Date.now() < until);
    } finally {
      streaming = false;
      await stream;
    }
    const refused = JSON.stringify(refusals);
    assert.ok(
      accepted.length >= 50,
      `orders streamed in (${accepted.length} accepted, refused: ${refused}, ${failed} failed; killed ${killed.join(', ')})`,
    );
    try {
      await settleAndCheckInvariants(database, { timeoutMs: 150_000 });
    } catch (error) {
      // The failure's message is what a CI summary shows: it carries what the run did, every dead letter the
      // processes logged, and their last lines.
      const deadLetters = log.filter((line) => /dead-letter/i.test(line));
      (error as Error).message +=
        `\nkilled ${killed.join(', ')}; accepted ${accepted.length}, refused ${refused}, failed ${failed}` +
        `\ndead letters logged: ${deadLetters.length}\n${deadLetters.slice(0, 20).join('\n')}` +
        `\nthe processes' last lines:\n${log.slice(-60).join('\n')}`;
      throw error;
    }
    const { rows } = await sql<{ order_id: string; status: string }>`
      select order_id, status from "customer-orders".order_summaries`.execute(database.kysely);
    const ends = new Map(rows.map((row) => [row.order_id, row.status]));
    for (const id of accepted) {
      assert.ok(['completed', 'failed'].includes(ends.get(id) ?? ''), `accepted order ${id} ended: ${ends.get(id)}`);
    }
    const statuses: Record<string, number> = {};
    for (const row of rows) statuses[row.status] = (statuses[row.status] ?? 0) + 1;
    console.log(
      `chaos: killed ${killed.join(', ')} and restarted NATS and PostgreSQL; ${accepted.length} orders accepted (${refused} refused, ${failed} not reached); ends: ${JSON.stringify(statuses)}`,
    );
  });
});
