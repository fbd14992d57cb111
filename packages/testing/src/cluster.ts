import { randomBytes } from 'node:crypto';
import { after, afterEach, beforeEach } from 'node:test';
import {
  type ChassisNode,
  createNode,
  MemoryBroker,
  memoryTransport,
  type NodeOptions,
  type ServiceDefinition,
  type Transport,
} from '@chassis/core';
import { removeNatsTestState, removeRabbitmqTestState } from './cleanup.ts';
import { restartNats, restartRabbitmq, servers, skipUnlessUp } from './infra.ts';

/**
 * A transport to run a suite on: the same suite runs on every transport it names, and each test's
 * title says which.
 */
export interface TransportTarget {
  /** `memory`, `nats` or `amqp`. */
  name: string;
  /** `false` to run, or why not (a server that is down). */
  skip: false | string;
  /** The broker's URL, for a node in another process (`CHASSIS_TRANSPORT`). */
  url: string;
  /** A maker of transports that reach one another; called before each test. */
  newCluster(): () => Transport;
  /** Restarts the real server, for reconnect tests. */
  restart?: () => Promise<void>;
  /** Removes the durable state (queues, consumers) the given run suffixes left on the broker. */
  cleanup?: (suffixes: string[]) => Promise<void>;
}

export function memoryTarget(): TransportTarget {
  return {
    name: 'memory',
    skip: false,
    url: 'memory',
    newCluster() {
      const broker = new MemoryBroker();
      return () => memoryTransport({ broker });
    },
  };
}

export async function natsTarget(): Promise<TransportTarget> {
  const { natsTransport } = await import('@chassis/core/nats');
  const url = servers.nats.url;
  return {
    name: 'nats',
    skip: await skipUnlessUp('nats'),
    url,
    newCluster: () => () => natsTransport({ url }),
    restart: restartNats,
    cleanup: (suffixes) => removeNatsTestState(url, suffixes),
  };
}

export async function amqpTarget(): Promise<TransportTarget> {
  const { amqpTransport } = await import('@chassis/core/amqp');
  const url = servers.rabbitmq.url;
  return {
    name: 'amqp',
    skip: await skipUnlessUp('rabbitmq'),
    url,
    newCluster: () => () => amqpTransport({ url }),
    restart: restartRabbitmq,
    cleanup: (suffixes) => removeRabbitmqTestState(url, suffixes),
  };
}

/** Nodes on one transport cluster, fresh for each test. */
export interface TestCluster {
  /** This test's run suffix: put it in service names so runs on a shared broker never meet. */
  readonly suffix: string;
  /** Creates and starts a node on the cluster; it is stopped after the test. */
  startNode(services: ServiceDefinition[], options?: Partial<NodeOptions>): Promise<ChassisNode>;
  /** A connected transport of the cluster, for what only a foreign client can do; closed after the test. */
  transport(): Promise<Transport>;
}

/**
 * Call inside a `describe`: gives each test a fresh cluster and run suffix, stops its nodes after it,
 * and removes what the suite left on the broker after the last test.
 */
export function useCluster(target: TransportTarget, defaults: Partial<NodeOptions> = {}): TestCluster {
  let makeTransport: () => Transport;
  let suffix = '';
  let nodes: ChassisNode[] = [];
  let transports: Transport[] = [];
  const suffixes: string[] = [];

  beforeEach(() => {
    makeTransport = target.newCluster();
    suffix = randomBytes(4).toString('hex');
    suffixes.push(suffix);
  });
  afterEach(async () => {
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await Promise.allSettled(transports.map((transport) => transport.close()));
    nodes = [];
    transports = [];
  });
  after(() => target.cleanup?.(suffixes));

  return {
    get suffix() {
      return suffix;
    },
    async startNode(services, options = {}) {
      const node = createNode({ logLevel: 'silent', ...defaults, ...options, services, transport: makeTransport() });
      nodes.push(node);
      await node.start();
      return node;
    },
    async transport() {
      const transport = makeTransport();
      transports.push(transport);
      await transport.connect();
      return transport;
    },
  };
}
