import { randomUUID } from 'node:crypto';
import { defineService, handle, requireIdentity } from '@chassis/core';
import { database } from '@chassis/data';
import bcrypt from 'bcryptjs';
import { createUser, getUser, UserExists, UserNotFound, userRegistered } from '../../contracts/users.ts';
import { isUniqueViolation } from '../shared/access.ts';

interface UsersTables {
  users: { id: string; username: string; name: string; email: string; roles: string[]; created_at: Date };
}

type UserRow = UsersTables['users'];

function view(row: UserRow) {
  return {
    id: row.id,
    username: row.username,
    name: row.name,
    email: row.email,
    createdAt: new Date(row.created_at).toISOString(),
  };
}

/**
 * Users (their own schema): sign-up and look-up. The password is hashed here and handed to auth in the
 * `user_registered` event, through the outbox, in the transaction that records the user.
 */
export function usersService() {
  return defineService({
    name: 'shop-users',
    version: '0.1.0',
    description: 'The shop’s users: sign-up and profiles',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [userRegistered],
    actions: [
      handle(createUser, async (input, ctx) => {
        // Hashed before the transaction opens: bcrypt takes tens of milliseconds.
        const passwordHash = await bcrypt.hash(input.password, 10);
        const db = await database<UsersTables>(ctx);
        const taken = await db
          .selectFrom('users')
          .select(['username', 'email'])
          .where((eb) => eb.or([eb('username', '=', input.username), eb('email', '=', input.email)]))
          .execute();
        const fields = [
          ...(taken.some((row) => row.username === input.username)
            ? [{ path: 'username', message: `the username "${input.username}" is taken`, code: 'taken' }]
            : []),
          ...(taken.some((row) => row.email === input.email)
            ? [{ path: 'email', message: 'a user with this e-mail address exists', code: 'taken' }]
            : []),
        ];
        if (fields.length > 0) {
          throw UserExists(`Sign-up refused: ${fields.map((field) => field.message).join('; ')}`, { fields });
        }
        const row: UserRow = {
          id: randomUUID(),
          username: input.username,
          name: input.name,
          email: input.email,
          roles: ['customer'],
          created_at: new Date(),
        };
        try {
          await db.insertInto('users').values(row).execute();
        } catch (error) {
          // Two sign-ups with one name at the same moment: the index decides, the loser hears it plainly.
          if (isUniqueViolation(error)) {
            throw UserExists('Sign-up refused: the username or e-mail address was just taken', {
              fields: [{ path: 'username', message: 'taken', code: 'taken' }],
            });
          }
          throw error;
        }
        await ctx.emit(userRegistered, { userId: row.id, username: row.username, passwordHash, roles: row.roles });
        ctx.log.info({ userId: row.id }, 'user signed up');
        return view(row);
      }),
      handle(getUser, async ({ id }, ctx) => {
        // Any signed-in caller, over HTTP and gRPC alike.
        requireIdentity(ctx.user);
        const db = await database<UsersTables>(ctx);
        const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
        if (!row) throw UserNotFound(`No user ${id}`, { id });
        return view(row);
      }),
    ],
  });
}
