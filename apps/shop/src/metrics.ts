import type { ChassisNode } from '@chassis/core';
import { type Database, sql } from '@chassis/data';
import { Gauge } from 'prom-client';

/** Every status an order can have (the orders table's check), so each is a series from 0. */
export const ORDER_STATUSES = ['pending', 'confirmed', 'on_hold', 'canceled'] as const;
/** Every status a payment can have (the payments table's check). */
export const PAYMENT_STATUSES = ['charged', 'held', 'declined', 'voided'] as const;

/**
 * The Shop's business gauges, read from the tables when scraped, on the nodes that host the service
 * owning them: `shop_orders{status}` (shop-orders) and `shop_payments{status}` (shop-payments). Every
 * instance of a service reports the same table, so dashboards and alerts take the max across instances.
 * Counted in the tables rather than as the saga goes, so a node's restart loses nothing and a resumed
 * saga counts once.
 */
export function registerShopMetrics(
  node: ChassisNode,
  database: () => Database,
  hosts: (service: string) => boolean,
): void {
  const registry = node.metrics.registry;
  if (hosts('shop-orders') && !registry.getSingleMetric('shop_orders')) {
    new Gauge({
      name: 'shop_orders',
      help: 'Orders of the Shop by status (pending, confirmed, on_hold, canceled), counted in the orders table',
      labelNames: ['status'] as const,
      registers: [registry],
      async collect() {
        const counts = await sql<{ status: string; n: number }>`
          select status, count(*)::int as n from "shop-orders".orders group by status`.execute(database().kysely);
        this.reset();
        for (const status of ORDER_STATUSES) this.set({ status }, 0);
        for (const { status, n } of counts.rows) this.set({ status }, n);
      },
    });
  }
  if (hosts('shop-payments') && !registry.getSingleMetric('shop_payments')) {
    new Gauge({
      name: 'shop_payments',
      help: 'Payments of the Shop by status (charged, held, declined, voided), counted in the payments table',
      labelNames: ['status'] as const,
      registers: [registry],
      async collect() {
        const counts = await sql<{ status: string; n: number }>`
          select status, count(*)::int as n from "shop-payments".payments group by status`.execute(database().kysely);
        this.reset();
        for (const status of PAYMENT_STATUSES) this.set({ status }, 0);
        for (const { status, n } of counts.rows) this.set({ status }, n);
      },
    });
  }
}
