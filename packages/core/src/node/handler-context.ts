import type { Client as FlagClient } from '@openfeature/server-sdk';
import type { CallOptions, Context, EmitOptions } from '../context.ts';
import type { ActionContract, EventContract, InputOf, OutputOf, PayloadInputOf } from '../contracts.ts';
import type { Identity } from '../identity.ts';
import type { Logger } from '../logger.ts';
import { type Attributes, type Span, SpanKind } from '../observability/tracing.ts';
import { HandlerTimeout, remainingMs } from './deadline.ts';
import type { Rostered } from './in-flight.ts';
import type { Origin } from './origin.ts';

/** How a handler's context reaches the node's send and publish stages. */
export interface Outbound {
  send<C extends ActionContract>(
    contract: C,
    input: InputOf<C>,
    options: CallOptions<C>,
    origin: Origin,
  ): Promise<OutputOf<C>>;
  publish<E extends EventContract>(
    contract: E,
    payload: PayloadInputOf<E>,
    options: EmitOptions,
    origin: Origin,
    ctx: Context,
  ): Promise<void>;
  startSpan(parent: Span, name: string, kind: SpanKind, attributes: Attributes): Span;
  fetch(parent: Span, url: string | URL, init: RequestInit | undefined): Promise<Response>;
  traceHeaders(span: Span): Record<string, string>;
}

/**
 * A handler's `ctx`. A class rather than an object of closures, and its abort signal (with the timer
 * behind it) is made only when a handler asks for it: most never do, and every request pays for what
 * is made here.
 */
export class HandlerContext implements Context, Rostered<HandlerContext> {
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The node's roster of handlers in flight (`rt.inFlight`) is threaded through these. */
  previousInRoster: HandlerContext | undefined = undefined;
  nextInRoster: HandlerContext | undefined = undefined;

  private readonly outbound: Outbound;
  readonly service: string;
  readonly nodeId: string;
  private readonly origin: Origin;
  readonly attempt: number;
  readonly span: Span;
  readonly log: Logger;
  readonly flags: FlagClient;

  constructor(
    outbound: Outbound,
    service: string,
    nodeId: string,
    origin: Origin,
    attempt: number,
    span: Span,
    log: Logger,
    flags: FlagClient,
  ) {
    this.outbound = outbound;
    this.service = service;
    this.nodeId = nodeId;
    this.origin = origin;
    this.attempt = attempt;
    this.span = span;
    this.log = log;
    this.flags = flags;
  }

  get messageId(): string {
    return this.origin.messageId;
  }
  get correlationId(): string {
    return this.origin.correlationId ?? this.origin.messageId;
  }
  get causationId(): string | undefined {
    return this.origin.causationId;
  }
  get deadline(): number {
    return this.origin.deadline;
  }
  get auth(): string | undefined {
    return this.origin.auth;
  }
  get user(): Identity | undefined {
    return this.origin.user;
  }

  get signal(): AbortSignal {
    return this.abortController().signal;
  }

  remainingMs(): number {
    return remainingMs(this.origin.deadline, Date.now());
  }

  call<C extends ActionContract>(contract: C, input: InputOf<C>, options: CallOptions<C> = {}): Promise<OutputOf<C>> {
    const origin = options.auth === undefined ? this.origin : withAuth(this.origin, options.auth);
    return this.outbound.send(contract, input, options, origin);
  }

  emit<E extends EventContract>(contract: E, payload: PayloadInputOf<E>, options: EmitOptions = {}): Promise<void> {
    return this.outbound.publish(contract, payload, options, this.origin, this);
  }

  startSpan(name: string, options: { kind?: SpanKind; attributes?: Attributes } = {}): Span {
    return this.outbound.startSpan(this.span, name, options.kind ?? SpanKind.INTERNAL, options.attributes ?? {});
  }

  fetch(url: string | URL, init?: RequestInit): Promise<Response> {
    return this.outbound.fetch(this.span, url, init);
  }

  traceHeaders(span: Span = this.span): Record<string, string> {
    return this.outbound.traceHeaders(span);
  }

  abort(reason: unknown): void {
    this.abortController().abort(reason);
  }

  /** Rejects with the handler's own TIMEOUT at the deadline, aborting its signal. */
  expiry(): Promise<never> {
    const { signal } = this.abortController();
    return new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }

  finish(): void {
    clearTimeout(this.timer);
  }

  private abortController(): AbortController {
    if (!this.controller) {
      const controller = new AbortController();
      this.controller = controller;
      this.timer = setTimeout(
        () => controller.abort(new HandlerTimeout(`The deadline passed while ${this.service} was handling it`)),
        remainingMs(this.origin.deadline, Date.now()),
      );
    }
    return this.controller;
  }
}

/** The origin with another token, field by field: an origin may be a class with getters (`LocalOrigin`). */
function withAuth(origin: Origin, auth: string): Origin {
  return {
    messageId: origin.messageId,
    correlationId: origin.correlationId,
    causationId: origin.causationId,
    deadline: origin.deadline,
    auth,
    user: origin.user,
    trace: origin.trace,
    inherited: origin.inherited,
  };
}
