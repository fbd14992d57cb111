import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ChassisNode, defineService, on } from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { chargeFee, listAccounts, listTransactions, refundFee } from '../contracts/account-transactions.ts';
import { AccountId, feeFor, Money, money, StockSymbol, toCents } from '../contracts/common.ts';
import { chargeFailed, feeCharged, feeRefunded } from '../contracts/fees.ts';
import { orderPlaced, tradeExecuted } from '../contracts/market.ts';
import { getOrder, orderCanceled, orderFailed, sellShares } from '../contracts/orders.ts';
import { evolve, feeChanges, initialState, type OrderEvent, type OrderState } from '../services/orders/order.ts';
import { type OneNodeBank, startOneNodeBank, tokenFor } from './one-node.ts';

/**
 * The fee is 0.1% of the notional, at least 1.00 (specs/simplebank.md), rounded up to the cent. Orders
 * under 1,000.00 only ever show the minimum, so these orders are priced where the percentage decides:
 * the exchange's prices are frozen and chosen so each notional is exact.
 */
const prices = { BHP: '50.00', GOOG: '9.99', ABC: '41.67' };
const cases = [
  { symbol: 'BHP', quantity: 100, notional: '5000.00', fee: '5.00', why: 'the percentage' },
  { symbol: 'BHP', quantity: 20, notional: '1000.00', fee: '1.00', why: 'the boundary: both rules agree' },
  { symbol: 'ABC', quantity: 24, notional: '1000.08', fee: '1.01', why: '1.00008 rounded up to the cent' },
  { symbol: 'GOOG', quantity: 100, notional: '999.00', fee: '1.00', why: 'just under the boundary, 0.999 rounded up' },
  { symbol: 'BHP', quantity: 2, notional: '100.00', fee: '1.00', why: 'the minimum, not 0.10' },
] as const;

