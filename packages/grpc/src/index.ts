export {
  type GrpcCallOptions,
  type GrpcClient,
  type GrpcClientMethod,
  type GrpcClientMethods,
  type GrpcClientOptions,
  grpcClient,
} from './client.ts';
export { fieldViolations } from './details.ts';
export type { ProtoFile } from './proto.ts';
export {
  type GrpcMessage,
  type GrpcMethod,
  type GrpcServer,
  type GrpcServerOptions,
  grpcMethod,
  grpcServer,
} from './server.ts';
export { chassisErrorOf, ERROR_METADATA, GrpcStatus, grpcStatusOf } from './status.ts';
export type { GrpcClientTls, GrpcServerTls } from './tls.ts';
