import { action, defineError, event } from '@chassis/core';
import { z } from 'zod';
import { UserId } from './common.ts';

export const User = z.object({
  id: UserId,
  username: z.string(),
  name: z.string(),
  email: z.string(),
  createdAt: z.string(),
});

export const UserNotFound = defineError('USER_NOT_FOUND', { status: 404, retryable: false });
/** A username or e-mail address someone already has: 409, naming the field. */
export const UserExists = defineError('USER_EXISTS', { status: 409, retryable: false });

/** Signs up (`POST /api/v1/users`): the password goes to auth, hashed; no answer ever carries it. */
export const createUser = action('shop-users.createUser', {
  input: z.object({
    username: z
      .string()
      .trim()
      .toLowerCase()
      .regex(/^[a-z0-9_.-]{3,32}$/, 'a username is 3 to 32 letters, digits, "_", "." or "-"'),
    name: z.string().trim().min(1).max(100),
    email: z.string().trim().toLowerCase().pipe(z.email('an e-mail address, e.g. ada@example.com')),
    password: z.string().min(8, 'a password has at least 8 characters').max(256),
  }),
  output: User,
  idempotent: false,
});

export const getUser = action('shop-users.getUser', {
  input: z.object({ id: UserId }),
  output: User,
  idempotent: true,
});

/**
 * A user signed up: auth keeps their credentials from it. It carries the bcrypt hash, never the
 * password, so the password is never stored or sent in clear past the users service.
 */
export const userRegistered = event(
  'shop-users.user_registered',
  z.object({ userId: UserId, username: z.string(), passwordHash: z.string(), roles: z.array(z.string()) }),
);
