// The detailed import log on stdout (--log-to-stdout): one JSON line per entry,
// the same shape the importer writes to its log file.
import type { Logger, LogLevel } from '@stowage/oci';

export function jsonLinesLogger(write: (line: string) => void): Logger {
  const at =
    (level: LogLevel) =>
    (fields: object, message?: string): void => {
      const entry = {
        time: new Date().toISOString(),
        level,
        ...(message === undefined ? {} : { msg: message }),
        ...fields,
      };
      write(`${JSON.stringify(entry)}\n`);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
