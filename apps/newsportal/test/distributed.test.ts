import { postgresTarget, removeNatsTestState, servers, skipUnlessUp } from '@chassis/testing';
import { type Newsportal, startNewsportal } from '../src/system.ts';
import { removeKeys, testKeyPrefix } from './redis-keys.ts';
import { describeRobot } from './robot.ts';

/**
 * The TestRobot on a distributed topology: five nodes in this process, each hosting a service group,
 * over NATS JetStream, with their data in one PostgreSQL database of this run's own (a schema per
 * service) and Redis keys under this run's own prefix.
 */
const topology = [
  // Users first: the edge's recommendations call its gRPC server, on the port it picked.
  { services: 'users' },
  { services: 'news-orchestrator,recommendation', gateway: true },
  { services: 'command-famous,command-politics,command-sports' },
  { services: 'query-famous,query-politics' },
  // Alone on its node: stopping that node takes sports' query side down and nothing else.
  { services: 'query-sports' },
];
/** The services with durable subscriptions, whose consumers a run leaves on the broker. */
const subscribers = ['query-famous', 'query-politics', 'query-sports', 'recommendation'];

const postgres = await postgresTarget();
const skip = postgres.skip || (await skipUnlessUp('nats')) || (await skipUnlessUp('redis'));

describeRobot(
  `distributed over NATS JetStream and PostgreSQL (${topology.length} nodes)`,
  async () => {
    const url = servers.nats.url;
    await removeNatsTestState(url, subscribers);
    const databaseUrl = await postgres.newDatabase();
    const keyPrefix = testKeyPrefix();
    const nodes: Newsportal[] = [];
    const stop = async () => {
      await Promise.allSettled(nodes.map((node) => node.stop()));
      await postgres.cleanup();
      await removeNatsTestState(url, subscribers);
      await removeKeys(keyPrefix);
    };
    try {
      // One after another: each migrates its own services' schemas before the next starts.
      for (const spec of topology) {
        const users = nodes[0];
        nodes.push(
          await startNewsportal({
            port: spec.gateway ? 0 : false,
            databaseUrl,
            env: {
              CHASSIS_TRANSPORT: url,
              SERVICES: spec.services,
              REDIS_URL: servers.redis.url,
              REDIS_KEY_PREFIX: keyPrefix,
              GRPC_PORT: '0',
              ...(users?.grpcPort ? { USERS_GRPC_ADDRESS: `127.0.0.1:${users.grpcPort}` } : {}),
              OPS_PORT: 'off',
              LOG_LEVEL: 'silent',
            },
          }),
        );
      }
    } catch (error) {
      await stop();
      throw error;
    }
    const sportsAt = topology.findIndex((spec) => spec.services === 'query-sports');
    const edge = nodes[topology.findIndex((spec) => spec.gateway)]!;
    return {
      url: edge.url!,
      grpcAddress: `127.0.0.1:${nodes[0]!.grpcPort}`,
      stopQuery: async () => {
        await nodes[sportsAt]!.stop();
      },
      stop,
    };
  },
  { skip },
);
