import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * The id a node, its transport connection and its saga runner go by when none is given:
 * `<host>-<pid>-<8 hex>`. Host and pid say where to look in logs and process lists; the random part keeps
 * two nodes in one process (tests, the embedded topology) and a restarted pod that reuses its pid apart.
 */
export function defaultNodeId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}
