import { ChassisError, type Identity, requireIdentity } from '@chassis/core';

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

/** PostgreSQL's unique_violation, from pg and PGlite alike. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}
