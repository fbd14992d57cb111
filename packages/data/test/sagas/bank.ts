import { ChassisError, defineError } from '@chassis/core';
import { defineSaga, type SagaRetryPolicy, type StepContext } from '@chassis/data';
import { z } from 'zod';

/**
 * SimpleBank stand-ins for the in-process saga tests: the ledger, the exchange and the fees service,
 * each idempotent under the key it is given, each noting what it did so a test can see every effect.
 */
export class FakeBank {
  /** What took effect, in order: `reserve 101 BHP 10`, `refund o-1:charge_fee`, … */
  readonly effects: string[] = [];
  /** Every call, effect or not. */
  readonly calls: string[] = [];
  readonly reservations = new Map<string, { released: boolean }>();
  readonly orders = new Map<string, { status: 'placed' | 'filled' | 'failed' | 'canceled'; symbol: string }>();
  readonly fees = new Map<string, { cents: number; refunded: boolean }>();
  readonly payments = new Map<string, 'pending' | 'completed'>();
  readonly investments = new Map<string, string>();

  reserve(key: string, accountId: string, symbol: string, quantity: number): void {
    this.calls.push(`reserve ${key}`);
    if (this.reservations.has(key)) return;
    this.reservations.set(key, { released: false });
    this.effects.push(`reserve ${accountId} ${symbol} ${quantity}`);
  }

  release(key: string): void {
    this.calls.push(`release ${key}`);
    const reservation = this.reservations.get(key);
    if (!reservation || reservation.released) return;
    reservation.released = true;
    this.effects.push(`release ${key}`);
  }

  place(key: string, symbol: string): string {
    this.calls.push(`place ${key}`);
    if (!this.orders.has(key)) {
      this.orders.set(key, { status: 'placed', symbol });
      this.effects.push(`place ${key}`);
    }
    return `X-${key}`;
  }

  cancel(key: string): void {
    this.calls.push(`cancel ${key}`);
    const order = this.orders.get(key);
    if (order?.status !== 'placed') return;
    order.status = 'canceled';
    this.effects.push(`cancel ${key}`);
  }

  charge(key: string, cents: number): void {
    this.calls.push(`charge ${key}`);
    if (this.fees.has(key)) return;
    this.fees.set(key, { cents, refunded: false });
    this.effects.push(`charge ${key} ${cents}`);
  }

  refund(key: string): void {
    this.calls.push(`refund ${key}`);
    const fee = this.fees.get(key);
    if (!fee || fee.refunded) return;
    fee.refunded = true;
    this.effects.push(`refund ${key}`);
  }
}

export const ChargeFailed = defineError('CHARGE_FAILED', { status: 402, retryable: false });
const PaymentPending = defineError('PAYMENT_PENDING', { status: 409, retryable: true });
const OrdersPending = defineError('ORDERS_PENDING', { status: 409, retryable: true });

export const sellOrderData = z.object({
  orderId: z.string(),
  accountId: z.string().regex(/^\d+$/),
  symbol: z.string().regex(/^[A-Z]{1,5}$/),
  quantity: z.number().int().positive(),
  priceCents: z.number().int().positive(),
  exchangeOrderId: z.string().optional(),
  feeCents: z.number().int().optional(),
});

type Hook = (ctx: StepContext) => Promise<void>;

export interface SellOrderOptions {
  /** Runs before the step's effect: throw to fail an attempt, wait to make it slow. */
  before?: Partial<Record<'reserve_shares' | 'place_order' | 'charge_fee', Hook>>;
  /** Runs after the effect: throw to fail the attempt although it took effect (a lost reply). */
  after?: Partial<Record<'reserve_shares' | 'place_order' | 'charge_fee', Hook>>;
  /** Before each compensation: throw to fail it. */
  beforeCompensation?: Partial<Record<'reserve_shares' | 'place_order' | 'charge_fee', Hook>>;
  retry?: Partial<SagaRetryPolicy>;
  compensationRetry?: Partial<SagaRetryPolicy>;
  timeoutMs?: number;
}

