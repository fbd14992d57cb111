import { type Context, isChassisError } from '@chassis/core';
import { type GrpcClient, grpcClient, grpcServer } from '@chassis/grpc';
import { z } from 'zod';
import { Id } from '../../contracts/common.ts';
import { getUser, User } from '../../contracts/users.ts';

/** The book's `.proto`, exactly: `GetUserData.GetUser(UserDataRequest{id}) → UserDataResponse{id, name, email}`. */
export const USER_DATA_PROTO = new URL('./user_data.proto', import.meta.url);

/**
 * Users' gRPC server: `GetUserData.GetUser` answered by `users.get_user` (the cache, then the database),
 * whose contract fits the proto's messages as they are. An unknown id is `NOT_FOUND`; an id of 0 (proto3's
 * default: none given) or below is `INVALID_ARGUMENT`.
 */
export function userDataServer(options: { port: number; host?: string }) {
  return grpcServer({
    proto: USER_DATA_PROTO,
    service: 'GetUserData',
    methods: { GetUser: getUser },
    port: options.port,
    host: options.host,
  });
}

const userDataMethods = {
  GetUser: { request: z.object({ id: Id }), response: User, idempotent: true },
};

export type UserDataClient = GrpcClient<typeof userDataMethods>;

/** A client of users' `GetUserData`, with the node's deadlines, retries, breaker, metrics and spans. */
export function userDataClient(address: string | (() => string)): UserDataClient {
  return grpcClient({ proto: USER_DATA_PROTO, service: 'GetUserData', address, methods: userDataMethods });
}

/** Recommendations' way to look a reader up over gRPC: undefined for no such user. */
export function fetchUserOverGrpc(client: UserDataClient) {
  return async (id: number, _ctx: Context) => {
    try {
      return await client.call('GetUser', { id });
    } catch (error) {
      if (isChassisError(error, 'NOT_FOUND')) return undefined;
      throw error;
    }
  };
}
