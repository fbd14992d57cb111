import type { NatsConnection } from '@nats-io/transport-node';

/**
 * nats.js's connection, as far as reading goes: its protocol handler's parser, and the transport that
 * hands it what the socket reads. Not nats.js's public API: `readDirectly` leaves a connection that is
 * not shaped like this as it is.
 */
interface Inbound {
  protocol?: {
    parser?: { parse?: (data: Uint8Array) => void };
    transport?: {
      done?: boolean;
      yields?: Uint8Array[];
      signal?: object;
      socket?: {
        listeners?: (event: 'data') => ((...args: unknown[]) => void)[];
        removeListener?: (event: 'data', listener: (...args: unknown[]) => void) => unknown;
        on?: (event: 'data', listener: (data: Uint8Array) => void) => unknown;
        destroy?: (error?: Error) => void;
      };
      options?: { debug?: boolean };
    };
  };
}

/** Transports whose socket this module reads already. */
const reading = new WeakSet<object>();

/**
 * Parses what the connection's socket reads as it arrives, in the socket's own callback, instead of
 * through nats.js's async iterator. nats.js keeps each read in a queue, resolves a promise made with
 * `Object.assign` (which gives the promise a new hidden class every time), and hands the read to its
 * parser through an async generator and a `for await`: four turns of the microtask queue a read, and
 * at one call in flight a call is two reads (the request on the server's connection, the reply on the
 * caller's), each its own socket callback.
 *
 * A read goes straight to the parser only when nats.js's reader waits with nothing queued, as it does
 * between the socket's callbacks: it then waits on a promise that no read has resolved (it makes a new
 * one each time it has emptied its queue). Otherwise — a read queued and not yet parsed, right after
 * this is set up, while debug output is on — the read goes nats.js's way, so reads are parsed in the
 * order they came. Call again after each reconnect: nats.js makes a new transport and socket for each
 * connection. A connection that is not shaped as expected is left as it is (false).
 *
 * `failed`: a subscription's callback threw out of the parser. nats.js's reader would stop there and
 * leave the connection deaf until its pings time out; here the socket is closed instead, so nats.js
 * reconnects at once, and the error is reported.
 */
export function readDirectly(nc: NatsConnection, failed: (error: unknown) => void): boolean {
  const protocol = (nc as Inbound).protocol;
  const parser = protocol?.parser;
  const transport = protocol?.transport;
  const socket = transport?.socket;
  if (
    !parser?.parse ||
    !transport ||
    !socket?.listeners ||
    !socket.removeListener ||
    !socket.on ||
    !Array.isArray(transport.yields) ||
    transport.signal === undefined ||
    transport.done !== false ||
    transport.options?.debug
  ) {
    return false;
  }
  if (reading.has(transport)) return true;
  const natsListeners = socket.listeners('data');
  if (natsListeners.length !== 1) return false;
  const queue = natsListeners[0]!;
  // The promise nats.js's reader waits on when it last took a read our way: resolved, so not a sign
  // that the reader is waiting. Unknown at first: the first read goes nats.js's way.
  let resolved: object | undefined = transport.signal;
  socket.removeListener('data', queue);
  socket.on('data', (data: Uint8Array) => {
    if (transport.yields!.length === 0 && transport.signal !== resolved && transport.done === false) {
      try {
        parser.parse!(data);
      } catch (error) {
        socket.destroy?.(error instanceof Error ? error : new Error(String(error)));
        failed(error);
      }
      return;
    }
    resolved = transport.signal;
    queue.call(socket, data);
  });
  reading.add(transport);
  return true;
}
