import { readFileSync } from 'node:fs';
import { ChassisError } from './errors.ts';

/**
 * TLS to the servers a node depends on (NATS, RabbitMQ, PostgreSQL), with certificates from files —
 * in a cluster, a Kubernetes Secret mounted as a volume. Files rather than values, so that a rotated
 * Secret is picked up by the next connection without a restart; and a failure names the file to fix.
 */

/** PEM files: the CA that signed the server's certificate, and this client's certificate and key (mutual TLS). */
export interface TlsFiles {
  /** CA certificate(s) to trust instead of the system's; unset trusts the system CAs. */
  caFile?: string;
  /** This client's certificate, for servers that ask for one; needs `keyFile`. */
  certFile?: string;
  /** This client's private key; needs `certFile`. */
  keyFile?: string;
}

/** Where each file was set, for messages: an environment variable, a URL parameter, an option. */
export interface TlsSettingNames {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** The environment variables that set the broker connection's files (`loadConfig`). */
export const TRANSPORT_TLS_SETTINGS: TlsSettingNames = {
  caFile: 'CHASSIS_TLS_CA_FILE',
  certFile: 'CHASSIS_TLS_CERT_FILE',
  keyFile: 'CHASSIS_TLS_KEY_FILE',
};

/** The files' contents, as Node's `tls.connect` takes them. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Whether any file is set. */
export function hasTlsFiles(files: TlsFiles | undefined): files is TlsFiles {
  return Boolean(files && (files.caFile || files.certFile || files.keyFile));
}

/**
 * Reads the files now, so that a missing or unreadable one is a `CONFIG` error naming it and where it
 * was set, rather than a client library's `ENOENT` at some later connection.
 */
export function readTlsFiles(files: TlsFiles, names: TlsSettingNames = TRANSPORT_TLS_SETTINGS): TlsMaterial {
  if (Boolean(files.certFile) !== Boolean(files.keyFile)) {
    const [set, unset] = files.certFile ? (['certFile', 'keyFile'] as const) : (['keyFile', 'certFile'] as const);
    throw tlsConfigError(
      `${names[set]} is set but ${names[unset]} is not: a client certificate needs both the certificate and its private key`,
      { setting: names[unset] },
    );
  }
  const material: TlsMaterial = {};
  if (files.caFile) material.ca = readPem(files.caFile, names.caFile, 'CA certificate');
  if (files.certFile) material.cert = readPem(files.certFile, names.certFile, 'client certificate');
  if (files.keyFile) material.key = readPem(files.keyFile, names.keyFile, 'client private key');
  return material;
}

function readPem(path: string, setting: string, what: string): Buffer {
  let content: Buffer;
  try {
    content = readFileSync(path);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'cannot be read';
    throw tlsConfigError(
      `The ${what} file ${path} (${setting}) ${reason}: mount the Secret there or point ${setting} at the file`,
      { setting, file: path, cause: error },
    );
  }
  if (!content.includes('-----BEGIN ')) {
    throw tlsConfigError(`The ${what} file ${path} (${setting}) is not PEM: expected a "-----BEGIN …" block`, {
      setting,
      file: path,
    });
  }
  return content;
}

function tlsConfigError(message: string, details: { setting?: string; file?: string; cause?: unknown }): ChassisError {
  const { cause, ...data } = details;
  const reason: TlsFailureReason = 'TLS_FILE';
  return new ChassisError('CONFIG', message, { retryable: false, data: { reason, ...data }, cause });
}

/** What a TLS failure was about, as `error.data.reason` says it: stable, for programs and alerts. */
export type TlsFailureReason =
  | 'TLS_UNTRUSTED_CERTIFICATE'
  | 'TLS_HOSTNAME_MISMATCH'
  | 'TLS_CERTIFICATE_EXPIRED'
  | 'TLS_CLIENT_CERTIFICATE_REJECTED'
  | 'TLS_NOT_OFFERED'
  | 'TLS_BAD_FILE'
  /** A file missing, unreadable or not PEM, or a certificate without its key (`readTlsFiles`). */
  | 'TLS_FILE'
  /** A PostgreSQL `sslmode` that cannot work (`@chassis/data`). */
  | 'TLS_SSLMODE';

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** Describes a TLS failure: where, and what this node's side can do about it. */
export interface TlsFailureContext {
  /** `NATS`, `RabbitMQ`, `PostgreSQL`. */
  server: string;
  /** `host:port` as dialled. */
  address: string;
  files?: TlsFiles;
  names?: TlsSettingNames;
  /** How to turn TLS on for this kind of server, when it does not offer it. */
  enableTlsHint?: string;
}

function findError(error: unknown, code: string): Error | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if ((e as { code?: unknown }).code === code) return e;
  }
  return undefined;
}

