import { z } from 'zod';
import { ChassisError } from './errors.ts';

/**
 * The node's configuration, read from environment variables and checked at start. Every problem is
 * reported at once, so a misconfigured deployment is fixed in one round.
 */

const transportUrl = z
  .string()
  .trim()
  .refine((value) => value === 'memory' || /^(nats|amqps?):\/\/.+/.test(value), {
    message: 'must be "memory", a nats://host:port URL or an amqp://user:pass@host:port URL',
  });

const positiveInt = z.coerce.number().int().positive();

export const nodeConfigSchema = z.object({
  CHASSIS_TRANSPORT: transportUrl.default('memory'),
  /** Comma-separated service names this node runs; empty means all. */
  SERVICES: z
    .string()
    .default('')
    .transform((value) =>
      value
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean),
    ),
  NODE_ID: z.string().trim().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CHASSIS_SERIALIZER: z.enum(['json', 'msgpack']).default('json'),
  CHASSIS_CALL_TIMEOUT_MS: positiveInt.default(5000),
  CHASSIS_MAX_DELIVERIES: positiveInt.default(5),
  CHASSIS_DRAIN_TIMEOUT_MS: positiveInt.default(10_000),
  /** The ops port (`/health/live`, `/health/ready`, `/metrics`), or `off`. */
  OPS_PORT: z
    .union([z.literal('off'), z.coerce.number().int().min(0).max(65_535)], {
      error: 'must be a port number (0 picks a free one) or "off"',
    })
    .default(9400),
  /** HS256 secret that verifies callers' tokens (development); or the JWKS URL of the issuer (production). */
  CHASSIS_JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  CHASSIS_JWKS_URL: z.url().optional(),
  CHASSIS_JWT_ISSUER: z.string().optional(),
  CHASSIS_JWT_AUDIENCE: z.string().optional(),
});

export type NodeConfig = z.output<typeof nodeConfigSchema>;

/** Reads the configuration; throws one `CONFIG` error that lists every problem. */
export function loadConfig(env: Record<string, string | undefined> = process.env): NodeConfig {
  // Empty strings count as unset, as a shell `FOO=` usually means.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = nodeConfigSchema.safeParse(present);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const name = issue.path.join('.');
    const value = env[name];
    return `${name}${value === undefined ? '' : `="${value}"`}: ${issue.message}`;
  });
  throw new ChassisError('CONFIG', `The node's configuration is not valid:\n- ${problems.join('\n- ')}`, {
    data: { problems },
  });
}
