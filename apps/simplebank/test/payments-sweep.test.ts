import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from '@chassis/data';
import { requestJson, waitUntil } from '@chassis/testing';
import { creditPayment } from '../contracts/account-transactions.ts';
import { type Simplebank, startSimplebank } from '../src/system.ts';
import { settleAndCheckInvariants } from './invariants.ts';

/**
 * A payment is recorded `pending` and committed before the ledger is asked to credit it. A process that
 * dies in between — before asking, or after the ledger credited but before marking it completed —
 * leaves it `pending`; the payments sweep asks the ledger again (which credits a payment once by its id)
 * and completes it. Nothing is lost, nothing credited twice.
 */
describe('SimpleBank: payments left pending by a crash are completed by the sweep', () => {
  let bank: Simplebank;
  const tokens: Record<string, string> = {};
  before(async () => {
    bank = await startSimplebank({
      port: 0,
      databaseUrl: 'pglite://memory',
      env: { CHASSIS_TRANSPORT: 'memory', OPS_PORT: 'off', LOG_LEVEL: 'silent', PAYMENTS_STALE_AFTER_MS: '1000' },
    });
    for (const user of ['bob', 'admin']) {
      const issued = await requestJson(bank.url!, 'POST', '/auth/token', {
        username: user,
        password: `${user}-password`,
      });
      tokens[user] = String(issued.body.access_token);
    }
  });
  after(() => bank?.stop());

  const send = (method: string, path: string, user: string, body?: unknown) =>
    requestJson(bank.url!, method, path, body, tokens[user]);
  const cashOf = async (accountId: string) => {
    const accounts = (await send('GET', '/accounts', 'bob')).body as unknown as { id: string; cash: string }[];
    return Math.round(Number(accounts.find((a) => a.id === accountId)?.cash) * 100);
  };
  /** A payment as a process that died right after recording it leaves it. */
  const pendingPayment = async (cents: number) => {
    const id = randomUUID();
    await sql`
      insert into payments.payments (id, account_id, amount_cents, status, created_by)
      values (${id}, '102', ${cents}, 'pending', 'bob')`.execute(bank.database.kysely);
    return id;
  };

  it('credits the one never asked for, completes the one already credited, each once, and announces both', async () => {
    const before = await cashOf('102');
    const neverAsked = await pendingPayment(12_00);
    const alreadyCredited = await pendingPayment(30_00);
    // The ledger credited this one before its process died: the sweep must not credit it again.
    await bank.node.call(
      creditPayment,
      { paymentId: alreadyCredited, accountId: '102', amount: '30.00' },
      { auth: tokens.admin },
    );
    assert.equal(await cashOf('102'), before + 30_00);

    for (const id of [neverAsked, alreadyCredited]) {
      await waitUntil(async () => (await send('GET', `/payments/${id}`, 'bob')).body.status === 'completed', {
        timeoutMs: 20_000,
        what: `payment ${id} completed by the sweep`,
      });
    }
    assert.equal(await cashOf('102'), before + 12_00 + 30_00, 'each payment credited once');
    const { rows } = await sql<{ order_id: string; amount: string }>`
      select order_id, amount::text from "account-transactions".entries
      where kind = 'payment' and account = '102' and order_id in (${neverAsked}, ${alreadyCredited})
      order by amount`.execute(bank.database.kysely);
    assert.deepEqual(
      rows.map((row) => [row.order_id, row.amount]),
      [
        [neverAsked, '1200'],
        [alreadyCredited, '3000'],
      ],
      'one payment entry each',
    );
    // payment_completed went out for both: the customer is notified once per payment.
    await waitUntil(
      async () => {
        const listed = await send('GET', '/notifications?accountId=102&size=100', 'bob');
        const ids = ((listed.body.notifications ?? []) as { eventId: string }[]).map((n) => n.eventId);
        return [neverAsked, alreadyCredited].every(
          (id) => ids.filter((eventId) => eventId === `payments.payment_completed:${id}`).length === 1,
        );
      },
      { timeoutMs: 20_000, what: 'one notification per swept payment' },
    );
    await settleAndCheckInvariants(bank.database);
  });
});
