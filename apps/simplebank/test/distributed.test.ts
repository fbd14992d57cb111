import { choiceFromEnv, postgresTarget, servers, skipUnlessUp } from '@chassis/testing';
import { startExchangeSimulator } from '../exchange-simulator/simulator.ts';
import { type Simplebank, startSimplebank } from '../src/system.ts';
import { removeBrokerState } from './broker.ts';
import { describeScenarios } from './scenarios.ts';

/**
 * The scenarios on a distributed topology: six nodes, each hosting some of the services, talking over
 * a real broker and keeping their data in one PostgreSQL (a schema per service), with two instances
 * each of orders and market competing for the same messages.
 */
const topology = [
  { services: 'identity,customer-orders,holdings', gateway: true },
  { services: 'orders,market' },
  { services: 'orders,market' },
  { services: 'account-transactions,fees' },
  { services: 'payments,notifications,alerts,investment-strategies,place-strategy-orders' },
  // Alone on its node: stopping that node takes market data down and nothing else (holdings degrades).
  { services: 'market-data' },
];

const postgres = await postgresTarget();
/** SIMPLEBANK_TRANSPORTS=nats or =amqp runs the scenarios over that broker only; the other's skip says so. */
const only = choiceFromEnv('SIMPLEBANK_TRANSPORTS', ['nats', 'amqp'] as const);
for (const [name, key, url] of [
  ['NATS JetStream', 'nats', servers.nats.url],
  ['RabbitMQ', 'amqp', servers.rabbitmq.url],
] as const) {
  const skip =
    only && !only.includes(key)
      ? `SIMPLEBANK_TRANSPORTS=${only.join(',')} leaves ${name} out`
      : postgres.skip || (await skipUnlessUp(key === 'nats' ? 'nats' : 'rabbitmq'));
  describeScenarios(
    `distributed over ${name} and PostgreSQL (${topology.length} nodes, two orders and two market instances)`,
    async () => {
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
      const startNode = ({ services, gateway }: { services: string; gateway?: boolean }) =>
        startSimplebank({
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
        });
      try {
        // One after another: each migrates its own services' schemas before the next starts.
        for (const spec of topology) nodes.push(await startNode(spec));
      } catch (error) {
        await stop();
        throw error;
      }
      const marketDataAt = topology.findIndex((spec) => spec.services === 'market-data');
      let marketDataDown = false;
      return {
        url: nodes[0]!.url!,
        exchangeUrl: exchange.url,
        database: nodes[0]!.database,
        markets: 2,
        readiness: async () => JSON.stringify(await Promise.all(nodes.map((node) => node.node.readiness()))),
        marketData: {
          stop: async () => {
            if (marketDataDown) return;
            marketDataDown = true;
            await nodes[marketDataAt]!.stop();
          },
          start: async () => {
            if (!marketDataDown) return;
            nodes[marketDataAt] = await startNode(topology[marketDataAt]!);
            marketDataDown = false;
          },
        },
        stop,
      };
    },
    { skip },
  );
}
