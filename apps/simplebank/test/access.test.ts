import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ActionContract, ChassisNode, InputOf } from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import {
  creditPayment,
  getPositions,
  listTransactions,
  requestReservation,
} from '../contracts/account-transactions.ts';
import { listOrders } from '../contracts/customer-orders.ts';
import { getHoldings } from '../contracts/holdings.ts';
import { getPrice } from '../contracts/market-data.ts';
import { listNotifications } from '../contracts/notifications.ts';
import { buyShares, cancelOrder, getOrder, sellShares } from '../contracts/orders.ts';
import { createPayment, getPayment } from '../contracts/payments.ts';
import { createStrategy, getInvestment, getStrategy, invest } from '../contracts/strategies.ts';
import { type OneNodeBank, startOneNodeBank, tokenFor } from './one-node.ts';

/**
 * Each service refuses another customer's account by itself, called over the node with no gateway in
 * front. Where a service asks another one before anything is done with the account (orders the ledger,
 * holdings the ledger and market data, payments the ledger, investments strategies and payments), the
 * other service would refuse too and hide a missing check: those are asserted not to have been called,
 * by their server metrics.
 */
describe('SimpleBank services refuse another customer’s account themselves (no gateway)', () => {
  let bank: OneNodeBank;
  let node: ChassisNode;
  let alice: { auth: string };
  let bob: { auth: string };
  const mine = { orderId: '', paymentId: '', investmentId: '', strategyId: '' };
  before(async () => {
    alice = await tokenFor('alice', ['customer'], ['101']);
    bob = await tokenFor('bob', ['customer'], ['102']);
    bank = await startOneNodeBank();
    node = bank.node;
    // Alice's order, payment and investment, each run to its end so nothing is still moving meanwhile.
    const admin = await tokenFor('admin', ['admin']);
    const strategy = await node.call(
      createStrategy,
      { name: 'All ABC', assets: [{ assetId: 'ABC', percentage: 100 }] },
      admin,
    );
    const payment = await node.call(createPayment, { accountId: '101', amount: '20.00' }, alice);
    const investment = await node.call(
      invest,
      { strategyId: strategy.id, destinationAccountId: '101', amount: '20.00', paymentId: payment.id },
      alice,
    );
    const order = await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 1 }, alice);
    Object.assign(mine, {
      orderId: order.orderId,
      paymentId: payment.id,
      investmentId: investment.id,
      strategyId: strategy.id,
    });
    await waitUntil(async () => (await node.call(getOrder, { orderId: order.orderId }, alice)).status === 'completed', {
      what: 'alice’s order completed',
      timeoutMs: 120_000,
    });
    await waitUntil(
      async () => (await node.call(getInvestment, { id: investment.id }, alice)).status.endsWith('completed'),
      { what: 'alice’s investment completed', timeoutMs: 120_000 },
    );
  });
  after(async () => {
    await bank.stop();
  });

  /** Requests the action's service has served, any outcome: its own server metric. */
  const served = async (contract: ActionContract) => {
    const labels = [`service="${contract.service}"`, `action="${contract.action}"`];
    return (await node.metrics.text())
      .split('\n')
      .filter((line) => line.startsWith('chassis_rpc_server_duration_seconds_count{'))
      .filter((line) => labels.every((label) => line.includes(label)))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  };

  /** Bob calls the action for alice's account: FORBIDDEN, and the services it would ask are not asked. */
  async function refusedToBob<C extends ActionContract>(
    contract: C,
    input: () => InputOf<C>,
    asks: ActionContract[] = [],
    code = 'FORBIDDEN',
  ) {
    const before = await Promise.all(asks.map(served));
    await assert.rejects(node.call(contract, input(), bob), { code }, `${contract.name} for bob`);
    assert.deepEqual(await Promise.all(asks.map(served)), before, `${contract.name} asked none of its services`);
    // Without a token: nobody at all.
    await assert.rejects(node.call(contract, input()), { code: 'UNAUTHENTICATED' }, `${contract.name} without a token`);
    // The owner is let through: the refusal above was about the account, not the input.
    await node.call(contract, input(), alice);
  }

  it('orders: sellShares, buyShares (before the ledger is asked), getOrder, cancelOrder', async () => {
    await refusedToBob(sellShares, () => ({ accountId: '101', symbol: 'BHP', quantity: 1 }), [requestReservation]);
    await refusedToBob(buyShares, () => ({ accountId: '101', symbol: 'ABC', quantity: 1 }), [requestReservation]);
    await refusedToBob(getOrder, () => ({ orderId: mine.orderId }));
    // A completed order cannot be canceled: bob's refusal must come before that answer.
    await assert.rejects(node.call(cancelOrder, { orderId: mine.orderId }, bob), { code: 'FORBIDDEN' });
    await assert.rejects(node.call(cancelOrder, { orderId: mine.orderId }, alice), { code: 'ORDER_NOT_CANCELABLE' });
  });

  it('account-transactions (the ledger): requestReservation, creditPayment, getPositions, listTransactions', async () => {
    const { free } = await node.call(getPositions, { accountId: '101' }, alice).then((p) => ({
      free: p.positions.find((position) => position.symbol === 'BHP'),
    }));
    await assert.rejects(
      node.call(
        requestReservation,
        { orderId: '00000000-0000-4000-8000-0000000000b1', accountId: '101', symbol: 'BHP', quantity: 1 },
        bob,
      ),
      { code: 'FORBIDDEN' },
    );
    await assert.rejects(
      node.call(
        creditPayment,
        { paymentId: '00000000-0000-4000-8000-0000000000b2', accountId: '101', amount: '1000.00' },
        bob,
      ),
      { code: 'FORBIDDEN' },
    );
    const after = await node.call(getPositions, { accountId: '101' }, alice);
    assert.deepEqual(
      after.positions.find((position) => position.symbol === 'BHP'),
      free,
      'nothing reserved for bob',
    );
    await refusedToBob(getPositions, () => ({ accountId: '101' }));
    await refusedToBob(listTransactions, () => ({ accountId: '101' }));
  });

  it('holdings: getHoldings (before the ledger or market data is asked)', async () => {
    await refusedToBob(getHoldings, () => ({ accountId: '101' }), [getPositions, getPrice]);
  });

  it('customer-orders and notifications: listOrders, listNotifications', async () => {
    await refusedToBob(listOrders, () => ({ accountId: '101' }));
    await refusedToBob(listNotifications, () => ({ accountId: '101' }));
  });

  it('payments: createPayment (before the ledger is asked); another customer’s payment is NOT_FOUND', async () => {
    await refusedToBob(createPayment, () => ({ accountId: '101', amount: '1.00' }), [creditPayment]);
    await refusedToBob(getPayment, () => ({ paymentId: mine.paymentId }), [], 'NOT_FOUND');
  });

  it('place-strategy-orders: invest (before strategies or payments are asked), getInvestment', async () => {
    // Bob's own payment, so only the destination account is wrong.
    const payment = await node.call(createPayment, { accountId: '102', amount: '5.00' }, bob);
    const asked = [await served(getStrategy), await served(getPayment)];
    await assert.rejects(
      node.call(
        invest,
        { strategyId: mine.strategyId, destinationAccountId: '101', amount: '5.00', paymentId: payment.id },
        bob,
      ),
      { code: 'FORBIDDEN' },
    );
    assert.deepEqual([await served(getStrategy), await served(getPayment)], asked, 'invest asked nobody');
    await refusedToBob(getInvestment, () => ({ id: mine.investmentId }));
  });
});
