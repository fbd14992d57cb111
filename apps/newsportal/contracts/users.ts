import { action } from '@chassis/core';
import { z } from 'zod';
import { Id } from './common.ts';

/** A user as every reader sees it: never with the password or its hash. */
export const User = z.object({ id: Id, name: z.string(), email: z.string() });

const Name = z.string().trim().min(1).max(100);
const Email = z.string().trim().toLowerCase().pipe(z.email().max(254));
/** Hashed (bcrypt) before anything keeps it; 72 bytes is what bcrypt reads of a password. */
const Password = z.string().min(8).max(72);

export const listUsers = action('users.list_users', {
  description: 'Users by id, `count` (1–10) from the `start`th (a negative start reads as 0).',
  input: z.object({ count: z.number().int().min(1).max(10).default(10), start: z.number().int().default(0) }),
  output: z.object({ users: z.array(User), count: z.number().int(), start: z.number().int() }),
  idempotent: true,
});

export const createUser = action('users.create_user', {
  description:
    'Reserves an id, keeps the user in Redis and queues it for the database (write-behind); DUPLICATE_EMAIL (409) for an e-mail in use, UNAVAILABLE (503) while Redis is down.',
  input: z.object({ name: Name, email: Email, password: Password }),
  output: User,
  idempotent: false,
});

export const getUser = action('users.get_user', {
  description: 'A user: from the Redis cache, else the database (which then fills the cache).',
  input: z.object({ id: Id }),
  output: User,
  idempotent: true,
});

export const updateUser = action('users.update_user', {
  input: z
    .object({ id: Id, name: Name.optional(), email: Email.optional(), password: Password.optional() })
    .refine((input) => input.name !== undefined || input.email !== undefined || input.password !== undefined, {
      message: 'give at least one of name, email and password',
      path: ['name'],
    }),
  output: User,
  idempotent: true,
});

export const deleteUser = action('users.delete_user', {
  input: z.object({ id: Id }),
  output: z.object({ id: Id, deleted: z.literal(true) }),
  idempotent: true,
});

const Check = z.object({ status: z.enum(['pass', 'fail']), output: z.string().optional() });
export const UsersHealth = z.object({
  status: z.enum(['pass', 'warn', 'fail']),
  checks: z.object({ database: Check, redis: Check }),
});

export const checkHealth = action('users.check_health', {
  description: 'Whether the database and Redis answer, each on its own.',
  input: z.object({}),
  output: UsersHealth,
  idempotent: true,
});

/**
 * Internal, for the write-behind workers: makes the database say what Redis holds for the user (its
 * latest write: the user, or that it was deleted). Idempotent: the same write applied twice is applied once.
 */
export const persistPending = action('users.persist_pending', {
  input: z.object({ id: Id }),
  output: z.object({ applied: z.enum(['upsert', 'delete', 'nothing']) }),
  idempotent: true,
});
