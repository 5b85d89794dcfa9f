// `pnpm start`: stowage-server from source, on its embedded default (a local
// store under ./data, anonymous access, port 5000). Arguments are passed on:
// `pnpm start --root /srv/registry --addr :6000`. Signals are forwarded to the
// server and its exit is ours: its code, or the same signal.
// (`bash scripts/start.sh` runs the server directly, without this process.)
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../apps/server/src/cli.ts', import.meta.url));
const child = spawn(
  process.execPath,
  ['--conditions=@stowage/source', '--import', 'tsx', cli, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
for (const signal of forwarded) process.on(signal, () => child.kill(signal));
child.on('error', (error) => {
  process.stderr.write(`start: cannot run the server: ${error.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    // die of the same signal, so whoever started us sees what happened to the server
    for (const s of forwarded) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
});
