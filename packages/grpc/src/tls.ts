import { ChassisError, readTlsFiles, type TlsFiles } from '@chassis/core';
import { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';

/**
 * TLS as the rest of the chassis takes it: PEM files (a mounted Secret), read when the server or client
 * is made so that a missing one is a `CONFIG` error naming it. Without `tls`, plain text: fine on
 * localhost and inside a mesh that encrypts, not across a network.
 */

/** A server's certificate and key; with `caFile`, clients must present a certificate that CA signed (mutual TLS). */
export interface GrpcServerTls {
  certFile: string;
  keyFile: string;
  caFile?: string;
}

/** The CA to trust (default the system's) and, for mutual TLS, this client's certificate and key. */
export type GrpcClientTls = TlsFiles;

export function serverCredentials(tls: GrpcServerTls | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  if (!tls.certFile || !tls.keyFile) {
    throw new ChassisError('CONFIG', 'gRPC server tls needs both certFile and keyFile');
  }
  const material = readTlsFiles(tls, { caFile: 'tls.caFile', certFile: 'tls.certFile', keyFile: 'tls.keyFile' });
  return ServerCredentials.createSsl(
    material.ca ?? null,
    [{ private_key: material.key!, cert_chain: material.cert! }],
    material.ca !== undefined,
  );
}

export function clientCredentials(tls: GrpcClientTls | boolean | undefined): ChannelCredentials {
  if (!tls) return ChannelCredentials.createInsecure();
  if (tls === true) return ChannelCredentials.createSsl();
  const material = readTlsFiles(tls, { caFile: 'tls.caFile', certFile: 'tls.certFile', keyFile: 'tls.keyFile' });
  return ChannelCredentials.createSsl(material.ca ?? null, material.key ?? null, material.cert ?? null);
}
