import { ChassisError, defineService, handle, signToken } from '@chassis/core';
import { database } from '@chassis/data';
import bcrypt from 'bcryptjs';
import { issueToken } from '../../contracts/identity.ts';

interface IdentityTables {
  users: { username: string; password_hash: string; roles: string[]; accounts: string[] };
}

/** Compared against when the user does not exist, so a wrong name takes as long as a wrong password. */
const NO_SUCH_USER_HASH = '$2b$10$g5wufhFgA8BYoKdfxWn2v.IUwOK0jvCNnJSGlra8MakWyWfqAMdNO';

export interface IdentityOptions {
  /** The HS256 secret tokens are signed with; every service verifies with the same one. */
  secret: string;
  /** How long a token lives. Default 1 hour. */
  tokenTtlSeconds?: number;
}

/**
 * Users, their hashed passwords, roles and accounts (its own schema, `identity`), and the tokens that
 * say who is calling: the gateway and every service verify them.
 */
export function identityService(options: IdentityOptions) {
  const ttl = options.tokenTtlSeconds ?? 3600;
  return defineService({
    name: 'identity',
    version: '0.1.0',
    description: 'Issues access tokens for SimpleBank’s users',
    migrations: new URL('./migrations/', import.meta.url),
    actions: [
      handle(issueToken, async ({ username, password }, ctx) => {
        const db = await database<IdentityTables>(ctx);
        const user = await db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
        const matches = await bcrypt.compare(password, user?.password_hash ?? NO_SUCH_USER_HASH);
        if (!user || !matches) throw new ChassisError('UNAUTHENTICATED', 'Wrong username or password');
        const token = await signToken(
          options.secret,
          { sub: user.username, roles: user.roles, accounts: user.accounts },
          { expiresInSeconds: ttl },
        );
        ctx.log.info({ user: user.username }, 'token issued');
        return { access_token: token, token_type: 'Bearer' as const, expires_in: ttl };
      }),
    ],
  });
}
