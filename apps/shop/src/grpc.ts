import { type GrpcServer, grpcMethod, grpcServer } from '@chassis/grpc';
import { getUser } from '../contracts/users.ts';

/** The `.proto` of `UserService`, for servers and for clients (the tests' real client). */
export const USERS_PROTO = new URL('../services/users/users.proto', import.meta.url);

/**
 * The book's `UserService.GetUser` over gRPC, answered by the `shop-users` service's `getUser` (on this
 * node or any other the transport reaches), with the caller's bearer token as on HTTP: a missing one is
 * `UNAUTHENTICATED`, an unknown user `NOT_FOUND` (`USER_NOT_FOUND` in the chassis error metadata).
 */
export function shopGrpcServer(options: { port?: number; host?: string }): GrpcServer {
  return grpcServer({
    proto: USERS_PROTO,
    service: 'UserService',
    port: options.port ?? 50052,
    host: options.host ?? '127.0.0.1',
    methods: {
      GetUser: grpcMethod(getUser, {
        input: (request: { id: string }) => ({ id: request.id }),
        output: (user) => ({ id: user.id, name: user.name, email: user.email }),
      }),
    },
  });
}
