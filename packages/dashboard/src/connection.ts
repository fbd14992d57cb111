/**
 * What the dashboard server needs of a connection to a running system: the ids of its nodes and one ops
 * action of one node. The `chassis` command's connection (`connect` of @chassis/cli: through the broker,
 * or one node's ops HTTP port) is one; the server asks nothing else, so the dashboard does not connect
 * twice the ways the CLI already does.
 */
export interface OpsConnection {
  /** Where it is connected, for the page to say. */
  readonly target: string;
  readonly kind: 'broker' | 'http';
  /** The ids of the system's nodes, or of those that run `service`. */
  nodeIds(service?: string): Promise<string[]>;
  /** One ops action of one node, resolving with its output or rejecting with its `ChassisError`. */
  ops(nodeId: string, action: string, input?: unknown, timeoutMs?: number): Promise<unknown>;
  close(): Promise<void>;
}
