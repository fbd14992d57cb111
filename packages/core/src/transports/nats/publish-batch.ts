import type { NatsConnection, PublishOptions } from '@nats-io/transport-node';

interface Queued {
  nc: NatsConnection;
  subject: string;
  body: Uint8Array;
  options: PublishOptions | undefined;
  failed: ((error: unknown) => void) | undefined;
  wanted: (() => boolean) | undefined;
}

/**
 * The core-NATS publishes (requests and replies) of one turn of the event loop, handed to the connection
 * together at its end (`setImmediate`), so that they leave in one socket write rather than one each.
 *
 * nats.js writes what was published at the end of the microtask it was published in; requests and replies
 * made by many handlers of one socket read reach `publish` at different depths of their promise chains,
 * so under load each went out in a write of its own, and the writes were a third of the node's CPU. A
 * publish made when nothing else is in flight (`alone`) is written at once, not even at the end of the
 * microtask: a lone caller waits no longer, and the work that follows it in this turn (a server's span
 * and metrics after its reply, the caller's bookkeeping after its request) runs while it travels.
 * Order is kept: nothing goes at once while a batch waits. A request can say whether it is still `wanted`
 * when its batch leaves.
 */
export class PublishBatch {
  #queued: Queued[] = [];
  #scheduled = false;

  publish(
    nc: NatsConnection,
    subject: string,
    body: Uint8Array,
    options: PublishOptions | undefined,
    failed: ((error: unknown) => void) | undefined,
    alone: boolean,
    wanted?: () => boolean,
  ): void {
    if (alone && !this.#scheduled) {
      send(nc, subject, body, options, failed, true);
      writeNow(nc);
      return;
    }
    this.#queued.push({ nc, subject, body, options, failed, wanted });
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Hands everything waiting to the connection now: before a flush, a drain or a close. */
  readonly flush = (): void => {
    this.#scheduled = false;
    const batch = this.#queued;
    if (batch.length === 0) return;
    this.#queued = [];
    for (const { nc, subject, body, options, failed, wanted } of batch) {
      // A request whose caller stopped waiting meanwhile (its transport closed, say) is not sent: the
      // caller was told it failed, so it must not run.
      if (wanted && !wanted()) continue;
      send(nc, subject, body, options, failed);
    }
  };
}

function send(
  nc: NatsConnection,
  subject: string,
  body: Uint8Array,
  options: PublishOptions | undefined,
  failed: ((error: unknown) => void) | undefined,
  atOnce = false,
): void {
  try {
    if (options?.headers || !publishWhole(nc, subject, body, options?.reply, atOnce))
      nc.publish(subject, body, options);
  } catch (error) {
    failed?.(error);
  }
}

/**
 * The connection's protocol handler, where nats.js keeps what is published until it writes it, and the
 * connection's own check before a publish. Not nats.js's public API: each use falls back to the public
 * call when a part is missing.
 */
interface Outbound {
  protocol?: {
    flushPending?: () => void;
    sendCommand?: (command: Uint8Array) => void;
    info?: { max_payload?: number };
    outMsgs: number;
    outBytes: number;
    /** What waits to be written; written before anything that comes after it. */
    outbound?: { length?: () => number };
    infoReceived?: boolean;
    connected?: boolean;
    transport?: {
      isClosed?: boolean;
      socket?: { write?: (data: Uint8Array) => boolean };
      options?: { debug?: boolean };
    };
  };
  _check?: (subject: string, sub: boolean, pub: boolean) => void;
}

/**
 * `nc.publish` of a message without headers, handed to the connection as one buffer: the `PUB` line, the
 * body and the line end. nats.js makes the line a string, encodes it into an ArrayBuffer of its own, then
 * copies the three pieces into another for the write: two ArrayBuffers a message, each a backing store
 * that V8 allocates, tracks and frees one by one — a few percent of a request's CPU. This buffer comes
 * from Node's pool, and nats.js writes it as it is. False when the connection is not as expected, or the
 * body is over max_payload: then `nc.publish` does it (and says what is wrong).
 */
function publishWhole(
  nc: NatsConnection,
  subject: string,
  body: Uint8Array,
  reply: string | undefined,
  atOnce: boolean,
): boolean {
  const { protocol, _check } = nc as Outbound;
  if (!protocol?.sendCommand || !_check) return false;
  const maxPayload = protocol.info?.max_payload;
  if (maxPayload !== undefined && body.length > maxPayload) return false;
  // As nc.publish does first: a closed or draining connection, or a bad subject, throws nats.js's error.
  _check.call(nc, subject, false, true);
  const line = reply ? `PUB ${subject} ${reply} ${body.length}\r\n` : `PUB ${subject} ${body.length}\r\n`;
  const lineLength = Buffer.byteLength(line, 'utf8');
  const out = Buffer.allocUnsafe(lineLength + body.length + 2);
  out.write(line, 0, lineLength, 'utf8');
  out.set(body, lineLength);
  out[out.length - 2] = 13; // \r
  out[out.length - 1] = 10; // \n
  protocol.outMsgs++;
  protocol.outBytes += body.length;
  if (!(atOnce && writeDirect(protocol, out))) protocol.sendCommand(out);
  return true;
}

/**
 * Writes a message that is to go at once straight to the connection's socket, when nothing waits before
 * it: what `sendCommand` and the write it schedules would do, less their cost. nats.js keeps the buffer,
 * queues a microtask to write it (`queueMicrotask` makes an async resource each time), then packs its
 * buffers and writes them with a promise, a callback and a second promise to ignore what the write says
 * (it learns of a broken socket by reading). Two of those a call, one each side, were a few microseconds
 * of a call's CPU. False — and nats.js does it its own way — while anything waits in its buffer (order is
 * kept), before its handshake is done, while it is not connected (it buffers then, to send on reconnect),
 * when its debug output is on, or when the connection is not as expected.
 */
function writeDirect(protocol: NonNullable<Outbound['protocol']>, out: Uint8Array): boolean {
  const { transport, outbound } = protocol;
  const socket = transport?.socket;
  if (
    !transport ||
    !socket?.write ||
    transport.isClosed !== false ||
    transport.options?.debug ||
    protocol.infoReceived !== true ||
    protocol.connected !== true ||
    outbound?.length?.() !== 0
  ) {
    return false;
  }
  socket.write(out);
  return true;
}

/**
 * Writes what the connection holds now. nats.js has no public call for it (`flush()` is a PING round
 * trip); its own write is this same call, queued as a microtask by the first publish of a batch, and
 * finds nothing left then. A connection without it writes at the end of the microtask, as before.
 */
function writeNow(nc: NatsConnection): void {
  try {
    (nc as Outbound).protocol?.flushPending?.();
  } catch {
    // nats.js's write does not throw (a failed write shows as a lost connection, which fails what
    // waits); should it anyway, what it still holds goes with its own write at the end of the microtask.
  }
}
