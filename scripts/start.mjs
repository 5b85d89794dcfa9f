// Placeholder until the registry-server issue lands: the server app does not exist yet.
import { existsSync } from 'node:fs';

if (existsSync(new URL('../apps/server/package.json', import.meta.url))) {
  const { spawnSync } = await import('node:child_process');
  const result = spawnSync('pnpm', ['--filter', '@stowage/server-app', 'start', ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(result.status ?? 1);
}
console.log('stowage-server is not built yet: it arrives with the registry-server issue.');
console.log('Until then, `bash scripts/test.sh` runs everything that exists.');
