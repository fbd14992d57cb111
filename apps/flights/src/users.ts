import { ChassisError, signToken } from '@chassis/core';
import bcrypt from 'bcryptjs';

/**
 * The seed users of the BFF (issue 17): two customers — the customer id is the token's subject — and a
 * customer-service agent, who may act for any customer by naming them. Passwords are kept as bcrypt
 * hashes only: `flyer-password`, `family-password`, `agent-password`.
 */
const USERS: Record<string, { hash: string; roles: string[] }> = {
  flyer: { hash: '$2b$10$jFNyHhLFcMaodjDn5oYbm.HHpZ3Dluk/ernFb9RjMQwmyVZLw490i', roles: ['customer'] },
  family: { hash: '$2b$10$W.W5yOlMAGfjfgE3D3klWOgSkG6TpdIQ71zOEDafwbhpInMkPKmlC', roles: ['customer'] },
  agent: { hash: '$2b$10$PEZ.SByA6JiVGvUZWqdISupHRmcetMA2/2WkNZ3IC4dSiDlr6PYvK', roles: ['agent'] },
};

/** Compared against for a name nobody has, so that a wrong name takes as long as a wrong password. */
const NO_SUCH_USER_HASH = '$2b$10$AYKN1eaXX2SyZYVqtzWWNuRh7Zz5KpVsUdrRekNOk4Z2351X3YLx6';

export const TOKEN_TTL_SECONDS = 3600;

export async function issueToken(secret: string, username: string, password: string) {
  const user = Object.hasOwn(USERS, username) ? USERS[username] : undefined;
  const matches = await bcrypt.compare(password, user?.hash ?? NO_SUCH_USER_HASH);
  if (!user || !matches) throw new ChassisError('UNAUTHENTICATED', 'Wrong username or password');
  const token = await signToken(secret, { sub: username, roles: user.roles }, { expiresInSeconds: TOKEN_TTL_SECONDS });
  return { access_token: token, token_type: 'Bearer' as const, expires_in: TOKEN_TTL_SECONDS };
}
