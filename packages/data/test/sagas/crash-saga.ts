import { ChassisError } from '@chassis/core';
import { type Database, defineSaga, type StepContext, sql } from '@chassis/data';
import { z } from 'zod';

/**
 * The sell-order saga of the crash test, whose effects are rows: `effects` holds one row per effect
 * (idempotency key × phase) and `effect_log` gets a row in the same transaction as an effect made for
 * the first time, so an effect made twice — under a key that changed, say — shows as two log rows for
 * one step. `invocations` logs every call the runner makes, first thing.
 */
export const CRASH_SAGA = 'sell-order';
export const STEPS = ['reserve_shares', 'place_order', 'charge_fee'] as const;

/** Every boundary one run of a batch passes (half its sagas complete, half compensate), in order. */
export const EXPECTED_BOUNDARIES = [
  'saga_created',
  ...['step_started', 'step_ran', 'step_completed'].map((b) => `${b}:reserve_shares`),
  'step_started:place_order',
  'step_retrying:place_order',
  'step_ran:place_order',
  'step_completed:place_order',
  ...['step_started', 'step_ran', 'step_completed'].map((b) => `${b}:charge_fee`),
  'saga_completed',
  'step_failed:charge_fee',
  ...['charge_fee', 'place_order', 'reserve_shares'].flatMap((step) =>
    ['compensation_started', 'compensation_ran', 'compensation_completed'].map((b) => `${b}:${step}`),
  ),
  'saga_compensated',
];

/** Odd sagas of a batch fail at the fee (after charging it: the reply was lost) and compensate. */
export const feeFails = (index: number) => index % 2 === 1;

export async function installEffects(db: Database, service: string): Promise<void> {
  await sql`create schema if not exists ${sql.id(service)}`.execute(db.kysely);
  await sql`create table if not exists ${sql.id(service, 'effects')} (
    key text not null, phase text not null, saga_id text not null, step text not null, primary key (key, phase))`.execute(
    db.kysely,
  );
  await sql`create table if not exists ${sql.id(service, 'effect_log')} (
    seq bigint generated always as identity primary key, saga_id text not null, step text not null,
    phase text not null, key text not null)`.execute(db.kysely);
  await sql`create table if not exists ${sql.id(service, 'invocations')} (
    seq bigint generated always as identity primary key, saga_id text not null, step text not null,
    phase text not null, attempt integer not null, key text not null)`.execute(db.kysely);
}

export function crashSaga(db: Database, service: string) {
  const table = (name: string) => sql.id(service, name);

  async function called(ctx: StepContext): Promise<void> {
    await sql`insert into ${table('invocations')} (saga_id, step, phase, attempt, key)
      values (${ctx.sagaId}, ${ctx.step}, ${ctx.phase}, ${ctx.attempt}, ${ctx.idempotencyKey})`.execute(db.kysely);
  }

  async function effect(ctx: StepContext): Promise<void> {
    await db.transaction(async (trx) => {
      if (ctx.phase === 'run') {
        // Undone before it was done (a late attempt): it must not happen any more.
        const undone = await sql`select 1 from ${table('effects')}
          where key = ${ctx.idempotencyKey} and phase = 'compensate'`.execute(trx);
        if (undone.rows.length > 0) return;
      }
      const made = await sql`insert into ${table('effects')} (key, phase, saga_id, step)
        values (${ctx.idempotencyKey}, ${ctx.phase}, ${ctx.sagaId}, ${ctx.step})
        on conflict (key, phase) do nothing returning key`.execute(trx);
      if (made.rows.length === 0) return;
      await sql`insert into ${table('effect_log')} (saga_id, step, phase, key)
        values (${ctx.sagaId}, ${ctx.step}, ${ctx.phase}, ${ctx.idempotencyKey})`.execute(trx);
    });
  }

  const retry = { maxAttempts: 4, initialDelayMs: 5, maxDelayMs: 20 };
  return defineSaga({
    name: CRASH_SAGA,
    data: z.object({
      accountId: z.string(),
      symbol: z.string(),
      quantity: z.number().int().positive(),
      failFee: z.boolean(),
      exchangeOrderId: z.string().optional(),
    }),
    steps: [
      {
        name: 'reserve_shares',
        retry,
        compensationRetry: retry,
        run: async (_data, ctx) => {
          await called(ctx);
          await effect(ctx);
        },
        compensate: async (_data, ctx) => {
          await called(ctx);
          await effect(ctx);
        },
      },
      {
        name: 'place_order',
        retry,
        compensationRetry: retry,
        run: async (_data, ctx) => {
          await called(ctx);
          if (ctx.attempt === 1) throw new ChassisError('UNAVAILABLE', 'The exchange did not answer');
          await effect(ctx);
          return { exchangeOrderId: `X-${ctx.idempotencyKey}` };
        },
        compensate: async (_data, ctx) => {
          await called(ctx);
          await effect(ctx);
        },
      },
      {
        name: 'charge_fee',
        retry,
        compensationRetry: retry,
        run: async (data, ctx) => {
          await called(ctx);
          await effect(ctx);
          if (data.failFee) throw new ChassisError('CHARGE_FAILED', 'The fee was refused', { retryable: false });
        },
        compensate: async (_data, ctx) => {
          await called(ctx);
          await effect(ctx);
        },
      },
    ],
  });
}
