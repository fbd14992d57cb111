import { ChassisError, type Identity, requireIdentity, signToken } from '@chassis/core';

/** Services acting for the shop itself (the order saga) carry role `system`, in tokens only they can sign. */
export function isPrivileged(user: Identity): boolean {
  return user.roles.includes('admin') || user.roles.includes('system');
}

/**
 * A customer sees only their own user's data (orders, recommendations); admins and the shop's own
 * services see anyone's. Services check it themselves, whatever the gateway checked.
 */
export function requireSelf(user: Identity | undefined, userId: string, what: string): Identity {
  const caller = requireIdentity(user);
  if (isPrivileged(caller) || caller.subject === userId) return caller;
  throw new ChassisError('FORBIDDEN', `${what} of another user`);
}

export function requireSystem(user: Identity | undefined, what: string): Identity {
  const caller = requireIdentity(user);
  if (!caller.roles.includes('system')) {
    throw new ChassisError('FORBIDDEN', `Only the shop's own services may ${what}`);
  }
  return caller;
}

/**
 * A service's own token (role `system`) for work it does on nobody's request: the order saga's steps,
 * which may run long after the customer's token expired. Renewed well before it expires.
 */
export function systemToken(secret: string, service: string): () => Promise<string> {
  let token: { value: string; until: number } | undefined;
  return async () => {
    if (!token || token.until < Date.now()) {
      const value = await signToken(secret, { sub: service, roles: ['system'] }, { expiresInSeconds: 600 });
      token = { value, until: Date.now() + 500_000 };
    }
    return token.value;
  };
}

/** PostgreSQL's unique_violation, from pg and PGlite alike. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}
