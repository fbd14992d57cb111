import { ChassisError, isChassisError } from '@chassis/core';
import type { Dashboard, OpsConnection } from '@chassis/dashboard';
import { type ConnectFlags, type Connection, connect, DEFAULT_OPS_URL } from '../ops/connection.ts';
import { CliError, type Output } from '../output.ts';

export interface DashboardFlags extends ConnectFlags {
  /** Default 9500; 0 picks a free one. */
  port: number;
  host?: string;
}

/** How long after a failed connection to the broker the next request tries again. */
const RECONNECT_AFTER_MS = 2_000;

/**
 * The CLI's connection (`connect`: the broker, or an ops port) for the dashboard server, made when first
 * needed and made again after it failed — so the dashboard starts, and says the system is unreachable,
 * while the broker is down, and comes back by itself when it is up.
 */
export function dashboardConnection(flags: ConnectFlags): OpsConnection {
  let current: Promise<Connection> | undefined;
  let failedAt = 0;
  let failure: ChassisError | undefined;
  // Where connect() goes, said the same way (it is only opened when first needed).
  const transport = flags.transport ?? process.env.CHASSIS_TRANSPORT;
  const broker = flags.ops === undefined && transport !== undefined && transport !== '' && transport !== 'memory';
  const target = broker ? transport! : (flags.ops ?? process.env.CHASSIS_OPS_URL ?? DEFAULT_OPS_URL);
  const kind = broker ? 'broker' : 'http';
  const connection = async (): Promise<Connection> => {
    if (!current && failure && Date.now() - failedAt < RECONNECT_AFTER_MS) throw failure;
    current ??= connect(flags).catch((error: unknown) => {
      current = undefined;
      failedAt = Date.now();
      // The CLI's own message ("Cannot reach the broker at …: is it running?") is what the page shows.
      failure = new ChassisError('UNAVAILABLE', error instanceof Error ? error.message : String(error), {
        cause: error,
      });
      throw failure;
    });
    return current;
  };
  /** The CLI's errors (no node answers) are the system being unreachable, to the page. */
  const unreachable = (error: unknown): never => {
    if (error instanceof CliError) throw new ChassisError('UNAVAILABLE', error.message, { cause: error });
    throw error;
  };
  return {
    target,
    kind,
    nodeIds: async (service) => (await connection()).nodeIds(service).catch(unreachable),
    ops: async (nodeId, action, input, timeoutMs) => (await connection()).ops(nodeId, action, input, timeoutMs),
    close: async () => {
      const open = current;
      current = undefined;
      if (open) await (await open.catch(() => undefined))?.close();
    },
  };
}

/** Starts the dashboard server on the flags' connection; the caller stops it. */
export async function openDashboard(
  flags: DashboardFlags,
): Promise<{ dashboard: Dashboard; connection: OpsConnection }> {
  const connection = dashboardConnection(flags);
  const { startDashboard } = await import('@chassis/dashboard');
  try {
    const dashboard = await startDashboard({
      connection,
      port: flags.port,
      ...(flags.host ? { host: flags.host } : {}),
    });
    return { dashboard, connection };
  } catch (error) {
    await connection.close();
    if (isChassisError(error, 'CONFIG')) throw new CliError(error.message);
    throw error;
  }
}

/** `chassis dashboard`: serves the dashboard until Ctrl-C (or SIGTERM). */
export async function dashboard(flags: DashboardFlags, output: Output): Promise<number> {
  const { dashboard: served, connection } = await openDashboard(flags);
  output.say(`${output.style('bold', 'chassis dashboard')} of ${connection.target}`);
  output.say(`  dashboard ${output.style('cyan', served.url)}`);
  output.say('  Ctrl-C stops it');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await served.close();
  await connection.close();
  return 0;
}
