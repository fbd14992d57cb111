import { randomUUID } from 'node:crypto';
import type { Identity } from '@chassis/core';
import type { FastifyRequest } from 'fastify';
import { type DeadlineOptions, requestDeadline } from '../deadline.ts';

/** What the gateway knows of a request beyond Fastify: its deadline, its caller, how it ended. */
export interface RequestContext {
  /** Absolute epoch ms, read on arrival; undefined for a request refused by that read (see `refusal`). */
  deadline: number | undefined;
  /** Why the request's deadline headers were refused on arrival (a 400, or a 504 for a passed one). */
  refusal: Error | undefined;
  /** The caller's verification, started by whoever asks first (see identity.ts). */
  identity: Promise<Identity | undefined> | undefined;
  /** The verified caller, once `identity` has settled on one. */
  user: Identity | undefined;
  /** The error code the request ended with, for the metrics; undefined is `ok`. */
  outcome: string | undefined;
  /** `performance.now()` at the request's arrival, for the request histogram. */
  startedAt: number;
  /**
   * The matched route's URL pattern as Fastify gives it (`request.routeOptions.url`), when the route's
   * handler knows it already: the histogram's label without Fastify's getter, which builds an object of
   * the route's twelve options on every read.
   */
  route: string | undefined;
}

/**
 * A symbol, not a name: the context rides on Node's request (`request.raw`), where Fastify's `genReqId`
 * puts it on arrival (see `requestIdentifier`), and cannot collide with anything else there.
 */
const kContext = Symbol('chassis.requestContext');
type RawWithContext = { [kContext]?: RequestContext };
type RawRequest = { headers: Record<string, string | string[] | undefined> };

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * Fastify's `genReqId`, which it calls once for every request as it arrives, before any hook: the
 * client's `X-Request-Id` when it is a sane one, else a new id — and the request's context, made here,
 * with the deadline its headers ask for read from this moment (the client's `Request-Timeout` counts
 * the upload and the token check too). An `onRequest` hook did this before; a hook stage costs every
 * request Fastify's hook runner and its three closures, and the request id header is now set with the
 * histogram in the one `onSend` hook (request-metrics.ts). A header that is refused is kept as
 * `refusal`, thrown by the routes (route-table.ts) and by `deadlineOf`: `genReqId` must not throw.
 */
export function requestIdentifier(deadlines: DeadlineOptions): (raw: RawRequest) => string {
  return (raw) => {
    const given = raw.headers['x-request-id'];
    const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : newRequestId();
    let deadline: number | undefined;
    let refusal: Error | undefined;
    try {
      deadline = requestDeadline(raw.headers, deadlines);
    } catch (error) {
      refusal = error as Error;
    }
    (raw as RawWithContext)[kContext] = newContext(deadline, refusal);
    return id;
  };
}

/** 28 characters of a random UUID, drawn again every 2^31 ids; see `newRequestId`. */
let idPrefix = '';
/** How many ids have been made on `idPrefix`: a new prefix at 0. */
let idCount = 0;
/** A random mask per prefix; with an odd multiplier, `count × MULTIPLIER ^ mask` is one-to-one on 31 bits. */
let idMask = 0;
const ID_MULTIPLIER = 0x9e3779b1;
const ID_BITS = 0x7fffffff;

/**
 * A new request id, shaped as a UUID (version 4): a random UUID's first 28 characters, then 8 hex digits
 * counting the ids made on them, scrambled (an odd multiplier and a random mask, one-to-one on 31 bits)
 * so that consecutive ids do not read as a sequence — they would tell a client the traffic between its
 * requests. Unique: within a prefix by the count, across prefixes and processes by the prefix's 90
 * random bits. A small integer throughout, which the engine turns into hex at once (a 32-bit one is a
 * heap number, and its hex string was slower than `randomUUID()`); `randomUUID()` per request, which this
 * replaces, was 0.15–0.2 µs of the gateway's time per request.
 */
export function newRequestId(): string {
  if (idCount === 0) {
    const uuid = randomUUID();
    idPrefix = uuid.slice(0, 28);
    idMask = Number.parseInt(uuid.slice(28), 16) & ID_BITS;
  }
  const scrambled = (Math.imul(idCount, ID_MULTIPLIER) & ID_BITS) ^ idMask;
  idCount = (idCount + 1) & ID_BITS;
  return idPrefix + scrambled.toString(16).padStart(8, '0');
}

/**
 * The request's context. Every request Fastify gave an id has one; one without (nothing the gateway's
 * Fastify does today) gets an empty one here.
 */
export function contextOf(request: FastifyRequest): RequestContext {
  const holder = request.raw as RawWithContext;
  let context = holder[kContext];
  if (!context) {
    context = newContext(undefined, undefined);
    holder[kContext] = context;
  }
  return context;
}

/**
 * The request's absolute deadline: from `Request-Timeout` or `X-Deadline`, capped, else the default.
 * Throws what its headers were refused for.
 */
export function deadlineOf(request: FastifyRequest, deadlines: DeadlineOptions): number {
  const context = contextOf(request);
  if (context.refusal) throw context.refusal;
  context.deadline ??= requestDeadline(request.headers, deadlines);
  return context.deadline;
}

/** One shape for every context, so the engine keeps its accesses monomorphic. */
function newContext(deadline: number | undefined, refusal: Error | undefined): RequestContext {
  return {
    deadline,
    refusal,
    identity: undefined,
    user: undefined,
    outcome: undefined,
    startedAt: performance.now(),
    route: undefined,
  };
}
