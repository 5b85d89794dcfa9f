import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SelfSignedOptions {
  /** Where `cert.pem` and `key.pem` are written (an existing directory). */
  readonly dir: string;
  /** The certificate's CN. Default `127.0.0.1`. */
  readonly commonName?: string;
  /** An IP subject alternative name, so TLS clients accept it for that address. Default: none. */
  readonly ip?: string;
  /** Default 2. */
  readonly days?: number;
}

/**
 * A self-signed P-256 certificate and its key, made by the `openssl` peer
 * (declare it with `requirePeers('openssl')`): for TLS servers and for token
 * signing chains in tests.
 */
export async function selfSignedCertificate(
  options: SelfSignedOptions,
): Promise<{ readonly cert: string; readonly key: string }> {
  const cert = join(options.dir, 'cert.pem');
  const key = join(options.dir, 'key.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    String(options.days ?? 2),
    '-subj',
    `/CN=${options.commonName ?? '127.0.0.1'}`,
    ...(options.ip ? ['-addext', `subjectAltName=IP:${options.ip}`] : []),
  ]);
  return { cert, key };
}
