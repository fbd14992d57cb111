import { ChassisError, type Context, defineService, handle } from '@chassis/core';
import { commit, database, sql } from '@chassis/data';
import bcrypt from 'bcryptjs';
import {
  checkHealth,
  createUser,
  deleteUser,
  getUser,
  listUsers,
  persistPending,
  updateUser,
} from '../../contracts/users.ts';
import type { UsersMetrics } from './metrics.ts';
import {
  DuplicateEmail,
  publicUser,
  QUEUES,
  RedisDown,
  type StoredUser,
  UserStore,
  type UserStoreOptions,
} from './user-store.ts';
import { WriteWorkers } from './write-queue.ts';

interface UsersTables {
  users: StoredUser;
}

export interface UsersOptions extends UserStoreOptions {
  /** Run the write-behind workers here (default true). */
  workers?: boolean;
  /** A worker silent this long is dead and its ids go back on the queues. Default 10 s. */
  workerLeaseMs?: number;
  /** bcrypt's cost. Default 10. */
  bcryptRounds?: number;
  /**
   * Told where each read was answered from: the cache, a pending write, the database on a miss, or the
   * database because Redis is unreachable (the bench's hit ratio).
   */
  onCacheRead?: (outcome: CacheReadOutcome) => void;
  /** The metrics of its cache reads and write queues (the node's `/metrics`, the News portal dashboard). */
  metrics?: UsersMetrics;
}

export type CacheReadOutcome = 'hit' | 'pending' | 'miss' | 'redis-down';

const notFound = (id: number) => new ChassisError('NOT_FOUND', `No user ${id}`, { data: { id } });

/**
 * Users (the book's ch. 3, 11, 13): PostgreSQL is the record, Redis sits in front of it. Reads are
 * cache-aside (the cache, the pending write, then the database, which fills the cache) and fall back to
 * the database while Redis is away. Writes are "caching first": the id is reserved from the sequence,
 * the user is kept in Redis and its id queued, and the answer goes at once; the write-behind workers
 * persist it. While Redis is away writes answer 503 and nothing is written anywhere.
 */