describe('SimpleBank fees: 0.1% of the notional, at least 1.00, charged through the order flow', () => {
  let bank: OneNodeBank;
  let node: ChassisNode;
  let alice: { auth: string };
  /** What the fees service announced, as `<event> <orderId> <fee>`. */
  const announced: string[] = [];
  const listener = defineService({
    name: 'fee-listener',
    events: [feeCharged, feeRefunded, chargeFailed].map((contract) =>
      on(contract, (fee: { orderId: string; fee: string }) => {
        announced.push(`${contract.event} ${fee.orderId} ${fee.fee}`);
      }),
    ),
  });
  const announcements = (orderId: string) => announced.filter((line) => line.includes(orderId)).sort();
  before(async () => {
    alice = await tokenFor('alice', ['customer'], ['101']);
    bank = await startOneNodeBank({ prices }, [listener]);
    node = bank.node;
  });
  after(async () => {
    await bank.stop();
  });

  it('an order the exchange takes and then rejects: no fee is taken, however often its failure or placement is redelivered', async () => {
    bank.exchange.configure({ rejectSymbols: ['ABC'] });
    let orderId: string;
    try {
      ({ orderId } = await node.call(sellShares, { accountId: '101', symbol: 'ABC', quantity: 1 }, alice));
      await waitUntil(
        async () => {
          const order = await node.call(getOrder, { orderId }, alice);
          return order.status === 'failed' && order.fee === '0.00';
        },
        { what: `order ${orderId} failed with no fee`, timeoutMs: 60_000 },
      );
    } finally {
      bank.exchange.configure({ rejectSymbols: [] });
    }
    const feeEntries = async () => {
      const { entries } = await node.call(listTransactions, { accountId: '101', size: 100 }, alice);
      return entries.filter((entry) => entry.orderId === orderId && entry.kind.startsWith('fee'));
    };
    const settled = await feeEntries();
    // The ledger takes a fee only as it settles a fill.
    assert.deepEqual(settled, [], 'no fee taken');
    // A redelivered failure and a placement announced again change nothing in the ledger or the order.
    const ref = { orderId, accountId: '101', side: 'sell', symbol: 'ABC', quantity: 1 } as const;
    await node.emit(orderFailed, { ...ref, reason: 'Trading in ABC is halted' });
    await node.emit(orderPlaced, { ...ref, exchangeOrderId: 'again', notional: '41.67' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(await feeEntries(), settled, 'nothing more charged or refunded');
    assert.equal((await node.call(getOrder, { orderId }, alice)).fee, '0.00');
  });

  it('an order_failed for an order whose fee was charged refunds it, once, however often it is delivered', async () => {
    const { orderId } = await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 1 }, alice);
    await waitUntil(async () => (await node.call(getOrder, { orderId }, alice)).fee === '1.00', {
      what: `order ${orderId} charged its fee`,
      timeoutMs: 60_000,
    });
    const ref = { orderId, accountId: '101', side: 'sell', symbol: 'GOOG', quantity: 1 } as const;
    const feeEntries = async () => {
      const { entries } = await node.call(listTransactions, { accountId: '101', size: 100 }, alice);
      return entries
        .filter((entry) => entry.orderId === orderId && entry.kind.startsWith('fee'))
        .map((entry) => `${entry.kind} ${entry.amount}`)
        .sort();
    };
    // As a failure announced late, or delivered again after a crash, would arrive: twice.
    await node.emit(orderFailed, { ...ref, reason: 'Rejected by the exchange' });
    await waitUntil(async () => (await feeEntries()).length === 2, { what: 'the fee refunded', timeoutMs: 60_000 });
    await node.emit(orderFailed, { ...ref, reason: 'Rejected by the exchange' });
    await waitUntil(async () => (await node.call(getOrder, { orderId }, alice)).fee === '0.00', {
      what: 'the order shows the refund',
      timeoutMs: 60_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(await feeEntries(), ['fee -1.00', 'fee_refund 1.00'], 'charged once, refunded once');
  });

  it('the fee is taken once as the trade settles, however often the fill comes; a late cancelation refunds it once, announced once', async () => {
    const settle = () => new Promise((resolve) => setTimeout(resolve, 300));
    const { orderId } = await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 1 }, alice);
    await waitUntil(async () => (await node.call(getOrder, { orderId }, alice)).fee === '1.00', {
      what: `order ${orderId} completed with its fee`,
      timeoutMs: 60_000,
    });
    const entries = async () => {
      const { entries } = await node.call(listTransactions, { accountId: '101', size: 100 }, alice);
      return entries
        .filter((entry) => entry.orderId === orderId)
        .map((entry) => `${entry.kind} ${entry.asset} ${entry.amount}`)
        .sort();
    };
    const settled = await entries();
    assert.deepEqual(
      settled.filter((line) => line.startsWith('fee')),
      ['fee CASH -1.00'],
      'taken in the settlement',
    );
    // The fill delivered again (a lost ack, a relay that died before marking it sent): nothing moves twice.
    const ref = { orderId, accountId: '101', side: 'sell', symbol: 'GOOG', quantity: 1 } as const;
    const order = await node.call(getOrder, { orderId }, alice);
    await node.emit(tradeExecuted, { ...ref, exchangeOrderId: 'again', price: order.price! });
    await node.emit(tradeExecuted, { ...ref, exchangeOrderId: 'again', price: order.price! });
    await settle();
    assert.deepEqual(await entries(), settled, 'settled and charged once');
    assert.deepEqual(announcements(orderId), [], 'the fees service has no part in a fill');
    // Canceled after its fee was taken (as a late cancelation would arrive), twice: refunded once.
    await node.emit(orderCanceled, ref);
    await node.emit(orderCanceled, ref);
    await waitUntil(() => announcements(orderId).length >= 1, { what: 'fee_refunded', timeoutMs: 60_000 });
    await settle();
    assert.deepEqual(announcements(orderId), [`fee_refunded ${orderId} 1.00`]);

    // Failed before any fee was taken: nothing to refund, nothing announced.
    const early = '00000000-0000-4000-8000-0000000000f3';
    await node.emit(orderFailed, { ...ref, orderId: early, reason: 'Trading in GOOG is halted' });
    await settle();
    assert.deepEqual(announcements(early), [], 'no refund of a fee never charged');
  });

  it('a fee charged on placement (as an earlier version did) is not taken again as the trade settles', async () => {
    const fees = await tokenFor('fees', ['system']);
    const orderId = '00000000-0000-4000-8000-0000000000f4';
    // Charged before the order is even recorded: from free cash, as the placement's charge could.
    assert.deepEqual(await node.call(chargeFee, { orderId, accountId: '101', fee: '1.00' }, fees), { charged: true });
    await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 1, orderId }, alice);
    await waitUntil(async () => (await node.call(getOrder, { orderId }, alice)).status === 'completed', {
      what: `order ${orderId} completed`,
      timeoutMs: 60_000,
    });
    assert.equal((await node.call(getOrder, { orderId }, alice)).fee, '1.00');
    const { entries } = await node.call(listTransactions, { accountId: '101', size: 100 }, alice);
    assert.deepEqual(
      entries.filter((entry) => entry.orderId === orderId && entry.kind === 'fee').map((entry) => entry.amount),
      ['-1.00'],
      'one fee',
    );
  });

  it('the contracts’ money and ids: whole strings only, cents exact both ways', () => {
    for (const good of ['101', '000000000001']) assert.ok(AccountId.safeParse(good).success, good);
    for (const bad of ['x101', '101x', '', '1234567890123']) assert.ok(!AccountId.safeParse(bad).success, bad);
    for (const good of ['BHP', 'A', 'GOOGL']) assert.ok(StockSymbol.safeParse(good).success, good);
    for (const bad of ['bhp', '1BHP', 'BHP1', 'TOOLONG']) assert.ok(!StockSymbol.safeParse(bad).success, bad);
    for (const good of ['91.72', '-0.50', '0.00']) assert.ok(Money.safeParse(good).success, good);
    for (const bad of ['91.7', '91', 'x91.72', '91.72x', '1,000.00']) assert.ok(!Money.safeParse(bad).success, bad);
    assert.match(AccountId.safeParse('x').error?.issues[0]?.message ?? '', /digits/);
    assert.match(StockSymbol.safeParse('x').error?.issues[0]?.message ?? '', /capital letters/);
    assert.match(Money.safeParse('x').error?.issues[0]?.message ?? '', /two places/);
    assert.equal(toCents('91.72'), 9172);
    assert.equal(toCents('-0.50'), -50);
    assert.equal(toCents('7'), 700, 'no fraction: whole units');
    assert.equal(toCents('7.5'), 750, 'one place: tenths');
    assert.equal(money(9172), '91.72');
    assert.equal(money(-50), '-0.50');
    assert.equal(money(5), '0.05');
    assert.equal(money(100_000_000), '1000000.00');
  });

  it('the order’s fee is its last word whatever order the fees service’s events arrive in', () => {
    // The orders service's own step: decide, then apply what was decided as the store would return it.
    const fold = (words: Parameters<typeof feeChanges>[1][]) =>
      words.reduce<OrderState>(
        (order, word) =>
          feeChanges(order, word).reduce((state, change) => {
            const version = state.version + 1;
            const stored = { id: `e${version}`, stream: 'order-o1', version, position: version, txid: version };
            return evolve(state, { ...stored, metadata: {}, recordedAt: new Date(), ...change } as OrderEvent);
          }, order),
        initialState('o1'),
      );
    const charged = { outcome: 'charged', feeCents: 101 } as const;
    const refunded = { outcome: 'refunded', feeCents: 101 } as const;
    const waived = { outcome: 'waived', feeCents: 0 } as const;
    assert.equal(fold([charged]).feeCents, 101);
    assert.equal(fold([charged, refunded]).feeCents, 0, 'refunded after the charge');
    assert.equal(fold([refunded, charged]).feeCents, 0, 'the refund arrived first: the late charge is ignored');
    assert.equal(fold([charged, refunded, charged, refunded]).feeCents, 0, 'redeliveries of both');
    assert.equal(fold([waived]).feeCents, 0);
    assert.equal(fold([waived, charged]).feeCents, 0, 'a waived fee is not charged later');
    assert.equal(fold([]).feeCents, null, 'never placed: no fee at all');
  });

  for (const { symbol, quantity, notional, fee, why } of cases) {
    it(`a sell of ${quantity} ${symbol} at ${prices[symbol]} (notional ${notional}) pays a fee of ${fee}: ${why}`, async () => {
      const { orderId } = await node.call(sellShares, { accountId: '101', symbol, quantity }, alice);
      await waitUntil(
        async () => {
          const order = await node.call(getOrder, { orderId }, alice);
          return order.status === 'completed' && order.fee !== null;
        },
        { what: `order ${orderId} completed with its fee`, timeoutMs: 120_000 },
      );
      const order = await node.call(getOrder, { orderId }, alice);
      assert.equal(order.price, prices[symbol], 'filled at the frozen price, so the notional is exact');
      assert.equal(order.fee, fee, 'the order shows the fee');
      const { entries } = await node.call(listTransactions, { accountId: '101', size: 100 }, alice);
      const charged = entries.filter((entry) => entry.orderId === orderId && entry.kind === 'fee');
      assert.deepEqual(
        charged.map((entry) => entry.amount),
        [`-${fee}`],
        'the ledger took the fee once',
      );
    });
  }

  it('feeFor, the rule both orders and fees use, in cents', () => {
    assert.equal(feeFor(0), 100);
    assert.equal(feeFor(99_999), 100);
    assert.equal(feeFor(100_000), 100);
    assert.equal(feeFor(100_001), 101, 'any part of a cent rounds up');
    assert.equal(feeFor(500_000), 500);
    assert.equal(feeFor(1_234_567), 1235);
  });

  it('a fee the ledger refused stays refused: a redelivered placement with cash free by then charges nothing', async () => {
    const fees = await tokenFor('fees', ['system']);
    const orderId = '00000000-0000-4000-8000-0000000000f2';
    const [account] = await node.call(listAccounts, {}, alice);
    const free = toCents(account!.cash);
    // More than the account has free: refused, and the fees service records the fee waived.
    const tooMuch = money(free + 100);
    assert.deepEqual(await node.call(chargeFee, { orderId, accountId: '101', fee: tooMuch }, fees), { charged: false });
    // The same placement delivered again once the fee would fit (here: a smaller fee asked, as a
    // changed price would): the ledger's first answer is its last, or the fee is taken unrecorded.
    assert.deepEqual(await node.call(chargeFee, { orderId, accountId: '101', fee: '1.00' }, fees), { charged: false });
    const { entries } = await node.call(listTransactions, { accountId: '101', size: 100 }, alice);
    assert.equal(entries.filter((entry) => entry.orderId === orderId).length, 0, 'no fee entry written');
    assert.deepEqual(await node.call(refundFee, { orderId, accountId: '101' }, fees), {
      refunded: false,
      fee: '0.00',
    });
  });

  it('only the bank’s services charge or refund a fee: a customer or an admin is FORBIDDEN, nobody UNAUTHENTICATED', async () => {
    const admin = await tokenFor('admin', ['admin']);
    const [before] = await node.call(listAccounts, {}, alice);
    const orderId = '00000000-0000-4000-8000-0000000000f1';
    for (const caller of [alice, admin]) {
      await assert.rejects(node.call(chargeFee, { orderId, accountId: '101', fee: '500.00' }, caller), {
        code: 'FORBIDDEN',
      });
      await assert.rejects(node.call(refundFee, { orderId, accountId: '101' }, caller), { code: 'FORBIDDEN' });
    }
    await assert.rejects(node.call(chargeFee, { orderId, accountId: '101', fee: '500.00' }), {
      code: 'UNAUTHENTICATED',
    });
    await assert.rejects(node.call(refundFee, { orderId, accountId: '101' }), { code: 'UNAUTHENTICATED' });
    const [afterwards] = await node.call(listAccounts, {}, alice);
    assert.equal(afterwards?.cash, before?.cash, 'no cash moved');
    const { entries } = await node.call(listTransactions, { accountId: '101', size: 100 }, alice);
    assert.equal(entries.filter((entry) => entry.orderId === orderId).length, 0, 'no entry written');
  });
});
