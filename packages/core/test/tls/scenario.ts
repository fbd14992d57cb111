import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ChassisError, type ChassisNode, defineService, handle, on, runNode } from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { sellOrderSlice } from '../conformance/sell-order.ts';

/**
 * The sell-order slice over a broker reached by TLS, every node configured the way a pod is — from the
 * environment (`CHASSIS_TRANSPORT`, `CHASSIS_TLS_*`) through `runNode` — so the configuration, the
 * transport factory and the client library's TLS are all on the path.
 */
export type TlsEnv = Record<string, string>;

/** Starts a node from `env` (no ops port, no signal handlers); the caller stops it. */
export function startNodeFromEnv(env: TlsEnv, services: Parameters<typeof runNode>[0]['services'] = []) {
  return runNode({
    services,
    handleSignals: false,
    env: { OPS_PORT: 'off', LOG_LEVEL: 'silent', NODE_ID: `tls-${randomBytes(3).toString('hex')}`, ...env },
  });
}

/**
 * A call that makes a second call (orders → ledger), and the event it emits reaching a subscriber of
 * another node: request/reply and events, each over TLS. Returns the suffix its names carry.
 */
export async function sellOrderOverTls(env: TlsEnv): Promise<string> {
  const suffix = randomBytes(4).toString('hex');
  const slice = sellOrderSlice(suffix);
  const created: string[] = [];
  const ledger = defineService({
    name: slice.names.ledger,
    actions: [
      handle(slice.requestReservation, (input) => ({
        reservationId: `r-${input.orderId}`,
        free: 1000 - input.quantity,
      })),
    ],
  });
  const orders = defineService({
    name: slice.names.orders,
    uses: [slice.requestReservation, slice.orderCreated],
    actions: [
      handle(slice.sellShares, async (input, ctx) => {
        const orderId = `o-${suffix}`;
        await ctx.call(slice.requestReservation, { orderId, ...input });
        await ctx.emit(slice.orderCreated, { orderId, ...input, side: 'sell' });
        return { orderId, status: 'created' as const };
      }),
    ],
  });
  const market = defineService({
    name: slice.names.market,
    events: [on(slice.orderCreated, (payload) => void created.push(payload.orderId))],
  });
  const nodes: ChassisNode[] = [];
  try {
    nodes.push(await startNodeFromEnv(env, [ledger]));
    nodes.push(await startNodeFromEnv(env, [orders]));
    nodes.push(await startNodeFromEnv(env, [market]));
    const caller = await startNodeFromEnv(env);
    nodes.push(caller);
    const result = await caller.call(slice.sellShares, { accountId: '101', symbol: 'BHP', quantity: 10 });
    assert.deepEqual(result, { orderId: `o-${suffix}`, status: 'created' });
    await waitUntil(() => created.length > 0, { timeoutMs: 10_000, what: 'order_created to reach market over TLS' });
    assert.deepEqual(created, [`o-${suffix}`]);
  } finally {
    await Promise.allSettled(nodes.map((node) => node.stop()));
  }
  return suffix;
}

/** Starting a node with `env` fails with a CONFIG error of `reason`, whose message contains each of `mentions`. */
export async function assertNodeRefused(
  env: TlsEnv,
  reason: string,
  mentions: readonly string[],
): Promise<ChassisError> {
  const started = await startNodeFromEnv(env).then(
    async (node) => {
      await node.stop();
      return undefined;
    },
    (error: unknown) => error,
  );
  assert.ok(started instanceof ChassisError, `expected a ChassisError, got ${String(started)}`);
  assert.equal(started.code, 'CONFIG', started.message);
  assert.equal(started.retryable, false);
  assert.equal((started.data as { reason?: string } | undefined)?.reason, reason, started.message);
  for (const mention of mentions) assert.ok(started.message.includes(mention), `"${started.message}" names ${mention}`);
  return started;
}
