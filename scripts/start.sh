#!/usr/bin/env bash
# The main job: start stowage-server on its embedded default (a local store
# under ./data, no database). Arguments are passed to the server.
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec pnpm --silent start "$@"
