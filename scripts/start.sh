#!/usr/bin/env bash
# The main job: start stowage-server on its embedded default (a local store
# under ./data, no database). Arguments are passed to the server.
# The server replaces this shell (exec), so the PID that started it is the
# server's: stopping that PID (SIGTERM, SIGINT) drains and stops the server.
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec node --conditions=@stowage/source --import tsx apps/server/src/cli.ts "$@"
