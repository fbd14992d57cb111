import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import {
  createServer as createNetServer,
  type Server as NetServer,
  connect as netConnect,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { freePort, reachable, waitUntil } from './infra.ts';

/**
 * Real TLS for tests: certificates made by `openssl` in a temporary folder, a private `nats-server` that
 * requires TLS, and proxies that terminate TLS in front of the machine's RabbitMQ and PostgreSQL (which
 * listen in plain text). Nothing here touches the machine's own servers' configuration.
 */

const run = promisify(execFile);

/** The files of a test PKI: a CA, a server certificate it signed, a client certificate, and an unrelated CA. */
export interface TestPki {
  readonly dir: string;
  /** The CA that signed the server and client certificates. */
  readonly caFile: string;
  /** A server certificate for `localhost` and `127.0.0.1`, and its key. */
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** A client certificate (CN `chassis-test-client`), and its key. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A certificate the CA signed for another host only (`db.example.internal`): verify-full must refuse it. */
  readonly otherHostCertFile: string;
  readonly otherHostKeyFile: string;
  /** A CA that signed nothing here: trusting it alone must fail. */
  readonly wrongCaFile: string;
  /** Removes the folder. */
  remove(): Promise<void>;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  await run('openssl', [
    'req',
    '-x509',
    ...KEY,
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { cert, key };
}

async function issue(
  dir: string,
  ca: { cert: string; key: string },
  name: string,
  extensions: string,
): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, extensions);
  await run('openssl', ['req', ...KEY, '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '2',
    '-extfile',
    ext,
  ]);
  return { cert, key };
}

/** Makes a fresh PKI with `openssl` (EC P-256 keys, valid two days) in a temporary folder. */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'chassis-tls-'));
  const ca = await makeCa(dir, 'chassis-test-ca');
  const wrongCa = await makeCa(dir, 'unrelated-ca');
  const server = await issue(
    dir,
    ca,
    'localhost',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n',
  );
  const otherHost = await issue(
    dir,
    ca,
    'db.example.internal',
    'subjectAltName=DNS:db.example.internal\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n',
  );
  const client = await issue(
    dir,
    ca,
    'chassis-test-client',
    'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n',
  );
  return {
    dir,
    caFile: ca.cert,
    serverCertFile: server.cert,
    serverKeyFile: server.key,
    clientCertFile: client.cert,
    clientKeyFile: client.key,
    otherHostCertFile: otherHost.cert,
    otherHostKeyFile: otherHost.key,
    wrongCaFile: wrongCa.cert,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface TlsNatsServer {
  /** `tls://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts a private `nats-server` with JetStream on a free port, requiring TLS with the PKI's server
 * certificate and, when `verifyClients`, a client certificate the PKI's CA signed (mutual TLS).
 */
export async function startTlsNats(
  pki: TestPki,
  { verifyClients = true, binary = '/usr/sbin/nats-server' } = {},
): Promise<TlsNatsServer> {
  const port = await freePort();
  const config = join(pki.dir, `nats-${port}.conf`);
  await writeFile(
    config,
    [
      `listen: "127.0.0.1:${port}"`,
      `jetstream { store_dir: ${JSON.stringify(join(pki.dir, `jetstream-${port}`))} }`,
      'tls {',
      `  cert_file: ${JSON.stringify(pki.serverCertFile)}`,
      `  key_file: ${JSON.stringify(pki.serverKeyFile)}`,
      `  ca_file: ${JSON.stringify(pki.caFile)}`,
      `  verify: ${verifyClients}`,
      '  timeout: 2',
      '}',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const server = { name: 'nats-server (TLS)', url: `nats://127.0.0.1:${port}`, port };
  try {
    await waitUntil(() => child.exitCode === null && reachable(server, 200), {
      timeoutMs: 10_000,
      what: `nats-server with TLS on port ${port}`,
    });
    if (child.exitCode !== null) throw new Error(`nats-server exited`);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}: ${output}`);
  }
  return {
    url: `tls://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface TlsProxy {
  readonly port: number;
  close(): Promise<void>;
}

function pipeBoth(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  const end = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', end);
  b.on('error', end);
  a.on('close', end);
  b.on('close', end);
}

function listenOnFreePort(server: NetServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

function closeServer(server: NetServer, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * A TLS endpoint on a free port that forwards the decrypted bytes to a plain TCP server, as a TLS
 * sidecar or load balancer does: e.g. `amqps://…@127.0.0.1:<port>` in front of RabbitMQ's 5672.
 */
export async function startTlsProxy(
  pki: TestPki,
  target: { host?: string; port: number },
  { verifyClients = false } = {},
): Promise<TlsProxy> {
  const [cert, key, ca] = await Promise.all([
    readFile(pki.serverCertFile),
    readFile(pki.serverKeyFile),
    readFile(pki.caFile),
  ]);
  const sockets = new Set<Socket>();
  // With `verifyClients`, as RabbitMQ's `ssl_options.verify = verify_peer, fail_if_no_peer_cert = true`.
  const clientAuth = verifyClients ? { requestCert: true, rejectUnauthorized: true, ca } : {};
  const server = createTlsServer({ cert, key, ...clientAuth }, (client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    const upstream = netConnect({ host: target.host ?? '127.0.0.1', port: target.port });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    pipeBoth(client, upstream);
  });
  // A client that refuses our certificate aborts the handshake: that is the test, not a failure.
  server.on('tlsClientError', () => undefined);
  const port = await listenOnFreePort(server);
  return { port, close: () => closeServer(server, sockets) };
}

/** PostgreSQL's SSLRequest: length 8, then the code 80877103. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/**
 * PostgreSQL with `ssl = on`, made from a plain server: answers the client's SSLRequest with `S`, does
 * the TLS handshake with the PKI's server certificate, and forwards the decrypted startup and queries
 * to the real server (which thus sees a plain connection, as it would behind a TLS-terminating proxy).
 * A client that starts without SSLRequest is cut off, so a connection that works went through TLS.
 */
export async function startPostgresTlsProxy(
  pki: TestPki,
  target: { host?: string; port: number },
  { certificate = 'server' }: { certificate?: 'server' | 'other-host' } = {},
): Promise<TlsProxy> {
  const [cert, key] = await Promise.all(
    certificate === 'server'
      ? [readFile(pki.serverCertFile), readFile(pki.serverKeyFile)]
      : [readFile(pki.otherHostCertFile), readFile(pki.otherHostKeyFile)],
  );
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server = createNetServer((client) => {
    track(client);
    client.once('readable', () => {
      const first: Buffer | null = client.read(8);
      if (first === null) {
        client.destroy();
        return;
      }
      if (!first.equals(SSL_REQUEST)) {
        // As a server whose pg_hba.conf has only `hostssl` lines: plain connections are not served.
        client.destroy();
        return;
      }
      const upstream = netConnect({ host: target.host ?? '127.0.0.1', port: target.port });
      track(upstream);
      client.write('S');
      const secure = new TLSSocket(client, { isServer: true, cert, key });
      track(secure);
      pipeBoth(secure, upstream);
    });
  });
  const port = await listenOnFreePort(server);
  return { port, close: () => closeServer(server, sockets) };
}
