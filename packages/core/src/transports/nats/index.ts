/**
 * The NATS transport (`@chassis/core/nats`), split along its seams: `transport.ts` the connection's life
 * and the `Transport` API; `rpc-client.ts` / `rpc-server.ts` requests and serving; `topology.ts` streams
 * and durable consumers; `confirmed-publish.ts` JetStream publishes through reconnects; `pull-worker.ts`
 * event consumption; `dead-letters.ts`; `claim-check.ts` large bodies in the Object Store.
 */
export { durableName } from './names.ts';
export type { NatsTransportOptions } from './options.ts';
export { natsTransport } from './transport.ts';
