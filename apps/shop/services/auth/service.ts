import { ChassisError, defineService, handle, on, signToken } from '@chassis/core';
import { database } from '@chassis/data';
import bcrypt from 'bcryptjs';
import { login } from '../../contracts/auth.ts';
import { userRegistered } from '../../contracts/users.ts';

interface AuthTables {
  credentials: { user_id: string; username: string; password_hash: string; roles: string[] };
}

/** Compared against when the user does not exist, so a wrong name takes as long as a wrong password. */
const NO_SUCH_USER_HASH = '$2b$10$g5wufhFgA8BYoKdfxWn2v.IUwOK0jvCNnJSGlra8MakWyWfqAMdNO';

export interface AuthOptions {
  /** The HS256 secret tokens are signed with (configuration, never in the code); the gateway verifies with it. */
  secret: string;
  /** How long a token lives. Default 1 hour. */
  tokenTtlSeconds?: number;
}

/**
 * Credentials (hashed, in their own schema, kept from users' `user_registered`) and the tokens that say
 * who is calling: `sub` is the user's id, `roles` customer or admin.
 */
export function authService(options: AuthOptions) {
  const ttl = options.tokenTtlSeconds ?? 3600;
  return defineService({
    name: 'shop-auth',
    version: '0.1.0',
    description: 'Logs users in: signed JWTs with an expiry',
    migrations: new URL('./migrations/', import.meta.url),
    actions: [
      handle(login, async ({ username, password }, ctx) => {
        const db = await database<AuthTables>(ctx);
        const user = await db.selectFrom('credentials').selectAll().where('username', '=', username).executeTakeFirst();
        const matches = await bcrypt.compare(password, user?.password_hash ?? NO_SUCH_USER_HASH);
        if (!user || !matches) throw new ChassisError('UNAUTHENTICATED', 'Wrong username or password');
        const token = await signToken(
          options.secret,
          { sub: user.user_id, roles: user.roles, username: user.username },
          { expiresInSeconds: ttl },
        );
        return { token, tokenType: 'Bearer' as const, expiresIn: ttl };
      }),
    ],
    events: [
      on(
        userRegistered,
        async (user, ctx) => {
          const db = await database<AuthTables>(ctx);
          await db
            .insertInto('credentials')
            .values({
              user_id: user.userId,
              username: user.username,
              password_hash: user.passwordHash,
              roles: user.roles,
            })
            .onConflict((oc) => oc.column('user_id').doNothing())
            .execute();
        },
        // A redelivery inserts nothing: the row is keyed by the user.
        { idempotent: true },
      ),
    ],
  });
}