function codesOf(error: unknown): { codes: string[]; messages: string[] } {
  const codes: string[] = [];
  const messages: string[] = [];
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    messages.push(e.message);
  }
  return { codes, messages };
}

/**
 * A TLS failure of a connection as a `CONFIG` error (a certificate problem does not fix itself, so it
 * is not retried and a starting node stops at once) whose message says which file or which host to
 * fix; `undefined` when the error is not about TLS.
 */
export function tlsFailure(error: unknown, context: TlsFailureContext): ChassisError | undefined {
  const { codes, messages } = codesOf(error);
  const names = context.names ?? TRANSPORT_TLS_SETTINGS;
  const files = context.files ?? {};
  const at = `${context.server} at ${context.address}`;
  const trusted = files.caFile
    ? `the CA in ${files.caFile}, which ${names.caFile} names`
    : `a CA the system trusts, and ${names.caFile} is not set`;
  const fail = (reason: Exclude<TlsFailureReason, 'TLS_FILE' | 'TLS_SSLMODE'>, message: string) =>
    new ChassisError('CONFIG', message, {
      retryable: false,
      cause: error,
      data: { reason, server: context.server, address: context.address, ...(codes[0] ? { tlsCode: codes[0] } : {}) },
    });

  const untrusted = codes.find((code) => UNTRUSTED.has(code));
  if (untrusted) {
    return fail(
      'TLS_UNTRUSTED_CERTIFICATE',
      `TLS to ${at} failed (${untrusted}): the server's certificate is not signed by ${trusted}. ` +
        `Set ${names.caFile} to the CA certificate that issued the server's certificate`,
    );
  }
  if (codes.includes('ERR_TLS_CERT_ALTNAME_INVALID')) {
    const mismatch = findError(error, 'ERR_TLS_CERT_ALTNAME_INVALID') as
      | { host?: string; cert?: { subjectaltname?: string; subject?: { CN?: string } } }
      | undefined;
    const certificateNames =
      mismatch?.cert?.subjectaltname ??
      (mismatch?.cert?.subject?.CN ? `CN=${mismatch.cert.subject.CN}` : 'other names');
    return fail(
      'TLS_HOSTNAME_MISMATCH',
      `TLS to ${at} failed: the server's certificate is for ${certificateNames}, not for ${mismatch?.host ?? context.address}. ` +
        `Connect by a name the certificate lists, or reissue the server's certificate with this host in its subjectAltName`,
    );
  }
  const expired = codes.find((code) => EXPIRED.has(code));
  if (expired) {
    return fail(
      'TLS_CERTIFICATE_EXPIRED',
      `TLS to ${at} failed: the server's certificate is outside its validity period (${expired}). ` +
        `Renew the server's certificate, or check this machine's clock`,
    );
  }
  const alert = codes.find((code) =>
    /^ERR_SSL_.*ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED|HANDSHAKE_FAILURE)/.test(
      code,
    ),
  );
  if (alert) {
    const mine = files.certFile
      ? `the client certificate ${files.certFile} (${names.certFile})`
      : `no client certificate (${names.certFile} is not set)`;
    return fail(
      'TLS_CLIENT_CERTIFICATE_REJECTED',
      `TLS to ${at} failed: the server refused ${mine} (${alert}). ` +
        `Set ${names.certFile} and ${names.keyFile} to a certificate and key issued by a CA the server trusts`,
    );
  }
  const plain =
    codes.find((code) => code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') ??
    messages.find((message) => /does not support '?(tls|ssl)/i.test(message));
  if (plain) {
    return fail(
      'TLS_NOT_OFFERED',
      `TLS to ${at} failed: the server does not offer TLS there (${plain}). ` +
        (context.enableTlsHint ?? "Use the server's TLS port, or turn TLS on in the server"),
    );
  }
  const badFile = codes.find((code) => /^ERR_OSSL_|^ERR_SSL_.*(PEM|KEY|X509)/.test(code));
  if (badFile && hasTlsFiles(files)) {
    const listed = [files.caFile, files.certFile, files.keyFile].filter(Boolean).join(', ');
    return fail(
      'TLS_BAD_FILE',
      `TLS to ${at} could not start: the certificate files (${listed}) could not be used (${badFile}: ${messages.at(-1)}). ` +
        `Check that ${names.keyFile} is the private key of ${names.certFile}, and that each file holds what its setting names`,
    );
  }
  return undefined;
}
