import {
  type ChassisNode,
  createNode,
  jwtVerifier,
  MemoryBroker,
  memoryTransport,
  type ServiceDefinition,
  signToken,
} from '@chassis/core';
import { dataExtension } from '@chassis/data';
import { postgresTarget } from '@chassis/testing';
import {
  type ExchangeSimulator,
  type ExchangeSimulatorOptions,
  startExchangeSimulator,
} from '../exchange-simulator/simulator.ts';
import { simplebankServices } from '../src/services.ts';

const secret = 'a-test-secret-of-at-least-32-characters';
/** The ops secret of the test bank's node: `callOps(node.transport, node.id, …, { secret: opsSecret })`. */
export const opsSecret = 'a-test-ops-secret-of-at-least-32-characters';

/** Credentials for `node.call`: a token signed with the test bank's secret. */
export async function tokenFor(sub: string, roles: string[], accounts?: string[]): Promise<{ auth: string }> {
  return { auth: await signToken(secret, { sub, roles, ...(accounts ? { accounts } : {}) }) };
}

export interface OneNodeBank {
  node: ChassisNode;
  /** The exchange it trades on: its knobs reject, fail or slow orders. */
  exchange: ExchangeSimulator;
  stop(): Promise<void>;
}

/**
 * All of SimpleBank's services on one started node — memory transport, in-memory PGlite — beside an
 * exchange simulator whose prices stay still unless the options say otherwise. With
 * `SIMPLEBANK_TEST_DATABASE=postgres`, a new database on the local PostgreSQL instead: a process that
 * runs one test file (a mutation run does so hundreds of times) is spared PGlite's start.
 */
export async function startOneNodeBank(
  exchangeOptions: ExchangeSimulatorOptions = {},
  /** Services of the test's own beside the bank's: a listener of its events, say. */
  extra: ServiceDefinition[] = [],
): Promise<OneNodeBank> {
  const database = process.env.SIMPLEBANK_TEST_DATABASE ?? 'pglite';
  if (database !== 'pglite' && database !== 'postgres') {
    throw new TypeError(`SIMPLEBANK_TEST_DATABASE is postgres or pglite, not "${database}"`);
  }
  const exchange = await startExchangeSimulator({ tickMs: 0, ...exchangeOptions });
  const postgres = database === 'postgres' ? await postgresTarget() : undefined;
  const node = createNode({
    identity: jwtVerifier({ secret }),
    services: [...simplebankServices({ secret, exchangeUrl: exchange.url }), ...extra],
    extensions: [dataExtension({ url: postgres ? await postgres.newDatabase() : 'pglite://memory' })],
    transport: memoryTransport({ broker: new MemoryBroker() }),
    logLevel: 'silent',
    opsSecret,
  });
  await node.start();
  return {
    node,
    exchange,
    async stop() {
      await node.stop();
      await exchange.close();
      await postgres?.cleanup();
    },
  };
}
