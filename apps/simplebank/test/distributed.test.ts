import { postgresTarget, removeNatsTestState, removeRabbitmqTestState, servers, skipUnlessUp } from '@chassis/testing';
import { startExchangeSimulator } from '../exchange-simulator/simulator.ts';
import { type Simplebank, startSimplebank } from '../src/system.ts';
import { describeScenarios } from './scenarios.ts';

/**
 * The scenarios on a distributed topology: five nodes, each hosting some of the services, talking over
 * a real broker and keeping their data in one PostgreSQL (a schema per service), with two instances
 * each of orders and market competing for the same messages.
 */
const topology = [
  { services: 'identity,market-data,customer-orders', gateway: true },
  { services: 'orders,market' },
  { services: 'orders,market' },
  { services: 'account-transactions,fees' },
];

const postgres = await postgresTarget();
const only = process.env.SIMPLEBANK_TRANSPORTS?.split(',');
for (const [name, url] of [
  ['NATS JetStream', servers.nats.url],
  ['RabbitMQ', servers.rabbitmq.url],
] as const) {
  if (only && !only.some((prefix) => url.startsWith(prefix))) continue;
  const skip = postgres.skip || (await skipUnlessUp(url.startsWith('nats') ? 'nats' : 'rabbitmq'));
  describeScenarios(
    `distributed over ${name} and PostgreSQL (${topology.length} nodes, two orders and two market instances)`,
    async () => {
      // Durable subscriptions outlive their nodes: a run cut short leaves messages of its orders
      // behind, which this run's services (same names) would take up. Each run starts with none.
      await removeBrokerState(url);
      const exchange = await startExchangeSimulator({ tickMs: 1000 });
      const databaseUrl = await postgres.newDatabase();
      const nodes: Simplebank[] = [];
      const stop = async () => {
        await Promise.allSettled(nodes.map((node) => node.stop()));
        await exchange.close();
        await postgres.cleanup();
        await removeBrokerState(url);
      };
      try {
        // One after another: each migrates its own services' schemas before the next starts.
        for (const { services, gateway } of topology) {
          nodes.push(
            await startSimplebank({
              port: gateway ? 0 : false,
              databaseUrl,
              env: {
                CHASSIS_TRANSPORT: url,
                SERVICES: services,
                EXCHANGE_URL: exchange.url,
                OPS_PORT: 'off',
                LOG_LEVEL: 'silent',
              },
              services: { market: { breaker: { kind: 'consecutive', failures: 2, openMs: 5000 }, timeoutMs: 1000 } },
            }),
          );
        }
      } catch (error) {
        await stop();
        throw error;
      }
      return {
        url: nodes[0]!.url!,
        exchangeUrl: exchange.url,
        database: nodes[0]!.database,
        markets: 2,
        readiness: async () => JSON.stringify(await Promise.all(nodes.map((node) => node.node.readiness()))),
        stop,
      };
    },
    { skip },
  );
}

/** SimpleBank's durable consumers (NATS) or queues (RabbitMQ), named after its services. */
async function removeBrokerState(url: string): Promise<void> {
  const names = ['identity', 'orders', 'account-transactions', 'market', 'market-data', 'fees', 'customer-orders'];
  if (url.startsWith('nats')) await removeNatsTestState(url, names);
  else await removeRabbitmqTestState(url, names);
}
