import { z } from 'zod';
import { ChassisError } from './errors.ts';
import type { TlsFiles } from './tls.ts';

/**
 * The node's configuration, read from environment variables and checked at start. Every problem is
 * reported at once, so a misconfigured deployment is fixed in one round.
 */

const transportUrl = z
  .string()
  .trim()
  .refine((value) => value === 'memory' || /^(nats|tls|amqps?):\/\/.+/.test(value), {
    message:
      'must be "memory", a nats://host:port (or tls://host:port for NATS over TLS) URL, or an amqp://user:pass@host:port (or amqps://) URL',
  });

/** A path to a PEM file; read (and checked) when the transport connects, so a rotated Secret is seen. */
const pemFile = z.string().trim().min(1);

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
  /** Where RPC requests over NATS carry their envelope: `frame` (default) or `headers`, during an upgrade from nodes before frames. */
  CHASSIS_NATS_RPC_ENVELOPE: z.enum(['frame', 'headers']).default('frame'),
  /** How long an event may be pending (queued or handled) before calls from outside wait (memory transport), or `off`. */
  CHASSIS_MAX_EVENT_DELAY_MS: z
    .union([z.literal('off'), z.coerce.number().int().min(0)], {
      error: 'must be a number of milliseconds or "off"',
    })
    .default(500),
  /** The ops port (`/health/live`, `/health/ready`, `/metrics`), or `off`. */
  OPS_PORT: z
    .union([z.literal('off'), z.coerce.number().int().min(0).max(65_535)], {
      error: 'must be a port number (0 picks a free one) or "off"',
    })
    .default(9400),
  /** HS256 secret that verifies callers' tokens (development); or the JWKS URL of the issuer (production). */
  CHASSIS_JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  CHASSIS_JWKS_URL: z.url().optional(),
  /**
   * Opens the node's ops API (on the transport and under `/ops` on the ops port), beside a token with the
   * admin role. A long random string, shared with the operators' `chassis` command.
   */
  CHASSIS_OPS_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  CHASSIS_JWT_ISSUER: z.string().optional(),
  CHASSIS_JWT_AUDIENCE: z.string().optional(),
  /**
   * TLS to the broker (NATS `tls://` or `nats://`, RabbitMQ `amqps://`): the CA that signed the broker's
   * certificate (default: the system CAs), and this node's certificate and key when the broker asks for
   * one (mutual TLS). Files, e.g. a Kubernetes Secret mounted at /etc/chassis/tls.
   */
  CHASSIS_TLS_CA_FILE: pemFile.optional(),
  CHASSIS_TLS_CERT_FILE: pemFile.optional(),
  CHASSIS_TLS_KEY_FILE: pemFile.optional(),
});

export type NodeConfig = z.output<typeof nodeConfigSchema>;

/** Reads the configuration; throws one `CONFIG` error that lists every problem. */
export function loadConfig(env: Record<string, string | undefined> = process.env): NodeConfig {
  // Empty strings count as unset, as a shell `FOO=` usually means.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = nodeConfigSchema.safeParse(present);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((issue) => {
        const name = issue.path.join('.');
        const value = env[name];
        return `${name}${value === undefined ? '' : `="${value}"`}: ${issue.message}`;
      });
  if (parsed.success) problems.push(...tlsProblems(parsed.data));
  if (parsed.success && problems.length === 0) return parsed.data;
  throw new ChassisError('CONFIG', `The node's configuration is not valid:\n- ${problems.join('\n- ')}`, {
    data: { problems },
  });
}

/**
 * A number from the environment, for an app's own settings: undefined when unset or empty, a `CONFIG`
 * error naming the variable when it is not a number (rather than a NaN that surfaces far away).
 */
export function envNumber(env: Record<string, string | undefined>, name: string): number | undefined {
  const value = env[name];
  if (value === undefined || value.trim() === '') return undefined;
  const number = Number(value);
  if (!Number.isFinite(number)) throw new ChassisError('CONFIG', `${name} must be a number, not "${value}"`);
  return number;
}

/**
 * A port from the environment: the fallback when unset or empty, `false` for `off` (run no server
 * there), `0` for any free port; anything but a whole number from 0 to 65535 is a `CONFIG` error
 * naming the variable, where `Number()` would hand the server a NaN to fail on.
 */
export function envPort(env: Record<string, string | undefined>, name: string, fallback: number): number | false {
  const value = env[name]?.trim();
  if (value === undefined || value === '') return fallback;
  if (value === 'off') return false;
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65_535) {
    throw new ChassisError('CONFIG', `${name} is a port (0 to 65535, 0 picks a free one) or off, not "${value}"`);
  }
  return Number(value);
}

/** A port others are told before the server starts (a launcher's): `envPort`'s rule, but neither `off` nor 0. */
export function envKnownPort(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const port = envPort(env, name, fallback);
  if (port === false || port === 0) {
    throw new ChassisError('CONFIG', `${name} must be a fixed port here (1 to 65535), not "${env[name]}"`);
  }
  return port;
}

/** A limit from the environment: the fallback when unset, `false` for `off`, else a number (`envNumber`'s rule). */
export function envLimit(env: Record<string, string | undefined>, name: string, fallback: number): number | false {
  if (env[name]?.trim() === 'off') return false;
  return envNumber(env, name) ?? fallback;
}

/** TLS files that cannot work together with the transport chosen, found before anything connects. */
function tlsProblems(config: NodeConfig): string[] {
  const problems: string[] = [];
  const transport = config.CHASSIS_TRANSPORT;
  const tlsSet = ['CHASSIS_TLS_CA_FILE', 'CHASSIS_TLS_CERT_FILE', 'CHASSIS_TLS_KEY_FILE'].filter(
    (name) => config[name as keyof NodeConfig] !== undefined,
  );
  if (tlsSet.length > 0 && (transport === 'memory' || transport.startsWith('amqp://'))) {
    problems.push(
      `${tlsSet.join(', ')} set, but CHASSIS_TRANSPORT="${transport}" does not use TLS: ` +
        (transport === 'memory'
          ? 'unset them, or choose tls://, nats:// or amqps://'
          : 'use amqps:// for RabbitMQ over TLS'),
    );
  }
  if (Boolean(config.CHASSIS_TLS_CERT_FILE) !== Boolean(config.CHASSIS_TLS_KEY_FILE)) {
    problems.push(
      'CHASSIS_TLS_CERT_FILE and CHASSIS_TLS_KEY_FILE go together: a client certificate needs its private key',
    );
  }
  return problems;
}

/** The broker's TLS files the configuration names, for `createTransport`; undefined when none is set. */
export function transportTlsFiles(config: NodeConfig): TlsFiles | undefined {
  const files: TlsFiles = {
    ...(config.CHASSIS_TLS_CA_FILE ? { caFile: config.CHASSIS_TLS_CA_FILE } : {}),
    ...(config.CHASSIS_TLS_CERT_FILE ? { certFile: config.CHASSIS_TLS_CERT_FILE } : {}),
    ...(config.CHASSIS_TLS_KEY_FILE ? { keyFile: config.CHASSIS_TLS_KEY_FILE } : {}),
  };
  return Object.keys(files).length > 0 ? files : undefined;
}
