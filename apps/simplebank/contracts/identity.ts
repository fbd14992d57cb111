import { action } from '@chassis/core';
import { z } from 'zod';

/** Exchanges a username and password for an access token (`POST /auth/token`). */
export const issueToken = action('identity.issueToken', {
  description:
    'Checks a username and password and issues a signed access token (JWT) naming the user, roles and accounts.',
  input: z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(256) }),
  output: z.object({
    access_token: z.string(),
    token_type: z.literal('Bearer'),
    /** Seconds the token is valid for. */
    expires_in: z.number().int().positive(),
  }),
  idempotent: true,
});