export function usersService(options: UsersOptions) {
  const rounds = options.bcryptRounds ?? 10;
  const counted = (outcome: CacheReadOutcome) => {
    options.metrics?.cacheRead(outcome);
    options.onCacheRead?.(outcome);
  };
  let store: UserStore | undefined;
  let workers: WriteWorkers | undefined;
  const redis = () => {
    if (!store) throw new ChassisError('UNAVAILABLE', 'The users service is starting');
    return store;
  };

  async function fromDatabase(ctx: Context, id: number): Promise<StoredUser | undefined> {
    const db = await database<UsersTables>(ctx);
    return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** The user with its hash, as its latest write says (for writes: Redis must be up). */
  async function current(ctx: Context, id: number): Promise<StoredUser> {
    const pending = await redis().pending(id);
    if (pending?.write.op === 'delete') throw notFound(id);
    const user = pending?.write.user ?? (await fromDatabase(ctx, id));
    if (!user) throw notFound(id);
    return user;
  }

  /** Refuses an e-mail the database gives to another user, unless that user's latest write changed it. */
  async function checkEmailFree(ctx: Context, email: string, id?: number): Promise<void> {
    const db = await database<UsersTables>(ctx);
    const owner = await db.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst();
    if (!owner || owner.id === id) return;
    const pending = await redis().pending(owner.id);
    const moved = pending && (pending.write.op === 'delete' || pending.write.user.email !== email);
    if (!moved) throw DuplicateEmail(email);
  }

  const requireRedis = () => {
    if (!redis().up) throw RedisDown();
  };

  return defineService({
    name: 'users',
    version: '0.1.0',
    description: 'The portal’s users: PostgreSQL behind a Redis cache and write-behind queues',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [persistPending],
    health: {
      // Degraded, not down: reads go to the database meanwhile; writes answer 503.
      redis: async () => {
        try {
          await redis().ping();
          return { status: 'pass' };
        } catch (error) {
          return { status: 'warn', output: `Redis is unreachable (${(error as Error).message}): writes answer 503` };
        }
      },
    },
    start: async (service) => {
      store = new UserStore(options);
      await store.ready();
      const watched = store;
      options.metrics?.watch(() => watched.backlog());
      if (options.workers !== false) {
        workers = new WriteWorkers({
          store,
          leaseMs: options.workerLeaseMs,
          log: service.log,
          persist: async (id) => {
            await service.call(persistPending, { id });
          },
        });
        workers.start();
      }
    },
    stop: async () => {
      options.metrics?.watch(undefined);
      await workers?.stop();
      await store?.close();
    },
    actions: [
      handle(listUsers, async ({ count, start }, ctx) => {
        const db = await database<UsersTables>(ctx);
        const offset = Math.max(0, start);
        const users = await db
          .selectFrom('users')
          .select(['id', 'name', 'email'])
          .orderBy('id')
          .limit(count)
          .offset(offset)
          .execute();
        return { users, count, start: offset };
      }),
      handle(getUser, async ({ id }, ctx) => {
        let cacheUp = true;
        try {
          const cached = await redis().cached(id);
          if (cached) {
            counted('hit');
            return cached;
          }
          const pending = await redis().pending(id);
          if (pending) counted('pending');
          if (pending?.write.op === 'delete') throw notFound(id);
          if (pending) return publicUser(pending.write.user);
        } catch (error) {
          if (error instanceof ChassisError) throw error;
          // Redis is away: the database answers alone.
          cacheUp = false;
        }
        counted(cacheUp ? 'miss' : 'redis-down');
        const user = await fromDatabase(ctx, id);
        if (!user) throw notFound(id);
        if (cacheUp)
          await redis()
            .cache(user)
            .catch(() => undefined);
        return publicUser(user);
      }),
      handle(createUser, async ({ name, email, password }, ctx) => {
        requireRedis();
        await checkEmailFree(ctx, email);
        const db = await database<UsersTables>(ctx);
        const reserved = await sql<{ id: string }>`select nextval('users.users_id_seq') as id`.execute(db);
        const user: StoredUser = {
          id: Number(reserved.rows[0]!.id),
          name,
          email,
          password_hash: await bcrypt.hash(password, rounds),
        };
        await redis().write(QUEUES.create, { op: 'upsert', user }, { cacheIt: true, claim: email });
        ctx.log.info({ userId: user.id }, 'user created (queued for the database)');
        return publicUser(user);
      }),
      handle(updateUser, async ({ id, name, email, password }, ctx) => {
        requireRedis();
        const before = await current(ctx, id);
        const changesEmail = email !== undefined && email !== before.email;
        if (changesEmail) await checkEmailFree(ctx, email, id);
        const user: StoredUser = {
          id,
          name: name ?? before.name,
          email: email ?? before.email,
          password_hash: password === undefined ? before.password_hash : await bcrypt.hash(password, rounds),
        };
        await redis().write(
          QUEUES.update,
          { op: 'upsert', user },
          { cacheIt: false, ...(changesEmail ? { claim: email, release: before.email } : { claim: before.email }) },
        );
        return publicUser(user);
      }),
      handle(deleteUser, async ({ id }, ctx) => {
        requireRedis();
        const before = await current(ctx, id);
        await redis().write(
          QUEUES.delete,
          { op: 'delete', id, email: before.email },
          { cacheIt: false, release: before.email },
        );
        return { id, deleted: true as const };
      }),
      handle(persistPending, async ({ id }, ctx) => {
        const pending = await redis().pending(id);
        if (!pending) return { applied: 'nothing' as const };
        const db = await database<UsersTables>(ctx);
        const { write } = pending;
        if (write.op === 'delete') {
          await db.deleteFrom('users').where('id', '=', id).execute();
        } else {
          const { id: _, ...changes } = write.user;
          await db
            .insertInto('users')
            .values(write.user)
            .onConflict((oc) => oc.column('id').doUpdateSet(changes))
            .execute();
        }
        // Committed before the pending write is dropped: a crash between the two persists it twice, harmlessly.
        await commit(ctx);
        await redis().settle(id, pending.raw);
        return { applied: write.op };
      }),
      handle(checkHealth, async (_input, ctx) => {
        const check = async (probe: () => Promise<unknown>) => {
          try {
            await probe();
            return { status: 'pass' as const };
          } catch (error) {
            return { status: 'fail' as const, output: (error as Error).message };
          }
        };
        const [databaseCheck, redisCheck] = await Promise.all([
          check(async () => sql`select 1`.execute(await database(ctx))),
          check(() => redis().ping()),
        ]);
        const failed = [databaseCheck, redisCheck].filter((c) => c.status === 'fail').length;
        return {
          status: failed === 0 ? ('pass' as const) : failed === 2 ? ('fail' as const) : ('warn' as const),
          checks: { database: databaseCheck, redis: redisCheck },
        };
      }),
    ],
  });
}
