/**
 * `@chassis/core/transport`: what a transport author needs and an application does not — the contract a
 * transport fulfils, the errors it raises with one `data` shape per code, and the pieces the built-in
 * transports share (a pending-replies multiplexer, status listeners, one backoff formula). Applications
 * import from `@chassis/core`, which keeps `Transport` and `WireMessage`.
 */
export { encodeTimeoutMs, Header } from '../envelope.ts';
export {
  noServiceError,
  type TransportErrorCode,
  type TransportErrorData,
  timeoutError,
  transportError,
} from '../errors.ts';
export { defaultNodeId } from '../node-id.ts';
export { type Backoff, backoffDelay } from './shared/backoff.ts';
export {
  PendingReplies,
  type PendingReply,
  type ReplyFailures,
  type RequestWaiting,
} from './shared/pending-replies.ts';
export { StatusListeners } from './shared/status.ts';
export type {
  Consumer,
  DeadLetter,
  Disposition,
  EventBinding,
  EventDelivery,
  EventHandler,
  RequestOptions,
  RpcHandler,
  RpcReply,
  RpcRequest,
  ServeOptions,
  SubscribeOptions,
  Transport,
  TransportStatus,
  WireMessage,
} from './transport.ts';
export { subscriptionName } from './transport.ts';
