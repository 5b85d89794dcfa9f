// The README's first command: stowage-server from source, on its embedded
// default (a local store under ./data, anonymous access, port 5000).
// Arguments are passed on: `bash scripts/start.sh --root /srv/registry --addr :6000`.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../apps/server/src/cli.ts', import.meta.url));
const child = spawn(
  process.execPath,
  ['--conditions=@stowage/source', '--import', 'tsx', cli, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
