import { signToken } from '@chassis/core';

/**
 * A service's own token (role `system`), for work it does for a customer without the customer's token
 * at hand: a saga step after the payment came, a sweep after a crash. Signed with the secret identity
 * signs with, renewed well before it expires.
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
