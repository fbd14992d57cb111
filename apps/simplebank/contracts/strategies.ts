import { action, defineError, event } from '@chassis/core';
import { z } from 'zod';
import { AccountId, Money, OrderId, StockSymbol } from './common.ts';

export const StrategyId = z.string().uuid();

const Allocation = z.object({ assetId: StockSymbol, percentage: z.number().int().min(1).max(100) });

export const Strategy = z.object({
  id: StrategyId,
  name: z.string(),
  assets: z.array(Allocation),
  createdById: z.string(),
  createdAt: z.string(),
});

/** An admin creates a premade strategy (`POST /strategies`); its percentages sum to 100. */
export const createStrategy = action('investment-strategies.createStrategy', {
  input: z.object({
    name: z.string().trim().min(1).max(100),
    assets: z
      .array(Allocation)
      .min(1)
      .max(20)
      .refine((assets) => assets.reduce((sum, asset) => sum + asset.percentage, 0) === 100, {
        message: 'the percentages must sum to 100',
      })
      .refine((assets) => new Set(assets.map((asset) => asset.assetId)).size === assets.length, {
        message: 'each asset once',
      }),
  }),
  output: Strategy,
  idempotent: false,
});

export const listStrategies = action('investment-strategies.listStrategies', {
  input: z.object({}),
  output: z.array(Strategy),
  idempotent: true,
});

export const getStrategy = action('investment-strategies.getStrategy', {
  input: z.object({ id: StrategyId }),
  output: Strategy,
  idempotent: true,
});

export const strategyCreated = event('investment-strategies.strategy_created', Strategy);

export const InvestmentStatus = z.enum(['awaiting_payment', 'placing', 'completed', 'partially_completed', 'failed']);

export const Investment = z.object({
  id: z.string().uuid(),
  strategyId: StrategyId,
  accountId: AccountId,
  amount: Money,
  paymentId: z.string().uuid(),
  status: InvestmentStatus,
  orders: z.array(
    z.object({
      symbol: StockSymbol,
      amount: Money,
      orderId: OrderId.nullable(),
      status: z.string(),
      reason: z.string().nullable(),
    }),
  ),
  createdAt: z.string(),
});

export const PaymentMismatch = defineError('PAYMENT_MISMATCH', { status: 409, retryable: false });

/**
 * Invests an amount in a strategy (`POST /strategies/{id}/orders`): once the payment has completed,
 * one buy order per allocation, for its share of the amount. Answers at once (202), before the orders.
 */
export const invest = action('place-strategy-orders.invest', {
  input: z.object({
    strategyId: StrategyId,
    destinationAccountId: AccountId,
    amount: Money,
    paymentId: z.string().uuid(),
  }),
  output: Investment,
  idempotent: false,
});

export const getInvestment = action('place-strategy-orders.getInvestment', {
  input: z.object({ id: z.string().uuid() }),
  output: Investment,
  idempotent: true,
});

/**
 * The investment's payment has completed and its orders are being placed (by the service's saga, started
 * in the same transaction): an announcement for whoever follows investments; nothing has to consume it.
 */
export const investmentFunded = event(
  'place-strategy-orders.investment_funded',
  z.object({
    investmentId: z.string().uuid(),
    accountId: AccountId,
    orders: z.array(z.object({ symbol: StockSymbol, amount: Money, orderId: OrderId })),
  }),
);
