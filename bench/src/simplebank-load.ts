import { readFileSync } from 'node:fs';
import { signToken } from '@chassis/core';
import { type Database, sql } from '@chassis/data';

/**
 * What the SimpleBank benchmark's modes share: its customers, the orders they place through the
 * gateway, and what the bench reads back from the bank's database (terminal orders and when they
 * ended). The embedded mode runs these same queries inside the bank's process, over IPC.
 */

/** The secret the bank verifies tokens with: the bench signs its customers' tokens with it. */
export const SECRET = 'simplebank-bench-secret-of-at-least-32-characters';

export interface Customer {
  accountId: string;
  token: string;
  orders: number;
}

/**
 * Bench customers: an account each with cash and BHP, written into the ledger's tables with their
 * opening entries (double entry holds), and a token for each signed with the bank's secret. One customer
 * per client, so customers do not queue on each other's account lock, as many customers would not.
 */
export async function seedCustomers(db: Database, count: number): Promise<Customer[]> {
  const customers: Customer[] = [];
  for (let i = 0; i < count; i++) {
    const accountId = String(5000 + i);
    await sql`
      with account as (
        insert into "account-transactions".accounts (id, name, owner, cash_cents)
        values (${accountId}, ${`Bench ${i}`}, ${`bench-${i}`}, 100000000)
      ), position as (
        insert into "account-transactions".positions (account_id, symbol, quantity) values (${accountId}, 'BHP', 1000000)
      )
      insert into "account-transactions".entries (account, asset, amount, kind) values
        (${accountId}, 'CASH', 100000000, 'opening'), ('opening', 'CASH', -100000000, 'opening'),
        (${accountId}, 'BHP', 1000000, 'opening'), ('opening', 'BHP', -1000000, 'opening')`.execute(db.kysely);
    const token = await signToken(SECRET, { sub: `bench-${i}`, roles: ['customer'], accounts: [accountId] });
    customers.push({ accountId, token, orders: 0 });
  }
  return customers;
}

/** Places the next customer's next order (sells and buys of 1 BHP in turn); resolves to its id. */
export function orderPlacer(baseUrl: string, customers: readonly Customer[]): () => Promise<string> {
  let next = 0;
  return async () => {
    const customer = customers[next++ % customers.length]!;
    const path = customer.orders++ % 2 === 0 ? '/shares/sell' : '/shares/buy';
    const body = { accountId: customer.accountId, symbol: 'BHP', quantity: 1 };
    const placed = (await post(baseUrl, path, body, customer.token, 202)) as { orderId?: unknown };
    if (typeof placed.orderId !== 'string') throw new Error(`${path} answered without an orderId`);
    return placed.orderId;
  };
}

async function post(baseUrl: string, path: string, body: unknown, token: string, expected: number): Promise<unknown> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== expected) throw new Error(`${path} answered ${response.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

export interface TerminalCounts {
  completed: number;
  failed: number;
  /** Orders not yet terminal, including those recorded by orders that the read model has not seen. */
  open: number;
}

export async function terminalCounts(db: Database): Promise<TerminalCounts> {
  const { rows } = await sql<TerminalCounts>`
    select count(*) filter (where status = 'completed')::int as completed,
      count(*) filter (where status in ('failed', 'rejected', 'canceled'))::int as failed,
      (count(*) filter (where status not in ('completed', 'failed', 'rejected', 'canceled'))
        + greatest(0, (select count(*) from orders.chassis_streams) - count(*)))::int as open
    from "customer-orders".order_summaries`.execute(db.kysely);
  return rows[0]!;
}

/** When the last order completed (ms since the epoch), by the orders service's own record. */
export async function lastCompletedAt(db: Database): Promise<number> {
  const { rows } = await sql<{ at: Date | null }>`
    select max(recorded_at) as at from orders.chassis_events where type = 'OrderCompleted'`.execute(db.kysely);
  return rows[0]?.at ? new Date(rows[0].at).getTime() : Date.now();
}

/** When each of these orders ended (completed, failed, rejected or canceled): ms since the epoch, by id. */
export async function terminalTimes(db: Database, orderIds: readonly string[]): Promise<Record<string, number>> {
  const streams = orderIds.map((id) => `order-${id}`);
  const { rows } = await sql<{ stream: string; at: Date | string }>`
    select stream, min(recorded_at) as at from orders.chassis_events
    where type in ('OrderCompleted', 'OrderFailed', 'OrderRejected', 'OrderCanceled')
      and stream = any(${streams}::text[])
    group by stream`.execute(db.kysely);
  const times: Record<string, number> = {};
  for (const row of rows) times[row.stream.slice('order-'.length)] = new Date(row.at).getTime();
  return times;
}

/** A process's resident memory in MB, from /proc; undefined where there is none. */
export function rssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** A process's resident memory from /proc/<pid>/smaps_rollup, MB: anonymous (heaps, malloc) and file-backed (the node binary, libraries). */
export function residentSplitMb(pid: number | undefined): { anonymous: number; file: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { anonymous: kb('Anonymous') / 1024, file: (kb('Rss') - kb('Anonymous')) / 1024 };
  } catch {
    return undefined;
  }
}