/** The sell-order saga: reserve shares → place the order → charge the fee; release, cancel, refund. */
export function sellOrderSaga(bank: FakeBank, options: SellOrderOptions = {}) {
  const common = { retry: options.retry, compensationRetry: options.compensationRetry, timeoutMs: options.timeoutMs };
  const hook = async (table: Partial<Record<string, Hook>> | undefined, ctx: StepContext): Promise<void> =>
    table?.[ctx.step]?.(ctx);
  return defineSaga({
    name: 'sell-order',
    data: sellOrderData,
    steps: [
      {
        name: 'reserve_shares',
        ...common,
        async run(data, ctx) {
          await hook(options.before, ctx);
          bank.reserve(ctx.idempotencyKey, data.accountId, data.symbol, data.quantity);
          await hook(options.after, ctx);
        },
        async compensate(_data, ctx) {
          await hook(options.beforeCompensation, ctx);
          bank.release(ctx.idempotencyKey);
        },
      },
      {
        name: 'place_order',
        ...common,
        async run(data, ctx) {
          await hook(options.before, ctx);
          const exchangeOrderId = bank.place(ctx.idempotencyKey, data.symbol);
          await hook(options.after, ctx);
          return { exchangeOrderId };
        },
        async compensate(_data, ctx) {
          await hook(options.beforeCompensation, ctx);
          bank.cancel(ctx.idempotencyKey);
        },
      },
      {
        name: 'charge_fee',
        ...common,
        async run(data, ctx) {
          await hook(options.before, ctx);
          // 0.1% of notional, at least 1.00.
          const feeCents = Math.max(100, Math.round((data.quantity * data.priceCents) / 1000));
          bank.charge(ctx.idempotencyKey, feeCents);
          await hook(options.after, ctx);
          return { feeCents };
        },
        async compensate(_data, ctx) {
          await hook(options.beforeCompensation, ctx);
          bank.refund(ctx.idempotencyKey);
        },
      },
    ],
  });
}

/**
 * The shape of place-strategy-orders: wait for the payment, place one buy order per allocation, track
 * them to the end, mark the investment completed or partially completed. Waiting is a step that says
 * "not yet" (a retryable error) with backoff until the payment or the orders are done.
 */
export function investmentSaga(bank: FakeBank) {
  const wait = { maxAttempts: 200, initialDelayMs: 5, maxDelayMs: 25 };
  return defineSaga({
    name: 'strategy-investment',
    data: z.object({
      investmentId: z.string(),
      accountId: z.string(),
      paymentId: z.string(),
      amountCents: z.number().int().positive(),
      allocations: z
        .array(z.object({ symbol: z.string(), percentage: z.number().positive() }))
        .refine((list) => list.reduce((sum, a) => sum + a.percentage, 0) === 100, 'percentages must sum to 100'),
      orders: z.array(z.object({ key: z.string(), symbol: z.string(), amountCents: z.number().int() })).optional(),
      outcome: z.enum(['completed', 'partially_completed']).optional(),
    }),
    steps: [
      {
        name: 'await_payment',
        retry: wait,
        async run(data) {
          if (bank.payments.get(data.paymentId) !== 'completed') {
            throw PaymentPending(`Payment ${data.paymentId} is not completed yet`);
          }
        },
      },
      {
        name: 'place_orders',
        async run(data, ctx) {
          const orders = data.allocations.map((allocation) => {
            const key = `${ctx.idempotencyKey}:${allocation.symbol}`;
            bank.place(key, allocation.symbol);
            return {
              key,
              symbol: allocation.symbol,
              amountCents: Math.floor((data.amountCents * allocation.percentage) / 100),
            };
          });
          return { orders };
        },
        async compensate(data, ctx) {
          for (const allocation of data.allocations) bank.cancel(`${ctx.idempotencyKey}:${allocation.symbol}`);
        },
      },
      {
        name: 'track_orders',
        retry: wait,
        async run(data) {
          const statuses = (data.orders ?? []).map((order) => bank.orders.get(order.key)?.status);
          if (statuses.some((status) => status === 'placed')) {
            throw OrdersPending(`${statuses.filter((s) => s === 'placed').length} orders are not filled yet`);
          }
          const allFilled = statuses.every((status) => status === 'filled');
          return { outcome: allFilled ? ('completed' as const) : ('partially_completed' as const) };
        },
      },
      {
        name: 'mark_investment',
        async run(data) {
          if (!data.outcome) throw new ChassisError('INTERNAL', 'No outcome tracked');
          bank.investments.set(data.investmentId, data.outcome);
        },
      },
    ],
  });
}
