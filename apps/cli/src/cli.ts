#!/usr/bin/env node
// stowage: thin commands over the packages — flags to options, one package call each.
// The commands are listed in commands.ts; every failure leaves through `explain`
// (errors.ts): one line, a documented exit code, and a stack trace only with --debug.
import './start-up.js';
import { readFileSync } from 'node:fs';
import { parseCommandLine, wantsDebug } from './args.js';
import { type CommandRun, UsageError } from './command.js';
import { debugText, explain } from './errors.js';
import { helpText, usageText } from './help.js';
import { explainSync } from './sync.js';

function version(): string {
  // apps/cli/package.json, from src/cli.ts and from the built dist/cli.js alike
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function main(argv: readonly string[], run: CommandRun): Promise<number> {
  const line = parseCommandLine(argv);
  const { command, operands, values } = line;
  if (values.help) {
    process.stdout.write(`${helpText(command, line.group)}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`stowage ${version()}\n`);
    return 0;
  }
  if (command === undefined) throw new UsageError('a command is needed (see stowage --help)', undefined);
  return command.run({ operands, values, run });
}

const argv = process.argv.slice(2);
const run: CommandRun = {};
main(argv, run).then(
  (code) => {
    process.exitCode = code;
  },
  async (error: unknown) => {
    const { exitCode, line } =
      explainSync(error) ?? (await explain(error, { database: run.database, logFile: run.logFile }));
    let text = `stowage: ${line}\n`;
    if (error instanceof UsageError) text += `\n${usageText(error.command)}\n`;
    if (wantsDebug(argv) && !(error instanceof UsageError)) text += `\n${debugText(error)}\n`;
    process.stderr.write(text);
    process.exitCode = exitCode;
  },
);
