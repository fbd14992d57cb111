import { randomUUID } from 'node:crypto';
import { ChassisError, defineService, handle, requireIdentity, requireRole } from '@chassis/core';
import { database } from '@chassis/data';
import { createStrategy, getStrategy, listStrategies, strategyCreated } from '../../contracts/strategies.ts';

interface StrategyTables {
  strategies: {
    id: string;
    name: string;
    assets: string;
    created_by: string;
    created_at: Date;
  };
}

type Row = StrategyTables['strategies'];

function toStrategy(row: Row) {
  return {
    id: row.id,
    name: row.name,
    assets: typeof row.assets === 'string' ? JSON.parse(row.assets) : row.assets,
    createdById: row.created_by,
    createdAt: new Date(row.created_at).toISOString(),
  };
}

/** Premade investment strategies: admins create them (`StrategyCreated`), customers invest in them. */
export function investmentStrategiesService() {
  return defineService({
    name: 'investment-strategies',
    version: '0.1.0',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [strategyCreated],
    actions: [
      handle(createStrategy, async (input, ctx) => {
        const admin = requireRole(ctx.user, 'admin');
        const db = await database<StrategyTables>(ctx);
        const row = await db
          .insertInto('strategies')
          .values({
            id: randomUUID(),
            name: input.name,
            assets: JSON.stringify(input.assets),
            created_by: admin.subject,
            created_at: new Date(),
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        const strategy = toStrategy(row);
        await ctx.emit(strategyCreated, strategy);
        return strategy;
      }),
      handle(listStrategies, async (_input, ctx) => {
        requireIdentity(ctx.user);
        const db = await database<StrategyTables>(ctx);
        return (await db.selectFrom('strategies').selectAll().orderBy('created_at').execute()).map(toStrategy);
      }),
      handle(getStrategy, async ({ id }, ctx) => {
        requireIdentity(ctx.user);
        const db = await database<StrategyTables>(ctx);
        const row = await db.selectFrom('strategies').selectAll().where('id', '=', id).executeTakeFirst();
        if (!row) throw new ChassisError('NOT_FOUND', `No strategy ${id}`, { data: { id } });
        return toStrategy(row);
      }),
    ],
  });
}
