import { action } from '@chassis/core';
import { z } from 'zod';

/** `POST /api/v1/login`: a signed JWT with an expiry, or 401. */
export const login = action('shop-auth.login', {
  input: z.object({ username: z.string().trim().toLowerCase().min(1).max(64), password: z.string().min(1).max(256) }),
  output: z.object({
    token: z.string(),
    tokenType: z.literal('Bearer'),
    /** Seconds the token is valid for. */
    expiresIn: z.number().int().positive(),
  }),
  idempotent: true,
});
