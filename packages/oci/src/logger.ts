/**
 * The one logger shape every Stowage package accepts: pino's, object first
 * (`logger.info({ repository }, 'pushed')`). Any method may be missing; a pino
 * logger, a console adapter or a test spy all fit. Packages log nothing unless
 * given one.
 */
export interface Logger {
  debug?(fields: object, message?: string): void;
  info?(fields: object, message?: string): void;
  warn?(fields: object, message?: string): void;
  error?(fields: object, message?: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A logger with every level, missing ones silent. */
export type ResolvedLogger = Required<Logger>;

const silent = (): void => {};

/** Fills the levels a logger lacks with no-ops, keeping `this` for the ones it has (pino needs it). */
export function resolveLogger(logger?: Logger): ResolvedLogger {
  const level = (name: LogLevel): ((fields: object, message?: string) => void) => {
    const method = logger?.[name];
    return method ? method.bind(logger) : silent;
  };
  return { debug: level('debug'), info: level('info'), warn: level('warn'), error: level('error') };
}
