// What stowage-server tells an operator when it cannot start or run: one line
// naming the problem and what to do, and an exit code by kind. Node's system
// error codes are turned into words here, and nowhere else.
import { isStowageError, StowageError } from '@stowage/oci';

/** Exit codes, documented in the README. */
export const EXIT = {
  ok: 0,
  /** Anything not listed below (a bug, a store error). */
  other: 1,
  /** A flag, its value or a positional argument is wrong. */
  usage: 2,
  /** The configuration (file, environment, or a file it names) is invalid. */
  config: 3,
  /** The server cannot listen, or the storage root cannot be used. */
  unusable: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The command line is wrong; the usage of `command` follows the message. */
export class UsageError extends StowageError<'USAGE'> {
  readonly command: 'serve' | 'gc' | undefined;
  constructor(message: string, command?: 'serve' | 'gc') {
    super('USAGE', message);
    this.command = command;
  }
}

/** A failure the operator can fix, already in words, with its exit code. */
export class StartupError extends StowageError<'STARTUP_FAILED'> {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, cause?: unknown) {
    super('STARTUP_FAILED', message, cause === undefined ? {} : { cause });
    this.exitCode = exitCode;
  }
}

interface SystemError extends Error {
  code?: string;
  syscall?: string;
  path?: string;
  address?: string;
  port?: number;
  hostname?: string;
  reason?: string;
}

function systemError(error: unknown): SystemError | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as SystemError).code;
  return typeof code === 'string' && !isStowageError(error) ? (error as SystemError) : undefined;
}

/** What a system error code says about `what` (a file, a directory, an address), in words. */
const PROBLEMS: Readonly<Record<string, (what: string) => string>> = {
  ENOENT: (what) => `${what} does not exist`,
  EISDIR: (what) => `${what} is a directory, not a file`,
  ENOTDIR: (what) => `${what} is not a directory (or a part of its path is a file)`,
  EACCES: (what) => `permission denied for ${what}`,
  EPERM: (what) => `operation not permitted on ${what}`,
  EROFS: (what) => `${what} is on a read-only filesystem`,
  ENOSPC: (what) => `no space left on the device of ${what}`,
  EDQUOT: (what) => `the disk quota is exceeded for ${what}`,
  ELOOP: (what) => `${what} is a loop of symbolic links`,
  ENAMETOOLONG: (what) => `the path of ${what} is too long`,
  EMFILE: () => 'too many open files in this process',
  ENFILE: () => 'too many open files on this system',
  EIO: (what) => `an I/O error on ${what}`,
  EADDRINUSE: (what) => `${what} is already in use`,
  EADDRNOTAVAIL: (what) => `${what} is not an address of this machine`,
  ENOTFOUND: (what) => `the host name of ${what} does not resolve`,
  EAI_AGAIN: (what) => `the host name of ${what} could not be resolved now`,
};

/** The problem a Node error names, in words about `what`; `undefined` for codes not mapped. */
export function describeProblem(error: unknown, what: string): string | undefined {
  const system = systemError(error);
  if (!system?.code) return undefined;
  if (system.code.startsWith('ERR_OSSL')) {
    const reason = system.reason ?? system.message.split(':').pop() ?? system.message;
    return system.code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH'
      ? `${what} does not belong to the certificate`
      : `${what} cannot be used by OpenSSL (${reason.trim()})`;
  }
  return PROBLEMS[system.code]?.(what);
}

/**
 * A failure on a file or directory the operator chose, as one line: `fixes`
 * holds what to do per error code (and a `default`).
 */
export function pathFailure(
  error: unknown,
  what: string,
  fixes: Readonly<Record<string, string>>,
  exitCode: ExitCode,
): unknown {
  const problem = describeProblem(error, what);
  if (problem === undefined) return error;
  const code = systemError(error)?.code ?? '';
  const fix = fixes[code] ?? fixes.default;
  return new StartupError(fix ? `${problem}; ${fix}` : problem, exitCode, error);
}

function formatAddress(address: string | undefined, port: number | undefined): string {
  const host = address === undefined ? '' : address.includes(':') ? `[${address}]` : address;
  return port === undefined ? host : `${host}:${port}`;
}

/** Why a listen failed and what to do, by code. */
const LISTEN_PROBLEMS: Readonly<Record<string, string>> = {
  EADDRINUSE:
    'the address is already in use; stop what listens there, or choose another address with --addr (http.addr)',
  EADDRNOTAVAIL:
    'that address is not one of this machine; choose one of its addresses (or :PORT for all of them) with --addr (http.addr)',
  EACCES: 'permission denied (ports below 1024 need privileges); choose another port with --addr (http.addr)',
  ENOTFOUND:
    'the host name does not resolve; use an IP address or a name of this machine in --addr (http.addr)',
  EAI_AGAIN: 'the host name could not be resolved; use an IP address in --addr (http.addr)',
};

/** One line and an exit code for any error that ends the process. */
export function explainFailure(error: unknown): { message: string; exitCode: ExitCode } {
  if (error instanceof StartupError) return { message: error.message, exitCode: error.exitCode };
  if (error instanceof UsageError) return { message: error.message, exitCode: EXIT.usage };
  if (isStowageError(error, 'CONFIG_INVALID')) {
    const origin = (error as StowageError & { origin?: string }).origin;
    return { message: error.message, exitCode: origin?.startsWith('--') ? EXIT.usage : EXIT.config };
  }
  if (isStowageError(error)) return { message: `${error.code}: ${error.message}`, exitCode: EXIT.other };
  const system = systemError(error);
  if (system?.syscall === 'listen' || system?.syscall === 'getaddrinfo' || system?.syscall === 'bind') {
    const where = formatAddress(system.address ?? system.hostname, system.port);
    const problem =
      LISTEN_PROBLEMS[system.code ?? ''] ?? describeProblem(system, 'the address') ?? system.message;
    return { message: `cannot listen on ${where}: ${problem}`, exitCode: EXIT.unusable };
  }
  if (system?.path !== undefined) {
    const problem = describeProblem(system, system.path);
    if (problem !== undefined) {
      return { message: system.syscall ? `${problem} (${system.syscall})` : problem, exitCode: EXIT.other };
    }
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    message: `unexpected error: ${message} (run again with --debug for the stack trace)`,
    exitCode: EXIT.other,
  };
}
