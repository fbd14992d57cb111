import { ChassisError, type Identity, requireIdentity } from '@chassis/core';

/**
 * A customer acts only on their own accounts (the `accounts` claim of their token); admins on any, and
 * so do SimpleBank's own services acting for a customer (role `system`, in tokens only they can sign).
 * Services check it themselves, whatever the gateway checked: the broker is not trusted for identity.
 */
export function requireAccount(user: Identity | undefined, accountId: string): Identity {
  const caller = requireIdentity(user);
  if (caller.roles.includes('admin') || caller.roles.includes('system')) return caller;
  const accounts = caller.claims.accounts;
  if (!Array.isArray(accounts) || !accounts.includes(accountId)) {
    throw new ChassisError('FORBIDDEN', `Account ${accountId} belongs to another customer`);
  }
  return caller;
}
