# Sourced by the top-level scripts: makes sure pnpm and the workspace
# dependencies are there. corepack cannot fetch pnpm on our machines (its
# signature check fails), so pnpm comes from npm.
set -euo pipefail
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
if ! command -v pnpm >/dev/null 2>&1; then
  echo "==> pnpm not found: installing pnpm@10 with npm"
  npm install --global pnpm@10
fi
echo "==> pnpm install"
pnpm install --frozen-lockfile --reporter=append-only
