import type { NewEventOf, StoredEventOf } from '@chassis/data';
import { z } from 'zod';
import { money } from '../../contracts/common.ts';
import type { Order } from '../../contracts/orders.ts';

/** The events of one order's stream (`order-<id>`): what happened to it, in cents where money. */
export const orderEvents = {
  OrderCreated: z.object({
    accountId: z.string(),
    side: z.enum(['sell', 'buy']),
    symbol: z.string(),
    quantity: z.number().int().positive(),
    /** The worst price the order accepts: a buy fills at or below it, a sell at or above. */
    limitPriceCents: z.number().int().positive(),
    /** Cash asked of the ledger: a buy's cost at the limit and its fee, or a sell's fee. */
    reservedCashCents: z.number().int().nonnegative(),
    expiresAt: z.string(),
    /** The service that placed it for a customer (its system token's subject); null for the customer's own. */
    placedBy: z.string().nullable().optional(),
  }),
  /** The ledger holds what the order needs: it is announced and may be placed. */
  ReservationHeld: z.object({}),
  OrderRejected: z.object({ reason: z.string() }),
  /** Market is giving it to the exchange: it can no longer be canceled. */
  PlacementStarted: z.object({}),
  OrderPlaced: z.object({ exchangeOrderId: z.string() }),
  OrderCompleted: z.object({ priceCents: z.number().int().positive() }),
  OrderFailed: z.object({ reason: z.string() }),
  OrderCanceled: z.object({ reason: z.string() }),
  FeeCharged: z.object({ feeCents: z.number().int().nonnegative() }),
  FeeRefunded: z.object({ feeCents: z.number().int().nonnegative() }),
  /** The order was placed but no fee was taken: no cash was free for it, or the order had ended. */
  FeeWaived: z.object({}),
};

export type OrderEvents = typeof orderEvents;
export type OrderEvent = StoredEventOf<OrderEvents>;
type OrderView = z.input<typeof Order>;

export interface OrderState {
  id: string;
  version: number;
  created?: z.output<OrderEvents['OrderCreated']>;
  status: OrderView['status'];
  reserved: boolean;
  placing: boolean;
  priceCents: number | null;
  feeCents: number | null;
  reason: string | null;
  history: { status: OrderView['status']; at: string }[];
}

export const streamOf = (orderId: string) => `order-${orderId}`;

export function initialState(id: string): OrderState {
  return {
    id,
    version: 0,
    status: 'created',
    reserved: false,
    placing: false,
    priceCents: null,
    feeCents: null,
    reason: null,
    history: [],
  };
}

export const isTerminal = (status: OrderView['status']) =>
  status === 'completed' || status === 'rejected' || status === 'failed' || status === 'canceled';

export function evolve(state: OrderState, event: OrderEvent): OrderState {
  const at = event.recordedAt.toISOString();
  const next = { ...state, version: event.version };
  const move = (status: OrderView['status'], reason: string | null = state.reason): OrderState => ({
    ...next,
    status,
    reason,
    history: [...state.history, { status, at }],
  });
  switch (event.type) {
    case 'OrderCreated':
      return { ...move('created'), created: event.data };
    case 'ReservationHeld':
      return { ...next, reserved: true };
    case 'PlacementStarted':
      return { ...next, placing: true };
    case 'OrderRejected':
      return move('rejected', event.data.reason);
    case 'OrderPlaced':
      return move('placed');
    case 'OrderCompleted':
      return { ...move('completed'), priceCents: event.data.priceCents };
    case 'OrderFailed':
      return move('failed', event.data.reason);
    case 'OrderCanceled':
      return move('canceled', event.data.reason);
    case 'FeeCharged':
      return { ...next, feeCents: event.data.feeCents };
    case 'FeeRefunded':
    case 'FeeWaived':
      return { ...next, feeCents: 0 };
  }
}

/**
 * What the fees service's word on an order's fee changes. Its charge, waiver and refund are separate
 * events that may arrive in any order (a redelivery, or two consumers racing), so the fee is decided by
 * what it became last, not by what arrived last: a refund zeroes the fee whenever it comes, and a charge
 * arriving after it is ignored. A charged fee is never 0 (at least 1.00), so 0 means refunded or waived.
 */
export function feeChanges(
  order: OrderState,
  word: { outcome: 'charged' | 'refunded' | 'waived'; feeCents: number },
): NewEventOf<OrderEvents>[] {
  switch (word.outcome) {
    case 'charged':
      return order.feeCents === null ? [{ type: 'FeeCharged', data: { feeCents: word.feeCents } }] : [];
    case 'waived':
      return order.feeCents === null ? [{ type: 'FeeWaived', data: {} }] : [];
    case 'refunded':
      return order.feeCents === 0 ? [] : [{ type: 'FeeRefunded', data: { feeCents: word.feeCents } }];
  }
}

/** The order as the API shows it. */
export function view(state: OrderState): OrderView {
  const created = state.created!;
  return {
    id: state.id,
    accountId: created.accountId,
    side: created.side,
    symbol: created.symbol,
    quantity: created.quantity,
    status: state.status,
    price: state.priceCents === null ? null : money(state.priceCents),
    fee: state.feeCents === null ? null : money(state.feeCents),
    reason: state.reason,
    history: state.history,
  };
}
