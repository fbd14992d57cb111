import type {
  ActionContract,
  ChassisNode,
  Identity,
  InputOf,
  OutputOf,
  OutsideCallOptions,
  ParsedInput,
} from '@chassis/core';
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

/** The route table's own tools: `callFor` answering with the output itself when it was there at once. */
export interface RouteTableTools extends GatewayTools {
  /**
   * `callFor`, without a timeout: the action's output itself when a local handler gave it at once (no
   * promise, no microtask hop), else a promise. A failure is a rejected promise, never a throw.
   */
  callNowFor<C extends ActionContract>(
    request: FastifyRequest,
    contract: C,
    input: InputOf<C>,
    parsedInput?: ParsedInput<C>,
  ): Promise<OutputOf<C>> | OutputOf<C>;
}

/** What `callNowFor` adds to a plugin's call options: the input as the route already parsed it. */
interface RouteCallOptions<C extends ActionContract> {
  timeoutMs?: number;
  parsedInput?: ParsedInput<C>;
}

export interface GatewayToolsOptions {
  node: ChassisNode;
  identify: Identify;
  deadlines: DeadlineOptions;
  prefix: string;
}

/** The tools the route table and `register` plugins share. */
export function gatewayTools({ node, identify, deadlines, prefix }: GatewayToolsOptions): RouteTableTools {
  // Not async: a request without a token (the usual public call) goes straight to `node.call`, without
  // an async frame and the two extra ticks of resolving one promise with another.
  const callFor = <C extends ActionContract>(
    request: FastifyRequest,
    contract: C,
    input: InputOf<C>,
    callOptions?: RouteCallOptions<C>,
  ): Promise<OutputOf<C>> => {
    // Only a token the gateway verified travels on: on a public route a bad one is ignored, not passed
    // to a service that would refuse the whole call. Without a header there is nothing to wait for.
    if (request.headers.authorization === undefined) {
      // A promise either way, as an async function gave: a caller may chain on it without awaiting.
      try {
        return callAs(request, contract, input, undefined, callOptions);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return identify(request)
      .catch(() => undefined)
      .then((user) => callAs(request, contract, input, user ? bearerToken(request) : undefined, callOptions));
  };
  const callAs = <C extends ActionContract>(
    request: FastifyRequest,
    contract: C,
    input: InputOf<C>,
    token: string | undefined,
    callOptions: RouteCallOptions<C> | undefined,
  ): Promise<OutputOf<C>> =>
    node.call(contract, input, optionsFor<C>(request, token, callOptions?.timeoutMs, callOptions?.parsedInput));
  const optionsFor = <C extends ActionContract>(
    request: FastifyRequest,
    token: string | undefined,
    timeoutMs: number | undefined,
    parsedInput: ParsedInput<C> | undefined,
  ): OutsideCallOptions<C> => {
    const requestDeadlineAt = deadlineOf(request, deadlines);
    const deadline = timeoutMs === undefined ? requestDeadlineAt : Math.min(requestDeadlineAt, Date.now() + timeoutMs);
    // One shape for every call (absent fields undefined, which `call` reads as absent), not spreads.
    return {
      deadline,
      correlationId: request.id,
      auth: token,
      // An empty header is none.
      traceparent: headerOf(request, 'traceparent') || undefined,
      tracestate: headerOf(request, 'tracestate') || undefined,
      parsedInput,
    };
  };
  const callNowFor = <C extends ActionContract>(
    request: FastifyRequest,
    contract: C,
    input: InputOf<C>,
    parsedInput?: ParsedInput<C>,
  ): Promise<OutputOf<C>> | OutputOf<C> => {
    // With a token there is a caller to verify first: that waits anyway.
    if (request.headers.authorization !== undefined) return callFor(request, contract, input, { parsedInput });
    let options: OutsideCallOptions<C>;
    try {
      options = optionsFor<C>(request, undefined, undefined, parsedInput);
    } catch (error) {
      return Promise.reject(error);
    }
    return node.callNow(contract, input, options);
  };
  return {
    identify,
    callFor,
    callNowFor,
    deadlineOf: (request) => deadlineOf(request, deadlines),
    recordOutcome: (request, outcome) => {
      contextOf(request).outcome = outcome;
    },
    log: node.log,
    prefix,
  };
}
