import { postgresTarget, servers, skipUnlessUp } from '@chassis/testing';
import { type Shop, startShop } from '../src/system.ts';
import { describeShopFlow } from './flow.ts';
import { temporaryVhost } from './rabbitmq-vhost.ts';

/**
 * The flow on RabbitMQ (the book's broker) and PostgreSQL: four nodes, two of them competing orders
 * instances, reviews alone so that stopping its node takes it down. The run has its own database and
 * its own RabbitMQ virtual host, so its queues are named apart from every other run's.
 */
const topology = [
  { services: 'shop-users,shop-auth,shop-products,shop-recommendations', gateway: true },
  { services: 'shop-orders,shop-payments' },
  { services: 'shop-orders' },
  { services: 'shop-reviews' },
];

const postgres = await postgresTarget();
const skip = postgres.skip || (await skipUnlessUp('rabbitmq'));

describeShopFlow(
  `distributed over RabbitMQ and PostgreSQL (${topology.length} nodes, two orders instances)`,
  async () => {
    const vhost = await temporaryVhost(servers.rabbitmq.url);
    const databaseUrl = await postgres.newDatabase();
    const nodes: Shop[] = [];
    const stop = async () => {
      await Promise.allSettled(nodes.map((node) => node.stop()));
      await postgres.cleanup();
      await vhost.remove();
    };
    const startNode = ({ services, gateway }: { services: string; gateway?: boolean }) =>
      startShop({
        port: gateway ? 0 : false,
        databaseUrl,
        env: { CHASSIS_TRANSPORT: vhost.url, SERVICES: services, OPS_PORT: 'off', GRPC_PORT: '0', LOG_LEVEL: 'silent' },
      });
    try {
      // One after another: each migrates its own services' schemas before the next starts.
      for (const spec of topology) nodes.push(await startNode(spec));
    } catch (error) {
      await stop();
      throw error;
    }
    const reviewsAt = topology.findIndex((spec) => spec.services === 'shop-reviews');
    let reviewsDown = false;
    return {
      url: nodes[0]!.url!,
      grpcAddress: `127.0.0.1:${nodes[0]!.grpcPort}`,
      database: nodes[0]!.database,
      // Every node's: the gateway's requests, orders' and payments' gauges are each on their own node.
      metrics: async () => (await Promise.all(nodes.map((node) => node.node.metrics.registry.metrics()))).join('\n'),
      reviews: {
        stop: async () => {
          if (reviewsDown) return;
          reviewsDown = true;
          await nodes[reviewsAt]!.stop();
        },
        start: async () => {
          if (!reviewsDown) return;
          nodes[reviewsAt] = await startNode(topology[reviewsAt]!);
          reviewsDown = false;
        },
      },
      stop,
    };
  },
  skip,
);
