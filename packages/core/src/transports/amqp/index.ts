/**
 * The RabbitMQ transport (`@chassis/core/amqp`), split along its seams: `transport.ts` the connection's
 * life, the shared channels and the `Transport` API; `rpc-client.ts` / `rpc-server.ts` requests and serving;
 * `events.ts` publishing, subscriptions and retries; `dead-letters.ts`; `broadcast.ts`; `consumer.ts`
 * consumers that survive reconnects. Topology (names close to nameko's, so the book's diagrams read the same):
 *
 * - RPC: durable topic exchange `chassis.rpc`; each service has a durable queue `rpc-<service>` bound with
 *   `<service>.*`. Requests are published `mandatory` with routing key `<service>.<action>`, so a request
 *   nothing is bound for comes back at once (`NO_SERVICE`), and with `expiration` = the timeout, so the
 *   broker drops a request nobody waits for any more. Replies use direct reply-to: one reply consumer per
 *   connection, pending requests matched by correlation id.
 * - Events: one durable topic exchange per source service, `<source>.events`, routing key = the event's
 *   short name. Each subscription `<service>.<handler>` has one quorum queue
 *   `evtq-<source>-<event>--<service>.<handler>` shared by every instance of the service. Publishing goes
 *   through a confirm channel and resolves only once the broker has confirmed the (persistent) message.
 * - Attempts: the `attempt` header counts the copies this transport republished for a retry, and the quorum
 *   queue's own `x-delivery-count` the deliveries of this copy that came back unsettled (the consumer died
 *   or lost its connection); the attempt is their sum. Only the broker's count survives a consumer killed
 *   mid-handler, which is why event queues are quorum queues.
 * - Classic event queues of earlier versions (`evt-…`, which cannot be redeclared as quorum queues) are
 *   drained: unbound from their exchange, so new events go to the quorum queue only, and consumed next to
 *   it until an operator deletes them (see docs/transports.md).
 * - Redelivery: RabbitMQ cannot nack with a delay, so a retry publishes a copy (attempt + 1, confirmed) to
 *   `retry-<queue>-<delayMs>`, a queue with that message TTL that dead-letters back to `<queue>` through
 *   the default exchange and expires once idle; only then is the original acked.
 * - Dead letters: direct exchange `chassis.dlx`, one durable queue `dlq-<queue>` per subscription or RPC
 *   queue, the reason, source queue and time in `x-chassis-dead-*` headers. They are read without being
 *   removed by fetching them unacknowledged and closing the channel, which puts them back in place.
 * - Broadcast: topic exchange `chassis.broadcast`, routing key = topic, one exclusive auto-delete queue
 *   per listener; nothing is stored.
 */
export type { AmqpTransportOptions } from './options.ts';
export { amqpTransport } from './transport.ts';
