import { loadConfig, type NodeConfig, transportTlsFiles } from './config.ts';
import { ChassisError } from './errors.ts';
import { type IdentityVerifier, jwtVerifier } from './identity.ts';
import type { Logger } from './logger.ts';
import { type ChassisNode, createNode, type NodeOptions } from './node/node.ts';
import type { ServiceDefinition } from './service.ts';
import { createTransport } from './transports/index.ts';

export interface RunNodeOptions extends Omit<NodeOptions, 'services' | 'transport'> {
  /** Every service the program can host; `SERVICES` picks which of them this node runs. */
  services: readonly ServiceDefinition[];
  env?: Record<string, string | undefined>;
  /** Stop gracefully on SIGTERM and SIGINT, then exit. On by default. */
  handleSignals?: boolean;
}

/** The services `SERVICES` names (all when empty), or one error naming the unknown ones. */
export function selectServices(all: readonly ServiceDefinition[], names: readonly string[]): ServiceDefinition[] {
  if (names.length === 0) return [...all];
  const known = new Map(all.map((service) => [service.name, service]));
  const unknown = names.filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new ChassisError(
      'CONFIG',
      `SERVICES names ${unknown.map((n) => `"${n}"`).join(', ')}, which this program does not have; it has: ${[...known.keys()].join(', ')}`,
    );
  }
  return names.map((name) => known.get(name)!);
}

/** The token verifier `CHASSIS_JWT_SECRET` or `CHASSIS_JWKS_URL` asks for, if either is set. */
export function identityFrom(config: NodeConfig): { identity?: IdentityVerifier } {
  const claims = {
    ...(config.CHASSIS_JWT_ISSUER ? { issuer: config.CHASSIS_JWT_ISSUER } : {}),
    ...(config.CHASSIS_JWT_AUDIENCE ? { audience: config.CHASSIS_JWT_AUDIENCE } : {}),
  };
  if (config.CHASSIS_JWKS_URL) return { identity: jwtVerifier({ jwksUrl: config.CHASSIS_JWKS_URL, ...claims }) };
  if (config.CHASSIS_JWT_SECRET) return { identity: jwtVerifier({ secret: config.CHASSIS_JWT_SECRET, ...claims }) };
  return {};
}

/**
 * Starts a node configured from the environment (`CHASSIS_TRANSPORT`, `SERVICES`, `NODE_ID`,
 * `LOG_LEVEL`, …) and drains it on SIGTERM/SIGINT: not ready → stop consuming → finish in-flight → close.
 */
export async function runNode(options: RunNodeOptions): Promise<ChassisNode> {
  const { services, env = process.env, handleSignals = true, ...nodeOptions } = options;
  const config = loadConfig(env);
  const tls = transportTlsFiles(config);
  const transport = await createTransport(config.CHASSIS_TRANSPORT, {
    ...(config.NODE_ID ? { nodeId: config.NODE_ID } : {}),
    ...(tls ? { tls } : {}),
    nats: { rpcEnvelope: config.CHASSIS_NATS_RPC_ENVELOPE },
  });
  const node = createNode({
    callTimeoutMs: config.CHASSIS_CALL_TIMEOUT_MS,
    maxDeliveries: config.CHASSIS_MAX_DELIVERIES,
    drainTimeoutMs: config.CHASSIS_DRAIN_TIMEOUT_MS,
    maxEventDelayMs:
      config.CHASSIS_MAX_EVENT_DELAY_MS === 'off' ? Number.POSITIVE_INFINITY : config.CHASSIS_MAX_EVENT_DELAY_MS,
    serializer: config.CHASSIS_SERIALIZER,
    logLevel: config.LOG_LEVEL,
    defaultMetrics: true,
    ...(config.OPS_PORT === 'off' ? {} : { opsPort: config.OPS_PORT }),
    ...(config.CHASSIS_OPS_SECRET ? { opsSecret: config.CHASSIS_OPS_SECRET } : {}),
    ...(config.NODE_ID ? { nodeId: config.NODE_ID } : {}),
    ...identityFrom(config),
    ...nodeOptions,
    services: selectServices(services, config.SERVICES),
    transport,
  });
  await node.start();
  if (handleSignals) drainOnSignals(node.log, () => node.stop());
  return node;
}

/**
 * On SIGTERM or SIGINT: `stop()` (a gateway stops taking requests, a node drains: not ready, stop
 * consuming, finish what is in flight, close), then exit — 0 when it went well, 1 when it failed. A second
 * signal during the drain exits at once, without waiting for it.
 */
export function drainOnSignals(log: Pick<Logger, 'info' | 'warn' | 'error'>, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn(`${signal} again: exiting without draining`);
      process.exit(1);
    }
    stopping = true;
    log.info(`${signal} received: draining`);
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}
