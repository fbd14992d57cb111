import type { ActionContract, ChassisNode, Identity, InputOf, OutputOf } from '@chassis/core';
import type { FastifyRequest } from 'fastify';
import type { DeadlineOptions } from './deadline.ts';
import { bearerToken, headerOf } from './headers.ts';
import type { Identify } from './identity.ts';
import { contextOf, deadlineOf } from './plugins/request-context.ts';

/** What a plugin of the gateway's is given to call actions as the request's caller. */
export interface GatewayTools {
  /** The caller of a request (verifying its bearer token if it has one); undefined for an anonymous one. */
  identify(request: FastifyRequest): Promise<Identity | undefined>;
  /** Calls an action on behalf of a request: its token, request id, trace context and deadline. */
  callFor<C extends ActionContract>(
    request: FastifyRequest,
    contract: C,
    input: InputOf<C>,
    options?: { timeoutMs?: number },
  ): Promise<OutputOf<C>>;
  /** The request's absolute deadline: from `Request-Timeout` or `X-Deadline`, capped, else the default. */
  deadlineOf(request: FastifyRequest): number;
  /** Records how a request ended (an error code, or `ok`) for the gateway's request histogram. */
  recordOutcome(request: FastifyRequest, outcome: string): void;
  /** The node's logger: what a plugin hides from a client (an internal error) it logs here. */
  log: ChassisNode['log'];
  /** The version prefix the routes are served under (`/v1`), or ''. */
  prefix: string;
}

export interface GatewayToolsOptions {
  node: ChassisNode;
  identify: Identify;
  deadlines: DeadlineOptions;
  prefix: string;
}

/** The tools the route table and `register` plugins share. */
export function gatewayTools({ node, identify, deadlines, prefix }: GatewayToolsOptions): GatewayTools {
  const callFor = async <C extends ActionContract>(
    request: FastifyRequest,
    contract: C,
    input: InputOf<C>,
    callOptions: { timeoutMs?: number } = {},
  ): Promise<OutputOf<C>> => {
    // Only a token the gateway verified travels on: on a public route a bad one is ignored, not passed
    // to a service that would refuse the whole call. Without a header there is nothing to wait for.
    const user =
      request.headers.authorization === undefined ? undefined : await identify(request).catch(() => undefined);
    const token = user ? bearerToken(request) : undefined;
    const requestDeadlineAt = deadlineOf(request, deadlines);
    const deadline =
      callOptions.timeoutMs === undefined
        ? requestDeadlineAt
        : Math.min(requestDeadlineAt, Date.now() + callOptions.timeoutMs);
    const traceparent = headerOf(request, 'traceparent');
    const tracestate = headerOf(request, 'tracestate');
    return node.call(contract, input, {
      deadline,
      correlationId: request.id,
      ...(token ? { auth: token } : {}),
      ...(traceparent ? { traceparent } : {}),
      ...(tracestate ? { tracestate } : {}),
    });
  };
  return {
    identify,
    callFor,
    deadlineOf: (request) => deadlineOf(request, deadlines),
    recordOutcome: (request, outcome) => {
      contextOf(request).outcome = outcome;
    },
    log: node.log,
    prefix,
  };
}
